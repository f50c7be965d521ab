"""Callbacks a client asked for: when, whether that time may be called, and the booking.

A client asks Grace to call back "tomorrow at 3pm", "in two hours" or at an ISO 8601 time; the
time is read in the client's local zone and must fall inside the calling window (the legal
08:00–21:00, narrowed by the dialer settings) in every candidate zone. Outside it, the nearest
allowed time is offered back instead of booked. A booked callback is a `Callback` row keyed by
the call on which the client asked — that call id is the recorded consent, which is why the
release loop dials it even inside the post-conversation blackout — and both Grace's live tool
and the post-call analysis of the same call land on the same row.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from cadences.models import DialerSettings
from campaigns.compliance import gate as compliance
from campaigns.models import Callback

log = logging.getLogger(__name__)

# Further out than this is not a time to book (a misheard year, say).
CALLBACK_HORIZON = dt.timedelta(days=60)
# An offer before the requested time leaves this much of the window for the call.
WINDOW_END_MARGIN = dt.timedelta(minutes=15)

_WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45,
    "half an": 0.5, "half a": 0.5,
}  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_PARTS_OF_DAY = {"morning": dt.time(9, 0), "noon": dt.time(12, 0), "afternoon": dt.time(14, 0), "evening": dt.time(18, 0), "tonight": dt.time(19, 0)}
_RELATIVE = re.compile(r"\bin\s+(\d+(?:\.\d+)?|half an|half a|[a-z-]+)\s+(minute|min|hour|hr|day)s?\b")
_CLOCK = re.compile(r"\b(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?)?(?=\s|$|[,.])")


def client_zone(timezones: Sequence[str]) -> zoneinfo.ZoneInfo:
    for name in timezones:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def parse_callback_time(text: object, *, now: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """The instant a client's words (or an ISO 8601 time) name, read in their zone; None if none.

    Understood: ISO 8601 with or without offset; "in 20 minutes", "in two hours", "in 3 days";
    "today/tonight/tomorrow/Monday…" with a clock time ("3pm", "at 4:30 p.m.", "15:00") or a part
    of the day ("morning", "afternoon", "evening"); a clock time alone (today, or tomorrow once
    it has passed).
    """
    if not isinstance(text, str) or not text.strip() or len(text) > 200:
        return None
    raw = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
        try:
            return parsed.astimezone(dt.timezone.utc)
        except OverflowError:
            return None
    words = raw.lower().replace("o'clock", "").strip()
    local_now = now.astimezone(zone)
    relative = _RELATIVE.search(words)
    if relative:
        count_text, unit = relative.groups()
        try:
            count = float(count_text)
        except ValueError:
            count = float(_WORD_NUMBERS.get(count_text, 0))
        if count <= 0:
            return None
        step = {"minute": dt.timedelta(minutes=1), "min": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "hr": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}[unit]
        return (now + step * count).astimezone(dt.timezone.utc)
    day = local_now.date()
    day_named = False
    if "day after tomorrow" in words:
        day, day_named = day + dt.timedelta(days=2), True
    elif "tomorrow" in words:
        day, day_named = day + dt.timedelta(days=1), True
    elif "today" in words or "tonight" in words or "this " in words or "later" in words:
        day_named = True
    else:
        for index, name in enumerate(_WEEKDAYS):
            if name in words:
                ahead = (index - local_now.weekday()) % 7 or 7
                day, day_named = day + dt.timedelta(days=ahead), True
                break
    clock_time: dt.time | None = None
    match = _CLOCK.search(words)
    if match:
        hour, minute, meridiem = int(match.group(1)), int(match.group(2) or 0), (match.group(3) or "").replace(".", "")
        if meridiem == "pm" and hour < 12:
            hour += 12
        elif meridiem == "am" and hour == 12:
            hour = 0
        elif not meridiem and 1 <= hour <= 7:
            hour += 12  # "at 3" on a business call is the afternoon
        if 0 <= hour <= 23 and 0 <= minute <= 59:
            clock_time = dt.time(hour, minute)
    if clock_time is None:
        for part, at in _PARTS_OF_DAY.items():
            if part in words:
                clock_time = at
                break
    if clock_time is None:
        if "later" in words:
            return (now + dt.timedelta(hours=2)).astimezone(dt.timezone.utc)
        return None
    moment = dt.datetime.combine(day, clock_time, tzinfo=zone)
    if moment <= local_now and not day_named:
        moment += dt.timedelta(days=1)
    return moment.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class CallbackTime:
    """A requested callback time checked against the window: `allowed`, or the nearest offer."""

    requested: dt.datetime
    allowed: bool
    offer: dt.datetime | None


def calling_window() -> tuple[dt.time, dt.time]:
    dialer = DialerSettings.load()
    return compliance.effective_window(dialer.calling_window_start, dialer.calling_window_end)


def callback_time_check(*, requested: dt.datetime, timezones: Sequence[str], now: dt.datetime) -> CallbackTime:
    """Whether the client may be called at `requested`; if not, the nearest time they may be."""
    start, end = calling_window()
    if compliance.local_window_block(timezones=timezones, now=requested, start=start, end=end) is None:
        return CallbackTime(requested, True, None)
    after = compliance.next_window_open(timezones=timezones, now=max(requested, now), start=start, end=end)
    before = _last_allowed_before(requested=requested, timezones=timezones, now=now, start=start, end=end)
    offers = [t for t in (before, after) if t is not None and t >= now]
    offer = min(offers, key=lambda t: abs(t - requested)) if offers else None
    return CallbackTime(requested, False, offer)


def _last_allowed_before(
    *, requested: dt.datetime, timezones: Sequence[str], now: dt.datetime, start: dt.time, end: dt.time
) -> dt.datetime | None:
    """The window's last quarter hour before `requested` on the same local day, if still ahead."""
    zone = client_zone(timezones)
    local = requested.astimezone(zone)
    candidate = dt.datetime.combine(local.date(), end, tzinfo=zone) - WINDOW_END_MARGIN
    if not (now <= candidate < requested):
        return None
    if compliance.local_window_block(timezones=timezones, now=candidate, start=start, end=end) is not None:
        return None
    return candidate.astimezone(dt.timezone.utc)


def callback_book(
    *,
    consent_call_id: str,
    client_id: str,
    client_name: str,
    phone: str,
    timezones: Sequence[str],
    state: str,
    segment_name: str,
    phase: str,
    due_at: dt.datetime,
    requested_text: str,
) -> tuple[Callback, bool]:
    """Book (or move, while it is still only scheduled) the callback asked for on a call."""
    values = {
        "client_id": client_id,
        "client_name": client_name,
        "phone": phone,
        "timezones": ",".join(timezones),
        "state": state,
        "segment_name": segment_name,
        "phase": phase,
        "due_at": due_at,
        "requested_text": requested_text[:200],
    }
    try:
        with transaction.atomic():
            callback = Callback.objects.create(consent_call_id=consent_call_id, **values)
    except IntegrityError:
        callback = Callback.objects.get(consent_call_id=consent_call_id)
        return callback, False
    log.info("callback booked", extra={"client_id": client_id, "call_id": consent_call_id, "due_at": due_at.isoformat()})
    return callback, True


def callback_move(*, callback: Callback, due_at: dt.datetime, requested_text: str) -> bool:
    """A new time asked for on the same call, while the callback has not been dialed."""
    moved = Callback.objects.filter(pk=callback.pk, status=Callback.Status.SCHEDULED).update(
        due_at=due_at, requested_text=requested_text[:200]
    )
    return bool(moved)
