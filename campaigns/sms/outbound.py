"""SMS through HeyMarket: scheduling, rendering and sending.

When a text goes out
- SMS-only touchpoints are due at a uniformly random instant of the SMS window (default
  10:00–13:00, `DialerSettings.sms_window_*`) in the client's local time on the campaign day;
  a client whose location is ambiguous gets an instant inside the window in every candidate
  zone (the intersection), or is skipped with the reason when the windows do not overlap.
- BOTH touchpoints text after a voicemail or no-answer outcome: the webhook code marks them
  `sms_status=scheduled, sms_due_at=now`, and the sender below picks them up.
- `sms_send_due` (a django-q2 schedule, every minute) claims due items with a conditional
  update, runs them through the compliance gate (`gate_sms`: SMS suppressions and the local
  window), renders the step's template with the client's data, stores the exact text, and sends.
  At send time the gate uses the campaign's calling window (the legal 08:00–21:00, possibly
  narrowed): the SMS window decides when a text is *due*, the legal window decides whether it may
  *go*, so a worker running a minute late does not push a 12:59 text to the next day.

Exactly once
- `local_id` is deterministic per queue item and kind (`qi-<campaign date>-<client id>-<kind>`);
  the SmsMessage row is created before the HTTP call and HeyMarket is idempotent on `local_id`,
  so a retried task, a second worker or a crash after the HTTP call never texts twice.
- A claim is a lease: a claimed item's `sms_due_at` moves `CLAIM_LEASE` ahead, so an item whose
  worker died is claimed again once the lease runs out (and re-sent under the same `local_id`).
- The message's pending → sent step, the item's step and the counters move in one transaction.

Counters: `Campaign.sms_sent` / `sms_failed` count queue items whose text was sent / failed,
both kinds alike — SMS-only items through `queue_item_transition` (status `sms_scheduled →
sms_sent | sms_failed`), BOTH items through the conditional `sms_status` update here. So the
counters always equal `transitions.campaign_recount`, which counts texts by `sms_status`.
Replies (opt-out confirmations, HELP answers) are not touchpoints: they belong to no campaign
and are not counted.
What clients text back is `campaigns.sms.inbound`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from cadences import templating
from cadences.models import ActionType, DialerSettings, Segment, SmsTemplate, Team, team_for_phase
from campaigns import geo
from campaigns.models import (
    Account,
    CallAttempt,
    Campaign,
    ContactLedgerEntry,
    PromiseToPay,
    QueueItem,
    SmsMessage,
)
from campaigns.compliance import gate as compliance
from campaigns.compliance import ledger
from campaigns.mail import followups as mail
from campaigns.payments import links as payment_links
from campaigns.alerts import alert_raise
from campaigns.transitions import queue_item_transition
from integrations.heymarket import client as heymarket
from integrations.http import IntegrationError

log = logging.getLogger(__name__)

S = QueueItem.Status
SmsStatus = QueueItem.SmsStatus
MessageStatus = SmsMessage.Status
Kind = SmsMessage.Kind

# How long a claimed item belongs to the worker that claimed it (HTTP retries included).
CLAIM_LEASE = dt.timedelta(minutes=10)
# Items claimed per run of the sender; the rest wait for the next minute.
SEND_BATCH = 500
# Transient HeyMarket failures (429/5xx after the client's own quick retries): back off
# 2, 4, 8, 16 min (or the vendor's Retry-After when longer), then give up with the reason.
MAX_SEND_ATTEMPTS = 5
RETRY_BASE = dt.timedelta(minutes=2)
RETRY_MAX = dt.timedelta(minutes=30)


OPT_OUT_NOTICE = templating.OPT_OUT_TEXT
# A text must never ask for card details (seeds 002/003): payment happens behind the secure link.
CARD_REQUEST = re.compile(
    r"\b(?:card\s*(?:number|no\.?|#|details|info(?:rmation)?)|cvv2?|cvc|security\s+code|expir(?:y|ation)\s+date|"
    r"bank\s+account\s+number|routing\s+number)(?!\w)",
    re.IGNORECASE,
)

# The ledger outcome of a text that carried opt-out wording: whether a number has "already
# received it" must survive the daily cleanup of SmsMessage rows, and the ledger does.
LEDGER_SENT = "sent"
LEDGER_SENT_WITH_NOTICE = "sent_with_opt_out_notice"

# Why an SMS-only touchpoint got no send time (QueueItem.skip_reason, GateDecision.rule).
RULE_NO_OVERLAP = "sms_window_no_overlap"
RULE_WINDOW_PASSED = "sms_window_passed"


# --- Scheduling -------------------------------------------------------------------------------


@dataclass
class ScheduleReport:
    scheduled: int = 0
    skipped: int = 0


def _window_bounds(*, day: dt.date, zones: Sequence[ZoneInfo], start: dt.time, end: dt.time) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the window on `day`, intersected over every candidate zone, in UTC."""
    lo = max(dt.datetime.combine(day, start, tzinfo=z) for z in zones).astimezone(dt.timezone.utc)
    hi = min(dt.datetime.combine(day, end, tzinfo=z) for z in zones).astimezone(dt.timezone.utc)
    return lo, hi


