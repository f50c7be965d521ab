"""Stop and flush: history to the warehouse first, cleanup only after every chunk is confirmed."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from cadences.models import DialerSettings
from campaigns.models import (
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    DailyKpi,
    FollowUpTask,
    PromiseToPay,
    QueueItem,
    SmsMessage,
)
from campaigns.lifecycle import campaign as lifecycle
from campaigns.compliance.ledger import ledger_record
from integrations.http import IntegrationError
from integrations.warehouse import client as warehouse

from .conftest import unreachable_warehouse as _unreachable_warehouse
from .conftest import NOW, SampleWarehouse, client_row

pytestmark = pytest.mark.django_db

HISTORY = "analytics.billing.dialer_call_history"


@pytest.fixture
def stopped_day(campaign: Campaign, sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any) -> Campaign:
    """A stopped campaign with an answered call (and a promise), a voicemail, a text and a skip."""
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    sample_warehouse.add([client_row(days_past_due=3) for _ in range(3)] + [client_row(days_past_due=0)])
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    campaign.refresh_from_db()
    lifecycle.campaign_load_and_run(campaign=campaign, now=NOW)
    answered, voicemail, skipped = campaign.items.filter(action_type="CALL").order_by("client_id")
    texted = campaign.items.exclude(action_type="CALL").get()
    for item, status, call_id in ((answered, "answered", "call_a"), (voicemail, "voicemail", "call_v")):
        CallAttempt.objects.create(
            campaign=campaign, queue_item=item, client_id=item.client_id, placed_at=NOW,
            call_id=call_id, to_number=item.phone, status="ended", outcome=status,
            disconnection_reason="user_hangup" if status == "answered" else "voicemail_reached", duration_ms=61000,
            summary="Client promised to pay on Friday." if status == "answered" else "",
            transcript="Agent: Hi, this is Grace.\nUser: I can pay on Friday — promesa.\n" if status == "answered" else "",
            custom_analysis={"promise_to_pay_date": "2025-06-13", "hardship": True} if status == "answered" else {},
            in_voicemail=status == "voicemail",
        )
        QueueItem.objects.filter(pk=item.pk).update(status=status)
        ledger_record(client_id=item.client_id, phone=item.phone, kind="call_attempt", reference=call_id, occurred_at=NOW)
    PromiseToPay.objects.create(client_id=answered.client_id, amount=Decimal("120.50"), promised_date=dt.date(2025, 6, 13), call_id="call_a")
    FollowUpTask.objects.create(kind="hardship", client_id=answered.client_id, due_at=NOW, source_ref="call_a")
    QueueItem.objects.filter(pk=skipped.pk).update(status="skipped", skip_reason="conversation_blackout")
    SmsMessage.objects.create(
        local_id=f"qi-{campaign.date}-{texted.client_id}-touchpoint", campaign=campaign, queue_item=texted,
        client_id=texted.client_id, phone=texted.phone, inbox_id=texted.inbox_id, text="Hi there", status="sent", sent_at=NOW,
    )
    QueueItem.objects.filter(pk=texted.pk).update(status="sms_sent", sms_status="sent")
    # An inbound caller who was not in today's queue still belongs in the reconciled file.
    ledger_record(client_id="INBOUND-ONLY", phone="+13125550142", kind="inbound_call", reference="call_in", occurred_at=NOW)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    campaign.refresh_from_db()
    return campaign


def _history() -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for chunk in warehouse.iter_query(f"SELECT * FROM {warehouse.qualified_table(warehouse.target().dialect, HISTORY)}"):
        rows.update({r["record_id"]: r for r in chunk})
    return rows


def test_flush_writes_every_outcome_then_cleans_up_the_day(stopped_day: Campaign) -> None:
    campaign = lifecycle.campaign_flush(campaign=stopped_day)
    assert campaign.status == Campaign.Status.FLUSHED and campaign.flush_error == ""
    history = _history()
    assert {r["record_type"] for r in history.values()} == {"call", "sms", "skipped"}
    assert history["call_a"]["outcome"] == "answered"
    assert history["call_a"]["promise_amount"] is not None
    assert history["call_v"]["disconnection_reason"] == "voicemail_reached"
    # What the conversation said leaves with the day's history: the rows holding it are deleted next.
    assert history["call_a"]["transcript"].startswith("Agent: Hi, this is Grace.") and "promesa" in history["call_a"]["transcript"]
    assert json.loads(history["call_a"]["custom_analysis"]) == {"promise_to_pay_date": "2025-06-13", "hardship": True}
    assert history["call_a"]["call_status"] == "ended" and history["call_a"]["call_kind"] == "outbound"
    assert bool(history["call_v"]["in_voicemail"]) is True and history["call_v"]["custom_analysis"] is None
    sms = next(r for r in history.values() if r["record_type"] == "sms")
    assert sms["sms_text"] == "Hi there" and sms["sms_kind"] == "touchpoint"
    assert campaign.flushed_rows == len(history) == 4
    # The day's rows are gone; what outlives the day stays.
    # Only the day's queue goes: the calls and texts stay with their clients' records.
    assert not QueueItem.objects.filter(campaign=campaign).exists()
    assert set(CallAttempt.objects.filter(campaign=campaign).values_list("call_id", "queue_item")) == {("call_a", None), ("call_v", None)}
    assert SmsMessage.objects.filter(campaign=campaign, queue_item=None).count() == 1
    assert ContactLedgerEntry.objects.count() == 3
    assert PromiseToPay.objects.count() == 1 and FollowUpTask.objects.count() == 1
    assert DailyKpi.objects.filter(date=campaign.date).exists()


def test_flush_is_idempotent_on_the_record_id(stopped_day: Campaign) -> None:
    rows = list(lifecycle.history_rows(campaign=stopped_day))
    table = DialerSettings.load().history_table
    warehouse.ensure_table(table, lifecycle.HISTORY_COLUMNS, key="record_id")
    warehouse.write_rows(table, rows, key="record_id", columns=list(lifecycle.HISTORY_COLUMNS))
    lifecycle.campaign_flush(campaign=stopped_day)
    assert len(_history()) == len(rows) == 4


def test_a_warehouse_outage_during_flush_deletes_nothing_and_a_later_flush_completes(
    stopped_day: Campaign, settings: Any, tmp_path: Any
) -> None:
    items_before = QueueItem.objects.filter(campaign=stopped_day).count()
    good_url = settings.WAREHOUSE_URL
    settings.WAREHOUSE_URL = _unreachable_warehouse(tmp_path)
    campaign = lifecycle.campaign_flush(campaign=stopped_day)
    assert campaign.status == Campaign.Status.STOPPED
    assert campaign.flush_error
    assert QueueItem.objects.filter(campaign=campaign).count() == items_before
    assert CallAttempt.objects.filter(campaign=campaign).count() == 2
    assert campaign.alerts.filter(source="flush", level="error").exists()

    # The retries an outage brings refresh the one alert instead of piling up copies of it.
    lifecycle.campaign_flush(campaign=campaign)
    lifecycle.campaign_flush(campaign=campaign)
    assert campaign.alerts.filter(source="flush").count() == 1

    settings.WAREHOUSE_URL = good_url
    campaign = lifecycle.campaign_flush(campaign=campaign)
    assert campaign.status == Campaign.Status.FLUSHED and campaign.flush_error == ""
    assert not QueueItem.objects.filter(campaign=campaign).exists()


def test_a_failure_after_some_chunks_were_written_deletes_nothing(
    stopped_day: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "FLUSH_CHUNK_ROWS", 1)
    real_write = warehouse.write_rows
    calls = {"n": 0}

    def flaky_write(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise IntegrationError("warehouse closed the connection", permanent=False, vendor="warehouse")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(warehouse, "write_rows", flaky_write)
    campaign = lifecycle.campaign_flush(campaign=stopped_day)
    assert calls["n"] == 3
    assert campaign.status == Campaign.Status.STOPPED
    assert "closed the connection" in campaign.flush_error
    assert QueueItem.objects.filter(campaign=campaign).count() == 4

    monkeypatch.setattr(warehouse, "write_rows", real_write)
    assert lifecycle.campaign_flush(campaign=campaign).status == Campaign.Status.FLUSHED
    assert len(_history()) == 4


def test_an_unwritable_reconciled_file_directory_keeps_the_day_and_says_so(stopped_day: Campaign, settings: Any, tmp_path: Any) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the directory should be")
    settings.RECONCILED_FILE_DIR = blocker / "reconciled"
    campaign = lifecycle.campaign_flush(campaign=stopped_day)
    assert campaign.status == Campaign.Status.STOPPED and "RECONCILED_FILE_DIR" in campaign.flush_error
    assert QueueItem.objects.filter(campaign=campaign).count() == 4
    assert campaign.alerts.filter(source="flush", level="error").count() == 1
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    assert lifecycle.campaign_flush(campaign=campaign).status == Campaign.Status.FLUSHED
    assert len(_history()) == 4


def test_only_a_stopped_campaign_flushes(campaign: Campaign) -> None:
    with pytest.raises(lifecycle.CampaignStateError):
        lifecycle.campaign_flush(campaign=campaign)


def test_reconciled_file_has_one_row_per_client_touched_outbound_and_inbound(stopped_day: Campaign, settings: Any) -> None:
    lifecycle.campaign_flush(campaign=stopped_day)
    path = settings.RECONCILED_FILE_DIR / f"reconciled-{stopped_day.date.isoformat()}.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    by_direction = {r["client_id"]: r for r in rows}
    assert by_direction["INBOUND-ONLY"]["direction"] == "inbound"
    answered = next(r for r in rows if r["last_call_outcome"] == "answered")
    assert answered["promise_amount"] == "120.50" and answered["promise_date"] == "2025-06-13"
    assert {r["final_status"] for r in rows if r["direction"] == "outbound"} == {"answered", "voicemail", "skipped", "sms_sent"}
    assert next(r for r in rows if r["final_status"] == "skipped")["skip_reason"] == "conversation_blackout"
    # Beside each code, its words.
    skipped = next(r for r in rows if r["final_status"] == "skipped")
    assert (skipped["final_status_display"], skipped["skip_reason_display"]) == ("Skipped", "A conversation in the last seven days")
    assert answered["last_call_outcome_display"] == "Answered" and answered["final_status_display"] == "Answered"
    assert all(r["phase_display"] and "_" not in r["phase_display"] for r in rows if r["direction"] == "outbound")
    assert by_direction["INBOUND-ONLY"]["final_status_display"] and "_" not in by_direction["INBOUND-ONLY"]["final_status_display"]


def test_a_second_worker_flushing_the_same_day_leaves_the_reconciled_file_whole(
    stopped_day: Campaign, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop's own finish task and the minute tick both flush a stopped day. One of them used
    to write the reconciled file again after the other had cleaned the queue up, leaving a file
    of its header alone (what `make run`'s end-of-day flush produced)."""
    real_snapshot = lifecycle.kpis.kpis_snapshot
    interleaved = {"done": False}

    def other_worker_flushes_meanwhile(*, campaign: Campaign) -> int:
        # This worker has written the history; before it writes the file, the other one flushes.
        if not interleaved["done"]:
            interleaved["done"] = True
            lifecycle.campaign_flush(campaign=Campaign.objects.get(pk=campaign.pk))
        return real_snapshot(campaign=campaign)

    monkeypatch.setattr(lifecycle.kpis, "kpis_snapshot", other_worker_flushes_meanwhile)
    campaign = lifecycle.campaign_flush(campaign=stopped_day)
    assert campaign.status == Campaign.Status.FLUSHED
    path = settings.RECONCILED_FILE_DIR / f"reconciled-{campaign.date.isoformat()}.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 == campaign.reconciled_rows
    assert campaign.reconciled_file == path.name


