"""Which of our numbers a call goes out from (seed 001: caller-ID rotation protects pickup rates).

People answer local numbers more often, and a number that dials too much gets flagged as spam,
so the choice is: a pool number with the client's area code, else one in the client's state,
else any — and among those, the one used least today (ties go to pool order, so the choice is
deterministic). The pool is `RETELL_FROM_NUMBERS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

import phonenumbers
from django.db.models import Count
from phonenumbers import geocoder

from campaigns.models import CallAttempt

# Names phonenumbers' geocoder uses for whole states (it gives "City, ST" for most numbers and a
# state's name for others, e.g. "Massachusetts").
STATE_CODES: dict[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "washington d.c.": "DC", "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID",
    "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY",
    "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI",
    "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE",
    "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR",
}  # fmt: skip


def area_code(number: str) -> str:
    """The NANP area code of an E.164 number (+1AAANNNXXXX), or "" for anything else."""
    if number.startswith("+1") and len(number) == 12 and number[2:].isdigit():
        return number[2:5]
    return ""


@lru_cache(maxsize=4096)
def number_state(number: str) -> str:
    """The US state a number's area code belongs to, from phonenumbers' geocoding data."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ""
    description = geocoder.description_for_number(parsed, "en").strip()
    if not description:
        return ""
    if "," in description:
        suffix = description.rsplit(",", 1)[1].strip()
        if len(suffix) == 2 and suffix.isalpha():
            return suffix.upper()
    return STATE_CODES.get(description.casefold(), "")


def caller_id_choose(*, to_number: str, state: str, pool: Sequence[str], usage: Mapping[str, int]) -> str:
    """The pool number to call `to_number` from (see the module docstring for the order)."""
    if not pool:
        raise ValueError("The caller-id pool is empty: set RETELL_FROM_NUMBERS.")
    client_area = area_code(to_number)
    client_state = (state or number_state(to_number)).upper()

    def rank(indexed: tuple[int, str]) -> tuple[int, int, int]:
        index, number = indexed
        if client_area and area_code(number) == client_area:
            match = 0
        elif client_state and number_state(number) == client_state:
            match = 1
        else:
            match = 2
        return match, usage.get(number, 0), index

    return min(enumerate(pool), key=rank)[1]


def caller_id_usage(*, pool: Iterable[str], since: dt.datetime) -> dict[str, int]:
    """Calls placed from each pool number since `since` (one grouped query)."""
    numbers = list(pool)
    usage = dict.fromkeys(numbers, 0)
    rows = (
        CallAttempt.objects.filter(from_number__in=numbers, created_at__gte=since)
        .exclude(status=CallAttempt.Status.NOT_DIALED)
        .values_list("from_number")
        .annotate(n=Count("pk"))
    )
    for number, n in rows:
        usage[number] = n
    return usage