def sms_due_time(
    *, timezones: Sequence[str], day: dt.date, now: dt.datetime, start: dt.time, end: dt.time, rng: random.Random
) -> tuple[dt.datetime | None, compliance.Block | None]:
    """A uniformly random instant in the SMS window of `day` in every zone, not before `now`.

    Returns (instant, None), or (None, Block) saying why there is none. The window is first
    narrowed to the legal hours (`compliance.effective_window`), and the chosen instant is
    checked with the gate's own `local_window_block`, so there is one definition of "inside".
    """
    zones, invalid = compliance._zones(timezones)
    win_start, win_end = compliance.effective_window(start, end)
    inputs: dict[str, Any] = {
        "timezones": list(timezones),
        "day": day.isoformat(),
        "window_start": win_start.strftime("%H:%M"),
        "window_end": win_end.strftime("%H:%M"),
        "now_utc": now.astimezone(dt.timezone.utc).isoformat(),
    }
    if invalid or not zones:
        return None, compliance.Block(
            rule=compliance.Rule.UNKNOWN_TIMEZONE,
            detail="The client's local time zone is unknown, so no local send time can be chosen.",
            inputs=inputs,
        )
    window = f"{inputs['window_start']}–{inputs['window_end']}"
    opens, closes = _window_bounds(day=day, zones=zones, start=win_start, end=win_end)
    if win_start >= win_end or closes <= opens:
        return None, compliance.Block(
            rule=RULE_NO_OVERLAP,
            detail=f"The SMS window {window} has no instant shared by every candidate time zone ({', '.join(timezones)}).",
            inputs=inputs,
        )
    opens = max(opens, now)
    span = int((closes - opens).total_seconds())
    if span <= 0:
        return None, compliance.Block(
            rule=RULE_WINDOW_PASSED,
            detail=f"The SMS window {window} of {day.isoformat()} had already closed in the client's time zone(s).",
            inputs=inputs,
        )
    due = opens + dt.timedelta(seconds=int(rng.random() * span))
    block = compliance.local_window_block(
        timezones=timezones, now=due, start=win_start, end=win_end, narrow_rule=compliance.Rule.SMS_WINDOW
    )
    if block is not None:  # only reachable on a zone-database oddity; never send on a guess
        return None, block
    return due, None


def sms_schedule(*, campaign: Campaign, now: dt.datetime, rng: random.Random | None = None) -> ScheduleReport:
    """Give every SMS-only item of the campaign that has no send time yet its random local time.

    Idempotent: items that already have a due time are untouched, so running it again (or for
    items loaded later in the day) schedules only the new ones. `rng` fixes the draw in tests.
    """
    rng = rng or random.Random()
    dialer = DialerSettings.load()
    report = ScheduleReport()
    items = list(
        QueueItem.objects.filter(
            campaign=campaign,
            action_type=ActionType.SMS,
            status__in=[S.QUEUED, S.SMS_SCHEDULED],
            sms_due_at__isnull=True,
        ).order_by("pk")
    )
    skipped: list[tuple[QueueItem, compliance.Block]] = []
    for item in items:
        due, block = sms_due_time(
            timezones=item.timezone_list,
            day=campaign.date,
            now=now,
            start=dialer.sms_window_start,
            end=dialer.sms_window_end,
            rng=rng,
        )
        if due is None:
            assert block is not None
            if queue_item_transition(
                item_id=item.pk,
                from_statuses=[S.QUEUED, S.SMS_SCHEDULED],
                to_status=S.SKIPPED,
                skip_reason=block.rule,
                skip_detail={"detail": block.detail, **block.inputs},
                sms_status=SmsStatus.SKIPPED,
            ):
                skipped.append((item, block))
                report.skipped += 1
            continue
        if item.status == S.QUEUED:
            moved = queue_item_transition(
                item_id=item.pk,
                from_statuses=[S.QUEUED],
                to_status=S.SMS_SCHEDULED,
                sms_status=SmsStatus.SCHEDULED,
                sms_due_at=due,
            )
        else:
            moved = bool(
                QueueItem.objects.filter(pk=item.pk, status=S.SMS_SCHEDULED, sms_due_at__isnull=True).update(
                    sms_status=SmsStatus.SCHEDULED, sms_due_at=due
                )
            )
        report.scheduled += int(moved)
    if skipped:
        compliance.gate_record_many(blocks=skipped, channel=compliance.SMS, now=now, campaign=campaign)
    log.info(
        "sms scheduled",
        extra={"campaign_id": campaign.pk, "scheduled": report.scheduled, "skipped": report.skipped},
    )
    return report


# --- Rendering --------------------------------------------------------------------------------


def format_amount(amount: Decimal | None) -> templating.Amount | str:
    """'$1,234.56' in a text; a template wanting the bare figure writes `{{ amount_due|raw }}`."""
    return "" if amount is None else templating.Amount(amount)


