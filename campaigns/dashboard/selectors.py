"""Read-side queries for the supervisor dashboard, the KPI page, the client timeline and the API.

Every figure is an aggregate computed by the database (GROUP BY or conditional COUNT) with a
fixed number of queries per campaign, whatever the number of queue items: the dashboard must
answer quickly with a 100k-item day.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone

from integrations import clock
from cadences.models import DialerSettings, Phase
from campaigns.compliance import gate as compliance
from campaigns.models import (
    Account,
    AccountPhone,
    Alert,
    Callback,
    CallAttempt,
    Campaign,
    EmailMessage,
    ContactLedgerEntry,
    DailyKpi,
    FollowUpTask,
    GateDecision,
    LiveToolCall,
    Payment,
    PromiseToPay,
    QueueItem,
    ReleaseBatch,
    SmsMessage,
    Suppression,
)
from campaigns.lifecycle import delivery
from campaigns.metrics import kpis
from integrations.dialflow import client as dialflow


S = QueueItem.Status

# How long one answer of the availability API is reused: every open dashboard polls, and the
# release loop needs the vendor's rate budget more than a page does.
FREE_AGENTS_CACHE_SECONDS = 5
# An older answer is still shown (marked by its age in the cache) while a fresh one is fetched.
FREE_AGENTS_KEEP_SECONDS = 300
# The longest a page waits for a ring group it has no answer for yet.
FREE_AGENTS_WAIT_SECONDS = 1.0
# A lookup still running after this is assumed lost and may be started again.
FREE_AGENTS_LOOKUP_TIMEOUT_SECONDS = 30
_free_agents_lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="free-agents")

IN_FLIGHT_STATUSES = (S.RELEASING, S.DIALING)
CALL_OUTCOME_STATUSES = (S.ANSWERED, S.VOICEMAIL, S.TRANSFERRED, S.NO_ANSWER, S.FAILED)

# The counters the dashboard shows, in order, with their labels.
COUNTERS: tuple[tuple[str, str], ...] = (
    ("queued", "Queued"),
    ("dialing", "Dialing"),
    ("answered", "Answered"),
    ("voicemail", "Voicemail"),
    ("transferred", "Transferred"),
    ("no_answer", "No answer"),
    ("failed", "Failed"),
    ("sms_scheduled", "SMS scheduled"),
    ("sms_sent", "SMS sent"),
    ("skipped", "Skipped"),
    ("ineligible", "Ineligible"),
)

# Campaign counter fields that survive the flush (queued/dialing do not: nothing is left queued).
FLUSHED_COUNTER_FIELDS = ("answered", "voicemail", "transferred", "no_answer", "failed", "sms_sent", "skipped", "ineligible")


def today() -> dt.date:
    """The portal's current date (the sandbox clock's, when a sandbox day runs accelerated)."""
    return timezone.localdate(clock.now())


# --- campaigns on the dashboard -------------------------------------------------------------


def campaign_dates(*, limit: int = 60) -> list[dt.date]:
    """The days that have a campaign, newest first (the dashboard's day picker)."""
    return list(Campaign.objects.order_by("-date").values_list("date", flat=True)[:limit])


def day_campaigns(*, date: dt.date) -> list[Campaign]:
    """A past (or future) day's campaign, whatever its status."""
    return list(Campaign.objects.filter(date=date))


def dashboard_campaigns(*, date: dt.date) -> list[Campaign]:
    """Today's campaign, and any other day's campaign that is still running or not yet flushed."""
    unfinished = [Campaign.Status.LOADING, Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.STOPPING]
    return list(
        Campaign.objects.filter(
            Q(date=date) | Q(status__in=unfinished) | (Q(status=Campaign.Status.STOPPED) & ~Q(flush_error=""))
        ).order_by("-date")[:5]
    )


@dataclass
class RingGroupStatus:
    ring_group: str
    queued: int = 0
    in_flight: int = 0
    done: int = 0
    free_agents: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ring_group": self.ring_group,
            "queued": self.queued,
            "in_flight": self.in_flight,
            "done": self.done,
            "free_agents": self.free_agents,
        }


@dataclass
class CampaignStatus:
    campaign: Campaign
    counters: dict[str, int]
    total_items: int
    skipped_by_reason: list[tuple[str, int]]
    ring_groups: list[RingGroupStatus]
    sms_failed: int = 0
    # Items per raw status (the funnel is derived from it without another pass over the items).
    status_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        campaign = self.campaign
        return {
            "id": campaign.pk,
            "date": campaign.date.isoformat(),
            "status": campaign.status,
            "status_display": campaign.get_status_display(),
            "halt_reason": campaign.halt_reason,
            "auto_started": campaign.auto_started,
            "load_error": campaign.load_error,
            "flush_error": campaign.flush_error,
            "rows_read": campaign.rows_read,
            "rows_inserted": campaign.rows_inserted,
            "rows_rejected": campaign.rows_rejected,
            "calls_placed": campaign.calls_placed,
            "total_items": self.total_items,
            "counters": self.counters,
            "sms_failed": self.sms_failed,
            "skipped_by_reason": [
                {"reason": reason, "reason_display": compliance.rule_label(reason), "count": n} for reason, n in self.skipped_by_reason
            ],
            "ring_groups": [rg.as_dict() for rg in self.ring_groups],
        }


