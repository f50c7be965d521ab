"""Grace's live tools: what she can look up and do while the client is on the line.

Retell POSTs `{"name", "call", "args"}` to `/webhooks/retell/functions/` (signed like its
webhooks) and speaks from the small JSON answer. Every answer is idempotent on (call id, name,
arguments): the first answer is stored (`LiveToolCall`) and a retry gets it back. An unknown
function or call gets an `error` sentence Grace can say, never a server error.

The account is the call's `metadata.client_id` (every outbound call and callback carries it) or,
for an inbound call, the caller's number — when exactly one account has it: a shared number
is never disclosed.

Functions (README, "Retell agent set-up", has the JSON schemas to paste):

- `verify_identity(date_of_birth?, ssn_last4?)` → `{verified, locked}`: checked against the keyed
  hashes; three failures lock the check for the call and open a follow-up task.
- `lookup_account()` → before verification (where the segment requires it) only the first name
  and that a matter exists; after it the amount, days past due, status, open promise, last
  payment and how to pay.
- `send_payment_link()` → texts the secure link through the SMS gate; `{sent, message|reason}`.
- `record_promise(date, amount?)` → validated, recorded at once; `{recorded, …|reason}`.
- `schedule_callback(time)` → booked inside the client's window, or the nearest time offered.
- `transfer_brief(reason?)` → the rep's brief (stored on the account); `{brief}`.

The identity values are never stored, logged or echoed: the stored arguments say only which
answers were given, and the idempotency key is a keyed hash.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cadences.models import CadenceStep, DialerSettings, Phase, Segment, Team, team_for_phase
from cadences.selectors import phase_from_step, phase_on_day
from campaigns import geo
from campaigns.calls import callbacks, inbound
from campaigns.compliance import gate as compliance
from campaigns.conversations import results
from campaigns.mail import followups as mail
from campaigns.models import (
    FOLLOW_UP_DUE,
    Account,
    FollowUpTask,
    LiveToolCall,
    Payment,
    PromiseToPay,
    QueueItem,
    SmsMessage,
    Suppression,
)
from campaigns.payments import links
from campaigns.queue import identity
from campaigns.sms import outbound
from campaigns.sql import quoted_names

log = logging.getLogger(__name__)

MAX_IDENTITY_TRIES = 3
# Wrong identity answers an account may get over all its calls in a window before the check locks.
ACCOUNT_FAILURES_LIMIT = 6
ACCOUNT_FAILURES_WINDOW = dt.timedelta(hours=24)
SAY_UNKNOWN_FUNCTION = "I'm sorry, I can't do that from here. I can connect you with a specialist who can help."
SAY_UNKNOWN_CALL = "I'm sorry, I can't pull up the account on this call. I can connect you with a specialist who can help."
SAY_VERIFY_FIRST = "I need to verify your identity before I can go into the account."
SAY_FAILED = "I'm sorry, something went wrong on my side. I can connect you with a specialist who can help."


@dataclass
class LiveCall:
    """What a function knows about the call it is called on."""

    call_id: str
    call: Mapping[str, Any]
    account: Account | None
    phone: str  # the client's number on this call
    now: dt.datetime
    verified: bool = False  # the caller passed verify_identity earlier on this call
    phase: str = ""  # the account's phase today ("" when it has no segment or day)

    @property
    def verify_first(self) -> bool:
        segment = self.account.segment if self.account is not None else None
        return segment.verify_before_balance if segment is not None else True


@dataclass(frozen=True)
class Answer:
    result: str
    response: dict[str, Any]


def _text(value: Any, limit: int = 200) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else f"{amount:.2f}"


def _speak_money(amount: Decimal | None) -> str:
    return "" if amount is None else f"${amount:,.2f}"


def _local_words(moment: dt.datetime, timezones: list[str]) -> str:
    local = moment.astimezone(callbacks.client_zone(timezones))
    hour = local.strftime("%I:%M %p").lstrip("0")
    return f"{local:%A, %B} {local.day} at {hour}"


# --- The statements Grace waits on -----------------------------------------------------------------
# Grace waits on every answer mid-call, and three statements run on every request: the call's
# earlier function calls, the account (with its segment and cadence phase), and the answer's
# record; the account's standing (promise, payment, dispute) serves two functions. They are plain
# SQL built once from the models' own names, because the ORM's compilation of each costs several
# times its round trip; the values still go through the models' fields both ways.


@functools.cache
def _earlier_sql() -> str:
    table, call_id, name, args_key, result, response = quoted_names(LiveToolCall, "call_id", "name", "args_key", "result", "response")
    return f"SELECT {name}, {args_key}, {result}, {response} FROM {table} WHERE {call_id} = %s"


def earlier_calls(call_id: str) -> list[tuple[str, str, str, Any]]:
    """(name, args_key, result, response) of every function call answered on this call."""
    response_field = LiveToolCall._meta.get_field("response")
    with connection.cursor() as cursor:
        cursor.execute(_earlier_sql(), [call_id])
        rows = cursor.fetchall()
    # No expression: the column is read whole, not through a key transform.
    expression = cast(Any, None)
    return [(name, key, result, response_field.from_db_value(response, expression, connection)) for name, key, result, response in rows]


SEGMENT_PREFIX = "segment__"


@functools.cache
def _account_sql() -> str:
    q = connection.ops.quote_name
    account_columns = ", ".join(f"a.{q(f.column)}" for f in Account._meta.concrete_fields)
    segment_columns = ", ".join(f"g.{q(f.column)} AS {q(SEGMENT_PREFIX + f.attname)}" for f in Segment._meta.concrete_fields)
    account_table, client_id, segment_id, days_past_due = quoted_names(Account, "client_id", "segment", "days_past_due")
    segment_table, segment_pk = quoted_names(Segment, "id")
    step_table, step_segment, step_day, step_phase = quoted_names(CadenceStep, "segment", "day", "phase")
    # phase_on_day's lookup: the phase of the segment's last step on or before the account's day.
    phase = (
        f"(SELECT s.{step_phase} FROM {step_table} s WHERE s.{step_segment} = a.{segment_id} "
        f"AND s.{step_day} <= a.{days_past_due} ORDER BY s.{step_day} DESC LIMIT 1) AS live_step_phase"
    )
    return (
        f"SELECT {account_columns}, {segment_columns}, {phase} FROM {account_table} a "
        f"LEFT JOIN {segment_table} g ON g.{segment_pk} = a.{segment_id} WHERE a.{client_id} = %s"
    )


def account_with_phase(client_id: str) -> tuple[Account | None, str | None]:
    """The account with its segment, and the phase of the segment's step on its day (None: no step)."""
    account = next(iter(Account.objects.raw(_account_sql(), [client_id])), None)
    if account is None:
        return None, None
    names = [f.attname for f in Segment._meta.concrete_fields]
    values = [getattr(account, SEGMENT_PREFIX + name) for name in names]
    account.segment = Segment.from_db(account._state.db, names, values) if account.segment_id is not None else None
    return account, getattr(account, "live_step_phase")  # the raw query's extra column