def format_date(day: dt.date) -> str:
    return f"{day:%B} {day.day}, {day.year}"


def sms_context(*, item: QueueItem, now: dt.datetime, company_name: str, with_link: bool = True) -> dict[str, Any]:
    """The template variables for one client, computed at send time (the amount as an `Amount`, the rest as strings).

    Suspension and cancellation dates count from the campaign day's days past due to the
    segment's days, so they are the same whichever minute the text goes out. The payment link
    is issued only `with_link` (a template that does not cite it gets none).
    """
    segment = item.segment
    day = item.campaign.date
    name = " ".join(item.client_name.split())
    return {
        "client_name": name,
        "first_name": name.split(" ")[0] if name else "",
        "amount_due": format_amount(item.amount_due),
        "days_past_due": str(item.days_past_due),
        "payment_link": payment_links.payment_link_for(client_id=item.client_id, row_link=item.payment_link, now=now) if with_link else "",
        "suspension_date": format_date(day + dt.timedelta(days=segment.suspension_day - item.days_past_due)),
        "cancellation_date": format_date(day + dt.timedelta(days=segment.cancellation_day - item.days_past_due)),
        "company_name": company_name,
    }


def has_opt_out_wording(text: str) -> bool:
    return templating.has_opt_out_instruction(text)


def asks_for_card_details(text: str) -> bool:
    return bool(CARD_REQUEST.search(text))


def phone_received_opt_out_notice(*, phone: str) -> bool:
    """Has this number ever been sent a text that told it how to opt out?"""
    return ContactLedgerEntry.objects.filter(
        phone=phone, kind=ContactLedgerEntry.Kind.SMS, outcome=LEDGER_SENT_WITH_NOTICE
    ).exists()


class RenderError(Exception):
    """The touchpoint cannot be rendered into a text that may be sent; the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def sms_render(*, item: QueueItem, now: dt.datetime, company_name: str, template: SmsTemplate | None = None, preview: bool = False) -> str:
    """The exact text for a touchpoint: the step's template (or `template`, a draft of it), plus
    the opt-out notice if due. A `preview` issues no payment link: it carries one exactly as long."""
    template = template or item.step.sms_template
    if template is None:
        raise RenderError("no_sms_template", f"Cadence step {item.step} has no SMS template.")
    cited = templating.template_variables(template.body)
    if item.amount_due is None and "amount_due" in cited:
        raise RenderError("missing_amount_due", "The template cites the amount due, and the warehouse gave none for this client.")
    context = sms_context(item=item, now=now, company_name=company_name, with_link="payment_link" in cited and not preview)
    if preview and "payment_link" in cited:
        context["payment_link"] = payment_links.example_link()
    text = template.render(context)
    if not text:
        raise RenderError("empty_text", f"Template {template.name!r} rendered an empty text.")
    # The link's random token is not wording; leaving it out means it can never look like a request.
    if asks_for_card_details(text.replace(context["payment_link"], " ") if context["payment_link"] else text):
        raise RenderError("asks_for_card_details", f"Template {template.name!r} asks for card details; payment goes through the link only.")
    if not has_opt_out_wording(text) and not phone_received_opt_out_notice(phone=item.phone):
        text = templating.append_sentence(text, OPT_OUT_NOTICE)
    return text


def sms_local_id(*, item: QueueItem, kind: str) -> str:
    """Deterministic per item and kind: the same touchpoint can only ever be one message."""
    return f"qi-{item.campaign.date:%Y%m%d}-{item.client_id}-{kind}"[:100]


# --- Sending ----------------------------------------------------------------------------------


class SendOutcome(models.TextChoices):
    """What one due text came to in a run of the sender."""

    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    RESCHEDULED = "rescheduled", "Rescheduled"


@dataclass
class SendReport:
    claimed: int = 0
    replies_sent: int = 0
    outcomes: dict[int, SendOutcome] = field(default_factory=dict)

    def count(self, outcome: SendOutcome) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)

    @property
    def sent(self) -> int:
        return self.count(SendOutcome.SENT)

    @property
    def failed(self) -> int:
        return self.count(SendOutcome.FAILED)

    @property
    def skipped(self) -> int:
        return self.count(SendOutcome.SKIPPED)

    @property
    def rescheduled(self) -> int:
        return self.count(SendOutcome.RESCHEDULED)


def _claim_due(*, now: dt.datetime, limit: int) -> list[int]:
    """Claim due items (and items whose claim lease ran out) one conditional update each."""
    due = Q(sms_status=SmsStatus.SCHEDULED) | Q(sms_status=SmsStatus.SENDING)
    candidates = list(
        QueueItem.objects.filter(due, campaign__status=Campaign.Status.RUNNING, sms_due_at__lte=now)
        .order_by("sms_due_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    claimed = []
    for pk in candidates:
        # The update moves sms_due_at past `now`, so a second claimer's identical update
        # matches nothing: exactly one worker owns the item until the lease runs out.
        if QueueItem.objects.filter(due, pk=pk, sms_due_at__lte=now).update(
            sms_status=SmsStatus.SENDING, sms_due_at=now + CLAIM_LEASE
        ):
            claimed.append(pk)
    return claimed


def _finish(*, item: QueueItem, sent: bool, counted: bool, reason: str = "", detail: dict[str, Any] | None = None) -> None:
    """Close a claimed item's SMS (inside the caller's transaction)."""
    if item.action_type == ActionType.SMS:
        fields: dict[str, Any] = {"sms_status": SmsStatus.SENT if sent else SmsStatus.FAILED}
        if not sent:
            fields.update(skip_reason=reason[:64], skip_detail=detail or {})
        queue_item_transition(
            item_id=item.pk,
            from_statuses=[S.SMS_SCHEDULED],
            to_status=S.SMS_SENT if sent else S.SMS_FAILED,
            **fields,
        )
        return
    moved = QueueItem.objects.filter(pk=item.pk, sms_status=SmsStatus.SENDING).update(
        sms_status=SmsStatus.SENT if sent else SmsStatus.FAILED
    )
    if moved and counted:
        counter = "sms_sent" if sent else "sms_failed"
        Campaign.objects.filter(pk=item.campaign_id).update(**{counter: F(counter) + 1})


def _skip(*, item: QueueItem, block: compliance.Block) -> None:
    if item.action_type == ActionType.SMS:
        queue_item_transition(
            item_id=item.pk,
            from_statuses=[S.SMS_SCHEDULED],
            to_status=S.SKIPPED,
            skip_reason=block.rule,
            skip_detail={"detail": block.detail, **block.inputs},
            sms_status=SmsStatus.SKIPPED,
        )
    else:
        QueueItem.objects.filter(pk=item.pk, sms_status=SmsStatus.SENDING).update(sms_status=SmsStatus.SKIPPED)


def _reschedule(*, item: QueueItem, due: dt.datetime) -> None:
    QueueItem.objects.filter(pk=item.pk, sms_status=SmsStatus.SENDING).update(sms_status=SmsStatus.SCHEDULED, sms_due_at=due)


def _retry_delay(attempts: int, retry_after: float | None) -> dt.timedelta:
    delay = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_MAX)
    if retry_after:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return delay


def _message_for(*, item: QueueItem, now: dt.datetime, company_name: str) -> SmsMessage:
    """The item's message, created (with its final text) before any HTTP call, or the existing one."""
    kind = Kind.TOUCHPOINT if item.action_type == ActionType.SMS else Kind.FOLLOW_UP
    local_id = sms_local_id(item=item, kind=kind)
    existing = SmsMessage.objects.filter(local_id=local_id).first()
    if existing is not None:
        return existing
    text = sms_render(item=item, now=now, company_name=company_name)
    try:
        with transaction.atomic():
            return SmsMessage.objects.create(
                local_id=local_id,
                campaign_id=item.campaign_id,
                queue_item=item,
                kind=kind,
                client_id=item.client_id,
                phase=item.phase,
                phone=item.phone,
                inbox_id=item.inbox_id,
                text=text,
                scheduled_for=now,
            )
    except IntegrityError:  # another worker created it between our read and our insert
        return SmsMessage.objects.get(local_id=local_id)


