"""Cadence resolution: which touchpoint (if any) a client gets today.

A touchpoint is the active cadence step of the client's segment whose day equals the client's
days past due, with the phase routing (billing before the segment's suspension day,
resurrection from it on). The whole cadence is small (5 segments × ~50 steps), so one index is
built per load and every row is resolved from memory — no query per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cadences.models import MAX_CADENCE_DAY, CadenceStep, Segment

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_segment_name(name: str) -> str:
    """'RED Initial', 'red_initial' and ' Red-Initial ' are the same segment."""
    return _SEPARATORS.sub(" ", (name or "").strip()).casefold()


@dataclass(frozen=True)
class Touchpoint:
    segment: Segment
    step: CadenceStep
    team: str
    transfer_number: str
    ring_group: str
    inbox_id: str


class CadenceIndex:
    def __init__(self, segments: list[Segment], steps: list[CadenceStep]) -> None:
        self._segments = {normalize_segment_name(s.name): s for s in segments}
        self._steps: dict[tuple[int, int], CadenceStep] = {(s.segment_id, s.day): s for s in steps}

    def segment(self, name: str) -> Segment | None:
        return self._segments.get(normalize_segment_name(name))

    def touchpoint(self, segment: Segment, day: int) -> Touchpoint | None:
        if day < 0 or day > min(segment.cancellation_day, MAX_CADENCE_DAY):
            return None
        step = self._steps.get((segment.pk, day))
        if step is None:
            return None
        routing = segment.routing(day)
        return Touchpoint(segment=segment, step=step, **routing)


def cadence_index() -> CadenceIndex:
    segments = list(Segment.objects.all())
    by_id = {s.pk: s for s in segments}
    steps = list(CadenceStep.objects.filter(active=True).select_related("sms_template"))
    for step in steps:
        step.segment = by_id[step.segment_id]
    return CadenceIndex(segments, steps)
