"""What a rule looked at, as a supervisor reads it: labels in words, times on a named clock."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.compliance.gate import Rule, channel_label, inputs_in_words, local_window_block, rule_label

NY = dt.timezone(dt.timedelta(hours=-5))


@pytest.fixture(autouse=True)
def portal_clock(settings):
    settings.TIME_ZONE = "America/New_York"


def test_a_window_blocks_inputs_read_on_the_clients_clock_and_the_portals():
    now = dt.datetime(2025, 1, 15, 7, 30, tzinfo=NY)  # 06:30 in Chicago
    block = local_window_block(timezones=["America/Chicago"], now=now, start=dt.time(8), end=dt.time(21))
    assert block is not None and block.rule == Rule.OUTSIDE_LOCAL_WINDOW
    words = dict(inputs_in_words(block.inputs))
    assert words["The client's local time"] == "06:30 CST in America/Chicago"
    assert words["Window opens"] == "08:00" and words["Legal hours end"] == "21:00"
    assert words["Time zones outside the window"] == "America/Chicago"
    assert all("_" not in label for label in words)


def test_instants_are_on_the_portals_clock_with_its_zone_named_and_codes_become_words():
    words = dict(
        inputs_in_words({"next_window_open": "2025-06-10T18:00:00+00:00", "rule": "conversation_blackout", "matched_on": "phone", "paid": True})
    )
    assert words == {
        "The window opens next": "Jun 10, 2025 14:00 EDT",
        "Rule": "A conversation in the last seven days",
        "Matched on": "phone",
        "Paid": "yes",
    }


def test_rules_and_channels_have_words():
    assert rule_label(Rule.OUTSIDE_LOCAL_WINDOW) == "Outside the client's calling hours (08:00–21:00 local time)"
    assert rule_label("something_new") == "Something new"
    assert (channel_label("call"), channel_label("sms")) == ("Call", "Text")
