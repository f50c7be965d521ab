"""Durable accounts: every queue row and upload keeps its client's account; a client's story —
timeline, inbound context, API — reads durable records and is the same after the day's flush."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from campaigns.calls import inbound
from campaigns.dashboard import selectors
from campaigns.lifecycle import campaign as lifecycle
from campaigns.lifecycle import retention
from campaigns.metrics import kpis
from campaigns.models import (
    Account,
    AccountPhone,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    GateDecision,
    PromiseToPay,
    QueueItem,
    SmsMessage,
    Suppression,
)
from campaigns.payments import record
from campaigns.queue import load as queue
from integrations import clock
from cadences.models import Segment
from cadences.roles import SUPERVISORS

from .conftest import NOW, SampleWarehouse, client_row
from .retell_factories import retell_tasks_inline  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def _load(campaign: Campaign, now: dt.datetime = NOW) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    campaign.refresh_from_db()
    lifecycle.campaign_load_and_run(campaign=campaign, now=now, start_release=False)


def test_every_usable_row_keeps_an_account_whether_or_not_it_has_a_touchpoint_today(
    campaign: Campaign, sample_warehouse: SampleWarehouse
) -> None:
    touched, untouched, suspended = sample_warehouse.add(
        [client_row(days_past_due=3), client_row(days_past_due=2), client_row(days_past_due=75, phone="+13125550160")]
    )
    sample_warehouse.add([client_row(client_id="BAD-1", phone="not a phone")])
    _load(campaign)
    accounts = {a.client_id: a for a in Account.objects.select_related("segment")}
    assert set(accounts) == {touched["client_id"], untouched["client_id"], suspended["client_id"]}
    account = accounts[touched["client_id"]]
    assert (account.name, account.phone, account.segment.name, account.days_past_due) == (touched["name"], touched["phone"], "RED Initial", 3)
    assert account.amount_due == Decimal("120.50") and account.status == Account.Status.ACTIVE
    assert account.first_seen_at == account.last_seen_at == NOW and account.last_campaign_date == campaign.date
    assert accounts[suspended["client_id"]].status == Account.Status.SUSPENDED
    assert QueueItem.objects.filter(client_id=untouched["client_id"]).count() == 0  # no touchpoint on day 2
    assert not AccountPhone.objects.exists()  # each client's one number is on the account itself


def test_a_later_load_updates_the_account_and_remembers_every_number(campaign: Campaign, sample_warehouse: SampleWarehouse) -> None:
    (row,) = sample_warehouse.add([client_row(days_past_due=3)])
    _load(campaign)
    tomorrow = lifecycle.campaign_create(date=campaign.date + dt.timedelta(days=1))
    sample_warehouse.add([{**row, "phone": "+13125550199", "days_past_due": 4, "amount_due": "99.00"}])
    _load(tomorrow, now=NOW + dt.timedelta(days=1))
    account = Account.objects.get(client_id=row["client_id"])
    assert (account.phone, account.days_past_due, account.amount_due) == ("+13125550199", 4, Decimal("99.00"))
    assert account.first_seen_at == NOW and account.last_seen_at == NOW + dt.timedelta(days=1)
    assert list(account.phones.values_list("phone", flat=True)) == [row["phone"]]  # the number it had before
    # A caller on either number is the client.
    now = NOW + dt.timedelta(days=1)
    for number in (row["phone"], "+13125550199"):
        match = inbound.caller_match(phone=number, now=now)
        assert (match.source, match.client_id) == ("account", row["client_id"]), number


def test_an_upload_keeps_owner_and_tier(campaign: Campaign) -> None:
    content = (
        "client_id,name,phone,segment,days_past_due,ring_group,amount_due,owner,tier\n"
        "UP-1,Ada Owner,+12125550161,RED Initial,3,billing,5000.00,jordan.lee,platinum\n"
    ).encode()
    queue.queue_upload_csv(campaign=campaign, upload=SimpleUploadedFile("clients.csv", content), filename="clients.csv", now=NOW)
    account = Account.objects.get(client_id="UP-1")
    assert (account.owner, account.tier, account.amount_due) == ("jordan.lee", "platinum", Decimal("5000.00"))


def test_revalidation_marks_a_client_who_dropped_out_resolved(campaign: Campaign, sample_warehouse: SampleWarehouse) -> None:
    row, _still_due = sample_warehouse.add([client_row(days_past_due=3), client_row(days_past_due=3)])
    _load(campaign)
    sample_warehouse.resolve([row["client_id"]])
    assert queue.queue_revalidate(campaign=campaign, now=NOW + dt.timedelta(minutes=30)) == 1
    assert Account.objects.get(client_id=row["client_id"]).status == Account.Status.RESOLVED


# --- the day's record outlives the flush -------------------------------------------------------


@pytest.fixture
def worked_day(campaign: Campaign, sample_warehouse: SampleWarehouse, settings: Any, tmp_path: Any) -> dict[str, Any]:
    settings.RECONCILED_FILE_DIR = tmp_path / "reconciled"
    rows = sample_warehouse.add([client_row(days_past_due=3) for _ in range(3)])
    _load(campaign)
    transferred, voicemail, blocked = (QueueItem.objects.get(client_id=r["client_id"]) for r in rows)
    for item, outcome, call_id in ((transferred, "transferred", "call_t"), (voicemail, "voicemail", "call_vm")):
        CallAttempt.objects.create(
            campaign=campaign, queue_item=item, client_id=item.client_id, placed_at=NOW, call_id=call_id,
            to_number=item.phone, status="ended", outcome=outcome, summary=f"The {outcome} call.",
            transcript="Agent: Hi, this is Grace.", recording_url=f"https://recordings.example.com/{call_id}.wav",
        )  # fmt: skip
        QueueItem.objects.filter(pk=item.pk).update(status=outcome)
    SmsMessage.objects.create(
        local_id="qi-vm-follow-up", campaign=campaign, queue_item=voicemail, kind=SmsMessage.Kind.FOLLOW_UP,
        client_id=voicemail.client_id, phone=voicemail.phone, inbox_id=voicemail.inbox_id, text="Sorry we missed you.",
        status="sent", sent_at=NOW,
    )  # fmt: skip
    suppression = Suppression.objects.create(phone=blocked.phone, channel="all", reason="dispute_hold", source="retell:call_other")
    GateDecision.objects.create(
        client_id=blocked.client_id, campaign=campaign, campaign_date=campaign.date, queue_item=blocked, channel="call",
        rule="suppressed", detail="The phone number has an active dispute hold suppression (all channels).",
        inputs={"suppression_id": suppression.pk, "matched_on": "phone", "suppression_client_id": "", "reason": "dispute_hold"},
        decided_at=NOW,
    )  # fmt: skip
    QueueItem.objects.filter(pk=blocked.pk).update(status="skipped", skip_reason="suppressed")
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED, stopped_at=NOW)
    campaign.refresh_from_db()
    return {"campaign": campaign, "transferred": transferred, "voicemail": voicemail, "blocked": blocked}


def _story(client_id: str) -> list[tuple[str, str, str]]:
    return [(e.kind, e.at.isoformat(), e.title) for e in selectors.client_timeline(client_id=client_id).events]


def test_the_timeline_reads_the_same_before_and_after_the_flush(worked_day: dict[str, Any]) -> None:
    clients = [worked_day[k].client_id for k in ("transferred", "voicemail", "blocked")]
    before = {client_id: _story(client_id) for client_id in clients}
    assert any(kind == "call" for kind, _, _ in before[clients[0]])
    assert any(kind == "sms" for kind, _, _ in before[clients[1]])
    assert [title for kind, _, title in before[clients[2]] if kind == "gate"] == ["Not contacted: Suppressed (do not contact)"]

    campaign = lifecycle.campaign_flush(campaign=worked_day["campaign"])
    assert campaign.status == Campaign.Status.FLUSHED and not QueueItem.objects.exists()
    assert {client_id: _story(client_id) for client_id in clients} == before


def test_a_block_through_a_shared_number_says_so_in_words(worked_day: dict[str, Any]) -> None:
    (event,) = [e for e in selectors.client_timeline(client_id=worked_day["blocked"].client_id).events if e.kind == "gate"]
    assert event.shared_number
    assert ("Matched on", "phone") in event.inputs and ("Reason", "dispute hold") in event.inputs


def test_a_flushed_day_keeps_its_tiles_batches_and_skipped_reasons(worked_day: dict[str, Any]) -> None:
    live = selectors.campaign_status(campaign=worked_day["campaign"], with_free_agents=False).as_dict()
    campaign = lifecycle.campaign_flush(campaign=worked_day["campaign"])
    after = selectors.campaign_status(campaign=campaign, with_free_agents=False).as_dict()
    for key in ("total_items", "counters", "skipped_by_reason"):
        assert after[key] == live[key], key
    assert after["skipped_by_reason"] == [{"reason": "suppressed", "reason_display": "Suppressed (do not contact)", "count": 1}]
    funnel = [stage["count"] for stage in selectors.campaign_funnel(status=selectors.campaign_status(campaign=campaign, with_free_agents=False))]
    assert funnel == sorted(funnel, reverse=True) and funnel[0] == 3
    summary = selectors.end_of_day_summary(campaign=campaign)
    assert summary is not None
    assert (summary["touchpoints"], summary["calls_placed"], summary["texts_sent"]) == (3, 0, 1)
    assert summary["history_rows"] == campaign.flushed_rows and summary["reconciled_rows"] == 3
    assert summary["reconciled_file"] == f"reconciled-{campaign.date.isoformat()}.csv"


def _signed_inbound(client: Client, from_number: str, call_id: str) -> dict[str, str]:
    from tests.campaigns.retell_factories import INBOUND_URL, post_signed

    body = {"event": "call_inbound", "call_inbound": {"from_number": from_number, "to_number": "+12125550100", "call_id": call_id}}
    response = post_signed(client, body, url=INBOUND_URL)
    assert response.status_code == 200
    return response.json()["call_inbound"]["dynamic_variables"]


def test_a_known_caller_not_queued_today_gets_amount_phase_and_transfer_number(
    worked_day: dict[str, Any], client: Client, settings: Any
) -> None:
    lifecycle.campaign_flush(campaign=worked_day["campaign"])
    item = worked_day["transferred"]
    variables = _signed_inbound(client, item.phone, "call_in_after_flush")
    assert variables["known_caller"] == "true" and variables["client_name"] == item.client_name
    # No amount before verification (the segment's default); the days past due are no secret.
    assert variables["amount_due"] == "" and variables["days_past_due"] == "3"
    assert variables["phase"] == "Soft intro" and variables["transfer_number"] == item.segment.billing_transfer_number
    assert "was called (transferred): The transferred call." in variables["recent_history"]
    call = CallAttempt.objects.get(call_id="call_in_after_flush")
    assert (call.kind, call.client_id, call.from_number) == ("inbound", item.client_id, item.phone)


def test_an_open_promise_is_in_the_inbound_context(worked_day: dict[str, Any], client: Client) -> None:
    item = worked_day["voicemail"]
    PromiseToPay.objects.create(client_id=item.client_id, amount=Decimal("60.00"), promised_date=dt.date(2025, 6, 20), call_id="call_p")
    # The shipped segments verify before any amount is given: the promise's date, not its amount.
    assert _signed_inbound(client, item.phone, "call_in_promise")["open_promise"] == "a payment promised for June 20, 2025"
    Segment.objects.filter(name="RED Initial").update(verify_before_balance=False)
    assert _signed_inbound(client, item.phone, "call_in_promise_2")["open_promise"] == "$60.00 promised for June 20, 2025"


@pytest.fixture
def on_the_campaign_day() -> Any:
    """The portal's clock on the worked day (an inbound call belongs to the campaign of its day)."""
    clock.accelerate(start=NOW, speed=1.0)
    yield
    clock.reset()


