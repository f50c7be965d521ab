"""Daily KPIs by segment and phase: the figures, the rates built on them, and the daily snapshot.

A campaign's queue items, call attempts and SMS rows are deleted at flush, so before that the
lifecycle calls `kpis_snapshot(campaign=...)`, which stores the day's figures per (segment,
phase) in `DailyKpi`. The 7- and 30-day trends are read from that table; today's KPIs are
computed live from today's rows with the very same figure queries.

Every figure is a SQL aggregate (GROUP BY segment and phase); nothing loops over rows.

Figures (counts per segment and phase for one campaign day):

- ``queued`` — queue items loaded for the day.
- ``calls_placed`` — call attempts Retell accepted (they have a ``call_id``).
- ``answered``, ``voicemail``, ``transferred``, ``no_answer``, ``failed`` — those attempts by
  resolved outcome. A *conversation* is an answered or transferred attempt.
- ``right_party_contacts`` — conversations with the client themself: every conversation except
  those whose post-call analysis says the person on the line was not the client
  (``custom_analysis_data.right_party`` false or ``wrong_party`` true).
- ``sms_sent`` — cadence and follow-up texts HeyMarket accepted (sent or delivered); opt-out
  confirmations and help replies are not outreach.
- ``promises`` / ``promises_kept`` / ``amount_promised`` / ``amount_recovered`` — promises to pay
  captured that day (by the portal's local date) and, of those, the ones kept so far with the
  amounts. Promises mature after the day, so every snapshot also refreshes these four columns
  for the previous 30 days.
- ``disputes`` — call attempts that opened a dispute follow-up task.
- ``opt_outs`` — the day's clients who asked to stop (do-not-call, SMS opt-out or cease
  communication) that day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Union

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from cadences.models import Segment
from campaigns.models import (
    Callback,
    CallAttempt,
    Campaign,
    DailyKpi,
    FollowUpTask,
    LiveToolCall,
    PromiseToPay,
    QueueItem,
    SmsMessage,
    Suppression,
)

log = logging.getLogger(__name__)

Number = Union[int, Decimal]
Figures = dict[str, Number]
SegmentPhase = tuple[str, str]

COUNT_FIELDS = (
    "queued",
    "calls_placed",
    "answered",
    "right_party_contacts",
    "voicemail",
    "transferred",
    "no_answer",
    "failed",
    "sms_sent",
    "promises",
    "promises_kept",
    "disputes",
    "opt_outs",
    "identity_checks",
    "identity_verified",
    "identity_failed",
    "links_sent_live",
    "callbacks_due",
    "callbacks_kept",
)
AMOUNT_FIELDS = ("amount_promised", "amount_recovered")
FIGURE_FIELDS = COUNT_FIELDS + AMOUNT_FIELDS
PROMISE_FIELDS = ("promises", "promises_kept", "amount_promised", "amount_recovered")

# How far back each snapshot refreshes the promise columns (the longest trend shown).
PROMISE_REFRESH_DAYS = 30

OPT_OUT_REASONS = (
    Suppression.Reason.DO_NOT_CALL,
    Suppression.Reason.SMS_OPT_OUT,
    Suppression.Reason.CEASE_COMMUNICATION,
)

CONVERSATION_OUTCOMES = (CallAttempt.Outcome.ANSWERED, CallAttempt.Outcome.TRANSFERRED)

# The post-call analysis flags someone other than the client on the line. Retell sends these
# as booleans, or as text when the analysis field is configured as text ("no", "yes").
WRONG_PARTY_Q = (
    Q(custom_analysis__right_party=False)
    | Q(custom_analysis__right_party__iexact="no")
    | Q(custom_analysis__right_party__iexact="false")
    | Q(custom_analysis__wrong_party=True)
    | Q(custom_analysis__wrong_party__iexact="yes")
    | Q(custom_analysis__wrong_party__iexact="true")
)


def empty_figures() -> Figures:
    figures: Figures = dict.fromkeys(COUNT_FIELDS, 0)
    figures.update(dict.fromkeys(AMOUNT_FIELDS, Decimal("0.00")))
    return figures


def day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The campaign day as an aware [start, end) interval in the portal's time zone."""
    start = timezone.make_aware(dt.datetime.combine(date, dt.time.min))
    return start, timezone.make_aware(dt.datetime.combine(date + dt.timedelta(days=1), dt.time.min))


