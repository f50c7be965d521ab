"""Phones to E.164 and a client's candidate time zones: row zone, else state/ZIP, else area code."""

from __future__ import annotations

import random
import zoneinfo

import phonenumbers
import pytest

from campaigns import geo
from campaigns.models import QueueItem
from campaigns.queue import load as queue

from .conftest import NOW, client_row


@pytest.mark.parametrize(
    "raw",
    ["+12125550142", "2125550142", "(212) 555-0142", "212.555.0142", "1-212-555-0142", "+1 212 555 0142", " 212 555 0142 ", 2125550142],
)
def test_north_american_spellings_normalise_to_e164(raw):
    assert geo.phone_to_e164(raw) == "+12125550142"


@pytest.mark.parametrize("raw", ["(212) 555-\uff10\uff11\uff14\uff12", "\u0662\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0664\u0662"])
def test_digits_of_other_scripts_come_out_as_ascii(raw):
    # Found by coverage-guided fuzzing: the fast path's \d took full-width digits as they were,
    # so "+1212555０１４２" went to the dialer, a number a do-not-call entry for +12125550142 does not match.
    assert geo.phone_to_e164(raw) == "+12125550142"


def test_an_extension_is_dropped_by_the_full_parser():
    assert geo.phone_to_e164("212-555-0142 ext. 12") == "+12125550142"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "phone is empty"),
        (None, "phone is empty"),
        ("555-0100", "is not a valid number"),
        ("+1 000 555 0100", "is not a valid number"),
        ("(800) 555-01000", "is not a valid number"),
        ("310-9119", "is not a valid number"),  # phonenumbers takes it for a valid US number
        (3109119, "is not a valid number"),
        ("not a phone", "is not a phone number"),
        ("+44 20 7946 0958", "is not a North American number"),
    ],
)
def test_unusable_phones_say_why(raw, reason):
    with pytest.raises(geo.GeoError, match=reason):
        geo.phone_to_e164(raw)


def test_the_fast_path_agrees_with_phonenumbers_on_validity():
    # 3xx/8xx exchanges and unassigned area codes: the regex only splits, phonenumbers decides.
    for raw in ("+12125550142", "+19995550142", "+12121550142", "+13115550142"):
        try:
            fast = geo.phone_to_e164(raw)
        except geo.GeoError:
            fast = None
        parsed = phonenumbers.parse(raw, "US")
        slow = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if phonenumbers.is_valid_number(parsed) else None
        assert fast == slow, raw


def test_phone_validity_matches_phonenumbers_across_the_numbering_plan():
    # Random 10-digit numbers over every area code and exchange: US, Canada, the Caribbean,
    # toll-free and unassigned ones alike.
    rng = random.Random(20250610)
    for _ in range(20_000):
        national = f"{rng.randint(200, 999)}{rng.randint(0, 999):03d}{rng.randint(0, 9999):04d}"
        expected = phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=1, national_number=int(national)))
        try:
            ours = geo.phone_to_e164(national) == f"+1{national}"
        except geo.GeoError:
            ours = False
        assert ours == expected, national


def test_the_state_table_covers_every_state_and_dc_with_real_zones():
    states = set(geo.STATE_TIME_ZONES) - {"PR", "VI", "GU"}
    assert len(states) == 51
    assert set(geo.STATE_NAMES.values()) >= states
    known = zoneinfo.available_timezones()
    for state, zones in geo.STATE_TIME_ZONES.items():
        assert zones and set(zones) <= known, state


@pytest.mark.parametrize("state", ["TX", "FL", "IN", "KY", "TN", "ND", "SD", "NE", "KS", "ID", "OR", "MI", "AK"])
def test_states_spanning_two_zones_keep_both(state):
    assert len(geo.STATE_TIME_ZONES[state]) == 2


def test_the_rows_own_zone_wins():
    assert geo.time_zones_for_client(timezone="America/Denver", state="NY", phone="+12125550142") == ("America/Denver",)


