"""Phone numbers to E.164 and a client's local time zone(s).

The calling window (08:00–21:00) is local to the client, so every queue item carries the time
zones it may be in. They come, in order of trust, from the warehouse row's `timezone`, from its
`state` (or the state its ZIP code belongs to), and last from the phone's area code. When a
source is ambiguous — a state spanning two zones, an area code split between two — every
candidate is kept, and the release gate contacts the client only when all of them are inside
the window.

Phone parsing is the hot spot of a queue load (it runs once per warehouse row), so the usual
North American spellings are recognised by one regular expression and only the rest go through
`phonenumbers.parse`; validity is always decided by `phonenumbers` itself.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers import timezone as phone_timezone
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.tzdata import TIMEZONE_DATA

# Reference: https://www.iana.org/time-zones (zone names), https://www.census.gov/ (state list).
# Every state, DC and the inhabited territories with US ZIP codes. A state spanning several zones
# lists all of them, most populous first; the calling window then has to hold in each.
STATE_TIME_ZONES: dict[str, tuple[str, ...]] = {
    "AL": ("America/Chicago",),
    "AK": ("America/Anchorage", "America/Adak"),
    # Arizona keeps standard time all year, but the Navajo Nation observes daylight time.
    "AZ": ("America/Phoenix", "America/Denver"),
    "AR": ("America/Chicago",),
    "CA": ("America/Los_Angeles",),
    "CO": ("America/Denver",),
    "CT": ("America/New_York",),
    "DE": ("America/New_York",),
    "DC": ("America/New_York",),
    "FL": ("America/New_York", "America/Chicago"),
    "GA": ("America/New_York",),
    "HI": ("Pacific/Honolulu",),
    "ID": ("America/Boise", "America/Los_Angeles"),
    "IL": ("America/Chicago",),
    "IN": ("America/Indiana/Indianapolis", "America/Chicago"),
    "IA": ("America/Chicago",),
    "KS": ("America/Chicago", "America/Denver"),
    "KY": ("America/New_York", "America/Chicago"),
    "LA": ("America/Chicago",),
    "ME": ("America/New_York",),
    "MD": ("America/New_York",),
    "MA": ("America/New_York",),
    "MI": ("America/Detroit", "America/Menominee"),
    "MN": ("America/Chicago",),
    "MS": ("America/Chicago",),
    "MO": ("America/Chicago",),
    "MT": ("America/Denver",),
    "NE": ("America/Chicago", "America/Denver"),
    "NV": ("America/Los_Angeles",),
    "NH": ("America/New_York",),
    "NJ": ("America/New_York",),
    "NM": ("America/Denver",),
    "NY": ("America/New_York",),
    "NC": ("America/New_York",),
    "ND": ("America/Chicago", "America/Denver"),
    "OH": ("America/New_York",),
    "OK": ("America/Chicago",),
    "OR": ("America/Los_Angeles", "America/Boise"),
    "PA": ("America/New_York",),
    "RI": ("America/New_York",),
    "SC": ("America/New_York",),
    "SD": ("America/Chicago", "America/Denver"),
    "TN": ("America/Chicago", "America/New_York"),
    "TX": ("America/Chicago", "America/Denver"),
    "UT": ("America/Denver",),
    "VT": ("America/New_York",),
    "VA": ("America/New_York",),
    "WA": ("America/Los_Angeles",),
    "WV": ("America/New_York",),
    "WI": ("America/Chicago",),
    "WY": ("America/Denver",),
    "PR": ("America/Puerto_Rico",),
    "VI": ("America/St_Thomas",),
    "GU": ("Pacific/Guam",),
}

STATE_NAMES: dict[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
    "puerto rico": "PR", "virgin islands": "VI", "guam": "GU",
}

# Every zone a US client can be in: the candidates when nothing narrower is known (a toll-free
# number with no state), so the window must hold across the whole country.
US_TIME_ZONES: tuple[str, ...] = tuple(
    sorted({zone for code, zones in STATE_TIME_ZONES.items() if code not in ("PR", "VI", "GU") for zone in zones})
)

# Reference: USPS Publication 65 / the National Five-Digit ZIP Code directory. First three ZIP
# digits → state, as inclusive ranges; the odd prefixes that break a range are listed first.
_ZIP3_EXCEPTIONS: dict[int, str] = {55: "MA", 201: "VA", 569: "DC", 733: "TX", 885: "TX", 5: "NY"}
_ZIP3_RANGES: tuple[tuple[int, int, str], ...] = (
    (6, 7, "PR"), (8, 8, "VI"), (9, 9, "PR"),
    (10, 27, "MA"), (28, 29, "RI"), (30, 38, "NH"), (39, 49, "ME"), (50, 59, "VT"),
    (60, 69, "CT"), (70, 89, "NJ"), (100, 149, "NY"), (150, 196, "PA"), (197, 199, "DE"),
    (200, 205, "DC"), (206, 219, "MD"), (220, 246, "VA"), (247, 268, "WV"), (270, 289, "NC"),
    (290, 299, "SC"), (300, 319, "GA"), (320, 349, "FL"), (350, 369, "AL"), (370, 385, "TN"),
    (386, 397, "MS"), (398, 399, "GA"), (400, 427, "KY"), (430, 459, "OH"), (460, 479, "IN"),
    (480, 499, "MI"), (500, 528, "IA"), (530, 549, "WI"), (550, 567, "MN"), (570, 577, "SD"),
    (580, 588, "ND"), (590, 599, "MT"), (600, 629, "IL"), (630, 658, "MO"), (660, 679, "KS"),
    (680, 693, "NE"), (700, 714, "LA"), (716, 729, "AR"), (730, 749, "OK"), (750, 799, "TX"),
    (800, 816, "CO"), (820, 831, "WY"), (832, 838, "ID"), (840, 847, "UT"), (850, 865, "AZ"),
    (870, 884, "NM"), (889, 898, "NV"), (900, 961, "CA"), (967, 968, "HI"), (969, 969, "GU"),
    (970, 979, "OR"), (980, 994, "WA"), (995, 999, "AK"),
)

_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$", re.ASCII)

# "(212) 555-0123", "212.555.0123", "+1 212 555 0123", "12125550123": the spellings warehouses
# and spreadsheets use. Anything else (extensions, letters, other countries) goes to
# phonenumbers.parse, which is slower but knows every format.
_NANP = re.compile(r"^\s*(?:\+?1[\s.\-]*)?\(?([2-9]\d{2})\)?[\s.\-]*([2-9]\d{2})[\s.\-]*(\d{4})\s*$", re.ASCII)

# Time-zone data for +1 numbers is keyed by up to this many leading digits (country code, area
# code, exchange); caching on that prefix gives exactly phonenumbers' answer for every number.
_NANP_TZ_PREFIX = max(len(key) for key in TIMEZONE_DATA if key.startswith("1"))
_NANP_COUNTRY_ZONES = set(TIMEZONE_DATA["1"])


def _us_validity_patterns() -> tuple[re.Pattern[str], re.Pattern[str]] | None:
    """phonenumbers' own US patterns, compiled once, for a 10-digit national number.

    `is_valid_number` on a +1 number tries the NANP regions in order and the US comes first
    without a leading-digits rule, so a number of a US type (matching the general pattern and
    one type pattern of the right length) is valid — exactly phonenumbers' answer, in two regex
    matches instead of some twenty calls. Anything else still goes to `is_valid_number`.
    """
    regions = COUNTRY_CODE_TO_REGION_CODE.get(1, ())
    metadata = PhoneMetadata.metadata_for_region("US")
    if not regions or regions[0] != "US" or metadata is None or metadata.leading_digits:
        return None
    general = metadata.general_desc
    if general is None or not general.national_number_pattern or 10 not in (general.possible_length or (10,)):
        return None
    types = [
        desc.national_number_pattern
        for desc in (
            metadata.premium_rate, metadata.toll_free, metadata.shared_cost, metadata.voip, metadata.personal_number,
            metadata.pager, metadata.uan, metadata.voicemail, metadata.fixed_line, metadata.mobile,
        )
        if desc is not None and desc.national_number_pattern and 10 in (desc.possible_length or (10,))
    ]
    if not types:
        return None
    return re.compile(general.national_number_pattern), re.compile("|".join(f"(?:{p})" for p in types))


_US_VALIDITY = _us_validity_patterns()


class GeoError(ValueError):
    """A phone, state, ZIP code or time zone that cannot be used; the message says why."""


def phone_to_e164(raw: object) -> str:
    """A valid North American number in E.164 (`+12125550123`), or GeoError saying why not."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise GeoError("phone is empty")
    match = _NANP.match(text)
    if match:
        national = "".join(match.groups())
        if _US_VALIDITY is not None and _US_VALIDITY[0].fullmatch(national) and _US_VALIDITY[1].fullmatch(national):
            return f"+1{national}"
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
    else:
        try:
            number = phonenumbers.parse(text, "US")
        except phonenumbers.NumberParseException as exc:
            raise GeoError(f"phone {text!r} is not a phone number ({exc._msg})") from exc
        if number.country_code != 1:
            raise GeoError(f"phone {text!r} is not a North American number")
        national = str(number.national_number)
    # Ten digits: phonenumbers also calls a few seven-digit service codes (310-xxxx) valid US
    # numbers, and "+1310xxxx" is no number a carrier dials.
    if len(national) != 10 or not phonenumbers.is_valid_number(number):
        raise GeoError(f"phone {text!r} is not a valid number")
    return f"+1{national}"