def campaign_status(*, campaign: Campaign, with_free_agents: bool = True) -> CampaignStatus:
    """Live counters of one campaign: four aggregate queries whatever its size."""
    counters = {name: 0 for name, _ in COUNTERS}
    status_counts: dict[str, int] = {}
    ring_groups: dict[str, RingGroupStatus] = {}
    total = 0
    # One GROUP BY over (ring group, status) gives both the counters and the per-ring-group
    # figures. COUNT(*) rather than COUNT(id) lets PostgreSQL answer from the
    # (campaign, status, ring_group) index alone.
    summary = campaign.day_summary if campaign.status == Campaign.Status.FLUSHED else {}
    if summary.get("status_counts") is not None:
        # The queue is gone; what it came to was kept at the flush, per ring group and status.
        rows: Any = [
            (ring_group, status, n)
            for ring_group, figures in summary.get("ring_groups", {}).items()
            for status, n in ((S.QUEUED, figures["queued"]), (S.DIALING, figures["in_flight"]), (S.ANSWERED, figures["done"]))
        ]
    else:
        rows = (
            QueueItem.objects.filter(campaign=campaign)
            .values_list("ring_group", "status")
            .annotate(n=Count("*"))
            .order_by()
        )
    for ring_group, status, n in rows:
        total += n
        status_counts[status] = status_counts.get(status, 0) + n
        if status in (S.RELEASING, S.DIALING):
            counters["dialing"] += n
        elif status in counters:
            counters[status] += n
        group = ring_groups.setdefault(ring_group, RingGroupStatus(ring_group=ring_group))
        if status == S.QUEUED:
            group.queued += n
        elif status in IN_FLIGHT_STATUSES:
            group.in_flight += n
        elif status in CALL_OUTCOME_STATUSES:
            group.done += n

    # Every text the day sent (SMS-only items and the texts after a voicemail or no answer).
    sms = dict(
        SmsMessage.objects.filter(campaign=campaign, kind__in=[SmsMessage.Kind.TOUCHPOINT, SmsMessage.Kind.FOLLOW_UP])
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counters["sms_sent"] = sms.get(SmsMessage.Status.SENT, 0) + sms.get(SmsMessage.Status.DELIVERED, 0)
    sms_failed = sms.get(SmsMessage.Status.FAILED, 0)

    if summary.get("status_counts") is not None:
        skipped = [(reason, n) for reason, n in summary.get("skipped_by_reason", [])]
        status_counts = dict(summary["status_counts"])
        counters = {name: 0 for name, _ in COUNTERS}
        for status, n in status_counts.items():
            if status in (S.RELEASING, S.DIALING):
                counters["dialing"] += n
            elif status in counters:
                counters[status] += n
        counters["sms_sent"] = sms.get(SmsMessage.Status.SENT, 0) + sms.get(SmsMessage.Status.DELIVERED, 0)
        total = int(summary.get("touchpoints", 0))
    else:
        skipped = list(
            QueueItem.objects.filter(campaign=campaign, status=S.SKIPPED)
            .values_list("skip_reason")
            .annotate(n=Count("*"))
            .order_by("-n", "skip_reason")
        )
    if campaign.status == Campaign.Status.FLUSHED and summary.get("status_counts") is None:
        # Flushed before day summaries were kept: the campaign's own counters are what is left.
        for name in FLUSHED_COUNTER_FIELDS:
            counters[name] = getattr(campaign, name)
        sms_failed = campaign.sms_failed
        total = campaign.rows_inserted

    groups = sorted(ring_groups.values(), key=lambda g: g.ring_group)
    if with_free_agents and campaign.status in (Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.LOADING):
        free = free_agents(ring_groups=[g.ring_group for g in groups])
        for group in groups:
            group.free_agents = free.get(group.ring_group)
    return CampaignStatus(
        campaign=campaign,
        counters=counters,
        total_items=total,
        skipped_by_reason=[(reason or "unspecified", n) for reason, n in skipped],
        ring_groups=groups,
        sms_failed=sms_failed,
        status_counts=status_counts,
    )


def _free_agents_key(ring_group: str) -> str:
    # Keyed by the API's address too: an answer from another availability source is not reused.
    return f"dashboard:free-agents:{dialflow.base_url()}:{ring_group}"


def _free_agents_lookup(ring_group: str) -> int:
    key = _free_agents_key(ring_group)
    try:
        value = dialflow.available_agents(ring_group)
        cache.set(key, {"free": value, "at": time.time()}, timeout=FREE_AGENTS_KEEP_SECONDS)
        return value
    finally:
        cache.delete(f"{key}:refreshing")


def free_agents(*, ring_groups: Sequence[str]) -> dict[str, int | None]:
    """Free agents per ring group from the availability API, without ever holding a page long.

    Each answer is fresh for 5 s; an older one is still shown while a new one is fetched in the
    background, so open dashboards neither hammer the API nor wait for it. A ring group never
    seen before is waited for at most FREE_AGENTS_WAIT_SECONDS (a down vendor costs the client
    seconds of connection retries); None means unknown yet. The client itself counts an unknown
    answer as zero, as the release loop does, so the page shows what the release decision sees.
    """
    now = time.time()
    cached = cache.get_many([_free_agents_key(rg) for rg in ring_groups])
    result: dict[str, int | None] = {}
    waiting: dict[str, Future[int]] = {}
    for ring_group in ring_groups:
        key = _free_agents_key(ring_group)
        entry = cached.get(key)
        result[ring_group] = entry["free"] if entry else None
        if entry and now - entry["at"] < FREE_AGENTS_CACHE_SECONDS:
            continue
        # One lookup per ring group at a time, however many pages ask.
        if cache.add(f"{key}:refreshing", True, timeout=FREE_AGENTS_LOOKUP_TIMEOUT_SECONDS):
            future = _free_agents_lookups.submit(_free_agents_lookup, ring_group)
            if entry is None:
                waiting[ring_group] = future
    if waiting:
        wait(list(waiting.values()), timeout=FREE_AGENTS_WAIT_SECONDS)
        for ring_group, future in waiting.items():
            if future.done() and future.exception() is None:
                result[ring_group] = future.result()
    return result


def recent_batches(*, campaign: Campaign, limit: int = 15) -> list[ReleaseBatch]:
    return list(ReleaseBatch.objects.filter(campaign=campaign).order_by("-released_at")[:limit])


def _clock_time(moment: dt.datetime | None) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S") if moment else ""


def batch_row(*, batch: ReleaseBatch, campaign: Campaign) -> dict[str, Any]:
    """One line of the batch history, with why it was that size and how it ended, in words."""
    size = f"{batch.size} call{'s' if batch.size != 1 else ''}"
    why: str = {
        ReleaseBatch.SizedBy.BATCH_SIZE.value: f"{size}: the campaign's batch size",
        ReleaseBatch.SizedBy.FREE_AGENTS.value: f"{size}: one per free agent",
        ReleaseBatch.SizedBy.CONCURRENCY.value: (
            f"{size}: the Retell account had {batch.size} of its call slots free"
            + (f" ({batch.calls_in_progress} calls in progress)" if batch.calls_in_progress is not None else "")
        ),
        ReleaseBatch.SizedBy.QUEUE.value: f"{size}: all that were due in the ring group",
    }.get(batch.sized_by, size)
    minutes = campaign.batch_timeout_seconds / 60
    timeout = f"{minutes:g}-minute"
    if batch.resolved_at is None:
        ended = "Calls in progress"
    elif batch.timed_out:
        # Normal whenever a call of the batch lasts longer than the timeout: the next batch goes
        # out anyway, and the calls still in progress carry on.
        ended = f"Next batch after the {timeout} batch timeout, calls still in progress (normal for longer calls)"
    else:
        ended = f"All calls ended by {_clock_time(batch.resolved_at)}"
    return {
        "ring_group": batch.ring_group,
        "available_agents": batch.available_agents,
        "size": batch.size,
        "sized_by": batch.sized_by,
        "why_size": why,
        "released_at": _clock_time(batch.released_at),
        "resolved_at": _clock_time(batch.resolved_at),
        "timed_out": batch.timed_out,
        "ended": ended,
    }


def end_of_day_summary(*, campaign: Campaign) -> dict[str, Any] | None:
    """What a finished day came to: touchpoints, calls, texts, history rows, the reconciled file."""
    if campaign.status not in (Campaign.Status.STOPPED, Campaign.Status.FLUSHED):
        return None
    summary = campaign.day_summary or {}
    actions = summary.get("action_types", {})
    texts = SmsMessage.objects.filter(
        campaign=campaign, kind__in=[SmsMessage.Kind.TOUCHPOINT, SmsMessage.Kind.FOLLOW_UP], status__in=[SmsMessage.Status.SENT, SmsMessage.Status.DELIVERED]
    ).count()
    inbound = CallAttempt.objects.filter(campaign=campaign, kind=CallAttempt.Kind.INBOUND).count()
    return {
        "flushed": campaign.status == Campaign.Status.FLUSHED,
        "touchpoints": summary.get("touchpoints"),
        "call_touchpoints": actions.get("CALL", 0) + actions.get("BOTH", 0) if actions else None,
        "sms_touchpoints": actions.get("SMS", 0) + actions.get("BOTH", 0) if actions else None,
        "calls_placed": campaign.calls_placed,
        "inbound_calls": inbound,
        "texts_sent": texts,
        "history_rows": campaign.flushed_rows if campaign.status == Campaign.Status.FLUSHED else None,
        "reconciled_file": campaign.reconciled_file,
        "reconciled_rows": campaign.reconciled_rows,
        "reconciled_url": reverse("admin:campaigns_campaign_reconciled_csv", args=[campaign.pk]),
        "flushed_at": timezone.localtime(campaign.flushed_at).strftime("%b %d, %Y %H:%M %Z") if campaign.flushed_at else "",
        "deliveries": delivery.delivery_summary(campaign=campaign),
    }


def open_alerts(*, campaigns: Iterable[Campaign], now: dt.datetime, limit: int = 20) -> list[Alert]:
    """Unacknowledged alerts of the campaigns shown, and unattached ones from the last day."""
    ids = [c.pk for c in campaigns]
    return list(
        Alert.objects.filter(acknowledged_at__isnull=True)
        .filter(Q(campaign_id__in=ids) | Q(campaign__isnull=True, created_at__gte=now - dt.timedelta(days=1)))
        .select_related("campaign")
        .order_by("-created_at")[:limit]
    )


# --- charts ---------------------------------------------------------------------------------

OUTCOMES = [choice for choice, _ in CallAttempt.Outcome.choices]


# An hourly chart needs no second-by-second freshness: one computation serves every open
# dashboard for this long, so the 3-second poll does not rescan the day's call attempts.
CHART_CACHE_SECONDS = 30


def outcome_mix_by_hour(*, campaign: Campaign) -> dict[str, Any]:
    """Call outcomes per hour of the day (portal time zone), recomputed at most every 30 s."""
    key = f"dashboard:outcome-mix:{campaign.pk}"
    mix = cache.get(key)
    if mix is None:
        mix = _outcome_mix_by_hour(campaign=campaign)
        cache.set(key, mix, timeout=CHART_CACHE_SECONDS)
    return mix


def _outcome_mix_by_hour(*, campaign: Campaign) -> dict[str, Any]:
    rows = (
        CallAttempt.objects.filter(campaign=campaign, call_id__isnull=False)
        .exclude(outcome="")
        .exclude(placed_at=None)
        .annotate(hour=TruncHour("placed_at", tzinfo=timezone.get_current_timezone()))
        .values_list("hour", "outcome")
        .annotate(n=Count("*"))
        .order_by("hour")
    )
    hours: list[str] = []
    series: dict[str, dict[str, int]] = {outcome: {} for outcome in OUTCOMES}
    for hour, outcome, n in rows:
        label = timezone.localtime(hour).strftime("%H:00") if timezone.is_aware(hour) else hour.strftime("%H:00")
        if label not in hours:
            hours.append(label)
        series.setdefault(outcome, {})[label] = n
    return {
        "hours": hours,
        "series": [
            {"outcome": outcome, "label": CallAttempt.Outcome(outcome).label, "counts": [series[outcome].get(h, 0) for h in hours]}
            for outcome in OUTCOMES
        ],
        "rows": [{"hour": h, "counts": [series[outcome].get(h, 0) for outcome in OUTCOMES]} for h in hours],
    }


def campaign_funnel(*, status: CampaignStatus) -> list[dict[str, Any]]:
    """Queued → called or texted → reached the client → resolved (promise to pay or live transfer).

    Derived from the status counts already taken for the counters; the only extra query counts
    the items with a promise to pay, refreshed with the charts every 30 s.
    """
    campaign = status.campaign
    counts = status.status_counts
    summary = campaign.day_summary if campaign.status == Campaign.Status.FLUSHED else {}
    if "promised_items" in summary:
        promised = int(summary["promised_items"])
    elif campaign.status == Campaign.Status.FLUSHED:
        counts = {name: getattr(campaign, name) for name in FLUSHED_COUNTER_FIELDS}
        counts["sms_failed"] = campaign.sms_failed
        promised = int(DailyKpi.objects.filter(date=campaign.date).aggregate(n=Sum("promises"))["n"] or 0)
    else:
        key = f"dashboard:promised-items:{campaign.pk}"
        promised = cache.get(key)
        if promised is None:
            promised = (
                QueueItem.objects.filter(
                    campaign=campaign,
                    client_id__in=PromiseToPay.objects.filter(
                        call_id__in=CallAttempt.objects.filter(campaign=campaign, call_id__isnull=False).values("call_id")
                    ).values("client_id"),
                )
                .exclude(status=S.TRANSFERRED)
                .count()
            )
            cache.set(key, promised, timeout=CHART_CACHE_SECONDS)
    attempted = sum(counts.get(name, 0) for name in (S.RELEASING, S.DIALING, *CALL_OUTCOME_STATUSES, S.SMS_SENT, S.SMS_FAILED))
    reached = min(counts.get(S.ANSWERED, 0) + counts.get(S.TRANSFERRED, 0), attempted)
    # A promise made on an inbound call by a client whose touchpoint was not reached would put
    # more below than above: each stage counts touchpoints of the stage before it.
    resolved = min(counts.get(S.TRANSFERRED, 0) + promised, reached)
    return [
        {"stage": "queued", "label": "Queued", "count": status.total_items},
        {"stage": "attempted", "label": "Called or texted", "count": attempted},
        {"stage": "reached", "label": "Reached the client", "count": reached},
        {"stage": "resolved", "label": "Promise to pay or transferred", "count": resolved},
    ]


# --- KPIs -----------------------------------------------------------------------------------


@dataclass
class KpiRow:
    segment_name: str
    phase: str
    figures: dict[str, Any]
    rates: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rates:
            self.rates = kpis.kpi_rates(self.figures)

    @property
    def phase_label(self) -> str:
        return _phase_label(self.phase)

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment_name,
            "phase": self.phase,
            "figures": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.figures.items()},
            "rates": self.rates,
        }


