"""The reconciled file delivered to the partner's SFTP folder after the flush, against a real SFTP
server on loopback: it arrives whole; a failure is retried with growing pauses and ends in an
alert; the status and time show on the campaign and in the dashboard's end-of-day summary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_q.models import Schedule

from campaigns import schedules
from campaigns.dashboard import selectors
from campaigns.lifecycle import campaign as lifecycle
from campaigns.lifecycle import delivery
from campaigns.models import Alert, Campaign, ReconciledDelivery, SftpDestination

from .conftest import NOW, SampleWarehouse
from .dashboard_factories import supervisor
from .sftp_server import USERNAME, SftpTestServer

pytestmark = pytest.mark.django_db

Status = ReconciledDelivery.Status


@pytest.fixture
def outbox(sftp_server: SftpTestServer) -> Path:
    path = sftp_server.root / "outbox"
    path.mkdir()
    return path


@pytest.fixture
def destination(sftp_server: SftpTestServer, outbox: Path) -> SftpDestination:
    partner = SftpDestination(name="Acme reconciled", host="127.0.0.1", port=sftp_server.port, username=USERNAME,
                              host_key=sftp_server.host_key_line, path="/outbox")  # fmt: skip
    partner.private_key = sftp_server.client_private_key
    partner.save()
    return partner


@pytest.fixture
def flushed(campaign: Campaign, sample_warehouse: SampleWarehouse, destination: SftpDestination, settings: Any, tmp_path: Path) -> Campaign:
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    flushed = lifecycle.campaign_flush(campaign=campaign)
    assert flushed.status == Campaign.Status.FLUSHED
    return flushed


def local_file(campaign: Campaign) -> bytes:
    return (Path(django_settings.RECONCILED_FILE_DIR) / campaign.reconciled_file).read_bytes()


def test_the_flush_delivers_the_reconciled_file_to_the_partner(flushed: Campaign, outbox: Path) -> None:
    pending = ReconciledDelivery.objects.get(campaign=flushed)
    assert pending.status == Status.PENDING  # created by the flush, sent by its task once committed

    sent = delivery.reconciled_delivery_send(delivery=pending, now=NOW)

    assert (sent.status, sent.attempts, sent.delivered_at) == (Status.DELIVERED, 1, NOW)
    assert sent.remote_path == f"/outbox/reconciled-{flushed.date.isoformat()}.csv"
    assert (outbox / f"reconciled-{flushed.date.isoformat()}.csv").read_bytes() == local_file(flushed)
    assert sorted(p.name for p in outbox.iterdir()) == [f"reconciled-{flushed.date.isoformat()}.csv"]  # no partial file left
    # Sent once: a second try (the task delivered twice, or the sweep) does nothing.
    again = delivery.reconciled_delivery_send(delivery=sent, now=NOW + dt.timedelta(minutes=5))
    assert again.attempts == 1 and delivery.reconciled_deliveries_retry(now=NOW + dt.timedelta(hours=1)) == []

    summary = selectors.end_of_day_summary(campaign=flushed)
    assert summary is not None
    [row] = summary["deliveries"]
    assert row["destination"] == "Acme reconciled" and row["status"] == "delivered"
    assert row["text"].startswith("delivered Jun 10, 2025 09:00")


def test_a_failed_delivery_is_retried_with_growing_pauses_then_alerts(
    flushed: Campaign, sftp_server: SftpTestServer, outbox: Path
) -> None:
    sftp_server.stop()
    pending = ReconciledDelivery.objects.get(campaign=flushed)
    now = NOW
    tried = delivery.reconciled_delivery_send(delivery=pending, now=now)
    assert (tried.status, tried.attempts) == (Status.RETRYING, 1)
    assert "could not connect" in tried.error
    for attempt, pause in enumerate(delivery.RETRY_DELAYS, start=1):
        assert tried.next_attempt_at == now + pause
        # Not before its pause is over.
        delivery.reconciled_deliveries_retry(now=now + pause - dt.timedelta(seconds=1))
        tried.refresh_from_db()
        assert tried.attempts == attempt
        now = now + pause
        delivery.reconciled_deliveries_retry(now=now)
        tried.refresh_from_db()
        assert tried.attempts == attempt + 1
        assert not Alert.objects.filter(source=delivery.ALERT_SOURCE).exists() or tried.status == Status.FAILED

    assert (tried.status, tried.attempts, tried.next_attempt_at) == (Status.FAILED, delivery.MAX_ATTEMPTS, None)
    alert = Alert.objects.get(campaign=flushed, source=delivery.ALERT_SOURCE)
    assert alert.level == Alert.Level.ERROR and "Acme reconciled" in alert.message and "could not connect" in alert.message
    summary = selectors.end_of_day_summary(campaign=flushed)
    assert summary is not None and summary["deliveries"][0]["text"] == f"failed for good after {delivery.MAX_ATTEMPTS} tries"
    assert delivery.reconciled_deliveries_retry(now=now + dt.timedelta(days=1)) == []
    assert list(outbox.iterdir()) == []

    # The partner's server is back; a supervisor sends it again.
    sftp_server.start()
    assert delivery.reconciled_delivery_restart(delivery=tried)
    assert delivery.reconciled_deliveries_retry(now=now) == [tried.pk]
    assert (outbox / flushed.reconciled_file).read_bytes() == local_file(flushed)


def test_a_server_whose_host_key_changed_gets_nothing(flushed: Campaign, destination: SftpDestination, outbox: Path) -> None:
    SftpDestination.objects.filter(pk=destination.pk).update(
        host_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    )
    tried = delivery.reconciled_delivery_send(delivery=ReconciledDelivery.objects.get(campaign=flushed), now=NOW)
    assert tried.status == Status.RETRYING and "not the stored one" in tried.error
    assert list(outbox.iterdir()) == []
    destination.refresh_from_db()
    assert "not the stored one" in destination.last_error


def test_a_flush_without_delivery_folders_delivers_nothing_and_disabled_ones_are_skipped(
    campaign: Campaign, sample_warehouse: SampleWarehouse, destination: SftpDestination, settings: Any, tmp_path: Path
) -> None:
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    SftpDestination.objects.update(enabled=False)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    lifecycle.campaign_flush(campaign=campaign)
    assert not ReconciledDelivery.objects.exists()
    assert selectors.end_of_day_summary(campaign=campaign)["deliveries"] == []  # type: ignore[index]


def test_the_dashboard_and_the_campaign_page_show_the_delivery(flushed: Campaign, client: Any) -> None:
    delivery.reconciled_delivery_send(delivery=ReconciledDelivery.objects.get(campaign=flushed), now=NOW)
    client.force_login(supervisor())
    page = client.get(reverse("campaigns-dashboard"), {"date": flushed.date.isoformat()}).content.decode()
    assert "<dt>Sent to Acme reconciled</dt>" in page
    assert 'data-delivery="delivered"' in page and "delivered Jun 10, 2025 09:00" in page
    status = client.get(reverse("campaigns-dashboard-status"), {"date": flushed.date.isoformat()}).json()
    [card] = [c for c in status["campaigns"] if c["id"] == flushed.pk]
    assert card["end_of_day"]["deliveries"][0]["status"] == "delivered"

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    page = client.get(reverse("admin:campaigns_campaign_change", args=[flushed.pk])).content.decode()
    assert "Reconciled file sent to the partners" in page and "Acme reconciled" in page and "Delivered" in page


def test_the_retry_sweep_is_an_idempotent_schedule() -> None:
    schedules.schedules_install()
    schedules.schedules_install()
    sweep = Schedule.objects.get(name="reconciled-deliveries-retry")
    assert sweep.func == "campaigns.tasks.reconciled_deliveries_retry_task" and sweep.minutes == 1