@lru_cache(maxsize=65536)
def _zones_for_nanp_prefix(prefix: str) -> tuple[str, ...]:
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(prefix[1:].ljust(10, "0")))
    zones = tuple(z for z in phone_timezone.time_zones_for_geographical_number(number) if z != phone_timezone.UNKNOWN_TIMEZONE)
    # No entry narrower than the whole country (toll-free, personal and unassigned area codes):
    # the number says nothing about where the client is.
    if not zones or set(zones) == _NANP_COUNTRY_ZONES:
        return US_TIME_ZONES
    return zones


def time_zones_for_phone(e164: str) -> tuple[str, ...]:
    """Candidate zones of a +1 number from its area code (and exchange, where the data splits it).

    Numbers that are not tied to a place (toll-free, personal) make every US zone a candidate.
    """
    return _zones_for_nanp_prefix(e164.lstrip("+")[:_NANP_TZ_PREFIX])


@lru_cache(maxsize=1)
def _known_zones() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


def parse_time_zones(raw: object) -> tuple[str, ...]:
    """The row's own `timezone` value: one IANA name or several, comma-separated."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return ()
    return _parse_zone_list(text)


@lru_cache(maxsize=4096)
def _parse_zone_list(text: str) -> tuple[str, ...]:
    # A warehouse spells a few dozen zones over and over: each spelling is checked once.
    known = _known_zones()
    zones: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        canonical = known.get(name.casefold())
        if canonical is None:
            raise GeoError(f"time zone {name!r} is not an IANA time zone name")
        if canonical not in zones:
            zones.append(canonical)
    return tuple(zones)


def normalize_state(raw: object) -> str:
    """Two-letter code from a code or a full name; '' when empty; GeoError when unknown."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return ""
    code = text.upper()
    if code in STATE_TIME_ZONES:
        return code
    by_name = STATE_NAMES.get(" ".join(text.split()).casefold())
    if by_name:
        return by_name
    raise GeoError(f"state {text!r} is not a US state")