@dataclass
class KpiTable:
    title: str
    since: dt.date
    until: dt.date
    rows: list[KpiRow]
    total: KpiRow

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows": [row.as_dict() for row in self.rows],
            "total": self.total.as_dict(),
        }


def _phase_label(phase: str) -> str:
    try:
        return str(Phase(phase).label)
    except ValueError:
        return phase or "—"


def _kpi_rows(figures: dict[tuple[str, str], dict[str, Any]]) -> list[KpiRow]:
    phase_order = {value: i for i, (value, _) in enumerate(Phase.choices)}
    return [
        KpiRow(segment_name=segment_name, phase=phase, figures=values)
        for (segment_name, phase), values in sorted(figures.items(), key=lambda kv: (kv[0][0], phase_order.get(kv[0][1], 99)))
    ]


def _kpi_table(title: str, since: dt.date, until: dt.date, figures: dict[tuple[str, str], dict[str, Any]]) -> KpiTable:
    rows = _kpi_rows(figures)
    total = KpiRow(segment_name="All segments", phase="", figures=kpis.sum_figures(row.figures for row in rows))
    return KpiTable(title=title, since=since, until=until, rows=rows, total=total)


def _filtered(figures: dict[tuple[str, str], dict[str, Any]], segment: str, phase: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        key: values
        for key, values in figures.items()
        if (not segment or key[0] == segment) and (not phase or key[1] == phase)
    }