def test_an_inbound_call_is_stored_like_an_outbound_one_and_reaches_the_history(
    worked_day: dict[str, Any], client: Client, retell_tasks_inline: None, on_the_campaign_day: None
) -> None:
    from tests.campaigns.retell_factories import post_signed

    item = worked_day["voicemail"]
    _signed_inbound(client, item.phone, "call_in_1")
    ended = {
        "event": "call_ended",
        "call": {
            "call_id": "call_in_1", "direction": "inbound", "call_status": "ended", "disconnection_reason": "user_hangup",
            "from_number": item.phone, "to_number": "+12125550100", "transcript": "User: I want to pay.",
            "recording_url": "https://recordings.example.com/in1.wav", "start_timestamp": 1749560400000, "end_timestamp": 1749560460000,
        },
    }  # fmt: skip
    assert post_signed(client, ended).status_code == 204
    call = CallAttempt.objects.get(call_id="call_in_1")
    assert call.outcome == "answered" and call.transcript == "User: I want to pay." and call.recording_url.endswith("in1.wav")
    rows = list(lifecycle.history_rows(campaign=worked_day["campaign"]))
    (row,) = [r for r in rows if r["record_id"] == "call_in_1"]
    assert row["record_type"] == "inbound_call" and row["client_id"] == item.client_id and row["placed_at"] is not None