def _ledger_sms(*, message: SmsMessage, now: dt.datetime, campaign_date: dt.date | None, state: str = "") -> None:
    ledger.ledger_record(
        client_id=message.client_id,
        phone=message.phone,
        kind=ContactLedgerEntry.Kind.SMS,
        reference=message.local_id,
        occurred_at=now,
        campaign_date=campaign_date,
        outcome=LEDGER_SENT_WITH_NOTICE if has_opt_out_wording(message.text) else LEDGER_SENT,
        state=state,
    )


def _mark_sent(*, message: SmsMessage, heymarket_id: str, now: dt.datetime) -> bool:
    return bool(
        SmsMessage.objects.filter(pk=message.pk, status=MessageStatus.PENDING).update(
            status=MessageStatus.SENT, heymarket_id=heymarket_id[:64], sent_at=now, error=""
        )
    )


def _mark_failed(*, message: SmsMessage, error: str) -> bool:
    return bool(
        SmsMessage.objects.filter(pk=message.pk, status=MessageStatus.PENDING).update(status=MessageStatus.FAILED, error=error)
    )


def _send_item(*, item: QueueItem, now: dt.datetime, company_name: str) -> SendOutcome:
    """Send one claimed, gated item; returns what happened ("sent", "failed", "rescheduled")."""
    log_fields = {"queue_item_id": item.pk, "client_id": item.client_id, "campaign_id": item.campaign_id}
    try:
        message = _message_for(item=item, now=now, company_name=company_name)
    except RenderError as exc:
        with transaction.atomic():
            _finish(item=item, sent=False, counted=True, reason=exc.reason, detail={"error": str(exc)})
        log.warning("sms not rendered", extra={**log_fields, "reason": exc.reason, "error": str(exc)})
        return SendOutcome.FAILED

    if message.status in (MessageStatus.SENT, MessageStatus.DELIVERED):
        # Already sent under this local_id (the item was put back after its send): close it
        # without counting the same text twice.
        with transaction.atomic():
            _finish(item=item, sent=True, counted=False)
        return SendOutcome.SENT
    if message.status == MessageStatus.FAILED:
        with transaction.atomic():
            _finish(item=item, sent=False, counted=False, reason="sms_rejected", detail={"error": message.error})
        return SendOutcome.FAILED

    attempts = message.send_attempts + 1
    SmsMessage.objects.filter(pk=message.pk).update(send_attempts=F("send_attempts") + 1)
    try:
        sent = heymarket.send_message(inbox_id=message.inbox_id, phone=message.phone, text=message.text, local_id=message.local_id)
    except IntegrationError as exc:
        if exc.permanent or attempts >= MAX_SEND_ATTEMPTS:
            error = str(exc) if exc.permanent else f"HeyMarket unavailable after {attempts} attempts: {exc}"
            with transaction.atomic():
                marked = _mark_failed(message=message, error=error)
                _finish(
                    item=item,
                    sent=False,
                    counted=marked,
                    reason="sms_rejected" if exc.permanent else "sms_unavailable",
                    detail={"error": error, "status": exc.status},
                )
            log.warning("sms failed", extra={**log_fields, "local_id": message.local_id, "error": error, "status": exc.status})
            if not exc.permanent or exc.status in (401, 403):
                # An outage or refused credentials fail every text, not just this one's: say so once.
                alert_raise(campaign=item.campaign, source="heymarket", message=f"Texts are failing: {error}")
            return SendOutcome.FAILED
        due = now + _retry_delay(attempts, exc.retry_after)
        with transaction.atomic():
            SmsMessage.objects.filter(pk=message.pk).update(error=str(exc))
            _reschedule(item=item, due=due)
        log.warning(
            "sms send deferred",
            extra={**log_fields, "local_id": message.local_id, "attempts": attempts, "retry_at": due.isoformat(), "error": str(exc)},
        )
        return SendOutcome.RESCHEDULED

    with transaction.atomic():
        marked = _mark_sent(message=message, heymarket_id=str(sent.id), now=now)
        if marked:
            _ledger_sms(message=message, now=now, campaign_date=item.campaign.date, state=item.state)
        _finish(item=item, sent=True, counted=marked)
    log.info("sms sent", extra={**log_fields, "local_id": message.local_id, "heymarket_id": str(sent.id), "kind": message.kind})
    return SendOutcome.SENT