@functools.cache
def _record_fields() -> list[Any]:
    return [f for f in LiveToolCall._meta.concrete_fields if not f.primary_key]


@functools.cache
def _record_sql() -> str:
    table, *columns = quoted_names(LiveToolCall, *(f.name for f in _record_fields()))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


def record_insert(record: LiveToolCall) -> None:
    """Store an answer (IntegrityError when the same function call was stored meanwhile)."""
    params = [f.get_db_prep_save(f.pre_save(record, True), connection) for f in _record_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_record_sql(), params)


def _column_value(model: type[Any], name: str, value: Any) -> Any:
    """A value read by plain SQL, converted as the ORM converts the field's column (SQLite hands
    back decimals as floats and dates as text)."""
    column = model._meta.get_field(name).get_col(model._meta.db_table)
    for converter in [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]:
        value = converter(value, column, connection)
    return value


@dataclass(frozen=True)
class Standing:
    """What lookup_account and transfer_brief say beyond the account row itself."""

    promise_amount: Decimal | None
    promise_date: dt.date | None  # the earliest pending promise's (None: no open promise)
    paid_amount: Decimal | None
    paid_at: dt.datetime | None  # the latest payment's (None: none yet)
    dispute: bool  # an open dispute task or a dispute hold


@functools.cache
def _standing_sql() -> str:
    pt, p_client, p_status, p_date, p_amount, p_id = quoted_names(PromiseToPay, "client_id", "status", "promised_date", "amount", "id")
    yt, y_client, y_paid, y_amount, y_id = quoted_names(Payment, "client_id", "paid_at", "amount", "id")
    tt, t_client, t_kind, t_status = quoted_names(FollowUpTask, "client_id", "kind", "status")
    st, s_client, s_reason, s_lifted = quoted_names(Suppression, "client_id", "reason", "lifted_at")
    promise = f"FROM {pt} WHERE {p_client} = %s AND {p_status} = %s ORDER BY {p_date}, {p_id} LIMIT 1"
    payment = f"FROM {yt} WHERE {y_client} = %s ORDER BY {y_paid} DESC, {y_id} DESC LIMIT 1"
    return (
        f"SELECT (SELECT {p_amount} {promise}), (SELECT {p_date} {promise}), "
        f"(SELECT {y_amount} {payment}), (SELECT {y_paid} {payment}), "
        f"CASE WHEN EXISTS (SELECT 1 FROM {tt} WHERE {t_client} = %s AND {t_kind} = %s AND {t_status} <> %s) "
        f"OR EXISTS (SELECT 1 FROM {st} WHERE {s_client} = %s AND {s_reason} = %s AND {s_lifted} IS NULL) THEN 1 ELSE 0 END"
    )