# --- API ------------------------------------------------------------------------------------------


def _supervisor() -> Client:
    user = User.objects.create_user("sam.sup", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPERVISORS))
    api = Client()
    api.force_login(user)
    return api


def test_the_accounts_api_lists_filters_searches_and_tells_a_clients_story(worked_day: dict[str, Any]) -> None:
    api = _supervisor()
    listing = api.get("/api/accounts/").json()
    assert listing["count"] == 3
    item = worked_day["transferred"]
    found = api.get("/api/accounts/", {"search": item.phone.removeprefix("+1")}).json()["results"]
    assert [a["client_id"] for a in found] == [item.client_id]
    assert api.get("/api/accounts/", {"status": "resolved"}).json()["count"] == 0
    assert api.get("/api/accounts/", {"segment": "RED Initial"}).json()["count"] == 3

    lifecycle.campaign_flush(campaign=worked_day["campaign"])
    detail = api.get(f"/api/accounts/{item.client_id}/").json()
    assert (detail["client_id"], detail["name"], detail["status"], detail["amount_due"], detail["days_past_due"]) == (
        item.client_id, item.client_name, "active", "120.50", 3,
    )  # fmt: skip
    (call,) = [e for e in detail["events"] if e["kind"] == "call"]
    assert call["call_id"] == "call_t" and call["outcome"] == "transferred" and call["summary"] == "The transferred call."
    assert call["transcript"].startswith("Agent:") and call["recording_url"].endswith("call_t.wav")
    assert dt.datetime.fromisoformat(call["at"]).utcoffset() is not None
    assert api.get("/api/accounts/NOBODY/").status_code == 404