def test_a_flush_claim_of_a_worker_that_died_is_taken_over(stopped_day: Campaign) -> None:
    Campaign.objects.filter(pk=stopped_day.pk).update(flush_claimed_at=timezone.now())
    assert lifecycle.campaign_flush(campaign=stopped_day).status == Campaign.Status.STOPPED  # a live claim: left alone
    Campaign.objects.filter(pk=stopped_day.pk).update(flush_claimed_at=timezone.now() - lifecycle.FLUSH_CLAIM_TTL - dt.timedelta(seconds=1))
    assert lifecycle.campaign_flush(campaign=stopped_day).status == Campaign.Status.FLUSHED


def test_the_reconciled_file_counts_each_clients_calls_and_texts_as_the_history_does(stopped_day: Campaign, settings: Any) -> None:
    campaign = lifecycle.campaign_flush(campaign=stopped_day)
    path = settings.RECONCILED_FILE_DIR / f"reconciled-{campaign.date.isoformat()}.csv"
    with path.open(newline="") as handle:
        rows = {r["client_id"]: r for r in csv.DictReader(handle)}
    history = list(_history().values())
    for client_id, row in rows.items():
        calls = [h for h in history if h["client_id"] == client_id and h["record_type"] == "call" and h["call_status"] != "not_dialed"]
        texts = [h for h in history if h["client_id"] == client_id and h["record_type"] == "sms"]
        assert (int(row["calls"]), int(row["texts"])) == (len(calls), len(texts)), client_id
    answered = next(r for r in rows.values() if r["last_call_outcome"] == "answered")
    assert answered["open_tasks"] == "Hardship" and answered["dispute"] == "no" and answered["opted_out"] == "no"
    assert set(rows["INBOUND-ONLY"]) >= {"dispute", "open_tasks", "opted_out", "recording_url"}


def test_history_has_a_placed_time_for_every_call_and_a_sent_time_for_every_text(stopped_day: Campaign) -> None:
    lifecycle.campaign_flush(campaign=stopped_day)
    history = _history()
    assert {str(h["placed_at"])[:10] for h in history.values() if h["record_type"] == "call"} == {NOW.date().isoformat()}
    assert all(h["sent_at"] for h in history.values() if h["record_type"] == "sms")