def sms_send_items(*, item_ids: Sequence[int], now: dt.datetime, report: SendReport | None = None) -> SendReport:
    """Gate and send items this worker has claimed (sms_status=sending)."""
    report = report or SendReport()
    items = list(
        QueueItem.objects.filter(pk__in=item_ids, sms_status=SmsStatus.SENDING).select_related(
            "campaign", "segment", "step__sms_template"
        )
    )
    if not items:
        return report
    company_name = DialerSettings.load().company_name
    by_campaign: dict[int, list[QueueItem]] = defaultdict(list)
    for item in items:
        by_campaign[item.campaign_id].append(item)
    for campaign_items in by_campaign.values():
        campaign = campaign_items[0].campaign
        gate = compliance.gate_sms(
            items=campaign_items, now=now, start=campaign.calling_window_start, end=campaign.calling_window_end
        )
        blocked: list[tuple[QueueItem, compliance.Block]] = []
        for item in campaign_items:
            block = gate.get(item.pk)
            if block is None:
                outcome = _send_item(item=item, now=now, company_name=company_name)
            elif block.is_window:
                reopen = compliance.next_window_open(
                    timezones=item.timezone_list, now=now, start=campaign.calling_window_start, end=campaign.calling_window_end
                )
                blocked.append((item, block))
                if reopen is None:
                    _skip(item=item, block=block)
                    outcome = SendOutcome.SKIPPED
                else:
                    _reschedule(item=item, due=reopen)
                    outcome = SendOutcome.RESCHEDULED
            else:
                blocked.append((item, block))
                _skip(item=item, block=block)
                outcome = SendOutcome.SKIPPED
            report.outcomes[item.pk] = outcome
        if blocked:
            compliance.gate_record_many(blocks=blocked, channel=compliance.SMS, now=now, campaign=campaign)
    return report


def sms_send_due(*, now: dt.datetime, limit: int = SEND_BATCH, rng: random.Random | None = None) -> SendReport:
    """The minute task: schedule late arrivals, send every due text, retry pending replies."""
    for campaign in Campaign.objects.filter(
        status=Campaign.Status.RUNNING,
        pk__in=QueueItem.objects.filter(
            action_type=ActionType.SMS, status__in=[S.QUEUED, S.SMS_SCHEDULED], sms_due_at__isnull=True
        ).values("campaign_id"),
    ):
        sms_schedule(campaign=campaign, now=now, rng=rng)
    claimed = _claim_due(now=now, limit=limit)
    report = SendReport(claimed=len(claimed))
    sms_send_items(item_ids=claimed, now=now, report=report)
    report.replies_sent = sms_replies_send_due(now=now) + promise_reminders_send_due(now=now) + payment_links_send_due(now=now)
    if claimed or report.replies_sent:
        log.info(
            "sms send run",
            extra={
                "claimed": report.claimed,
                "sent": report.sent,
                "failed": report.failed,
                "skipped": report.skipped,
                "rescheduled": report.rescheduled,
                "replies_sent": report.replies_sent,
            },
        )
    return report