def daily_kpi_figures(*, since: dt.date, until: dt.date, segment: str = "", phase: str = "") -> dict[tuple[str, str], dict[str, Any]]:
    """DailyKpi summed per (segment, phase) over since ≤ date ≤ until."""
    rows = DailyKpi.objects.filter(date__gte=since, date__lte=until)
    if segment:
        rows = rows.filter(segment_name=segment)
    if phase:
        rows = rows.filter(phase=phase)
    summed = rows.values("segment_name", "phase").annotate(**{name: Sum(name) for name in kpis.FIGURE_FIELDS}).order_by()
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for row in summed:
        values = kpis.empty_figures()
        for name in kpis.FIGURE_FIELDS:
            if row[name] is not None:
                values[name] = row[name]
        result[(row["segment_name"], row["phase"])] = values
    return result


# Today's KPIs scan the whole day's rows; one computation a minute serves every reader.
KPI_CACHE_SECONDS = 60


def kpis_for_day(*, date: dt.date, segment: str = "", phase: str = "") -> KpiTable:
    """One day's KPIs: live from the campaign's rows (at most a minute old) until it is flushed,
    then from DailyKpi."""
    campaign = Campaign.objects.filter(date=date).first()
    if campaign is not None and campaign.status != Campaign.Status.FLUSHED:
        key = f"dashboard:kpi-figures:{campaign.pk}"
        figures = cache.get(key)
        if figures is None:
            figures = kpis.campaign_kpi_figures(campaign=campaign)
            cache.set(key, figures, timeout=KPI_CACHE_SECONDS)
    else:
        figures = daily_kpi_figures(since=date, until=date)
    return _kpi_table("Today" if date == today() else date.isoformat(), date, date, _filtered(figures, segment, phase))


