"""Login throttling: after too many failed sign-ins for a username, or from one address, within
the window, further attempts are refused until the oldest counted failure leaves the window.

A username is limited tightly (one person guessing at one account); an address more loosely,
since a whole office can sign in from one address. A refused attempt is not itself counted, so a
lock ends when the window passes rather than being extended by every retry; a successful sign-in
clears its username's failures (the address keeps its count).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from access.models import FailedLogin


@dataclass(frozen=True)
class Throttle:
    """A refusal: how long until another attempt is allowed, and why."""

    retry_after: dt.timedelta
    reason: str  # "username" or "ip"

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after.total_seconds() / 60))


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=settings.LOGIN_THROTTLE_WINDOW_MINUTES)


def _username_key(username: str | None) -> str:
    return (username or "").strip().lower()[:150]


def login_throttle_check(*, username: str | None, ip: str | None, now: dt.datetime) -> Throttle | None:
    """The refusal in force for this username or address at `now`, or None when allowed."""
    since = now - _window()
    checks: list[tuple[str, Q, int]] = [("username", Q(username=_username_key(username)), settings.LOGIN_THROTTLE_MAX_FAILURES)]
    if ip:
        checks.append(("ip", Q(ip=ip), settings.LOGIN_THROTTLE_MAX_FAILURES_PER_IP))
    refusals = []
    for reason, match, limit in checks:
        recent = list(FailedLogin.objects.filter(match, at__gt=since).order_by("-at").values_list("at", flat=True)[:limit])
        if len(recent) >= limit:
            # Allowed again once the limit-th most recent failure leaves the window.
            refusals.append(Throttle(retry_after=recent[limit - 1] + _window() - now, reason=reason))
    return max(refusals, key=lambda t: t.retry_after) if refusals else None


def login_failure_record(*, username: str | None, ip: str | None, now: dt.datetime) -> None:
    FailedLogin.objects.filter(at__lte=now - _window()).delete()
    FailedLogin.objects.create(username=_username_key(username), ip=ip or None, at=now)


def login_success_record(*, username: str | None) -> None:
    FailedLogin.objects.filter(username=_username_key(username)).delete()