def account_standing(client_id: str) -> Standing:
    """The open promise, the last payment and any open dispute, in one round trip."""
    pending = PromiseToPay.Status.PENDING.value
    params = [
        client_id, pending, client_id, pending, client_id, client_id,
        client_id, FollowUpTask.Kind.DISPUTE.value, FollowUpTask.Status.DONE.value,
        client_id, Suppression.Reason.DISPUTE_HOLD.value,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_standing_sql(), params)
        promise_amount, promise_date, paid_amount, paid_at, dispute = cursor.fetchone()
    return Standing(
        promise_amount=_column_value(PromiseToPay, "amount", promise_amount),
        promise_date=_column_value(PromiseToPay, "promised_date", promise_date),
        paid_amount=_column_value(Payment, "amount", paid_amount),
        paid_at=_column_value(Payment, "paid_at", paid_at),
        dispute=bool(dispute),
    )


@dataclass(frozen=True)
class IdentityTally:
    call_verified: bool  # this call passed the check already
    call_failures: int  # this call's wrong answers (the third is stored as locked)
    account_failures: int  # the account's wrong answers in the window, over all its calls


@functools.cache
def _lock_sql() -> str:
    table, pk = quoted_names(Account, "id")
    return f"SELECT {pk} FROM {table} WHERE {pk} = %s FOR UPDATE"


@functools.cache
def _tally_sql() -> str:
    table, call_id, client_id, name, result, created_at = quoted_names(LiveToolCall, "call_id", "client_id", "name", "result", "created_at")
    this_call = f"{call_id} = %s"
    recent = f"{client_id} = %s AND {created_at} >= %s"
    return (
        f"SELECT COALESCE(SUM(CASE WHEN {this_call} AND {result} = %s THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN {this_call} AND {result} IN (%s, %s) THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN {recent} AND {result} = %s THEN 1 ELSE 0 END), 0), "
        # A call locks on its third wrong answer: two stored as failed, the third as locked.
        f"COUNT(DISTINCT CASE WHEN {recent} AND {result} = %s THEN {call_id} END) "
        f"FROM {table} WHERE {name} = %s AND ({this_call} OR ({recent}))"
    )


def identity_tally_locked(*, account: Account, call_id: str, since: dt.datetime) -> IdentityTally:
    """Inside the check's transaction: take the account's lock (one check at a time per account,
    so two quick tries cannot both be a "third"), then count its tries."""
    since_value = connection.ops.adapt_datetimefield_value(since)
    with connection.cursor() as cursor:
        if connection.features.has_select_for_update:  # SQLite's BEGIN IMMEDIATE already holds the write lock
            cursor.execute(_lock_sql(), [account.pk])
        cursor.execute(
            _tally_sql(),
            [
                call_id, "verified", call_id, "failed", "locked",
                account.client_id, since_value, "failed",
                account.client_id, since_value, "locked",
                "verify_identity", call_id, account.client_id, since_value,
            ],
        )  # fmt: skip
        call_verified, call_failures, failed, locked_calls = cursor.fetchone()
    return IdentityTally(call_verified=bool(call_verified), call_failures=int(call_failures), account_failures=int(failed) + int(locked_calls))