def kpis_for_window(*, until: dt.date, days: int, segment: str = "", phase: str = "") -> KpiTable:
    """The last `days` days ending with `until`, from the stored daily KPIs."""
    since = until - dt.timedelta(days=days - 1)
    figures = daily_kpi_figures(since=since, until=until, segment=segment, phase=phase)
    return _kpi_table(f"Last {days} days", since, until, figures)


def kpi_trend(*, until: dt.date, days: int, segment: str = "", phase: str = "") -> dict[str, Any]:
    """Each day's rates over the window (one point per day, None where nothing happened)."""
    since = until - dt.timedelta(days=days - 1)
    rows = DailyKpi.objects.filter(date__gte=since, date__lte=until)
    if segment:
        rows = rows.filter(segment_name=segment)
    if phase:
        rows = rows.filter(phase=phase)
    per_day = {
        row["date"]: row
        for row in rows.values("date").annotate(**{name: Sum(name) for name in kpis.FIGURE_FIELDS}).order_by("date")
    }
    dates = [since + dt.timedelta(days=i) for i in range(days)]
    series: dict[str, list[float | None]] = {name: [] for name in kpis.RATE_LABELS}
    amounts: dict[str, list[str]] = {"amount_promised": [], "amount_recovered": []}
    table: list[dict[str, Any]] = []
    for day in dates:
        figures = kpis.empty_figures()
        for name in kpis.FIGURE_FIELDS:
            value = per_day.get(day, {}).get(name)
            if value is not None:
                figures[name] = value
        rates = kpis.kpi_rates(figures)
        for name, value in rates.items():
            series[name].append(value)
        for name in amounts:
            amounts[name].append(str(figures[name]))
        if day in per_day:
            table.append({"date": day.isoformat(), "values": [rates[key] for key in kpis.RATE_LABELS]})
    return {
        "dates": [d.isoformat() for d in dates],
        "rates": [{"key": key, "label": label, "values": series[key]} for key, label in kpis.RATE_LABELS.items()],
        "amounts": amounts,
        # Only the days that have stored figures, for the table under the chart.
        "rows": table,
    }


