"""The local-window rule at its edges: 07:59/08:00, 20:59/21:00, DST days, ambiguous zones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from campaigns.compliance.gate import LEGAL_WINDOW, Rule, local_window_block, next_window_open

NY = "America/New_York"
LA = "America/Los_Angeles"
UTC = dt.timezone.utc


def at(zone: str, *args: int) -> dt.datetime:
    """A local wall-clock time in `zone`, as an aware instant."""
    return dt.datetime(*args, tzinfo=ZoneInfo(zone))


def block(zones: list[str], now: dt.datetime, start: dt.time = dt.time(8), end: dt.time = dt.time(21)):
    return local_window_block(timezones=zones, now=now, start=start, end=end)


@pytest.mark.parametrize(
    "hour, minute, allowed",
    [(7, 59, False), (8, 0, True), (8, 1, True), (20, 59, True), (21, 0, False), (21, 1, False), (3, 0, False)],
)
def test_legal_window_edges(hour, minute, allowed):
    result = block([NY], at(NY, 2025, 6, 10, hour, minute))
    if allowed:
        assert result is None
    else:
        assert result is not None and result.rule == Rule.OUTSIDE_LOCAL_WINDOW
        assert result.inputs["local_times"][NY].startswith(f"2025-06-10T{hour:02d}:{minute:02d}")


def test_the_edges_hold_in_the_clients_zone_not_the_servers():
    # 20:59 in Los Angeles is 23:59 in New York: allowed for the LA client.
    assert block([LA], at(LA, 2025, 6, 10, 20, 59)) is None
    assert block([LA], at(LA, 2025, 6, 10, 21, 0)).rule == Rule.OUTSIDE_LOCAL_WINDOW


def test_one_second_before_eight_is_still_outside():
    assert block([NY], at(NY, 2025, 6, 10, 7, 59, 59)) is not None


def test_ambiguous_location_needs_every_zone_inside():
    zones = [NY, LA]
    # 08:30 in New York is 05:30 in Los Angeles.
    blocked = block(zones, at(NY, 2025, 6, 10, 8, 30))
    assert blocked.rule == Rule.OUTSIDE_LOCAL_WINDOW
    assert blocked.inputs["zones_outside"] == [LA]
    assert block(zones, at(NY, 2025, 6, 10, 11, 0)) is None  # 08:00 in LA
    assert block(zones, at(NY, 2025, 6, 10, 20, 59)) is None
    assert block(zones, at(NY, 2025, 6, 10, 21, 0)).inputs["zones_outside"] == [NY]


def test_campaign_window_only_narrows():
    narrow = block([NY], at(NY, 2025, 6, 10, 8, 30), start=dt.time(9), end=dt.time(17))
    assert narrow.rule == Rule.CAMPAIGN_WINDOW
    assert narrow.inputs["window_start"] == "09:00"
    assert block([NY], at(NY, 2025, 6, 10, 16, 59), start=dt.time(9), end=dt.time(17)) is None
    assert block([NY], at(NY, 2025, 6, 10, 17, 0), start=dt.time(9), end=dt.time(17)).rule == Rule.CAMPAIGN_WINDOW
    # A window wider than the law is cut back to 08:00–21:00.
    wide = block([NY], at(NY, 2025, 6, 10, 7, 30), start=dt.time(6), end=dt.time(23))
    assert wide.rule == Rule.OUTSIDE_LOCAL_WINDOW and wide.inputs["window_start"] == "08:00"
    assert block([NY], at(NY, 2025, 6, 10, 21, 30), start=dt.time(6), end=dt.time(23)).inputs["window_end"] == "21:00"


def test_unknown_or_invalid_zone_is_never_contacted():
    now = at(NY, 2025, 6, 10, 12, 0)
    assert block([], now).rule == Rule.UNKNOWN_TIMEZONE
    assert block(["Mars/Olympus_Mons"], now).rule == Rule.UNKNOWN_TIMEZONE
    assert block([NY, "Not/AZone"], now).rule == Rule.UNKNOWN_TIMEZONE


def test_spring_forward_day():
    # 2025-03-09: New York jumps from EST (UTC−5) to EDT (UTC−4) at 02:00.
    # 12:30 UTC is 07:30 EST on the 8th but 08:30 EDT on the 9th.
    assert block([NY], dt.datetime(2025, 3, 8, 12, 30, tzinfo=UTC)).rule == Rule.OUTSIDE_LOCAL_WINDOW
    assert block([NY], dt.datetime(2025, 3, 9, 12, 30, tzinfo=UTC)) is None
    assert block([NY], dt.datetime(2025, 3, 9, 11, 59, tzinfo=UTC)).rule == Rule.OUTSIDE_LOCAL_WINDOW
    # 21:00 EDT on the 9th is 01:00 UTC on the 10th.
    assert block([NY], dt.datetime(2025, 3, 10, 0, 59, tzinfo=UTC)) is None
    assert block([NY], dt.datetime(2025, 3, 10, 1, 0, tzinfo=UTC)) is not None


def test_fall_back_day():
    # 2025-11-02: back to EST (UTC−5). 20:59 EST is 01:59 UTC on the 3rd; the same UTC time
    # the day before is 21:59 EDT.
    assert block([NY], dt.datetime(2025, 11, 3, 1, 59, tzinfo=UTC)) is None
    assert block([NY], dt.datetime(2025, 11, 2, 1, 59, tzinfo=UTC)).rule == Rule.OUTSIDE_LOCAL_WINDOW
    assert block([NY], dt.datetime(2025, 11, 2, 13, 0, tzinfo=UTC)) is None  # 08:00 EST


def test_next_window_open_is_the_first_instant_inside():
    now = at(NY, 2025, 6, 10, 6, 15)
    opens = next_window_open(timezones=[NY], now=now, start=dt.time(8), end=dt.time(21))
    assert opens == at(NY, 2025, 6, 10, 8, 0)
    assert block([NY], opens) is None
    assert block([NY], opens - dt.timedelta(microseconds=1)) is not None


def test_next_window_open_inside_is_now_and_after_close_is_tomorrow():
    inside = at(NY, 2025, 6, 10, 12, 0)
    assert next_window_open(timezones=[NY], now=inside, start=dt.time(8), end=dt.time(21)) == inside
    late = at(NY, 2025, 6, 10, 21, 0)
    assert next_window_open(timezones=[NY], now=late, start=dt.time(8), end=dt.time(21)) == at(NY, 2025, 6, 11, 8, 0)


def test_next_window_open_for_ambiguous_zones_waits_for_the_latest():
    opens = next_window_open(timezones=[NY, LA], now=at(NY, 2025, 6, 10, 7, 0), start=dt.time(8), end=dt.time(21))
    assert opens == at(LA, 2025, 6, 10, 8, 0)


def test_next_window_open_on_the_dst_change_day():
    opens = next_window_open(timezones=[NY], now=dt.datetime(2025, 3, 9, 6, 0, tzinfo=UTC), start=dt.time(8), end=dt.time(21))
    assert opens == dt.datetime(2025, 3, 9, 12, 0, tzinfo=UTC)  # 08:00 EDT, not 13:00 UTC as the day before


def test_next_window_open_none_when_zones_never_overlap():
    # UTC, UTC+8 and UTC−8: any two 13-hour windows overlap, but never all three at once.
    zones = ["Etc/GMT", "Etc/GMT-8", "Etc/GMT+8"]
    assert next_window_open(timezones=zones, now=at(NY, 2025, 6, 10, 12), start=dt.time(8), end=dt.time(21)) is None
    assert next_window_open(timezones=zones[:2], now=at(NY, 2025, 6, 10, 12), start=dt.time(8), end=dt.time(21)) is not None


def test_legal_window_is_eight_to_nine():
    assert LEGAL_WINDOW == (dt.time(8, 0), dt.time(21, 0))
