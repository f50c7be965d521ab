"""What a conversation produced: promises to pay, escalations, callbacks and do-not-call requests.

Every analysed Retell call — outbound or inbound — comes here after its outcome is resolved
(`call_event_apply`, from the webhook inbox and from reconciliation), and everything it creates
is keyed by the call id, so a duplicate or a late lookup adds nothing.

Fields to configure in the Retell agent's post-call analysis (`custom_analysis_data`)
------------------------------------------------------------------------------------
Names are matched exactly. Booleans may be Retell "Boolean" fields or text ("yes"/"no");
a non-empty text other than no/false/none counts as yes and is kept as the detail.

=========================  =========  ==========================================================
field                      type       effect
=========================  =========  ==========================================================
promise_to_pay_date        text       Date the client promised to pay (ISO ``YYYY-MM-DD``
                                      preferred; ``MM/DD/YYYY`` and ``March 14`` are accepted).
                                      Creates a PromiseToPay with a reminder the morning before.
promise_to_pay_amount      number     Amount promised (``125.50`` or ``"$1,250.00"``); optional.
dispute                    boolean    The client disputes the debt or amount: a DISPUTE follow-up
                                      task and a dispute hold on all outreach.
hardship                   boolean    Financial hardship: a HARDSHIP follow-up task.
cancellation_request       boolean    The client wants to cancel: a CANCELLATION_REQUEST task.
legal_language             text/bool  Legal threats or legal terms: a LEGAL_LANGUAGE task; when
                                      the text mentions an attorney or lawyer, also an attorney
                                      suppression on all outreach.
vulnerable_customer        boolean    Signs of vulnerability: a VULNERABLE_CUSTOMER task.
compliance_exception       text/bool  The client asks for something outside policy (a contract
                                      change, a payment arrangement Grace may not offer): a
                                      COMPLIANCE_EXCEPTION task for a person to decide.
callback_requested         boolean    The client asked to be called back. With a usable
                                      ``callback_time`` a callback is booked that the release
                                      loop dials; without one, a CALLBACK_REQUEST task.
callback_time              text       When (ISO date-time, a time without an offset read in the
                                      client's time zone, or words: "tomorrow at 3pm"). Moved
                                      to the nearest time inside the calling window.
user_requested_dnc         boolean    The client asked not to be called: a do-not-call
                                      suppression (also set by the disconnection reason of the
                                      same name).
right_party                boolean    The person on the line was the client (read by the KPIs'
                                      right-party contact rate; ``wrong_party`` true also counts).
payment_link_requested     boolean    The client wants to pay now: the secure payment link is
                                      texted right after the call (once per call, through the
                                      SMS gate).
=========================  =========  ==========================================================

Follow-up tasks land in the team queue of the client's phase (billing before suspension,
resurrection from it on) with a due time per kind (`FOLLOW_UP_DUE`); the routing rules
(`campaigns.owners.routing`) then give them an owner, who is alerted (`campaigns.owners.alerts`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from cadences.models import Team, team_for_phase
from cadences.selectors import phase_on_day
from campaigns.calls import callbacks, inbound, outcomes
from campaigns.compliance import gate as compliance
from campaigns.compliance.gate import LEGAL_WINDOW
from campaigns.compliance.ledger import suppression_add
from campaigns.models import FOLLOW_UP_DUE, Account, CallAttempt, FollowUpTask, PromiseToPay, QueueItem, Suppression

log = logging.getLogger(__name__)

def call_event_apply(*, call: Mapping[str, Any], event_type: str, now: dt.datetime) -> outcomes.CallRecord | None:
    """One Retell call object (a webhook's, or get-call's for reconciliation): its outcome, then
    whatever the conversation produced — all in the caller's transaction, or one of its own."""
    # No savepoint of its own inside the inbox's transaction: any failure aborts all of it.
    with transaction.atomic(savepoint=False):
        if call.get("direction") == "inbound":
            inbound.inbound_call_ensure(call=call, now=now)
        record = outcomes.call_record_apply(call=call, event_type=event_type, now=now)
        if record is None:
            return None
        analysis = call.get("call_analysis")
        # An unmatched caller's call is kept, but nothing it said is anyone's account's.
        if record.client_id and (conversation_has_results(analysis) or record.disconnection_reason == outcomes.DNC_REASON):
            context = (
                context_for_attempt(record.attempt)
                if record.attempt is not None and record.attempt.queue_item_id is not None
                else context_for_client(client_id=record.client_id, phone=record.phone, now=now)
            )
            conversation_results_apply(
                context=context,
                call_id=str(call["call_id"]),
                analysis=analysis if isinstance(analysis, dict) else {},
                disconnection_reason=record.disconnection_reason,
                now=now,
            )
        attempt = record.attempt
        if attempt is not None and attempt.high_value and attempt.analyzed and attempt.outcome == CallAttempt.Outcome.ANSWERED:
            _high_value_call_review(attempt=attempt, now=now)
    return record