def test_a_row_may_list_several_zones_and_names_are_canonicalised():
    zones = geo.time_zones_for_client(timezone="america/chicago, America/Denver", state="", phone="+12125550142")
    assert zones == ("America/Chicago", "America/Denver")


def test_the_state_comes_next_and_an_ambiguous_state_keeps_every_zone():
    assert geo.time_zones_for_client(timezone=None, state="TX", phone="+12125550142") == ("America/Chicago", "America/Denver")
    assert geo.time_zones_for_client(timezone="", state="NY", phone="+13125550142") == ("America/New_York",)


def test_the_zip_code_gives_the_state_when_the_state_is_missing():
    assert geo.state_for_postal_code(geo.normalize_postal_code("02108")) == "MA"
    assert geo.state_for_postal_code(geo.normalize_postal_code(2108)) == "MA"  # an integer column lost the zero
    assert geo.state_for_postal_code(geo.normalize_postal_code("79901-1234")) == "TX"
    assert geo.state_for_postal_code(geo.normalize_postal_code("88510")) == "TX"
    assert geo.state_for_postal_code(geo.normalize_postal_code("20101")) == "VA"
    assert geo.state_for_postal_code(geo.normalize_postal_code("99501")) == "AK"


def test_the_area_code_is_the_last_resort():
    assert geo.time_zones_for_client(timezone=None, state="", phone="+13125550142") == ("America/Chicago",)


def test_an_area_code_split_between_zones_keeps_both():
    # 208 is Idaho: Mountain in the south, Pacific in the panhandle.
    assert set(geo.time_zones_for_client(timezone=None, state="", phone="+12085550142")) == {"America/Boise", "America/Los_Angeles"}


def test_a_toll_free_number_could_be_anywhere_in_the_country():
    assert geo.time_zones_for_phone("+18005550142") == geo.US_TIME_ZONES
    assert "Pacific/Honolulu" in geo.US_TIME_ZONES and "America/New_York" in geo.US_TIME_ZONES


@pytest.mark.parametrize(
    "func, raw, reason",
    [
        (geo.parse_time_zones, "Mars/Olympus", "not an IANA time zone name"),
        (geo.normalize_state, "ZZ", "not a US state"),
        (geo.normalize_postal_code, "1234567", "not a US ZIP code"),
        (geo.normalize_postal_code, "0000\u0a6f", "not a US ZIP code"),  # a Gurmukhi nine
    ],
)
def test_bad_geography_says_why(func, raw, reason):
    with pytest.raises(geo.GeoError, match=reason):
        func(raw)


def test_full_state_names_are_accepted():
    assert geo.normalize_state("  new   york ") == "NY"
    assert geo.normalize_state("tx") == "TX"


@pytest.mark.django_db
def test_the_load_stores_every_candidate_zone_and_the_state_from_the_zip(sample_warehouse, campaign):
    texas = client_row(state="TX", postal_code=None, timezone=None)
    by_zip = client_row(state=None, postal_code="02108", timezone=None, phone="+12085550142")
    by_area_code = client_row(state=None, postal_code=None, timezone=None, phone="+12085550143")
    own_zone = client_row(state="TX", timezone="America/Chicago")
    sample_warehouse.add([texas, by_zip, by_area_code, own_zone])

    queue.queue_load(campaign=campaign, now=NOW)

    items = {i.client_id: i for i in QueueItem.objects.filter(campaign=campaign)}
    assert items[texas["client_id"]].timezone_list == ["America/Chicago", "America/Denver"]
    assert (items[by_zip["client_id"]].state, items[by_zip["client_id"]].timezone_list) == ("MA", ["America/New_York"])
    assert set(items[by_area_code["client_id"]].timezone_list) == {"America/Boise", "America/Los_Angeles"}
    assert items[own_zone["client_id"]].timezone_list == ["America/Chicago"]