def test_a_payment_is_on_the_timeline_and_in_the_accounts_api(worked_day: dict[str, Any]) -> None:
    item = worked_day["transferred"]
    record.payment_record(client_id=item.client_id, amount="50.00", reference="pi_timeline", paid_at=NOW, source="stripe", now=NOW)
    lifecycle.campaign_flush(campaign=worked_day["campaign"])
    (event,) = [e for e in selectors.client_timeline(client_id=item.client_id).events if e.kind == "payment"]
    assert event.title == "Payment received — $50.00" and event.at == NOW
    api = _supervisor()
    page = api.get(f"/dashboard/clients/{item.client_id}/").content.decode()
    assert "Payment received — $50.00" in page and "pi_timeline" in page
    detail = api.get(f"/api/accounts/{item.client_id}/").json()
    (payment,) = [e for e in detail["events"] if e["kind"] == "payment"]
    assert (payment["amount"], payment["source"], payment["reference"], payment["balance_after"]) == ("50.00", "stripe", "pi_timeline", "70.50")


# --- KPIs, retention, batches ---------------------------------------------------------------------


def test_promises_count_on_the_campaign_day_of_their_call(db: Any) -> None:
    day = dt.date(2026, 12, 1)
    PromiseToPay.objects.create(client_id="K1", amount=Decimal("10.00"), promised_date=day + dt.timedelta(days=3), call_id="k1", campaign_date=day)
    figures = kpis.promise_figures(since=day, until=day)
    assert sum(f["promises"] for f in figures.values()) == 1
    assert kpis.promise_figures(since=day + dt.timedelta(days=1), until=day + dt.timedelta(days=5)) == {}


def test_records_older_than_the_retention_are_pruned_and_active_suppressions_stay(db: Any) -> None:
    old = NOW - dt.timedelta(days=401)
    ContactLedgerEntry.objects.create(client_id="OLD", phone="+12125550171", kind="call_attempt", reference="c-old", occurred_at=old)
    ContactLedgerEntry.objects.create(client_id="NEW", phone="+12125550172", kind="call_attempt", reference="c-new", occurred_at=NOW)
    Suppression.objects.create(client_id="OLD", channel="call", reason="do_not_call", source="staff", created_at=old)
    lifted = Suppression.objects.create(client_id="OLD", channel="sms", reason="sms_opt_out", source="staff", created_at=old, lifted_at=old)
    report = retention.records_prune(now=NOW, batch=1)
    assert list(ContactLedgerEntry.objects.values_list("reference", flat=True)) == ["c-new"]
    assert Suppression.objects.filter(lifted_at=None).count() == 1 and not Suppression.objects.filter(pk=lifted.pk).exists()
    assert report.deleted == {"ledger entries": 1, "lifted suppressions": 1}


def test_the_prune_is_a_schedule(db: Any) -> None:
    from campaigns import schedules

    assert schedules.periodic("records-prune").func == "campaigns.tasks.records_prune_task"


def test_inbound_variables_always_carry_every_key() -> None:
    assert {"open_promise", "recent_history"} <= set(inbound.GENERIC_VARIABLES)