# --- Replies (opt-out confirmation, opt-in confirmation, HELP) --------------------------------


def _payment_link_gate(*, message: SmsMessage, now: dt.datetime) -> compliance.Block | None:
    """The SMS gate again for a payment link about to go out: since it was queued the client may
    have opted out, been suppressed or paid, or the window may have closed."""
    account = Account.objects.filter(client_id=message.client_id).first()
    zones = account.timezones if account is not None and account.timezones else ""
    if not zones:
        zones = ",".join(geo.time_zones_for_client(timezone="", state=account.state if account else "", phone=message.phone))
    probe = QueueItem(client_id=message.client_id, phone=message.phone, timezones=zones)
    start, end = compliance.LEGAL_WINDOW
    (block,) = compliance.gate_sms(items=[probe], now=now, start=start, end=end).values()
    if block is None:
        return None
    if block.is_window:
        opens = compliance.next_window_open(timezones=probe.timezone_list, now=now, start=start, end=end)
        SmsMessage.objects.filter(pk=message.pk, status=MessageStatus.PENDING).update(scheduled_for=opens or now + CLAIM_LEASE)
    else:
        compliance.gate_record(block=block, client_id=message.client_id, channel=compliance.SMS, now=now)
        _mark_failed(message=message, error=f"not sent: {block.detail}")
    return block


def _reply_send(*, message: SmsMessage, now: dt.datetime) -> bool:
    """Send one pending reply; True when it went out. Transient failures retry with backoff."""
    if message.kind == Kind.PAYMENT_LINK and _payment_link_gate(message=message, now=now) is not None:
        return False
    attempts = message.send_attempts + 1
    SmsMessage.objects.filter(pk=message.pk).update(send_attempts=F("send_attempts") + 1)
    try:
        sent = heymarket.send_message(inbox_id=message.inbox_id, phone=message.phone, text=message.text, local_id=message.local_id)
    except IntegrationError as exc:
        if exc.permanent or attempts >= MAX_SEND_ATTEMPTS:
            _mark_failed(message=message, error=str(exc))
            log.warning("sms reply failed", extra={"local_id": message.local_id, "error": str(exc), "status": exc.status})
            if exc.permanent and message.kind == Kind.PAYMENT_LINK and message.local_id.startswith(PAYMENT_LINK_PREFIX):
                # HeyMarket refused the text itself (a landline, a number that cannot take texts):
                # the link the client asked for goes by e-mail.
                account = Account.objects.filter(client_id=message.client_id).first()
                if account is not None:
                    mail.payment_link_email(
                        account=account, call_id=message.local_id.removeprefix(PAYMENT_LINK_PREFIX), text_problem="the text was refused", now=now
                    )
        else:
            SmsMessage.objects.filter(pk=message.pk, status=MessageStatus.PENDING).update(
                error=str(exc), scheduled_for=now + _retry_delay(attempts, exc.retry_after)
            )
        return False
    with transaction.atomic():
        if _mark_sent(message=message, heymarket_id=str(sent.id), now=now):
            _ledger_sms(message=message, now=now, campaign_date=None)
    log.info("sms reply sent", extra={"local_id": message.local_id, "kind": message.kind, "client_id": message.client_id})
    return True


def sms_reply_send(*, message_id: int, now: dt.datetime) -> bool:
    """Send a reply now if it is still pending and no other worker holds it."""
    # Claim by moving scheduled_for a lease ahead; HeyMarket's local_id makes a rare double
    # send after a lease expiry harmless anyway.
    claimed = SmsMessage.objects.filter(
        Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now), pk=message_id, status=MessageStatus.PENDING
    ).update(scheduled_for=now + CLAIM_LEASE)
    if not claimed:
        return False
    return _reply_send(message=SmsMessage.objects.get(pk=message_id), now=now)


REPLY_KINDS = (Kind.OPT_OUT_CONFIRMATION, Kind.OPT_IN_CONFIRMATION, Kind.HELP_REPLY, Kind.PAYMENT_LINK)


def sms_replies_send_due(*, now: dt.datetime) -> int:
    """Replies whose immediate send did not happen (worker down, vendor 5xx): send them now."""
    ids = list(
        SmsMessage.objects.filter(kind__in=REPLY_KINDS, status=MessageStatus.PENDING, scheduled_for__lte=now)
        .order_by("scheduled_for")
        .values_list("pk", flat=True)[:SEND_BATCH]
    )
    return sum(sms_reply_send(message_id=pk, now=now) for pk in ids)


# --- Promise-to-pay reminders --------------------------------------------------------------------