def _merge(into: dict[SegmentPhase, Figures], rows: Iterable[Mapping[str, Any]], fields: Iterable[str]) -> None:
    for row in rows:
        key = (row["segment_name"] or "", row["phase"] or "")
        figures = into.setdefault(key, empty_figures())
        for name in fields:
            value = row[name]
            if value is not None:
                figures[name] = value if name in AMOUNT_FIELDS else int(value)


def promise_figures(*, since: dt.date, until: dt.date) -> dict[tuple[dt.date, str, str], Figures]:
    """Promise figures per (campaign day of the call, segment, phase) for since ≤ day ≤ until.

    A promise counts on the day of the call it was made on — the campaign's date, whatever the
    machine's clock said when it was recorded (a sandbox day run for another date, say)."""
    start, _ = day_bounds(since)
    _, end = day_bounds(until)
    on_day = Q(campaign_date__gte=since, campaign_date__lte=until)
    # Promises recorded before they carried their campaign day: by the day they were recorded.
    undated = Q(campaign_date__isnull=True, created_at__gte=start, created_at__lt=end)
    rows = (
        PromiseToPay.objects.filter(on_day | undated)
        .annotate(day=Coalesce("campaign_date", TruncDate("created_at", tzinfo=timezone.get_current_timezone())))
        .values("day", "segment_name", "phase")
        .annotate(
            promises=Count("pk"),
            promises_kept=Count("pk", filter=Q(status=PromiseToPay.Status.KEPT)),
            amount_promised=Sum("amount"),
            amount_recovered=Sum("amount_recovered"),
        )
        .order_by()
    )
    result: dict[tuple[dt.date, str, str], Figures] = {}
    for row in rows:
        figures = empty_figures()
        for name in PROMISE_FIELDS:
            if row[name] is not None:
                figures[name] = row[name] if name in AMOUNT_FIELDS else int(row[name])
        result[(row["day"], row["segment_name"] or "", row["phase"] or "")] = figures
    return result


def campaign_kpi_figures(*, campaign: Campaign) -> dict[SegmentPhase, Figures]:
    """The day's figures per (segment name, phase), from the campaign's rows (before the flush).

    Rows are grouped by segment id and phase (no join to the segment table per row); the few
    segment names are looked up once.
    """
    figures: dict[SegmentPhase, Figures] = {}
    names = dict(Segment.objects.values_list("pk", "name"))
    start, end = day_bounds(campaign.date)

    items = QueueItem.objects.filter(campaign=campaign)
    loaded = items.values("segment_id", "phase").annotate(queued=Count("*")).order_by()
    _merge(figures, _rows(loaded, names, "segment_id"), ["queued"])

    placed = CallAttempt.objects.filter(campaign=campaign, call_id__isnull=False)
    conversation = Q(outcome__in=CONVERSATION_OUTCOMES)
    attempts = (
        placed.values("queue_item__segment_id", "queue_item__phase")
        .annotate(
            calls_placed=Count("*"),
            answered=Count("pk", filter=Q(outcome=CallAttempt.Outcome.ANSWERED)),
            conversations=Count("pk", filter=conversation),
            # Counted positively and subtracted: a negated JSON lookup is NULL (not true) when
            # the key is absent, which would drop every call without the flag.
            wrong_party=Count("pk", filter=conversation & WRONG_PARTY_Q),
            voicemail=Count("pk", filter=Q(outcome=CallAttempt.Outcome.VOICEMAIL)),
            transferred=Count("pk", filter=Q(outcome=CallAttempt.Outcome.TRANSFERRED)),
            no_answer=Count("pk", filter=Q(outcome=CallAttempt.Outcome.NO_ANSWER)),
            failed=Count("pk", filter=Q(outcome=CallAttempt.Outcome.FAILED)),
        )
        .order_by()
    )
    _merge(
        figures,
        (
            row | {"right_party_contacts": row["conversations"] - row["wrong_party"]}
            for row in _rows(attempts, names, "queue_item__segment_id", "queue_item__phase")
        ),
        ["calls_placed", "answered", "right_party_contacts", "voicemail", "transferred", "no_answer", "failed"],
    )

    # Disputes opened by the day's calls: a semi-join on the (few) dispute tasks since the day began.
    disputes = (
        placed.filter(
            call_id__in=FollowUpTask.objects.filter(kind=FollowUpTask.Kind.DISPUTE, created_at__gte=start).values("source_ref")
        )
        .values("queue_item__segment_id", "queue_item__phase")
        .annotate(disputes=Count("*"))
        .order_by()
    )
    _merge(figures, _rows(disputes, names, "queue_item__segment_id", "queue_item__phase"), ["disputes"])

    texts = (
        SmsMessage.objects.filter(
            campaign=campaign,
            queue_item__isnull=False,
            kind__in=[SmsMessage.Kind.TOUCHPOINT, SmsMessage.Kind.FOLLOW_UP],
            status__in=[SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED],
        )
        .values("queue_item__segment_id", "queue_item__phase")
        .annotate(sms_sent=Count("*"))
        .order_by()
    )
    _merge(figures, _rows(texts, names, "queue_item__segment_id", "queue_item__phase"), ["sms_sent"])

    opt_outs = Suppression.objects.filter(created_at__gte=start, created_at__lt=end, reason__in=OPT_OUT_REASONS)
    opted_out = (
        items.filter(
            Q(client_id__in=opt_outs.exclude(client_id="").values("client_id"))
            | Q(phone__in=opt_outs.exclude(phone="").values("phone"))
        )
        .values("segment_id", "phase")
        .annotate(opt_outs=Count("*"))
        .order_by()
    )
    _merge(figures, _rows(opted_out, names, "segment_id"), ["opt_outs"])

    tool_rows, callback_rows = live_tool_figures(start=start, end=end)
    _merge(figures, tool_rows, LIVE_TOOL_FIELDS[:4])
    _merge(figures, callback_rows, LIVE_TOOL_FIELDS[4:])

    for (_, segment_name, phase), promise in promise_figures(since=campaign.date, until=campaign.date).items():
        target = figures.setdefault((segment_name, phase), empty_figures())
        for name in PROMISE_FIELDS:
            target[name] = promise[name]
    return figures


