"""Read-side views of the cadences for the admin pages."""

from __future__ import annotations

from dataclasses import dataclass, field

from cadences import defaults
from cadences.models import CadenceStep, Phase, Segment, team_for_phase


@dataclass(frozen=True)
class PhaseBand:
    phase: str
    label: str
    first_day: int
    last_day: int
    team: str  # a Team
    left_pct: float
    width_pct: float
    steps: list[CadenceStep] = field(default_factory=list)

    @property
    def days_label(self) -> str:
        """'day 0' for a one-day phase, 'days 1–10' for a longer one."""
        if self.first_day == self.last_day:
            return f"day {self.first_day}"
        return f"days {self.first_day}–{self.last_day}"


@dataclass(frozen=True)
class Milestone:
    day: int
    label: str
    left_pct: float


@dataclass(frozen=True)
class Touchpoint:
    step: CadenceStep
    left_pct: float
    milestone: str


@dataclass(frozen=True)
class SegmentTimeline:
    segment: Segment
    days: int
    bands: list[PhaseBand]
    milestones: list[Milestone]
    touchpoints: list[Touchpoint]
    counts: dict[str, int]


def segment_timeline(*, segment: Segment) -> SegmentTimeline:
    """The segment's lifecycle from day 0 to its cancellation day: phase bands from its steps
    (a phase runs from its first step until the next phase starts), the four milestones, and
    every touchpoint with its position as a percentage of the lifecycle."""
    last_day = segment.cancellation_day
    length = last_day + 1

    def pct(day: int) -> float:
        return round(day * 100 / length, 3)

    steps = list(CadenceStep.objects.filter(segment=segment).select_related("sms_template").order_by("day"))
    labels = dict(Phase.choices)

    starts: list[tuple[int, str]] = []
    for step in steps:
        if not starts or starts[-1][1] != step.phase:
            starts.append((step.day, step.phase))
    bands: list[PhaseBand] = []
    for index, (first_day, phase) in enumerate(starts):
        end = starts[index + 1][0] - 1 if index + 1 < len(starts) else last_day
        bands.append(
            PhaseBand(
                phase=phase,
                label=str(labels.get(phase, phase)),
                first_day=first_day,
                last_day=end,
                team=team_for_phase(phase),
                left_pct=pct(first_day),
                width_pct=round((end - first_day + 1) * 100 / length, 3),
                steps=[s for s in steps if first_day <= s.day <= end],
            )
        )

    pre_cancellation = next((s.day for s in steps if s.phase == Phase.PRE_CANCELLATION), None)
    if pre_cancellation is None:
        spans = defaults.phase_spans(
            first_outreach_day=segment.first_outreach_day,
            suspension_day=segment.suspension_day,
            cancellation_day=segment.cancellation_day,
        )
        pre_cancellation = next(s.first_day for s in spans if s.phase == Phase.PRE_CANCELLATION)
    milestone_days = {
        segment.first_outreach_day: "First outreach",
        segment.suspension_day: "Suspension",
        pre_cancellation: "Pre-cancellation starts",
        segment.cancellation_day: "Cancellation",
    }
    milestones = [Milestone(day=day, label=label, left_pct=pct(day)) for day, label in sorted(milestone_days.items())]
    touchpoints = [Touchpoint(step=s, left_pct=pct(s.day), milestone=milestone_days.get(s.day, "")) for s in steps]
    counts = {"total": len(steps), "active": sum(s.active for s in steps)}
    for action in ("SMS", "CALL", "BOTH"):
        counts[action] = sum(s.action_type == action for s in steps)
    return SegmentTimeline(
        segment=segment, days=length, bands=bands, milestones=milestones, touchpoints=touchpoints, counts=counts
    )


def phase_on_day(*, segment: Segment, day: int) -> str:
    """The phase a client `day` days past due is in: that of the segment's last step on or before
    the day (its phase runs until the next one starts), else by the segment's milestones."""
    step_phase = CadenceStep.objects.filter(segment=segment, day__lte=day).order_by("-day").values_list("phase", flat=True).first()
    return phase_from_step(segment=segment, day=day, step_phase=step_phase)


def phase_from_step(*, segment: Segment, day: int, step_phase: str | None) -> str:
    """The phase on `day` given the phase of the segment's last step on or before it (None: no step)."""
    if step_phase:
        return str(step_phase)
    if day >= segment.cancellation_day:
        return Phase.CANCELLATION
    if day >= segment.suspension_day:
        return Phase.SUSPENSION if day == segment.suspension_day else Phase.RE_ENGAGEMENT
    return Phase.PAYMENT_MISSED if day == 0 else Phase.SOFT_INTRO
