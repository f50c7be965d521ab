"""POST /webhooks/retell/functions/: Grace's live tools, signed like every Retell request."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from cadences.models import Phase, Segment
from cadences.selectors import phase_on_day
from campaigns.lifecycle import campaign as lifecycle
from campaigns.models import (
    Account,
    Callback,
    Campaign,
    FollowUpTask,
    GateDecision,
    LiveToolCall,
    PromiseToPay,
    RejectedRow,
    Suppression,
)
from campaigns.queue import identity
from campaigns.webhooks import inbox
from integrations import clock
from tests.campaigns.conftest import SampleWarehouse, client_row
from tests.campaigns.retell_factories import post_signed, retell_tasks_inline  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

FUNCTIONS_URL = "/webhooks/retell/functions/"
# 11:00 in New York on a Tuesday: inside every window.
MORNING = dt.datetime(2025, 6, 10, 15, 0, tzinfo=dt.timezone.utc)
DOB = "1984-03-07"
SSN4 = "4821"


@pytest.fixture
def fixed_clock():
    clock.accelerate(start=MORNING, speed=1.0)
    yield MORNING
    clock.reset()


@pytest.fixture
def loaded(sample_warehouse: SampleWarehouse, fixed_clock) -> Account:
    """One client loaded through the queue SQL with a date of birth and SSN last four."""
    campaign = lifecycle.campaign_create(date=MORNING.date())
    sample_warehouse.add(
        [client_row(client_id="T-LIVE-1", name="Dana Whitaker", phone="+12125550142", days_past_due=20, amount_due="240.00",
                    date_of_birth=DOB, ssn_last4=SSN4)]
    )  # fmt: skip
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    campaign.refresh_from_db()
    lifecycle.campaign_load_and_run(campaign=campaign, now=MORNING, start_release=False)
    return Account.objects.select_related("segment").get(client_id="T-LIVE-1")


def call(call_id: str = "call_live_1", *, client_id: str = "T-LIVE-1", **fields: Any) -> dict[str, Any]:
    body = {"call_id": call_id, "direction": "outbound", "to_number": "+12125550142", "metadata": {"client_id": client_id}}
    body.update(fields)
    return body


def ask(client, name: str, args: dict[str, Any] | None = None, *, call_object: dict[str, Any] | None = None) -> dict[str, Any]:
    response = post_signed(client, {"name": name, "call": call_object or call(), "args": args or {}}, url=FUNCTIONS_URL)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_forged_or_stale_request_is_refused_and_nothing_is_stored(client, loaded):
    body = {"name": "lookup_account", "call": call(), "args": {}}
    assert post_signed(client, body, url=FUNCTIONS_URL, api_key="not-the-key").status_code == 401
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    assert post_signed(client, body, url=FUNCTIONS_URL, timestamp_ms=stale).status_code == 401
    unsigned = client.post(FUNCTIONS_URL, data=json.dumps(body), content_type="application/json")
    assert unsigned.status_code == 401
    assert not LiveToolCall.objects.exists()


def test_an_unknown_function_or_call_gets_a_sentence_grace_can_say(client, loaded):
    unknown_function = ask(client, "wire_money", {"amount": 10})
    assert set(unknown_function) == {"error"} and "specialist" in unknown_function["error"]
    unknown_call = ask(client, "lookup_account", call_object=call("call_nobody", client_id="NOBODY", to_number="+19995550100"))
    assert set(unknown_call) == {"error"}
    not_json = post_signed(client, "{not json", url=FUNCTIONS_URL)
    assert not_json.status_code == 200 and "error" in not_json.json()


def test_identity_values_are_kept_only_as_keyed_hashes(client, loaded):
    assert loaded.date_of_birth_hash == identity.date_of_birth_hash(DOB) != ""
    assert loaded.ssn_last4_hash == identity.ssn_last4_hash(SSN4) != ""
    ask(client, "verify_identity", {"date_of_birth": DOB})
    ask(client, "verify_identity", {"ssn_last4": "0000"}, call_object=call("call_live_2"))
    # Nowhere in the database: not on the account, the tool log, an event or a rejected row.
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if table == "django_migrations":  # the schema's own bookkeeping, no client data
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - table names from introspection
            dump = repr(cursor.fetchall())
            assert DOB not in dump and "1984" not in dump.replace(loaded.date_of_birth_hash, ""), table
            assert SSN4 not in dump.replace(loaded.ssn_last4_hash, "").replace(loaded.date_of_birth_hash, ""), table
    assert LiveToolCall.objects.get(call_id="call_live_1").args == {"date_of_birth": "given"}


def test_a_rejected_row_keeps_no_identity_value(sample_warehouse: SampleWarehouse, fixed_clock):
    campaign = lifecycle.campaign_create(date=MORNING.date())
    sample_warehouse.add([client_row(client_id="T-BAD", phone="not a phone", date_of_birth=DOB, ssn_last4=SSN4)])
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.LOADING)
    campaign.refresh_from_db()
    lifecycle.campaign_load_and_run(campaign=campaign, now=MORNING, start_release=False)
    row = RejectedRow.objects.get(client_id="T-BAD").row
    assert row["date_of_birth"] == row["ssn_last4"] == "[withheld]"


def test_three_wrong_answers_lock_the_check_for_the_call_with_a_task(client, loaded):
    assert ask(client, "verify_identity", {"date_of_birth": "1990-01-01"}) == {"verified": False, "locked": False}
    # Retell retries the same request: the same answer, and no second try counted.
    assert ask(client, "verify_identity", {"date_of_birth": "1990-01-01"}) == {"verified": False, "locked": False}
    assert ask(client, "verify_identity", {"ssn_last4": "1111"}) == {"verified": False, "locked": False}
    assert ask(client, "verify_identity", {"date_of_birth": "March 8, 1984"}) == {"verified": False, "locked": True}
    # Locked for the call, even with the right answer now.
    assert ask(client, "verify_identity", {"date_of_birth": DOB, "ssn_last4": SSN4}) == {"verified": False, "locked": True}
    task = FollowUpTask.objects.get(kind=FollowUpTask.Kind.IDENTITY_LOCKED)
    assert task.client_id == "T-LIVE-1" and task.source_ref == "call_live_1"
    # Another call starts afresh.
    assert ask(client, "verify_identity", {"date_of_birth": "03/07/1984"}, call_object=call("call_live_2")) == {"verified": True, "locked": False}


def test_redialling_gives_no_fresh_tries_after_two_locked_calls_in_a_day(client, loaded):
    for n in (1, 2):
        for wrong in ("1111", "2222", "3333"):
            ask(client, "verify_identity", {"ssn_last4": wrong}, call_object=call(f"call_guess_{n}"))
    assert ask(client, "verify_identity", {"ssn_last4": SSN4}, call_object=call("call_guess_3")) == {"verified": False, "locked": True}


def test_wrong_answers_older_than_a_day_give_the_account_fresh_tries(client, loaded):
    def wrong_calls(hours_ago: int) -> None:
        for n in (1, 2):
            for result in ("failed", "failed", "locked"):
                LiveToolCall.objects.create(
                    call_id=f"call_old_{hours_ago}_{n}", name="verify_identity", args_key=f"{result}-{LiveToolCall.objects.count()}",
                    client_id="T-LIVE-1", args={"ssn_last4": "given"}, result=result, response={}, created_at=MORNING - dt.timedelta(hours=hours_ago),
                )  # fmt: skip

    wrong_calls(25)
    assert ask(client, "verify_identity", {"ssn_last4": SSN4}, call_object=call("call_new_1")) == {"verified": True, "locked": False}
    wrong_calls(23)
    assert ask(client, "verify_identity", {"ssn_last4": SSN4}, call_object=call("call_new_2")) == {"verified": False, "locked": True}


def test_the_balance_is_disclosed_only_after_verification(client, loaded):
    before = ask(client, "lookup_account")
    assert before["verified"] is False and before["first_name"] == "Dana" and before["has_matter"] is True
    assert "240" not in json.dumps(before)
    assert ask(client, "verify_identity", {"ssn_last4": SSN4})["verified"] is True
    after = ask(client, "lookup_account")
    assert after["amount_due"] == "240.00" and after["days_past_due"] == "20" and after["verified"] is True
    assert "text" in after["how_to_pay"]


def test_a_lookup_and_a_brief_name_the_earliest_open_promise_and_the_last_payment(client, loaded):
    from campaigns.payments import record

    ask(client, "verify_identity", {"date_of_birth": DOB})
    assert ask(client, "lookup_account")["open_promise"] == "" and ask(client, "lookup_account")["last_payment"] == ""
    record.payment_record(
        client_id="T-LIVE-1", amount="35.50", reference="pi_live_1", paid_at=MORNING - dt.timedelta(days=3), source="warehouse", now=MORNING
    )  # fmt: skip
    record.payment_record(
        client_id="T-LIVE-1", amount="20.25", reference="pi_live_2", paid_at=MORNING - dt.timedelta(days=1), source="warehouse", now=MORNING
    )  # fmt: skip
    ask(client, "verify_identity", {"date_of_birth": DOB}, call_object=call("call_live_2"))
    ask(client, "record_promise", {"date": "2025-06-27", "amount": "75"}, call_object=call("call_live_2"))
    ask(client, "verify_identity", {"date_of_birth": DOB}, call_object=call("call_live_3"))
    ask(client, "record_promise", {"date": "2025-06-18", "amount": "60.10"}, call_object=call("call_live_3"))
    answer = ask(client, "lookup_account", call_object=call("call_live_3"))
    assert answer["open_promise"] == "$60.10 promised for June 18"
    assert answer["last_payment"] == f"$20.25 received {timezone.localtime(MORNING - dt.timedelta(days=1)):%B} 9"
    brief = ask(client, "transfer_brief", {"reason": "asks for a person"}, call_object=call("call_live_3"))["brief"]
    assert "Open promise: $60.10 by Jun 18." in brief and "Open dispute" not in brief
    unverified = ask(client, "transfer_brief", {"reason": "asks for a person"}, call_object=call("call_live_4"))["brief"]
    assert "Open promise: a payment by Jun 18." in unverified and "$" not in unverified


def test_a_segment_without_the_rule_discloses_at_once(client, loaded):
    segment = loaded.segment
    segment.verify_before_balance = False
    segment.save()
    assert ask(client, "lookup_account")["amount_due"] == "240.00"


def test_a_promise_is_validated_recorded_at_once_and_once_with_the_analysis(client, loaded, retell_tasks_inline):  # noqa: F811
    assert ask(client, "record_promise", {"date": "2025-06-20", "amount": 100})["recorded"] is False  # not verified yet
    ask(client, "verify_identity", {"date_of_birth": DOB})
    too_far = ask(client, "record_promise", {"date": "2025-08-01", "amount": 100})
    assert too_far["recorded"] is False and "30 days" in too_far["reason"]
    too_much = ask(client, "record_promise", {"date": "2025-06-20", "amount": 500})
    assert too_much["recorded"] is False and "$240.00" in too_much["reason"]
    assert ask(client, "record_promise", {"date": "2025-06-20", "amount": 0})["recorded"] is False
    assert ask(client, "record_promise", {"date": "2025-06-05", "amount": 50})["recorded"] is False
    done = ask(client, "record_promise", {"date": "2025-06-20", "amount": "120.50"})
    assert done["recorded"] is True and done["date"] == "2025-06-20" and done["amount"] == "120.50"
    promise = PromiseToPay.objects.get()
    assert (promise.call_id, promise.amount, promise.promised_date) == ("call_live_1", Decimal("120.50"), dt.date(2025, 6, 20))
    # The post-call analysis of the same call says the same: still one promise.
    analysis = {"call_summary": "Promised.", "custom_analysis_data": {"promise_to_pay_date": "2025-06-20", "promise_to_pay_amount": 120.5}}
    from campaigns.conversations import results

    context = results.context_for_client(client_id="T-LIVE-1", phone="+12125550142", now=MORNING)
    results.conversation_results_apply(context=context, call_id="call_live_1", analysis=analysis, disconnection_reason="", now=MORNING)
    assert PromiseToPay.objects.count() == 1
    # The client moves the date on the same call: the reminder moves with it (the morning before).
    ask(client, "record_promise", {"date": "2025-06-25", "amount": "120.50"})
    promise.refresh_from_db()
    assert promise.promised_date == dt.date(2025, 6, 25)
    assert promise.reminder_at is not None and timezone.localtime(promise.reminder_at).date() == dt.date(2025, 6, 24)


def test_a_callback_outside_the_window_is_offered_back_and_one_inside_is_booked(client, loaded):
    late = ask(client, "schedule_callback", {"time": "today at 10:30pm"})
    assert late["scheduled"] is False and late["offered_time"]
    offered = dt.datetime.fromisoformat(late["offered_time"])
    assert offered.astimezone(dt.timezone.utc) == dt.datetime(2025, 6, 11, 0, 45, tzinfo=dt.timezone.utc)  # 20:45 in New York
    assert not Callback.objects.exists()
    booked = ask(client, "schedule_callback", {"time": "tomorrow at 3pm"})
    assert booked["scheduled"] is True
    callback = Callback.objects.get()
    assert callback.due_at == dt.datetime(2025, 6, 11, 19, 0, tzinfo=dt.timezone.utc)
    assert (callback.consent_call_id, callback.client_id, callback.phone) == ("call_live_1", "T-LIVE-1", "+12125550142")
    iso = ask(client, "schedule_callback", {"time": "2025-06-10T14:30:00"})  # local time, no offset
    assert iso["scheduled"] is True
    callback.refresh_from_db()
    assert callback.due_at == dt.datetime(2025, 6, 10, 18, 30, tzinfo=dt.timezone.utc)


def test_a_payment_link_to_an_opted_out_number_is_not_sent_and_says_why(client, loaded):
    Account.objects.filter(pk=loaded.pk).update(email="")  # and no e-mail address to send it to instead
    Suppression.objects.create(phone="+12125550142", channel=Suppression.Channel.SMS, reason=Suppression.Reason.SMS_OPT_OUT, source="test")
    answer = ask(client, "send_payment_link")
    assert answer["sent"] is False and "opted out" in answer["reason"]
    assert GateDecision.objects.filter(client_id="T-LIVE-1", channel="sms", rule="suppressed").exists()


def test_a_payment_link_to_an_opted_out_number_goes_by_email_when_the_account_has_an_address(client, loaded, mailoutbox):
    Suppression.objects.create(phone="+12125550142", channel=Suppression.Channel.SMS, reason=Suppression.Reason.SMS_OPT_OUT, source="test")
    answer = ask(client, "send_payment_link")
    assert answer["sent"] is True and "e-mailed" in answer["message"]
    (sent,) = mailoutbox
    assert sent.to == [loaded.email] and "/pay/" in sent.body and sent.extra_headers["List-Unsubscribe"].startswith("<")
    # Retell sending the same function call again gets the same answer, and no second e-mail.
    assert ask(client, "send_payment_link") == answer
    assert len(mailoutbox) == 1


def test_a_transfer_brief_is_given_and_kept_on_the_account(client, loaded):
    ask(client, "verify_identity", {"date_of_birth": DOB})
    brief = ask(client, "transfer_brief", {"reason": "wants a payment plan"})["brief"]
    assert "Dana Whitaker" in brief and "Identity verified" in brief and "$240.00" in brief and "payment plan" in brief
    loaded.refresh_from_db()
    assert loaded.transfer_brief == brief and loaded.transfer_brief_at is not None


def test_a_brief_names_an_open_dispute_task_or_hold_and_no_closed_one(client, loaded):
    def brief(call_id: str) -> str:
        return ask(client, "transfer_brief", {"reason": "disputes the charge"}, call_object=call(call_id))["brief"]

    task = FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.DISPUTE, status=FollowUpTask.Status.DONE, client_id="T-LIVE-1", due_at=MORNING, source_ref="old"
    )
    assert "Open dispute" not in brief("call_brief_1")
    FollowUpTask.objects.filter(pk=task.pk).update(status=FollowUpTask.Status.OPEN)
    assert "Open dispute on file." in brief("call_brief_2")
    FollowUpTask.objects.filter(pk=task.pk).update(status=FollowUpTask.Status.DONE)
    hold = Suppression.objects.create(
        client_id="T-LIVE-1", channel=Suppression.Channel.ALL, reason=Suppression.Reason.DISPUTE_HOLD, source="test"
    )
    assert "Open dispute on file." in brief("call_brief_3")
    Suppression.objects.filter(pk=hold.pk).update(lifted_at=MORNING)
    assert "Open dispute" not in brief("call_brief_4")


def test_an_unverified_callers_brief_names_no_amount_and_no_earlier_brief_reaches_a_new_caller(client, loaded):
    ask(client, "verify_identity", {"date_of_birth": DOB})
    ask(client, "transfer_brief", {"reason": "wants a payment plan"})  # verified: names the balance
    brief = ask(client, "transfer_brief", {"reason": "asks for a person"}, call_object=call("call_live_2"))["brief"]
    assert "NOT verified" in brief and "$" not in brief
    body = {"event": "call_inbound", "call_inbound": {"from_number": "+12125550142", "to_number": "+12125550100", "call_id": "call_in_9"}}
    variables = post_signed(client, body, url="/webhooks/retell/inbound/").json()["call_inbound"]["dynamic_variables"]
    assert variables["transfer_brief"] == "" and variables["amount_due"] == ""


def test_no_spoken_identity_answer_is_kept_whatever_it_is_called(client, loaded):
    ask(client, "verify_identity", {"dob": DOB, "social": SSN4})
    (kept,) = LiveToolCall.objects.filter(name="verify_identity").values_list("args", flat=True)
    assert kept == {"dob": "given", "social": "given"}


def test_an_inbound_caller_is_found_by_number_unless_the_number_is_shared(client, loaded):
    inbound_call = {"call_id": "call_in_1", "direction": "inbound", "from_number": "+12125550142", "to_number": "+12125550100"}
    assert ask(client, "lookup_account", call_object=inbound_call)["first_name"] == "Dana"
    Account.objects.create(
        client_id="T-LIVE-2", name="Sam Other", phone="+12125550142", first_seen_at=MORNING, last_seen_at=MORNING
    )
    shared = ask(client, "lookup_account", call_object={**inbound_call, "call_id": "call_in_2"})
    assert set(shared) == {"error"}


def test_the_record_keeps_the_accounts_segment_and_its_phase_on_the_day(client, loaded):
    phases = []
    for n, day in enumerate((0, 3, 20, 45, 60, 61, 160, 180)):
        Account.objects.filter(pk=loaded.pk).update(days_past_due=day)
        ask(client, "lookup_account", call_object=call(f"call_phase_{n}"))
        record = LiveToolCall.objects.get(call_id=f"call_phase_{n}")
        phases.append(record.phase)
        assert (record.segment_name, record.phase) == (loaded.segment.name, phase_on_day(segment=loaded.segment, day=day))
    assert len(set(phases)) >= 4
    # A segment without steps: the phase by its milestones.
    bare = Segment.objects.create(
        name="No steps", first_outreach_day=1, suspension_day=60, cancellation_day=180, billing_transfer_number="+12125550188",
        resurrection_transfer_number="+12125550199", billing_ring_group="billing", resurrection_ring_group="resurrection",
    )  # fmt: skip
    Account.objects.filter(pk=loaded.pk).update(segment=bare, days_past_due=60)
    ask(client, "lookup_account", call_object=call("call_phase_bare"))
    assert LiveToolCall.objects.filter(call_id="call_phase_bare").values_list("segment_name", "phase").get() == ("No steps", Phase.SUSPENSION)
    Account.objects.filter(pk=loaded.pk).update(segment=None)
    answer = ask(client, "lookup_account", call_object=call("call_phase_none"))
    assert answer["verified"] is False and "amount_due" not in answer  # no segment: verification first
    assert LiveToolCall.objects.filter(call_id="call_phase_none").values_list("segment_name", "phase").get() == ("", "")


def test_every_function_call_is_kept_for_the_timeline(client, loaded):
    ask(client, "verify_identity", {"date_of_birth": DOB})
    ask(client, "lookup_account")
    kept = list(LiveToolCall.objects.order_by("created_at").values_list("name", "result", "client_id"))
    assert kept == [("verify_identity", "verified", "T-LIVE-1"), ("lookup_account", "disclosed", "T-LIVE-1")]
    assert inbox is not None and timezone.is_aware(LiveToolCall.objects.first().created_at)


def test_the_tools_are_on_the_timeline_and_in_the_days_kpis(client, loaded, admin_client):
    ask(client, "verify_identity", {"date_of_birth": DOB})
    for wrong in ("1990-01-01", "1990-01-02", "1990-01-03"):
        ask(client, "verify_identity", {"date_of_birth": wrong}, call_object=call("call_live_2"))
    ask(client, "schedule_callback", {"time": "today at 2pm"})
    from campaigns.metrics import kpis

    campaign = Campaign.objects.get(date=MORNING.date())
    total = kpis.sum_figures(kpis.campaign_kpi_figures(campaign=campaign).values())
    assert (total["identity_checks"], total["identity_verified"], total["identity_failed"]) == (2, 1, 1)
    assert (total["callbacks_due"], total["callbacks_kept"]) == (1, 0)
    rates = kpis.kpi_rates(total)
    assert rates["verification_rate"] == rates["failed_verification_rate"] == 0.5
    page = admin_client.get("/dashboard/clients/T-LIVE-1/").content.decode()
    assert "Grace: identity check — verified" in page and "Grace: identity check — locked" in page
    assert "Callback — Scheduled" in page and DOB not in page and "1990-01-0" not in page