def kpi_filter_choices() -> dict[str, list[str]]:
    """The segments and phases that have stored KPIs, for the filter menus."""
    return {
        "segments": list(DailyKpi.objects.order_by("segment_name").values_list("segment_name", flat=True).distinct()),
        "phases": [value for value, _ in Phase.choices],
    }


# --- the client timeline --------------------------------------------------------------------


@dataclass
class TimelineEvent:
    at: dt.datetime
    kind: str
    title: str
    obj: Any
    # A gate decision's inputs as (label, value) pairs a supervisor reads, and whether the block
    # came from a number the client shares with someone else.
    inputs: list[tuple[str, str]] = field(default_factory=list)
    shared_number: bool = False

    @property
    def sort_key(self) -> tuple[dt.datetime, str]:
        return (self.at, self.kind)


@dataclass
class ClientTimeline:
    client_id: str
    client_name: str
    account: Account | None
    phones: list[str]
    events: list[TimelineEvent]
    active_suppressions: list[Suppression]
    open_tasks: int
    pending_promises: int

    @property
    def found(self) -> bool:
        return bool(self.account or self.events or self.active_suppressions)


def gate_inputs(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """A gate decision's inputs as readable (label, value) pairs."""
    return compliance.inputs_in_words(inputs)


LIVE_TOOL_LABELS = {
    "verify_identity": "identity check",
    "lookup_account": "account lookup",
    "send_payment_link": "payment link",
    "record_promise": "promise to pay",
    "schedule_callback": "callback",
    "transfer_brief": "transfer brief",
}


def client_timeline(*, client_id: str) -> ClientTimeline:
    """Everything that happened with one client and why, newest first — from the durable records
    only (calls, texts, tasks, promises, gate decisions, suppressions, the ledger), so the day's
    flush changes nothing here. One query per kind of row, each through an indexed column."""
    account = Account.objects.select_related("segment").filter(client_id=client_id).first()
    account_phones = list(AccountPhone.objects.filter(account=account).values_list("phone", flat=True)) if account else []
    attempts = list(CallAttempt.objects.filter(client_id=client_id).select_related("campaign"))
    decisions = list(GateDecision.objects.filter(client_id=client_id))
    tasks = list(FollowUpTask.objects.filter(client_id=client_id).select_related("owner"))
    promises = list(PromiseToPay.objects.filter(client_id=client_id))
    ledger = list(ContactLedgerEntry.objects.filter(client_id=client_id))
    # Grace's live tools, as stored: their arguments never hold the identity answers themselves.
    tool_calls = list(LiveToolCall.objects.filter(client_id=client_id))
    callbacks = list(Callback.objects.filter(client_id=client_id))
    payments = list(Payment.objects.filter(client_id=client_id).select_related("promise"))
    emails = list(EmailMessage.objects.filter(client_id=client_id))

    phones = sorted(
        {p for p in [*account_phones, account.phone if account else "", *(e.phone for e in ledger), *(p.phone for p in promises)] if p}
    )
    # The client's texts, and replies and confirmations sent to the client's numbers.
    texts = list(SmsMessage.objects.filter(Q(client_id=client_id) | Q(phone__in=phones)))
    suppressions = list(Suppression.objects.filter(Q(client_id=client_id) | Q(phone__in=phones)))

    names = [account.name if account else ""] + [p.client_name for p in promises] + [t.client_name for t in tasks]
    client_name = next((n for n in names if n), "")

    events: list[TimelineEvent] = []
    for decision in decisions:
        # A block that came through the phone number, not the client: the number is (or was) also
        # someone else's, or was suppressed on its own.
        shared = decision.inputs.get("matched_on") == "phone" and decision.inputs.get("suppression_client_id") != client_id
        events.append(
            TimelineEvent(
                at=decision.decided_at,
                kind="gate",
                title=f"Not contacted: {compliance.rule_label(decision.rule)}",
                obj=decision,
                inputs=gate_inputs(decision.inputs),
                shared_number=shared,
            )
        )
    shown_refs: set[str] = set()
    for attempt in attempts:
        shown_refs.add(attempt.call_id or "")
        label = attempt.get_outcome_display() if attempt.outcome else attempt.get_status_display()
        title = f"Inbound call — {label}" if attempt.kind == CallAttempt.Kind.INBOUND else f"Call — {label}"
        if attempt.high_value:
            title += f" — high-value: offered to a senior person first ({attempt.senior_transfer_number})"
        at = attempt.placed_at or attempt.started_at or attempt.created_at
        events.append(TimelineEvent(at=at, kind="inbound_call" if attempt.kind == CallAttempt.Kind.INBOUND else "call", title=title, obj=attempt))
    for text in texts:
        shown_refs.add(text.local_id)
        events.append(TimelineEvent(at=text.sent_at or text.created_at, kind="sms", title=f"SMS — {text.get_status_display()}", obj=text))
    for task in tasks:
        events.append(TimelineEvent(at=task.created_at, kind="task", title=f"Follow-up: {task.get_kind_display()}", obj=task))
    for promise in promises:
        events.append(TimelineEvent(at=promise.created_at, kind="promise", title=f"Promise to pay — {promise.get_status_display()}", obj=promise))
    for tool_call in tool_calls:
        label = LIVE_TOOL_LABELS.get(tool_call.name, tool_call.name)
        events.append(TimelineEvent(at=tool_call.created_at, kind="live_tool", title=f"Grace: {label} — {tool_call.result.replace('_', ' ')}", obj=tool_call))
    for callback in callbacks:
        events.append(TimelineEvent(at=callback.created_at, kind="callback", title=f"Callback — {callback.get_status_display()}", obj=callback))
    for message in emails:
        title = f"E-mail — {message.get_kind_display()} ({message.get_status_display().lower()})"
        events.append(TimelineEvent(at=message.sent_at or message.created_at, kind="email", title=title, obj=message))
    for payment in payments:
        title = f"Payment received — ${payment.amount:,.2f}"
        if payment.net_amount < payment.amount:
            title += f" (${payment.amount - payment.net_amount:,.2f} refunded or disputed)"
        events.append(TimelineEvent(at=payment.paid_at, kind="payment", title=title, obj=payment))
    for entry in ledger:
        # The call or text itself is on the timeline already.
        if entry.reference in shown_refs or entry.kind == ContactLedgerEntry.Kind.CONVERSATION:
            continue
        events.append(TimelineEvent(at=entry.occurred_at, kind="ledger", title=f"Contact: {entry.get_kind_display()}", obj=entry))
    for suppression in suppressions:
        events.append(TimelineEvent(at=suppression.created_at, kind="suppression", title=f"Suppressed: {suppression.get_reason_display()}", obj=suppression))
        if suppression.lifted_at:
            events.append(TimelineEvent(at=suppression.lifted_at, kind="suppression_lifted", title=f"Lifted: {suppression.get_reason_display()}", obj=suppression))
    events.sort(key=lambda e: e.sort_key, reverse=True)

    return ClientTimeline(
        client_id=client_id,
        client_name=client_name,
        account=account,
        phones=phones,
        events=events,
        active_suppressions=[s for s in suppressions if s.lifted_at is None],
        open_tasks=sum(1 for t in tasks if t.status != FollowUpTask.Status.DONE),
        pending_promises=sum(1 for p in promises if p.status == PromiseToPay.Status.PENDING),
    )


def clients_matching(*, query: str, limit: int = 20) -> list[dict[str, str]]:
    """Client ids whose id or phone matches `query` exactly (accounts first, then the ledger)."""
    query = query.strip()
    if not query:
        return []
    digits = "".join(ch for ch in query if ch.isdigit())
    phones = {query}
    if digits:
        phones |= {f"+{digits}", f"+1{digits}"}
    found: dict[str, dict[str, str]] = {}
    for client_id, name in (
        Account.objects.filter(Q(client_id=query) | Q(phone__in=phones) | Q(phones__phone__in=phones))
        .values_list("client_id", "name")
        .distinct()
        .order_by("client_id")[:limit]
    ):
        found.setdefault(client_id, {"client_id": client_id, "client_name": name})
    for client_id in ContactLedgerEntry.objects.filter(Q(client_id=query) | Q(phone__in=phones)).values_list("client_id", flat=True).distinct()[:limit]:
        found.setdefault(client_id, {"client_id": client_id, "client_name": ""})
    for client_id, name in PromiseToPay.objects.filter(Q(client_id=query) | Q(phone__in=phones)).values_list("client_id", "client_name")[:limit]:
        found.setdefault(client_id, {"client_id": client_id, "client_name": name})
    return list(found.values())[:limit]


def daily_start_note(day: dt.date) -> str:
    """What the daily start will do about `day`, in a sentence ("" when it is off)."""
    dialer = DialerSettings.load()
    if not dialer.auto_start:
        return ""
    try:
        closed = dialer.not_a_business_day(day)
    except ValueError as exc:
        return f"The daily start cannot read its holiday calendar: {exc}"
    if closed:
        return f"The daily start does not run today: {closed}."
    return f"The daily start creates and starts it at {dialer.auto_start_at:%H:%M}."



# --- worklists: the follow-up queue and the clients -------------------------------------------

WORKLIST_PAGE_SIZE = 50


@dataclass(frozen=True)
class FollowUpFilters:
    kind: str = ""  # a FollowUpTask.Kind, or every kind
    owner: str = ""  # a user id, "none" for unassigned, or anyone
    overdue: bool = False
    status: str = ""  # "" (open or in progress), a FollowUpTask.Status, or "all"


def follow_up_queue(*, filters: FollowUpFilters, now: dt.datetime) -> Any:
    """The follow-up tasks a supervisor works through, soonest due first."""
    tasks = FollowUpTask.objects.select_related("owner").order_by("due_at", "pk")
    if not filters.status:
        tasks = tasks.exclude(status=FollowUpTask.Status.DONE)
    elif filters.status in FollowUpTask.Status.values:
        tasks = tasks.filter(status=filters.status)
    if filters.kind in FollowUpTask.Kind.values:
        tasks = tasks.filter(kind=filters.kind)
    if filters.owner == "none":
        tasks = tasks.filter(owner__isnull=True)
    elif filters.owner.isdigit():
        tasks = tasks.filter(owner_id=int(filters.owner))
    if filters.overdue:
        tasks = tasks.filter(due_at__lt=now).exclude(status=FollowUpTask.Status.DONE)
    return tasks


def follow_up_owners() -> list[tuple[int, str]]:
    """Everyone who owns a task, for the owner filter."""
    return list(
        FollowUpTask.objects.filter(owner__isnull=False).order_by("owner__username").values_list("owner_id", "owner__username").distinct()
    )


@dataclass(frozen=True)
class AccountFilters:
    query: str = ""  # client id (exact or its start), part of the name, or a phone number
    status: str = ""
    segment: str = ""  # a segment id
    owner: str = ""


def _phone_forms(query: str) -> set[str]:
    digits = "".join(ch for ch in query if ch.isdigit())
    return {query, f"+{digits}", f"+1{digits}"} if digits else {query}


def accounts_list(*, filters: AccountFilters) -> Any:
    """Accounts for the Clients page, most recently named by a load first."""
    accounts = Account.objects.select_related("segment").order_by("-last_seen_at", "client_id")
    query = filters.query.strip()
    if query:
        phones = _phone_forms(query)
        matching = Account.objects.filter(
            Q(client_id__iexact=query) | Q(client_id__istartswith=query) | Q(name__icontains=query) | Q(phone__in=phones)
            | Q(phones__phone__in=phones)
        )  # fmt: skip
        accounts = accounts.filter(pk__in=matching.values("pk"))
    if filters.status in Account.Status.values:
        accounts = accounts.filter(status=filters.status)
    if filters.segment.isdigit():
        accounts = accounts.filter(segment_id=int(filters.segment))
    if filters.owner:
        accounts = accounts.filter(owner=filters.owner)
    return accounts


def account_owners() -> list[str]:
    return list(Account.objects.exclude(owner="").order_by("owner").values_list("owner", flat=True).distinct())
