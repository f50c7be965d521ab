"""Review of the first calls after a change (seed 003: "review the first 50 to 100 workflow runs
before expanding the automation").

A change to a segment's cadence steps (days, prompts, texts chosen, on or off) or to an SMS
template its steps use opens a review round for the segment: the first calls Grace handles after
it (answered, transferred or voicemail; dialer settings: how many) are put before a supervisor,
who marks each right or wrong with a note. Changes are read from the cadences' own history (every
save is recorded there, by whom), so a change made in the admin, by an import or by a reset is
seen alike, and a save that changed nothing opens nothing. Changes to one segment within
MERGE_WITHIN of each other, before any call was collected, are one round (an editing session);
a later change supersedes the round, which keeps the calls placed before it.

`review_comparison` sets a round's calls against the segment's calls of the 30 days before the
change: the KPI page shows both.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Avg, Count, F, Max, Q
from django.utils import timezone

from cadences.models import CadenceStep, DialerSettings, SmsTemplate
from campaigns.models import CallAttempt, CallOutcome, CallReview, PromiseToPay, ReviewRound
from integrations import clock

log = logging.getLogger(__name__)

REVIEWED_OUTCOMES = (CallOutcome.ANSWERED, CallOutcome.TRANSFERRED, CallOutcome.VOICEMAIL)
REVIEWED_KINDS = (CallAttempt.Kind.OUTBOUND, CallAttempt.Kind.CALLBACK)
MERGE_WITHIN = dt.timedelta(minutes=10)
LOOK_BACK = dt.timedelta(days=30)
BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Change:
    recorded_at: dt.datetime  # the history's own (real) time: the watermark
    segments: tuple[str, ...]
    what: str
    by: str

    @property
    def at(self) -> dt.datetime:
        """The change on the calls' clock (the same instant unless a sandbox day runs accelerated)."""
        return clock.at(self.recorded_at)


# A round's description keeps this many lines; more are counted in its last line.
CHANGE_LINES = 6


def _fold(text: str, line: str) -> str:
    """Add `line` to a round's description, keeping it short: '… and N more changes.'"""
    lines = text.splitlines()
    more = 0
    if lines and lines[-1].startswith("… and "):
        more = int(lines.pop().split()[2])
    if line in lines:
        return text
    if len(lines) < CHANGE_LINES:
        lines.append(line)
    else:
        more += 1
    if more:
        lines.append(f"… and {more} more change{'s' if more > 1 else ''}.")
    return "\n".join(lines)


def _label(model: Any, field: str) -> str:
    return str(model._meta.get_field(field).verbose_name)


def _who(record: Any) -> str:
    user = record.history_user
    return user.get_username() if user is not None else ""


def _step_changes(since: dt.datetime) -> Iterator[Change]:
    history = CadenceStep.history.model
    for record in history.objects.filter(history_date__gt=since).select_related("segment", "history_user").order_by("history_date"):
        segment = record.segment.name if record.segment_id and record.segment else ""
        if not segment:
            continue
        kind = record.get_action_type_display()
        step = f"the day {record.day} {kind if kind.startswith('SMS') else kind.lower()} step"
        if record.history_type == "+":
            what = f"{step[0].upper()}{step[1:]} was added"
        elif record.history_type == "-":
            what = f"{step[0].upper()}{step[1:]} was removed"
        else:
            previous = record.prev_record
            fields = [change.field for change in record.diff_against(previous).changes] if previous is not None else []
            if not fields:
                continue  # saved without a change
            what = f"{', '.join(_label(CadenceStep, name) for name in fields).capitalize()} of {step} changed"
        yield Change(recorded_at=record.history_date, segments=(segment,), what=what, by=_who(record))


def _template_changes(since: dt.datetime) -> Iterator[Change]:
    history = SmsTemplate.history.model
    for record in history.objects.filter(history_date__gt=since, history_type="~").select_related("history_user").order_by("history_date"):
        previous = record.prev_record
        fields = [c.field for c in record.diff_against(previous, excluded_fields=["updated_at"]).changes] if previous is not None else []
        if not fields:
            continue
        segments = tuple(sorted(set(CadenceStep.objects.filter(sms_template_id=record.id).values_list("segment__name", flat=True))))
        if segments:
            labels = ", ".join(_label(SmsTemplate, name) for name in fields)
            yield Change(recorded_at=record.history_date, segments=segments, what=f"The {labels} of the text “{record.name}” changed", by=_who(record))


def changes_since(since: dt.datetime) -> list[Change]:
    return sorted([*_step_changes(since), *_template_changes(since)], key=lambda c: c.recorded_at)