# --- Finding the call's account ------------------------------------------------------------------


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def live_call_resolve(*, call: Mapping[str, Any], now: dt.datetime, verified: bool = False) -> LiveCall:
    call_id = _text(call.get("call_id"), 100)
    metadata = _object(call.get("metadata"))
    client_id = _text(str(metadata.get("client_id") or ""), 64)
    account: Account | None = None
    step_phase: str | None = None
    if client_id:
        # The account, its segment and its cadence step's phase in one round trip.
        account, step_phase = account_with_phase(client_id)
    inbound_call = call.get("direction") == "inbound" or not client_id
    raw_phone = call.get("from_number") if inbound_call else call.get("to_number")
    try:
        phone = geo.phone_to_e164(raw_phone) if isinstance(raw_phone, str) and raw_phone else ""
    except geo.GeoError:
        phone = ""
    if account is None and inbound_call and phone:
        match = inbound.caller_match(phone=phone, now=now)
        account = match.account if match.source == "account" else None  # never a shared number
    if account is not None and not phone:
        phone = account.phone
    phase = ""
    if account is not None and account.segment is not None and account.days_past_due is not None:
        if account.client_id == client_id:
            phase = phase_from_step(segment=account.segment, day=account.days_past_due, step_phase=step_phase)
        else:  # found by the caller's number
            phase = phase_on_day(segment=account.segment, day=account.days_past_due)
    return LiveCall(call_id=call_id, call=call, account=account, phone=phone, now=now, verified=verified, phase=phase)


def _context(live: LiveCall) -> results.ClientContext:
    assert live.account is not None
    return results.context_for_client(client_id=live.account.client_id, phone=live.phone, now=live.now, account=live.account, phase=live.phase)


# --- The functions -------------------------------------------------------------------------------


def verify_identity(live: LiveCall, args: Mapping[str, Any]) -> Answer:
    account = live.account
    assert account is not None
    dob_hash = identity.date_of_birth_hash(args.get("date_of_birth"))
    ssn_hash = identity.ssn_last4_hash(args.get("ssn_last4"))
    # No savepoint when the request's transaction is already open: the lock is held to its commit.
    with transaction.atomic(savepoint=False):
        # This call's tries and, across calls too, the account's in the window, counted under the
        # lock: someone redialling from the client's number gets no fresh tries at four digits
        # with every call. After ACCOUNT_FAILURES_LIMIT wrong answers in a day the check stays
        # locked until the day has passed (the follow-up task asks a person to look).
        tally = identity_tally_locked(account=account, call_id=live.call_id, since=live.now - ACCOUNT_FAILURES_WINDOW)
        if tally.call_verified:
            return Answer("verified", {"verified": True, "locked": False})
        failures = tally.call_failures
        if failures >= MAX_IDENTITY_TRIES:
            return Answer("locked", {"verified": False, "locked": True})
        account_failures = tally.account_failures
        if account_failures >= ACCOUNT_FAILURES_LIMIT:
            return Answer("locked", {"verified": False, "locked": True})
        checkable = [(stored, given) for stored, given in ((account.date_of_birth_hash, dob_hash), (account.ssn_last4_hash, ssn_hash)) if stored and given]
        if not dob_hash and not ssn_hash:
            return Answer("no_answer", {"verified": False, "locked": False, "error": "I need your date of birth or the last four digits of your Social Security number."})
        if not account.date_of_birth_hash and not account.ssn_last4_hash:
            return Answer("unavailable", {"verified": False, "locked": False, "error": "I can't verify identity on this call. A specialist can help you."})
        if not checkable:
            what = "date of birth" if account.date_of_birth_hash else "the last four digits of your Social Security number"
            return Answer("no_answer", {"verified": False, "locked": False, "error": f"I need your {what} to verify your identity."})
        given_mismatch = any(given and stored and not identity.hash_matches(stored, given) for stored, given in ((account.date_of_birth_hash, dob_hash), (account.ssn_last4_hash, ssn_hash)))
        if not given_mismatch:
            return Answer("verified", {"verified": True, "locked": False})
        if failures + 1 < MAX_IDENTITY_TRIES:
            return Answer("failed", {"verified": False, "locked": False})
        context = _context(live)
        results.task_create(
            kind=FollowUpTask.Kind.IDENTITY_LOCKED,
            context=context,
            source_ref=live.call_id,
            due_at=live.now + FOLLOW_UP_DUE[FollowUpTask.Kind.IDENTITY_LOCKED],
            detail=f"The identity check failed {MAX_IDENTITY_TRIES} times on call {live.call_id}; nothing about the account was disclosed.",
        )
        return Answer("locked", {"verified": False, "locked": True})