PROMISE_REMINDER_TEXT = (
    "Hi {first_name}, this is {company_name}. A reminder of the payment{amount} you arranged for "
    "{promised_date}. You can pay securely here: {payment_link} Reply STOP to opt out."
)


def promise_reminder_local_id(promise: PromiseToPay) -> str:
    return f"ptp-{promise.call_id}"[:100]


def promise_reminders_send_due(*, now: dt.datetime, limit: int = SEND_BATCH) -> int:
    """Text each pending promise its reminder once, the day before it is due, through the SMS
    gate: never to a number suppressed for texts, never outside the client's local window (it
    waits for the window instead). Returns how many went out."""
    dialer = DialerSettings.load()
    due = (
        PromiseToPay.objects.filter(status=PromiseToPay.Status.PENDING, reminder_at__lte=now)
        .exclude(phone="")
        .order_by("reminder_at")
    )
    sent = 0
    for promise in due[: limit * 4]:
        local_id = promise_reminder_local_id(promise)
        if SmsMessage.objects.filter(local_id=local_id).exists():
            continue
        if promise.promised_date < timezone.localdate(now):
            continue  # the day has passed; a reminder now would only confuse
        zones = ",".join(geo.time_zones_for_client(timezone="", state="", phone=promise.phone))
        probe = QueueItem(client_id=promise.client_id, phone=promise.phone, timezones=zones)
        (block,) = compliance.gate_sms(items=[probe], now=now, start=dialer.sms_window_start, end=dialer.sms_window_end).values()
        if block is not None:
            if block.rule not in (compliance.Rule.OUTSIDE_LOCAL_WINDOW, compliance.Rule.SMS_WINDOW):
                # Suppressed for texts: recorded once, never sent.
                compliance.gate_record(block=block, client_id=promise.client_id, channel=compliance.SMS, now=now)
                SmsMessage.objects.get_or_create(
                    local_id=local_id,
                    defaults={
                        "kind": Kind.PROMISE_REMINDER, "client_id": promise.client_id, "phone": promise.phone, "phase": promise.phase,
                        "inbox_id": _promise_inbox(promise), "text": "", "status": MessageStatus.FAILED,
                        "error": f"not sent: {block.detail}",
                    },
                )  # fmt: skip
            continue  # outside the window: the minute task tries again when it opens
        text = PROMISE_REMINDER_TEXT.format(
            first_name=(promise.client_name or "there").split()[0],
            company_name=dialer.company_name,
            amount=f" of ${promise.amount:,.2f}" if promise.amount else "",
            promised_date=f"{promise.promised_date:%A, %B} {promise.promised_date.day}",
            payment_link=payment_links.payment_link_for(client_id=promise.client_id, row_link="", now=now),
        )
        message, created = SmsMessage.objects.get_or_create(
            local_id=local_id,
            defaults={
                "kind": Kind.PROMISE_REMINDER, "client_id": promise.client_id, "phone": promise.phone, "phase": promise.phase,
                "inbox_id": _promise_inbox(promise), "text": text, "status": MessageStatus.PENDING, "scheduled_for": now,
            },
        )  # fmt: skip
        if created and sms_reply_send(message_id=message.pk, now=now):
            sent += 1
    # Reminders a vendor error deferred go out again once their retry time comes.
    retry = SmsMessage.objects.filter(kind=Kind.PROMISE_REMINDER, status=MessageStatus.PENDING, scheduled_for__lte=now)
    sent += sum(sms_reply_send(message_id=pk, now=now) for pk in retry.values_list("pk", flat=True)[:limit])
    return sent


def _promise_inbox(promise: PromiseToPay) -> str:
    segment = Segment.objects.filter(name=promise.segment_name).first()
    if segment is None:
        return Segment.objects.order_by("sort_order").values_list("billing_inbox_id", flat=True).first() or ""
    resurrection = team_for_phase(promise.phase) == Team.RESURRECTION
    return segment.resurrection_inbox_id if resurrection else segment.billing_inbox_id


# --- A payment link asked for on a call ----------------------------------------------------------

PAYMENT_LINK_TEXT = (
    "Hi {first_name}, this is {company_name}. As promised on our call, here is your secure payment "
    "link: {payment_link} Reply STOP to opt out."
)
# A call's request is honoured for this long after it ended (a worker down for a while still
# sends it; a request from last week is not sent out of the blue).
PAYMENT_LINK_REQUEST_FOR = dt.timedelta(hours=12)
TRUE_WORDS = frozenset({"true", "yes", "1", "y"})


def payment_link_requested(analysis: Any) -> bool:
    """Whether the post-call analysis says the client wants to pay now (`payment_link_requested`)."""
    value = analysis.get("payment_link_requested") if isinstance(analysis, dict) else None
    if isinstance(value, bool):
        return value
    return isinstance(value, (str, int)) and str(value).strip().lower() in TRUE_WORDS


PAYMENT_LINK_PREFIX = "paylink-"


def payment_link_local_id(call_id: str) -> str:
    return f"{PAYMENT_LINK_PREFIX}{call_id}"[:100]