def review_rounds_open() -> list[ReviewRound]:
    """Open a round for each change not seen yet (nothing when the review is off)."""
    wanted = DialerSettings.load().review_first_calls
    if not wanted:
        return []
    # The history's times are real ones; `now` may be a sandbox day's accelerated clock.
    real_now = dt.datetime.now(dt.timezone.utc)
    seen = ReviewRound.objects.aggregate(last=Max("last_change_at"))["last"]
    since = max(seen, real_now - LOOK_BACK) if seen else real_now - LOOK_BACK
    opened: list[ReviewRound] = []
    for change in changes_since(since):
        for segment in change.segments:
            current = ReviewRound.objects.filter(segment_name=segment, superseded_at=None).order_by("-changed_at").first()
            line = f"{change.what}{f' by {change.by}' if change.by else ''}."
            same_instant = current is not None and current.changed_at == change.at  # saved together (an import, a reset)
            session = current is not None and change.recorded_at - current.last_change_at <= MERGE_WITHIN and not current.reviews.exists()
            if current is not None and (same_instant or session):
                # The same editing session: one round.
                current.change = _fold(current.change, line)
                current.last_change_at = max(current.last_change_at, change.recorded_at)
                current.save(update_fields=["change", "last_change_at"])
                continue
            if current is not None:
                ReviewRound.objects.filter(pk=current.pk).update(superseded_at=change.at)
            round_, created = ReviewRound.objects.get_or_create(
                segment_name=segment,
                changed_at=change.at,
                defaults={"change": line, "changed_by": change.by, "calls_wanted": wanted, "last_change_at": change.recorded_at},
            )
            if created:
                opened.append(round_)
                log.info("review round opened", extra={"segment": segment, "changed_at": change.at.isoformat(), "calls_wanted": wanted})
    return opened


def _calls_of(round_: ReviewRound) -> Any:
    calls = CallAttempt.objects.filter(
        segment_name=round_.segment_name, kind__in=REVIEWED_KINDS, outcome__in=REVIEWED_OUTCOMES, placed_at__gte=round_.changed_at
    )
    if round_.superseded_at is not None:
        calls = calls.filter(placed_at__lt=round_.superseded_at)
    return calls


def review_rounds_fill() -> int:
    """Put the first calls of each round that is not full yet in its queue; returns how many."""
    added = 0
    for round_ in ReviewRound.objects.annotate(n=Count("reviews")).filter(n__lt=F("calls_wanted")):
        have = set(round_.reviews.values_list("attempt_id", flat=True))
        first = list(_calls_of(round_).order_by("placed_at", "pk").values_list("pk", flat=True)[: round_.calls_wanted])
        new = [CallReview(round=round_, attempt_id=pk) for pk in first if pk not in have]
        CallReview.objects.bulk_create(new, ignore_conflicts=True)
        added += len(new)
    return added


def call_reviews_sync() -> dict[str, int]:
    """Open rounds for new changes and fill them (a schedule runs it; the review page too)."""
    opened = review_rounds_open()
    return {"opened": len(opened), "calls_added": review_rounds_fill()}


# --- The comparison the KPI page shows ------------------------------------------------------------


def _mix(calls: Any) -> dict[str, Any]:
    figures = calls.aggregate(
        n=Count("pk"),
        answered=Count("pk", filter=Q(outcome=CallOutcome.ANSWERED)),
        transferred=Count("pk", filter=Q(outcome=CallOutcome.TRANSFERRED)),
        voicemail=Count("pk", filter=Q(outcome=CallOutcome.VOICEMAIL)),
        seconds=Avg("duration_ms"),
    )
    n = figures["n"] or 0
    call_ids = list(calls.exclude(call_id=None).values_list("call_id", flat=True))
    promises = PromiseToPay.objects.filter(call_id__in=call_ids).count() if call_ids else 0
    share = (lambda k: round(figures[k] / n, 4) if n else None)
    return {
        "calls": n,
        "answered_rate": share("answered"),
        "transfer_rate": share("transferred"),
        "voicemail_rate": share("voicemail"),
        "promise_rate": round(promises / n, 4) if n else None,
        "average_seconds": round(figures["seconds"] / 1000) if figures["seconds"] is not None else None,
    }


def review_comparison(round_: ReviewRound) -> dict[str, Any]:
    """The round's reviewed calls and their verdicts, against the segment's calls Grace handled
    in the 30 days before the change."""
    reviews = round_.reviews.all()
    tally = dict(reviews.values_list("verdict").annotate(n=Count("pk")))
    judged = tally.get(CallReview.Verdict.RIGHT, 0) + tally.get(CallReview.Verdict.WRONG, 0)
    before = CallAttempt.objects.filter(
        segment_name=round_.segment_name, kind__in=REVIEWED_KINDS, outcome__in=REVIEWED_OUTCOMES,
        placed_at__gte=round_.changed_at - BEFORE, placed_at__lt=round_.changed_at,
    )  # fmt: skip
    return {
        "round": round_,
        "collected": reviews.count(),
        "right": tally.get(CallReview.Verdict.RIGHT, 0),
        "wrong": tally.get(CallReview.Verdict.WRONG, 0),
        "pending": tally.get(CallReview.Verdict.PENDING, 0),
        "right_rate": round(tally.get(CallReview.Verdict.RIGHT, 0) / judged, 4) if judged else None,
        "after": _mix(CallAttempt.objects.filter(pk__in=reviews.values("attempt_id"))),
        "before": _mix(before),
        "changed_on": timezone.localtime(round_.changed_at),
    }


def review_comparisons(limit: int = 10) -> list[dict[str, Any]]:
    return [review_comparison(r) for r in ReviewRound.objects.order_by("-changed_at")[:limit]]