def lookup_account(live: LiveCall, args: Mapping[str, Any]) -> Answer:
    account = live.account
    assert account is not None
    verified = live.verified
    if live.verify_first and not verified:
        return Answer(
            "withheld",
            {"verified": False, "first_name": account.first_name, "has_matter": True, "message": SAY_VERIFY_FIRST},
        )
    standing = account_standing(account.client_id)
    promised, paid_at = standing.promise_date, standing.paid_at
    return Answer(
        "disclosed",
        {
            "verified": verified,
            "first_name": account.first_name,
            "has_matter": account.status != Account.Status.RESOLVED,
            "amount_due": _money(account.amount_due),
            "days_past_due": "" if account.days_past_due is None else str(account.days_past_due),
            "status": account.get_status_display(),
            "open_promise": (
                f"{_speak_money(standing.promise_amount) or 'A payment'} promised for {promised:%B} {promised.day}"
                if promised is not None
                else ""
            ),
            "last_payment": (
                f"{_speak_money(standing.paid_amount)} received {timezone.localtime(paid_at):%B} {timezone.localtime(paid_at).day}"
                if paid_at is not None
                else ""
            ),
            "how_to_pay": "I can text a secure payment link to this number right now. We never take card numbers over the phone.",
        },
    )


def send_payment_link(live: LiveCall, args: Mapping[str, Any]) -> Answer:
    account = live.account
    assert account is not None
    if not live.phone:
        if _email_instead(live, text_problem="the client has no mobile number"):
            return Answer("emailed", {"sent": True, "message": EMAILED_WORDS})
        return Answer("not_sent", {"sent": False, "reason": "I don't have a number to text the link to. A specialist can help."})
    dialer = DialerSettings.load()
    local_id = outbound.live_payment_link_local_id(live.call_id)
    existing = SmsMessage.objects.filter(local_id=local_id).first()
    if existing is None:
        probe = QueueItem(client_id=account.client_id, phone=live.phone, timezones=account.timezones)
        (block,) = compliance.gate_sms(
            items=[probe], now=live.now, start=dialer.calling_window_start, end=dialer.calling_window_end
        ).values()
        if block is not None:
            compliance.gate_record(block=block, client_id=account.client_id, channel=compliance.SMS, now=live.now)
        # No text can reach the client (opted out of texts, a landline): the link by e-mail, where
        # the account has an address. Any other block (paid, suppressed everywhere) stops both.
        text_problem = mail.text_unavailable_reason(client_id=account.client_id, phone=live.phone)
        if text_problem and (block is None or block.rule == compliance.Rule.SUPPRESSED) and _email_instead(live, text_problem=text_problem):
            return Answer("emailed", {"sent": True, "message": EMAILED_WORDS})
        if block is not None:
            return Answer("not_sent", {"sent": False, "reason": _sms_block_words(block)})
        if text_problem:
            return Answer("not_sent", {"sent": False, "reason": "This number can't receive texts. A specialist can help you pay another way."})
        link = links.secure_link(account, links.BALANCE, live.call_id)
        notice = "" if outbound.phone_received_opt_out_notice(phone=live.phone) else f" {outbound.OPT_OUT_NOTICE}"
        text = f"Hi {account.first_name or 'there'}, here is your secure payment link from {dialer.company_name}: {link}{notice}"
        existing, _ = SmsMessage.objects.get_or_create(
            local_id=local_id,
            defaults={
                "kind": SmsMessage.Kind.PAYMENT_LINK, "client_id": account.client_id, "phone": live.phone, "phase": live.phase,
                "inbox_id": _inbox(account, live.phase), "text": text, "status": SmsMessage.Status.PENDING, "scheduled_for": live.now,
            },
        )  # fmt: skip
    if existing.status == SmsMessage.Status.PENDING:
        outbound.sms_reply_send(message_id=existing.pk, now=live.now)
        existing.refresh_from_db()
    if existing.status in (SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED):
        return Answer("sent", {"sent": True, "message": f"I've just texted the secure payment link to the number ending in {live.phone[-4:]}."})
    if existing.status == SmsMessage.Status.PENDING:
        return Answer("queued", {"sent": False, "reason": "The text service is slow right now; the link will arrive in a few minutes."})
    return Answer("not_sent", {"sent": False, "reason": "I couldn't send the text just now. A specialist can help you pay."})