def live_payment_link_local_id(call_id: str) -> str:
    """The text of the link Grace sent during call `call_id` (her send_payment_link)."""
    return f"live-{call_id}-payment-link"[:100]


def payment_link_send(*, call_id: str, now: dt.datetime) -> bool:
    """Text the payment link a client asked for on call `call_id`, once per call, through the SMS
    gate (suppressions, opt-out, the local texting window; a client who has paid since gets
    nothing). Outside the window it waits for the window; True when it went out now."""
    attempt = CallAttempt.objects.filter(call_id=call_id).select_related("queue_item").first()
    if attempt is None or not payment_link_requested(attempt.custom_analysis):
        return False
    # Grace texted it during the call already (her send_payment_link): once per call.
    if SmsMessage.objects.filter(local_id=live_payment_link_local_id(call_id)).exclude(status=MessageStatus.FAILED).exists():
        return False
    local_id = payment_link_local_id(call_id)
    existing = SmsMessage.objects.filter(local_id=local_id).first()
    if existing is not None:
        return existing.status == MessageStatus.PENDING and sms_reply_send(message_id=existing.pk, now=now)
    account = Account.objects.select_related("segment").filter(client_id=attempt.client_id).first()
    if account is None:
        return False
    phone = attempt.client_phone or account.phone
    item = attempt.queue_item
    zones = item.timezones if item is not None else ",".join(
        geo.time_zones_for_client(timezone=account.timezones, state=account.state, phone=phone)
    )
    dialer = DialerSettings.load()
    probe = QueueItem(client_id=account.client_id, phone=phone, timezones=zones)
    # The client asked for it on the call: the legal hours apply, not the cadence's texting window.
    start, end = compliance.LEGAL_WINDOW
    (block,) = compliance.gate_sms(items=[probe], now=now, start=start, end=end).values()
    # No text can reach the client (opted out of texts, or no mobile number): the link goes by
    # e-mail instead, where the client has an address and the settings allow it. Any other block
    # (paid, suppressed on every channel) stops the e-mail too.
    text_problem = mail.text_unavailable_reason(client_id=account.client_id, phone=phone)
    if (block is not None and not block.is_window) or text_problem:
        if block is not None and not block.is_window:
            compliance.gate_record(block=block, client_id=account.client_id, channel=compliance.SMS, now=now, item=item)
        _, created = SmsMessage.objects.get_or_create(
            local_id=local_id,
            defaults={
                "kind": Kind.PAYMENT_LINK, "client_id": account.client_id, "phone": phone, "inbox_id": "", "phase": attempt.phase,
                "text": "", "status": MessageStatus.FAILED,
                "error": f"not sent: {block.detail if block is not None and not block.is_window else text_problem}"[:2000],
            },
        )  # fmt: skip
        if created and text_problem and (block is None or block.is_window or block.rule == compliance.Rule.SUPPRESSED):
            mail.payment_link_email(account=account, call_id=call_id, text_problem=text_problem, now=now)
        return False
    if item is not None:
        inbox_id = item.inbox_id
    else:
        segment = account.segment
        inbox_id = (segment.billing_inbox_id if segment else "") or Segment.objects.order_by("sort_order").values_list(
            "billing_inbox_id", flat=True
        ).first() or ""
    text = PAYMENT_LINK_TEXT.format(
        first_name=account.first_name or "there",
        company_name=dialer.company_name,
        payment_link=payment_links.secure_link(account, payment_links.BALANCE, call_id),
    )
    due = now
    if block is not None:  # the window is closed: send when it opens
        due = compliance.next_window_open(timezones=probe.timezone_list, now=now, start=start, end=end) or now
    message, created = SmsMessage.objects.get_or_create(
        local_id=local_id,
        defaults={
            "kind": Kind.PAYMENT_LINK, "client_id": account.client_id, "phone": phone, "inbox_id": inbox_id, "phase": attempt.phase,
            "text": text, "status": MessageStatus.PENDING, "scheduled_for": due,
            "campaign": attempt.campaign, "queue_item": item,
        },
    )  # fmt: skip
    texted = created and block is None and sms_reply_send(message_id=message.pk, now=now)
    if created and dialer.email_follow_ups == DialerSettings.EmailFollowUps.ALSO:
        mail.payment_link_email(account=account, call_id=call_id, text_problem="", now=now)
    return texted


def payment_links_send_due(*, now: dt.datetime, limit: int = SEND_BATCH) -> int:
    """The minute sweep: links asked for on calls that are not texted yet (the task right after
    the call was lost, or the window was closed), and ones waiting for their window."""
    recent = CallAttempt.objects.filter(
        analyzed=True, ended_at__gte=now - PAYMENT_LINK_REQUEST_FOR, custom_analysis__has_key="payment_link_requested"
    ).exclude(call_id=None)
    sent = 0
    for call_id in recent.values_list("call_id", flat=True)[: limit * 2]:
        if call_id and not SmsMessage.objects.filter(local_id=payment_link_local_id(call_id)).exclude(status=MessageStatus.PENDING).exists():
            sent += payment_link_send(call_id=call_id, now=now)
    return sent
