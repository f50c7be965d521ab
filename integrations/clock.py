"""The time every part of the dialer agrees on.

In production this is simply the current time. A sandbox day can run on an accelerated clock:
`SANDBOX_CLOCK_START` (an ISO datetime with offset, the simulated start) and
`SANDBOX_CLOCK_SPEED` (simulated seconds per real second) are read from the environment, and the
real instant `SANDBOX_CLOCK_EPOCH` (Unix seconds) anchors them, so the web process, every
django-q2 worker and the vendor simulators — separate processes — compute the same simulated
time. The accelerated clock is refused when any vendor is live: real calls run on real time.
"""

from __future__ import annotations

import datetime as dt
import os
import time


class _Accelerated:
    def __init__(self, start: dt.datetime, speed: float, epoch: float) -> None:
        if start.tzinfo is None:
            raise ValueError("SANDBOX_CLOCK_START needs a UTC offset, e.g. 2026-11-23T08:00:00-05:00")
        if speed <= 0:
            raise ValueError("SANDBOX_CLOCK_SPEED must be positive")
        self.start = start
        self.speed = speed
        self.epoch = epoch

    def now(self) -> dt.datetime:
        return self.at(time.time())

    def at(self, real_seconds: float) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(real_seconds - self.epoch) * self.speed)


_accelerated: _Accelerated | None = None


def _from_environment() -> _Accelerated | None:
    start = os.environ.get("SANDBOX_CLOCK_START", "")
    if not start:
        return None
    speed = float(os.environ.get("SANDBOX_CLOCK_SPEED", "1"))
    epoch = float(os.environ.get("SANDBOX_CLOCK_EPOCH", "") or time.time())
    return _Accelerated(dt.datetime.fromisoformat(start), speed, epoch)


def accelerate(*, start: dt.datetime, speed: float, epoch: float | None = None) -> None:
    """Run this process on an accelerated clock (sandbox runs only); exported to child processes."""
    global _accelerated
    epoch = time.time() if epoch is None else epoch
    _accelerated = _Accelerated(start, speed, epoch)
    os.environ["SANDBOX_CLOCK_START"] = start.isoformat()
    os.environ["SANDBOX_CLOCK_SPEED"] = repr(speed)
    os.environ["SANDBOX_CLOCK_EPOCH"] = repr(epoch)


def reset() -> None:
    global _accelerated
    _accelerated = None
    for name in ("SANDBOX_CLOCK_START", "SANDBOX_CLOCK_SPEED", "SANDBOX_CLOCK_EPOCH"):
        os.environ.pop(name, None)


def speed() -> float:
    return _accelerated.speed if _accelerated else 1.0


def now() -> dt.datetime:
    """The current instant (timezone-aware, UTC-based), simulated when the sandbox clock is on."""
    if _accelerated is not None:
        return _accelerated.now()
    return dt.datetime.now(dt.timezone.utc)


def at(moment: dt.datetime) -> dt.datetime:
    """A real instant (a vendor's timestamp, say) on this clock: itself unless the sandbox clock
    runs, when the simulators' wall-clock times are mapped onto the accelerated day."""
    if _accelerated is not None:
        try:
            return _accelerated.at(moment.timestamp())
        except (OverflowError, ValueError):  # a timestamp no calendar holds stays as given
            return moment
    return moment


def sleep(seconds: float) -> None:
    """Sleep `seconds` of clock time (shorter in real time on an accelerated clock)."""
    time.sleep(max(0.0, seconds / speed()))


_accelerated = _from_environment()