def _high_value_call_review(*, attempt: CallAttempt, now: dt.datetime) -> None:
    """A high-value client's answered call that no person took (it was not transferred) is
    never closed by Grace alone: a senior person calls back (once per call)."""
    context = (
        context_for_attempt(attempt)
        if attempt.queue_item_id is not None
        else context_for_client(client_id=attempt.client_id, phone=attempt.to_number, now=now)
    )
    task_create(
        kind=FollowUpTask.Kind.HIGH_VALUE_CALL,
        context=context,
        source_ref=str(attempt.call_id),
        due_at=now + FOLLOW_UP_DUE[FollowUpTask.Kind.HIGH_VALUE_CALL],
        detail=f"High-value client: the call was offered to the senior ring group ({attempt.senior_transfer_number}) "
        "but ended without a transfer. Call the client back.",
    )


# custom_analysis_data flag → follow-up task kind (the callback and the promise are separate).
ESCALATION_FIELDS: dict[str, str] = {
    "dispute": FollowUpTask.Kind.DISPUTE,
    "hardship": FollowUpTask.Kind.HARDSHIP,
    "cancellation_request": FollowUpTask.Kind.CANCELLATION_REQUEST,
    "legal_language": FollowUpTask.Kind.LEGAL_LANGUAGE,
    "vulnerable_customer": FollowUpTask.Kind.VULNERABLE_CUSTOMER,
    "compliance_exception": FollowUpTask.Kind.COMPLIANCE_EXCEPTION,
}
_ATTORNEY_WORDS = re.compile(r"\b(attorney|attorneys|lawyer|lawyers|counsel|law firm|legal representation)\b", re.I)
_FALSE_WORDS = frozenset({"", "no", "false", "none", "n/a", "na", "null", "0", "unknown", "not applicable"})
PROMISE_REMINDER_TIME = dt.time(9, 0)
# A callback asked for further out than this is not a time to schedule (a misheard year, say):
# the task is due now, with the words as spoken, for an agent to read.
CALLBACK_HORIZON = callbacks.CALLBACK_HORIZON


@dataclass(frozen=True)
class ClientContext:
    """Who a conversation was with, as far as we know them."""

    client_id: str
    phone: str
    client_name: str = ""
    team: str = Team.BILLING
    segment_name: str = ""
    phase: str = ""
    timezones: list[str] = field(default_factory=list)
    queue_item_id: int | None = None
    state: str = ""


def context_for_attempt(attempt: CallAttempt) -> ClientContext:
    item = attempt.day_item
    return ClientContext(
        client_id=item.client_id,
        phone=attempt.to_number or item.phone,
        client_name=item.client_name,
        team=item.team,
        segment_name=item.segment.name,
        phase=item.phase,
        timezones=item.timezone_list,
        queue_item_id=item.pk,
        state=item.state,
    )