EMAILED_WORDS = "I can't text this number, so I've e-mailed the secure payment link to the address on your account."


def _email_instead(live: LiveCall, *, text_problem: str) -> bool:
    """The payment link by e-mail during the call (once per call, like the text); True when it went."""
    assert live.account is not None
    return mail.payment_link_email(account=live.account, call_id=live.call_id, text_problem=text_problem, now=live.now)


def _sms_block_words(block: compliance.Block) -> str:
    if block.rule == compliance.Rule.SUPPRESSED:
        reason = block.inputs.get("reason")
        if reason == Suppression.Reason.SMS_OPT_OUT:
            return "This number has opted out of texts, so I can't text the link. A specialist can help you pay another way."
        return "I'm not able to text this number. A specialist can help you pay another way."
    if block.is_window or block.rule == compliance.Rule.UNKNOWN_TIMEZONE:
        return "I can't send texts at this hour. You can pay by calling us back during business hours."
    return "I'm not able to text the link right now. A specialist can help you pay."


def _inbox(account: Account, phase: str) -> str:
    segment = account.segment
    if segment is None:
        return ""
    phase = phase if account.days_past_due is not None else Phase.PAST_DUE
    return segment.resurrection_inbox_id if team_for_phase(phase) == Team.RESURRECTION else segment.billing_inbox_id


def record_promise(live: LiveCall, args: Mapping[str, Any]) -> Answer:
    account = live.account
    assert account is not None
    if live.verify_first and not live.verified:
        return Answer("refused", {"recorded": False, "reason": "I need to verify your identity before I can set up a payment arrangement."})
    context = _context(live)
    zone = callbacks.client_zone(context.timezones)
    today = live.now.astimezone(zone).date()
    horizon = DialerSettings.load().promise_horizon_days
    promised = results.parse_promise_date(args.get("date"), today=today)
    if promised is None:
        return Answer("refused", {"recorded": False, "reason": "I didn't catch the date. What date will you make the payment?"})
    if promised < today:
        return Answer("refused", {"recorded": False, "reason": "That date has already passed. What date from today on works for you?"})
    if promised > today + dt.timedelta(days=horizon):
        last = today + dt.timedelta(days=horizon)
        return Answer(
            "refused",
            {"recorded": False, "reason": f"I can only set up a payment within {horizon} days, by {last:%B} {last.day} at the latest."},
        )
    given_amount = args.get("amount")
    amount = results.parse_promise_amount(given_amount) if given_amount not in (None, "") else account.amount_due
    if given_amount not in (None, "") and amount is None:
        return Answer("refused", {"recorded": False, "reason": "The amount has to be more than zero. How much will you pay?"})
    if amount is None:
        return Answer("refused", {"recorded": False, "reason": "How much will you pay on that date?"})
    if account.amount_due is not None and amount > account.amount_due:
        return Answer(
            "refused",
            {"recorded": False, "reason": f"That is more than the {_speak_money(account.amount_due)} due. How much would you like to pay?"},
        )
    promise, created = results.promise_create(context=context, call_id=live.call_id, promised=promised, amount=amount, now=live.now)
    if not created and promise.status == PromiseToPay.Status.PENDING and (promise.promised_date, promise.amount) != (promised, amount):
        # The reminder moves with the date (the morning before the new one).
        PromiseToPay.objects.filter(pk=promise.pk).update(
            promised_date=promised, amount=amount, reminder_at=results.promise_reminder_at(context=context, promised=promised, now=live.now)
        )
    return Answer(
        "recorded",
        {
            "recorded": True,
            "date": promised.isoformat(),
            "amount": _money(amount),
            "message": f"I've noted a payment of {_speak_money(amount)} on {promised:%A, %B} {promised.day}.",
        },
    )


