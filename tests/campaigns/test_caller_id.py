"""Caller-id choice: the client's area code, else their state, else any; least used today."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.calls.caller_ids import area_code, caller_id_choose, caller_id_usage, number_state
from campaigns.models import CallAttempt

from .release_factories import make_call_step, make_campaign, make_item, make_segment

NYC_1 = "+12125550100"
NYC_2 = "+12125550111"
BUFFALO = "+17165550100"  # New York state, another area code
CHICAGO = "+13125550100"
BOSTON = "+16175550100"
POOL = [CHICAGO, NYC_1, NYC_2, BUFFALO, BOSTON]


def test_area_code_and_state_of_a_number():
    assert area_code("+12125550100") == "212"
    assert area_code("+442071234567") == ""
    assert number_state(NYC_1) == "NY"
    assert number_state(BUFFALO) == "NY"
    assert number_state(BOSTON) == "MA"  # geocoded as the state's name, not "City, ST"
    assert number_state("+442071234567") == ""
    assert number_state("not a number") == ""


def test_same_area_code_wins_and_the_least_used_of_them():
    assert caller_id_choose(to_number="+12125559876", state="NY", pool=POOL, usage={}) == NYC_1
    assert caller_id_choose(to_number="+12125559876", state="NY", pool=POOL, usage={NYC_1: 3, NYC_2: 1}) == NYC_2


def test_same_state_when_no_area_code_matches():
    # 315 (Syracuse) is in New York; no 315 number in the pool; the three NY numbers qualify.
    chosen = caller_id_choose(to_number="+13155550123", state="NY", pool=POOL, usage={NYC_1: 5, NYC_2: 5, BUFFALO: 2, CHICAGO: 0})
    assert chosen == BUFFALO


def test_state_is_derived_from_the_phone_when_the_row_has_none():
    assert caller_id_choose(to_number="+17815550123", state="", pool=POOL, usage={}) == BOSTON  # 781: Massachusetts


def test_area_code_beats_a_less_used_same_state_number():
    assert caller_id_choose(to_number="+17165550999", state="NY", pool=POOL, usage={BUFFALO: 100}) == BUFFALO


def test_any_number_least_used_when_nothing_matches():
    chosen = caller_id_choose(to_number="+14155550123", state="CA", pool=POOL, usage={CHICAGO: 4, NYC_1: 1, NYC_2: 1, BUFFALO: 1, BOSTON: 0})
    assert chosen == BOSTON
    # Ties go to pool order.
    assert caller_id_choose(to_number="+14155550123", state="CA", pool=POOL, usage={}) == CHICAGO


def test_empty_pool_is_a_clear_error():
    with pytest.raises(ValueError, match="RETELL_FROM_NUMBERS"):
        caller_id_choose(to_number="+12125550123", state="NY", pool=[], usage={})


@pytest.mark.django_db
def test_usage_counts_calls_placed_since_the_given_time():
    campaign = make_campaign()
    item = make_item(campaign, make_call_step(make_segment()))
    for from_number, status in [(NYC_1, "registered"), (NYC_1, "ended"), (NYC_2, "not_dialed"), (CHICAGO, "created")]:
        CallAttempt.objects.create(campaign=campaign, queue_item=item, from_number=from_number, to_number=item.phone, status=status)
    usage = caller_id_usage(pool=POOL, since=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    assert usage == {CHICAGO: 1, NYC_1: 2, NYC_2: 0, BUFFALO: 0, BOSTON: 0}
    assert caller_id_usage(pool=POOL, since=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)) == dict.fromkeys(POOL, 0)