def context_for_client(
    *, client_id: str, phone: str, now: dt.datetime, account: Account | None = None, phase: str | None = None
) -> ClientContext:
    """The client as today's queue has them, else as their account has them (`account` and its
    `phase` today, when the caller has them already)."""
    # Only the columns the context holds: Grace's live tools wait on this mid-call, and a whole
    # queue item with its segment is forty-odd columns to build and read.
    item = (
        QueueItem.objects.filter(client_id=client_id, campaign__date=timezone.localdate(now))
        .order_by("pk")
        .values_list("pk", "phone", "client_name", "team", "segment__name", "phase", "timezones", "state")
        .first()
    )
    if item is not None:
        item_id, item_phone, client_name, team, segment_name, item_phase, timezones, state = item
        return ClientContext(
            client_id=client_id,
            phone=phone or item_phone,
            client_name=client_name,
            team=team,
            segment_name=segment_name,
            phase=item_phase,
            timezones=[z for z in timezones.split(",") if z],
            queue_item_id=item_id,
            state=state,
        )
    if account is None or account.client_id != client_id:
        account = Account.objects.select_related("segment").filter(client_id=client_id).first()
        phase = None
    if account is None:
        return ClientContext(client_id=client_id, phone=phone)
    if phase is None:
        phase = (
            phase_on_day(segment=account.segment, day=account.days_past_due)
            if account.segment is not None and account.days_past_due is not None
            else ""
        )
    return ClientContext(
        client_id=client_id,
        phone=phone or account.phone,
        client_name=account.name,
        team=team_for_phase(phase),
        segment_name=account.segment.name if account.segment is not None else "",
        phase=phase,
        timezones=account.timezone_list,
        state=account.state,
    )


def analysis_flag(value: Any) -> tuple[bool, str]:
    """(is set, detail text) for a Boolean, Selector or Text post-call analysis value."""
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, (int, float)):
        return value != 0, ""
    if isinstance(value, str):
        text = value.strip()
        if text.casefold() in _FALSE_WORDS:
            return False, ""
        if text.casefold() in {"yes", "true", "y", "1"}:
            return True, ""
        return True, text
    return False, ""