def schedule_callback(live: LiveCall, args: Mapping[str, Any]) -> Answer:
    account = live.account
    assert account is not None
    context = _context(live)
    zone = callbacks.client_zone(context.timezones)
    words = _text(args.get("time"))
    requested = callbacks.parse_callback_time(words, now=live.now, zone=zone)
    if requested is None:
        return Answer("refused", {"scheduled": False, "reason": "I didn't catch a time. What day and time should we call you back?"})
    if requested < live.now - dt.timedelta(minutes=5):
        return Answer("refused", {"scheduled": False, "reason": "That time has already passed. When should we call you back?"})
    if requested > live.now + callbacks.CALLBACK_HORIZON:
        return Answer("refused", {"scheduled": False, "reason": "That's too far ahead for me to book. Is there a time in the next few weeks?"})
    checked = callbacks.callback_time_check(requested=max(requested, live.now), timezones=context.timezones, now=live.now)
    if not checked.allowed:
        offer = checked.offer
        return Answer(
            "offered",
            {
                "scheduled": False,
                "offered_time": offer.isoformat() if offer else "",
                "reason": (
                    f"We can't call at that hour. The nearest time I can offer is {_local_words(offer, context.timezones)}. Would that work?"
                    if offer
                    else "We can't call at that hour. What other time works for you?"
                ),
            },
        )
    callback, created = callbacks.callback_book(
        consent_call_id=live.call_id,
        client_id=account.client_id,
        client_name=account.name,
        phone=live.phone,
        timezones=context.timezones,
        state=account.state,
        segment_name=context.segment_name,
        phase=context.phase,
        due_at=checked.requested,
        requested_text=words,
    )
    if not created and callback.due_at != checked.requested:
        if not callbacks.callback_move(callback=callback, due_at=checked.requested, requested_text=words):
            return Answer("refused", {"scheduled": False, "reason": "Your callback is already on its way; a specialist can change it."})
    return Answer(
        "scheduled",
        {
            "scheduled": True,
            "time": checked.requested.isoformat(),
            "message": f"You're booked: we'll call you back on {_local_words(checked.requested, context.timezones)}.",
        },
    )


def transfer_brief_text(*, account: Account, verified: bool, reason: str) -> str:
    """A few sentences for the rep before the transfer bridges."""
    standing = account_standing(account.client_id)
    parts = [
        f"{account.name}, client {account.client_id}.",
        "Identity verified." if verified else "Identity NOT verified: do not discuss the account before verifying.",
    ]
    if not verified:
        # Grace holds the brief while the caller is on the line: nothing she must not say yet.
        parts.append("Balance not given: look it up once the caller is verified.")
    elif account.amount_due is not None:
        days = f", {account.days_past_due} days past due" if account.days_past_due is not None else ""
        parts.append(f"Owes {_speak_money(account.amount_due)}{days}.")
    parts.append(f"Wants a person: {reason}." if reason else "Asked for a person.")
    if standing.promise_date is not None:
        promised = (_speak_money(standing.promise_amount) if verified else "") or "a payment"
        parts.append(f"Open promise: {promised} by {standing.promise_date:%b} {standing.promise_date.day}.")
    if standing.dispute:
        parts.append("Open dispute on file.")
    return " ".join(parts)


def transfer_brief(live: LiveCall, args: Mapping[str, Any]) -> Answer:
    account = live.account
    assert account is not None
    brief = transfer_brief_text(account=account, verified=live.verified, reason=_text(args.get("reason"), 200).rstrip("."))
    Account.objects.filter(pk=account.pk).update(transfer_brief=brief, transfer_brief_at=live.now)
    return Answer("brief", {"brief": brief})


