"""Which days the dialer works: the weekdays set in the dialer settings, less the public holidays
of the configured calendar (the `holidays` library, country and optional state: `US`, `US-NY`)
and the other closed dates listed there."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarError(ValueError):
    """A holiday calendar or closed date that cannot be read; the message says why."""


@lru_cache(maxsize=32)
def _holidays(calendar: str, year: int) -> holidays.HolidayBase:
    country, _, subdivision = calendar.upper().partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    except NotImplementedError as exc:
        raise CalendarError(f"{calendar!r} is not a holiday calendar (use a country code such as US, optionally with a state: US-NY).") from exc


def calendar_check(calendar: str) -> None:
    """Raise CalendarError when `calendar` is not blank and not a known country[-state]."""
    if calendar.strip():
        _holidays(calendar.strip(), dt.date.today().year)


def closed_dates_parse(text: str) -> set[dt.date]:
    """One ISO date per line (blank lines and text after a '#' ignored)."""
    dates: set[dt.date] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            dates.add(dt.date.fromisoformat(value))
        except ValueError as exc:
            raise CalendarError(f"Line {number}: {value!r} is not a date (write it as YYYY-MM-DD).") from exc
    return dates


def weekdays_parse(text: str) -> set[int]:
    """'0,1,2,3,4' → {0, …, 4} (Monday is 0)."""
    try:
        days = {int(part) for part in text.split(",") if part.strip()}
    except ValueError as exc:
        raise CalendarError("Business days are weekday numbers, Monday 0 to Sunday 6.") from exc
    if not days or not days <= set(range(7)):
        raise CalendarError("Choose at least one business day.")
    return days


def not_a_business_day(day: dt.date, *, weekdays: str, calendar: str, closed_dates: str) -> str:
    """Why no campaign runs on `day` ("" when it is a business day)."""
    if day.weekday() not in weekdays_parse(weekdays):
        return f"{WEEKDAYS[day.weekday()]} is not a business day"
    if calendar.strip():
        name = _holidays(calendar.strip(), day.year).get(day)
        if name:
            return f"{day:%B} {day.day} is a public holiday ({name})"
    if day in closed_dates_parse(closed_dates):
        return f"{day:%B} {day.day} is listed as a closed day"
    return ""
