"""The campaign admin page: load progress, rejected rows and their CSV, the queue item list."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from cadences.models import DialerSettings
from campaigns.models import Campaign, QueueItem
from campaigns.queue import load as queue

from .conftest import NOW, UNFILTERED_SQL, client_row


@pytest.fixture
def admin_client_logged_in(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def loaded_campaign(sample_warehouse, campaign):
    sample_warehouse.add(
        [client_row(), client_row(days_past_due=2), client_row(phone="=HYPERLINK(1)"), client_row(segment="Gold Premium")]
    )
    queue.queue_load(campaign=campaign, now=NOW, sql=UNFILTERED_SQL)
    return campaign


@pytest.mark.django_db
def test_the_campaign_page_shows_progress_and_rejected_rows(admin_client_logged_in, loaded_campaign):
    response = admin_client_logged_in.get(reverse("admin:campaigns_campaign_change", args=[loaded_campaign.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert '<span data-counter="rows_read">4</span> read' in content
    assert '<span data-counter="rows_inserted">1</span> queued' in content
    assert '<span data-counter="rows_rejected">2</span> rejected' in content
    assert '<span data-counter="rows_no_touchpoint">1</span> no touchpoint today' in content
    assert "unknown segment &#x27;Gold Premium&#x27;" in content
    assert reverse("admin:campaigns_campaign_rejected_csv", args=[loaded_campaign.pk]) in content
    assert reverse("admin:campaigns_campaign_upload", args=[loaded_campaign.pk]) in content


@pytest.mark.django_db
def test_progress_json_reports_a_load_in_progress(admin_client_logged_in, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING, rows_read=5000, rows_inserted=1200)

    progress = admin_client_logged_in.get(reverse("admin:campaigns_campaign_progress", args=[campaign.pk])).json()

    assert (progress["in_progress"], progress["rows_read"], progress["rows_inserted"]) == (True, 5000, 1200)
    page = admin_client_logged_in.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert 'data-in-progress="1"' in page and "loading…" in page
    assert "campaigns/load_progress.js" in page


@pytest.mark.django_db
def test_rejected_rows_download_as_csv_safe_for_spreadsheets(admin_client_logged_in, loaded_campaign):
    response = admin_client_logged_in.get(reverse("admin:campaigns_campaign_rejected_csv", args=[loaded_campaign.pk]))

    assert response["Content-Type"] == "text/csv"
    assert 'filename="rejected-rows-2025-06-10.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["row_number"], r["source"]) for r in rows] == [("3", "warehouse"), ("4", "warehouse")]
    assert rows[0]["reason"] == "phone '=HYPERLINK(1)' is not a phone number (The string supplied did not seem to be a phone number.)"
    # A cell starting with "=" would run as a formula when opened in a spreadsheet.
    assert rows[0]["phone"] == "'=HYPERLINK(1)"
    assert rows[1]["segment"] == "Gold Premium"
    assert rows[1]["phone"].startswith("'+1212555")  # a leading + is neutralised too


@pytest.mark.django_db
def test_adding_a_campaign_in_the_admin_copies_the_release_settings(admin_client_logged_in):
    settings_row = DialerSettings.load()
    settings_row.batch_size = 40
    settings_row.save()

    response = admin_client_logged_in.post(reverse("admin:campaigns_campaign_add"), {"date": "2025-07-01"})

    assert response.status_code == 302
    campaign = Campaign.objects.get(date="2025-07-01")
    assert campaign.batch_size == 40
    assert campaign.created_by.username == "root"


@pytest.mark.django_db
def test_queue_items_are_searchable_filterable_and_read_only(admin_client_logged_in, loaded_campaign):
    item = QueueItem.objects.get(campaign=loaded_campaign)
    changelist = reverse("admin:campaigns_queueitem_changelist")

    found = admin_client_logged_in.get(changelist, {"q": item.client_id}).content.decode()
    filtered = admin_client_logged_in.get(changelist, {"status__exact": "ineligible"}).content.decode()
    change = admin_client_logged_in.post(reverse("admin:campaigns_queueitem_change", args=[item.pk]), {"status": "answered"})

    assert item.client_id in found
    assert item.client_id not in filtered
    assert change.status_code in (200, 302)
    item.refresh_from_db()
    assert item.status == QueueItem.Status.QUEUED
    assert admin_client_logged_in.get(reverse("admin:campaigns_queueitem_add")).status_code == 403


@pytest.mark.django_db
def test_rejected_rows_list_is_read_only(admin_client_logged_in, loaded_campaign):
    listing = admin_client_logged_in.get(
        reverse("admin:campaigns_rejectedrow_changelist"), {"campaign__id__exact": loaded_campaign.pk}
    ).content.decode()

    assert "Gold Premium" in listing
    assert admin_client_logged_in.get(reverse("admin:campaigns_rejectedrow_add")).status_code == 403