# Only the identity check needs its record in its own transaction (it holds the account's lock
# until the try is counted). The others write at most one idempotent row of their own (a promise
# or callback keyed by the call, the brief) and run in autocommit: a BEGIN and a COMMIT are two
# more round trips while Grace waits, and a retry after a half-done answer finds the same row.
# send_payment_link calls a vendor, which is never done inside a transaction.
TRANSACTION_FUNCTIONS = frozenset({"verify_identity"})
FUNCTIONS: dict[str, Callable[[LiveCall, Mapping[str, Any]], Answer]] = {
    "verify_identity": verify_identity,
    "lookup_account": lookup_account,
    "send_payment_link": send_payment_link,
    "record_promise": record_promise,
    "schedule_callback": schedule_callback,
    "transfer_brief": transfer_brief,
}


# --- The request ----------------------------------------------------------------------------------


def stored_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as kept and shown: identity answers only as "given"."""
    kept: dict[str, Any] = {}
    for key, value in list(args.items())[:10]:
        # Every answer to an identity check is a secret, whatever Grace named it.
        if key in identity.SECRET_COLUMNS or name == "verify_identity":
            kept[str(key)[:40]] = "given" if value not in (None, "") else "not given"
        elif isinstance(value, (str, int, float, bool)) or value is None:
            kept[str(key)[:40]] = value[:200] if isinstance(value, str) else value
    return kept


def live_function_answer(*, payload: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The answer to one signed custom-function request (never raises for a bad request)."""
    name = payload.get("name")
    call = _object(payload.get("call"))
    args = _object(payload.get("args"))
    if not isinstance(name, str) or name not in FUNCTIONS:
        log.warning("retell function unknown", extra={"function": str(name)[:40], "call_id": str(call.get("call_id") or "")[:100]})
        return {"error": SAY_UNKNOWN_FUNCTION}
    call_id = _text(call.get("call_id"), 100)
    if not call_id:
        log.warning("retell function without a call id", extra={"function": name})
        return {"error": SAY_UNKNOWN_CALL}
    # A retry of a request is the same request while what it depends on is unchanged: a lookup
    # after the caller was verified is a new question, not a retry of the one before.
    # The call's earlier function calls, in one query: whether the caller is verified, and the
    # stored answer if this very request was answered before.
    earlier = earlier_calls(call_id)
    verified = any(n == "verify_identity" and result == "verified" for n, _, result, _ in earlier)
    args_key = identity.keyed_digest(json.dumps([args, name != "verify_identity" and verified], sort_keys=True, default=str))
    stored = next((response for n, key, _, response in earlier if n == name and key == args_key), None)
    if stored is not None:
        return dict(stored)
    live = live_call_resolve(call=call, now=now, verified=verified)
    account = live.account
    segment_name = account.segment.name if account is not None and account.segment is not None else ""
    phase = live.phase

    def answer_and_store() -> Answer:
        answer = Answer("unknown_call", {"error": SAY_UNKNOWN_CALL}) if account is None else FUNCTIONS[name](live, args)
        record = LiveToolCall(
            call_id=call_id,
            name=name,
            args_key=args_key,
            client_id=account.client_id if account is not None else "",
            segment_name=segment_name,
            phase=phase,
            args=stored_args(name, args),
            result=answer.result,
            response=answer.response,
            created_at=now,
        )
        record_insert(record)
        return answer

    try:
        if name in TRANSACTION_FUNCTIONS:
            # The check and its record commit together, so the third try is counted once.
            with transaction.atomic():
                answer = answer_and_store()
        else:
            answer = answer_and_store()
    except IntegrityError:
        # The same function call answered meanwhile by a concurrent retry: its answer stands.
        first = LiveToolCall.objects.filter(call_id=call_id, name=name, args_key=args_key).values_list("response", flat=True).first()
        return dict(first) if first is not None else {"error": SAY_FAILED}
    except Exception:
        log.exception("retell function failed", extra={"function": name, "call_id": call_id})
        return {"error": SAY_FAILED}  # no answer stored: a retry tries again (and finds any row it booked)
    log.info(
        "retell function answered",
        extra={"function": name, "call_id": call_id, "client_id": account.client_id if account else "", "result": answer.result},
    )
    return answer.response