LIVE_TOOL_FIELDS = ["identity_checks", "identity_verified", "identity_failed", "links_sent_live", "callbacks_due", "callbacks_kept"]


def live_tool_figures(*, start: dt.datetime, end: dt.datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Grace's live tools over one day, per segment and phase: calls on which identity was
    checked, verified or locked; payment links texted during a call; callbacks that came due
    and those dialed. Counted per call (distinct call ids), so retries and repeated tries count once."""
    tools = LiveToolCall.objects.filter(created_at__gte=start, created_at__lt=end)
    rows = list(
        tools.values("segment_name", "phase")
        .annotate(
            identity_checks=Count("call_id", filter=Q(name="verify_identity") & ~Q(result__in=["no_answer", "unavailable"]), distinct=True),
            identity_verified=Count("call_id", filter=Q(name="verify_identity", result="verified"), distinct=True),
            identity_failed=Count("call_id", filter=Q(name="verify_identity", result="locked"), distinct=True),
            links_sent_live=Count("call_id", filter=Q(name="send_payment_link", result="sent"), distinct=True),
        )
        .order_by()
    )
    due = (
        Callback.objects.filter(due_at__gte=start, due_at__lt=end)
        .exclude(status=Callback.Status.CANCELLED)
        .values("segment_name", "phase")
        .annotate(callbacks_due=Count("pk"), callbacks_kept=Count("pk", filter=Q(status=Callback.Status.PLACED)))
        .order_by()
    )
    return rows, list(due)


def _rows(queryset: Any, names: Mapping[int, str], segment_key: str, phase_key: str = "phase") -> Iterable[dict[str, Any]]:
    for row in queryset:
        row = dict(row)
        row["segment_name"] = names.get(row.pop(segment_key), "")
        row["phase"] = row.pop(phase_key)
        yield row


def sum_figures(rows: Iterable[Mapping[str, Any]]) -> Figures:
    """Figures are additive: a total over segments, phases or days is the sum of each figure."""
    total = empty_figures()
    for row in rows:
        for name in FIGURE_FIELDS:
            value = row.get(name)
            if value:
                total[name] = total[name] + value
    return total


def _ratio(numerator: Number, denominator: Number) -> float | None:
    return None if not denominator else float(numerator) / float(denominator)


def kpi_rates(figures: Mapping[str, Any]) -> dict[str, float | None]:
    """The rates of one set of figures; None where the denominator is zero (not 0 %).

    - contact rate = (answered + transferred) / calls placed — a live person on the line, per dial.
    - right-party contact rate = right-party contacts / calls placed — the client themself, per dial.
    - transfer rate = transferred / (answered + transferred) — conversations handed to an agent.
    - voicemail rate = voicemail / calls placed.
    - promise-to-pay rate = promises / right-party contacts — commitments per conversation with
      the client (the collections convention).
    - promise kept rate = promises kept / promises — so far; a promise counts as kept once its
      date has passed with the payment made.
    - dispute escalation rate = disputes / (answered + transferred) — conversations escalated to a
      human as a dispute.
    - opt-out rate = opt-outs / (calls placed + SMS sent) — requests to stop, per outbound touch.
    - verification rate = calls verified / calls with an identity check; failed verification rate
      = calls locked after three wrong answers / calls with an identity check.
    - callbacks kept = callbacks dialed / callbacks that came due.

    Amount promised and amount recovered are sums, not rates, and are reported as they are.
    """
    conversations = figures["answered"] + figures["transferred"]
    return {
        "contact_rate": _ratio(conversations, figures["calls_placed"]),
        "right_party_contact_rate": _ratio(figures["right_party_contacts"], figures["calls_placed"]),
        "transfer_rate": _ratio(figures["transferred"], conversations),
        "voicemail_rate": _ratio(figures["voicemail"], figures["calls_placed"]),
        "promise_to_pay_rate": _ratio(figures["promises"], figures["right_party_contacts"]),
        "promise_kept_rate": _ratio(figures["promises_kept"], figures["promises"]),
        "dispute_escalation_rate": _ratio(figures["disputes"], conversations),
        "opt_out_rate": _ratio(figures["opt_outs"], figures["calls_placed"] + figures["sms_sent"]),
        "verification_rate": _ratio(figures["identity_verified"], figures["identity_checks"]),
        "failed_verification_rate": _ratio(figures["identity_failed"], figures["identity_checks"]),
        "callback_kept_rate": _ratio(figures["callbacks_kept"], figures["callbacks_due"]),
    }


RATE_LABELS: dict[str, str] = {
    "contact_rate": "Contact rate",
    "right_party_contact_rate": "Right-party contact rate",
    "transfer_rate": "Transfer rate",
    "voicemail_rate": "Voicemail rate",
    "promise_to_pay_rate": "Promise-to-pay rate",
    "promise_kept_rate": "Promise kept rate",
    "dispute_escalation_rate": "Dispute escalation rate",
    "opt_out_rate": "Opt-out rate",
    "verification_rate": "Identity verification rate",
    "failed_verification_rate": "Failed verification rate",
    "callback_kept_rate": "Callbacks kept",
}


def kpis_snapshot(*, campaign: Campaign) -> int:
    """Store the campaign day's figures in DailyKpi (insert or update per segment and phase).

    Called by the lifecycle after the history write and before the flush deletes the day's rows;
    running it twice stores the same figures. Also refreshes the promise columns of the previous
    30 days, whose promises may have been kept since. Returns the number of rows written for the day.
    """
    figures = campaign_kpi_figures(campaign=campaign)
    rows = [
        DailyKpi(date=campaign.date, segment_name=segment_name, phase=phase, **values)
        for (segment_name, phase), values in sorted(figures.items())
    ]
    DailyKpi.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["date", "segment_name", "phase"],
        update_fields=list(FIGURE_FIELDS),
    )
    refreshed = daily_kpi_promises_refresh(
        since=campaign.date - dt.timedelta(days=PROMISE_REFRESH_DAYS), until=campaign.date - dt.timedelta(days=1)
    )
    log.info(
        "daily kpis stored",
        extra={"campaign_id": campaign.pk, "date": campaign.date.isoformat(), "rows": len(rows), "promise_rows_refreshed": refreshed},
    )
    return len(rows)


def daily_kpi_promises_refresh(*, since: dt.date, until: dt.date) -> int:
    """Bring the promise columns of DailyKpi up to date for since ≤ date ≤ until; returns rows touched."""
    if until < since:
        return 0
    rows = [
        DailyKpi(date=day, segment_name=segment_name, phase=phase, **{name: values[name] for name in PROMISE_FIELDS})
        for (day, segment_name, phase), values in sorted(promise_figures(since=since, until=until).items())
    ]
    DailyKpi.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["date", "segment_name", "phase"],
        update_fields=list(PROMISE_FIELDS),
    )
    return len(rows)