def parse_promise_amount(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    text = re.sub(r"[,$\s]|USD", "", str(value), flags=re.I)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0 or amount >= Decimal("10000000000"):
        return None
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return amount if amount > 0 else None  # "0.004" is no promise of money


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y")
_DATE_FORMATS_NO_YEAR = ("%B %d", "%b %d", "%m/%d")


def parse_promise_date(value: Any, *, today: dt.date) -> dt.date | None:
    """A promised payment date from the analysis text; a date without a year is the next one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", value.strip())
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    for fmt in _DATE_FORMATS_NO_YEAR:
        try:
            parsed = dt.datetime.strptime(f"{text} {today.year}", f"{fmt} %Y").date()
        except ValueError:
            continue
        if parsed >= today:
            return parsed
        try:
            return parsed.replace(year=today.year + 1)
        except ValueError:  # Feb 29 asked for after this leap year's: next year has none
            return None
    return None


def _zone(context: ClientContext) -> zoneinfo.ZoneInfo:
    for name in context.timezones:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def parse_callback_time(value: Any, *, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        parsed.astimezone(dt.timezone.utc)  # 9999-12-31T23:00-05:00 is past the last UTC instant
    except OverflowError:
        return None
    return parsed


def task_create(
    *, kind: str, context: ClientContext, source_ref: str, due_at: dt.datetime, detail: str
) -> FollowUpTask:
    task, created = FollowUpTask.objects.get_or_create(
        kind=kind,
        source_ref=source_ref,
        defaults={
            "team": context.team or Team.BILLING,
            "client_id": context.client_id,
            "client_name": context.client_name,
            "phone": context.phone,
            "due_at": due_at,
            "detail": detail,
        },
    )
    if created:
        log.info("follow-up task created", extra={"kind": kind, "client_id": context.client_id, "source_ref": source_ref})
        # Routed and, for the urgent kinds, alerted right after commit; the minute sweep does it
        # for a task whose enqueue failed (and for tasks raised elsewhere).
        task_id = task.pk
        transaction.on_commit(lambda: _owner_alert_enqueue(task_id))
    return task


OWNER_ALERT_TASK = "campaigns.tasks.owner_alert_send_task"


def _owner_alert_enqueue(task_id: int) -> None:
    try:
        async_task(OWNER_ALERT_TASK, task_id, save=False)
    except Exception:
        log.exception("owner alert not enqueued; the minute sweep sends it", extra={"task_id": task_id})


def conversation_has_results(analysis: Any) -> bool:
    """Whether a call analysis asks for anything (most calls: nothing, and no query is spent)."""
    data = analysis.get("custom_analysis_data") if isinstance(analysis, dict) else None
    if not isinstance(data, dict):
        return False
    flags = ("user_requested_dnc", "callback_requested", *ESCALATION_FIELDS)
    if any(analysis_flag(data.get(name))[0] for name in flags):
        return True
    return any(data.get(name) not in (None, "") for name in ("callback_time", "promise_to_pay_date"))


def conversation_results_apply(
    *,
    context: ClientContext,
    call_id: str,
    analysis: Mapping[str, Any],
    disconnection_reason: str,
    now: dt.datetime,
) -> None:
    """Promise to pay, escalations, callback and do-not-call from one analysed call (idempotent)."""
    data = analysis.get("custom_analysis_data")
    data = data if isinstance(data, dict) else {}
    summary = str(analysis.get("call_summary") or "")

    def suppress(reason: str, channel: str, note: str) -> None:
        suppression_add(
            reason=reason, channel=channel, source=f"retell:{call_id}", client_id=context.client_id, phone=context.phone, note=note
        )

    dnc, _ = analysis_flag(data.get("user_requested_dnc"))
    if dnc or disconnection_reason == outcomes.DNC_REASON:
        suppress(Suppression.Reason.DO_NOT_CALL, Suppression.Channel.CALL, "Client asked not to be called.")

    for field_name, kind in ESCALATION_FIELDS.items():
        is_set, detail = analysis_flag(data.get(field_name))
        if not is_set:
            continue
        task_create(
            kind=kind,
            context=context,
            source_ref=call_id,
            due_at=now + FOLLOW_UP_DUE[kind],
            detail="\n\n".join(part for part in (detail, summary) if part),
        )
        if kind == FollowUpTask.Kind.DISPUTE:
            suppress(
                Suppression.Reason.DISPUTE_HOLD,
                Suppression.Channel.ALL,
                detail or "Dispute raised on a call; outreach on hold until it is resolved.",
            )
        if kind == FollowUpTask.Kind.LEGAL_LANGUAGE and _ATTORNEY_WORDS.search(detail):
            suppress(Suppression.Reason.ATTORNEY, Suppression.Channel.ALL, detail)

    callback_requested, _ = analysis_flag(data.get("callback_requested"))
    callback_text = data.get("callback_time")
    if callback_requested or (isinstance(callback_text, str) and callback_text.strip()):
        _callback_schedule(context=context, call_id=call_id, callback_text=callback_text, summary=summary, now=now)

    if data.get("promise_to_pay_date") not in (None, ""):
        _promise_record(context=context, call_id=call_id, data=data, now=now)

    wants_link, _ = analysis_flag(data.get("payment_link_requested"))
    if wants_link:
        # The text goes out from a task once this commits (the SMS sender's minute sweep sends
        # any the task missed); the message's local id makes it once per call either way.
        transaction.on_commit(lambda: _payment_link_enqueue(call_id))


PAYMENT_LINK_TASK = "campaigns.tasks.payment_link_send_task"


def _payment_link_enqueue(call_id: str) -> None:
    try:
        async_task(PAYMENT_LINK_TASK, call_id, save=False)
    except Exception:
        log.exception("payment link text not enqueued; the minute sweep sends it", extra={"call_id": call_id})


def callback_due_at(*, callback_text: Any, context: ClientContext, now: dt.datetime) -> dt.datetime:
    """When a requested callback is due (pure): the time asked for, or now when none is usable,
    moved through the gate's own window rule to the first instant inside 08:00–21:00 in every
    candidate zone of the client (as requested when the zones are unusable)."""
    requested = parse_callback_time(callback_text, zone=_zone(context))
    if requested is None or requested < now or requested > now + CALLBACK_HORIZON:
        requested = now
    return (
        compliance.next_window_open(timezones=context.timezones, now=requested, start=LEGAL_WINDOW[0], end=LEGAL_WINDOW[1])
        or requested
    )


def _callback_schedule(
    *, context: ClientContext, call_id: str, callback_text: Any, summary: str, now: dt.datetime
) -> None:
    """A callback with a usable time is booked for the release loop to dial (at that time, or the
    nearest the window allows); one without is a task for a person. Booked on the call id, so
    Grace's `schedule_callback` during the same call and this analysis make one callback."""
    requested = callbacks.parse_callback_time(callback_text, now=now, zone=_zone(context))
    if requested is not None and now - dt.timedelta(minutes=5) <= requested <= now + CALLBACK_HORIZON and context.phone:
        checked = callbacks.callback_time_check(requested=max(requested, now), timezones=context.timezones, now=now)
        due_at = checked.requested if checked.allowed else checked.offer
        if due_at is not None:
            callbacks.callback_book(
                consent_call_id=call_id,
                client_id=context.client_id,
                client_name=context.client_name,
                phone=context.phone,
                timezones=context.timezones,
                state=context.state,
                segment_name=context.segment_name,
                phase=context.phase,
                due_at=due_at,
                requested_text=str(callback_text),
            )
            return
    due_at = callback_due_at(callback_text=callback_text, context=context, now=now)
    detail = f"Callback requested for {callback_text!s}." if callback_text else "Callback requested (no time given)."
    task_create(
        kind=FollowUpTask.Kind.CALLBACK_REQUEST,
        context=context,
        source_ref=call_id,
        due_at=due_at,
        detail="\n\n".join(part for part in (detail, summary) if part),
    )


def _promise_record(*, context: ClientContext, call_id: str, data: Mapping[str, Any], now: dt.datetime) -> None:
    zone = _zone(context)
    today = now.astimezone(zone).date()
    promised = parse_promise_date(data.get("promise_to_pay_date"), today=today)
    if promised is None or promised < today:
        log.warning(
            "promise to pay with an unusable date not recorded",
            extra={"call_id": call_id, "promise_to_pay_date": str(data.get("promise_to_pay_date"))[:40]},
        )
        return
    promise_create(context=context, call_id=call_id, promised=promised, amount=parse_promise_amount(data.get("promise_to_pay_amount")), now=now)


def promise_reminder_at(*, context: ClientContext, promised: dt.date, now: dt.datetime) -> dt.datetime | None:
    """The morning before `promised` in the client's zone; None when that has passed already."""
    reminder_at = dt.datetime.combine(promised - dt.timedelta(days=1), PROMISE_REMINDER_TIME, tzinfo=_zone(context))
    return None if reminder_at <= now else reminder_at


def promise_create(
    *, context: ClientContext, call_id: str, promised: dt.date, amount: Decimal | None, now: dt.datetime
) -> tuple[PromiseToPay, bool]:
    """The promise made on a call, once per call (Grace's `record_promise` during the call and
    the post-call analysis of the same call find the same row), with its reminder the morning
    before."""
    reminder_at = promise_reminder_at(context=context, promised=promised, now=now)
    promise, created = PromiseToPay.objects.get_or_create(
        call_id=call_id,
        defaults={
            "client_id": context.client_id,
            "client_name": context.client_name,
            "phone": context.phone,
            "segment_name": context.segment_name,
            "phase": context.phase,
            "amount": amount,
            "promised_date": promised,
            "campaign_date": timezone.localdate(now),
            "reminder_at": reminder_at,
        },
    )
    if created:
        log.info("promise to pay recorded", extra={"call_id": call_id, "client_id": context.client_id, "promised_date": promised.isoformat()})
        # Its summary by e-mail, where the settings and the client's channels call for one.
        promise_id = promise.pk
        transaction.on_commit(lambda: _promise_summary_enqueue(promise_id))
    return promise, created


PROMISE_SUMMARY_TASK = "campaigns.tasks.promise_summary_email_task"


def _promise_summary_enqueue(promise_id: int) -> None:
    try:
        async_task(PROMISE_SUMMARY_TASK, promise_id, save=False)
    except Exception:
        log.exception("promise summary e-mail not enqueued", extra={"promise_id": promise_id})
