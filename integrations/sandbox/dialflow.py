"""The Dialflow simulator: free agents per ring group, changing over time on a fixed pattern.

GET /sandbox/dialflow/v1/ring-groups/{ring_group}/availability (Bearer the sandbox key) answers
`{"ring_group", "available_agents"}`. The count at a moment is a pure function of the time, the
speed factor and the pattern: the pattern (SimulatorConfig.dialflow_pattern, or the ring group's
own in dialflow_overrides) is walked one step every `dialflow_step_seconds` simulated seconds,
and each ring group starts at its own offset, so different ring groups open up at different times.
"""

from __future__ import annotations

import datetime as dt
import zlib

from integrations.sandbox.models import SimulatorConfig


def pattern_for(config: SimulatorConfig, ring_group: str) -> list[int]:
    overrides = config.dialflow_overrides or {}
    pattern = overrides.get(ring_group, config.dialflow_pattern)
    if not isinstance(pattern, list) or not pattern:
        return [0]
    return [max(int(v), 0) for v in pattern]


def available_agents(ring_group: str, *, now: dt.datetime, config: SimulatorConfig | None = None) -> int:
    config = config or SimulatorConfig.load()
    pattern = pattern_for(config, ring_group)
    simulated_seconds = now.timestamp() * max(config.speed_factor, 0.01)
    step = int(simulated_seconds // max(config.dialflow_step_seconds, 0.001))
    offset = zlib.crc32(ring_group.encode("utf-8")) % len(pattern)
    return pattern[(step + offset) % len(pattern)]