def normalize_postal_code(raw: object) -> str:
    """A US ZIP code (5 digits, or ZIP+4 as 12345-6789); '' when empty; GeoError otherwise."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return ""
    if isinstance(raw, int) or text.isdigit() and len(text) < 5:
        # Spreadsheets and integer columns drop the leading zeros of New England ZIP codes.
        text = text.zfill(5)
    match = _ZIP.match(text)
    if not match:
        raise GeoError(f"postal code {text!r} is not a US ZIP code")
    return text if "-" in text or len(text) == 5 else f"{text[:5]}-{text[5:]}"


def state_for_postal_code(postal_code: str) -> str:
    """The state a ZIP code belongs to, '' when its prefix is not assigned to one."""
    if not postal_code:
        return ""
    prefix = int(postal_code[:3])
    if prefix in _ZIP3_EXCEPTIONS:
        return _ZIP3_EXCEPTIONS[prefix]
    for low, high, state in _ZIP3_RANGES:
        if low <= prefix <= high:
            return state
    return ""


def time_zones_for_client(*, timezone: object, state: str, phone: str) -> tuple[str, ...]:
    """Candidate zones: the row's own zone(s), else its state's, else the phone's area code's.

    `state` is already normalised (and may have come from the ZIP code); `phone` is E.164.
    """
    zones = parse_time_zones(timezone)
    if zones:
        return zones
    if state:
        return STATE_TIME_ZONES[state]
    return time_zones_for_phone(phone)
