"""Campaign control from the admin: lifecycle actions and the reconciled-file download."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign
from campaigns.lifecycle import campaign as lifecycle

from .conftest import NOW, SampleWarehouse, client_row
from .conftest import unreachable_warehouse as _unreachable_warehouse

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    user = User.objects.create_superuser("ops", "ops@example.com", "x")
    client.force_login(user)
    return client


def _act(client: Client, action: str, campaign: Campaign) -> Any:
    return client.post(
        reverse("admin:campaigns_campaign_changelist"), {"action": action, "_selected_action": [campaign.pk]}, follow=True
    )


def test_stop_pause_and_resume_from_the_admin(staff: Client, campaign: Campaign, django_capture_on_commit_callbacks: Any) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=False):
        response = _act(staff, "pause_campaigns", campaign)
    assert "paused" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    with django_capture_on_commit_callbacks(execute=False):
        _act(staff, "resume_campaigns", campaign)
        _act(staff, "stop_campaigns", campaign)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.STOPPING


def test_an_illegal_action_says_why(staff: Client, campaign: Campaign) -> None:
    response = _act(staff, "pause_campaigns", campaign)
    assert "is not running" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_a_failed_flush_is_reported_and_a_retry_from_the_admin_completes(
    staff: Client, campaign: Campaign, sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any
) -> None:
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    sample_warehouse.add([client_row(days_past_due=3)])
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW, start_release=False)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    good = settings.WAREHOUSE_URL
    settings.WAREHOUSE_URL = _unreachable_warehouse(tmp_path)
    response = _act(staff, "flush_campaigns", campaign)
    assert "the flush failed and everything was kept" in response.content.decode()
    assert campaign.items.count() == 1
    settings.WAREHOUSE_URL = good
    _act(staff, "flush_campaigns", campaign)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.FLUSHED and campaign.items.count() == 0


def test_the_reconciled_file_downloads_live_and_after_the_flush(
    staff: Client, campaign: Campaign, sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any
) -> None:
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    sample_warehouse.add([client_row(days_past_due=3), client_row(days_past_due=1)])
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW, start_release=False)
    url = reverse("admin:campaigns_campaign_reconciled_csv", args=[campaign.pk])

    live = staff.get(url)
    assert live.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(live.streaming_content).decode())))
    assert len(rows) == 2 and {r["direction"] for r in rows} == {"outbound"}

    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    lifecycle.campaign_flush(campaign=campaign)
    flushed = staff.get(url)
    assert flushed.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(flushed.streaming_content).decode())))
    assert len(rows) == 2, "after the flush the file written at flush is served"


def test_the_reconciled_file_needs_a_staff_login(client: Client, campaign: Campaign) -> None:
    response = client.get(reverse("admin:campaigns_campaign_reconciled_csv", args=[campaign.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
