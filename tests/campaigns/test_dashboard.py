"""The supervisor dashboard: who may see it, what it counts, its live feed, and its controls."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cadences.models import Phase
from campaigns.dashboard import selectors
from campaigns.compliance import gate as compliance
from campaigns.models import Alert, Campaign, QueueItem, ReleaseBatch, SmsMessage
from campaigns.transitions import queue_item_transition
from tests.campaigns.dashboard_factories import (
    billing_manager,
    make_attempt,
    make_campaign,
    make_items,
    make_segment,
    make_sms,
    make_step,
    make_user,
    supervisor,
)
from tests.campaigns.dialflow_stub import StubDialflow, stub_dialflow

pytestmark = pytest.mark.django_db

S = QueueItem.Status


def login(user: Any, client: Client | None = None) -> Client:
    client = client or Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def running_day() -> dict[str, Any]:
    """Today's running campaign: RED Initial past due (billing) and Reso re-engagement (resurrection)."""
    red = make_step(make_segment("RED Initial"), day=20, phase=Phase.PAST_DUE)
    reso = make_step(make_segment("Reso Initial", suspension_day=90), day=95, phase=Phase.RE_ENGAGEMENT)
    campaign = make_campaign(date=selectors.today(), status=Campaign.Status.DRAFT)
    red_items = make_items(campaign, red, 8)
    reso_items = make_items(campaign, reso, 4)
    return {"campaign": campaign, "red": red_items, "reso": reso_items, "red_step": red, "reso_step": reso}


def move(item: QueueItem, *path: str) -> None:
    """Walk an item forward through statuses as the release loop and webhooks would."""
    current = QueueItem.objects.get(pk=item.pk).status
    for status in path:
        assert queue_item_transition(item_id=item.pk, from_statuses=[current], to_status=status)
        current = status


def test_anonymous_visitors_are_sent_to_the_login_page(client: Client) -> None:
    for name in ("campaigns-dashboard", "campaigns-dashboard-status", "campaigns-kpis", "campaigns-client-search"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_without_a_role_get_403() -> None:
    client = login(make_user("someone.else"))
    for name in ("campaigns-dashboard", "campaigns-dashboard-status", "campaigns-kpis", "campaigns-client-search"):
        assert client.get(reverse(name)).status_code == 403
    assert client.get(reverse("campaigns-client-timeline", args=["CL1"])).status_code == 403


def test_supervisor_sees_todays_campaign_with_its_controls(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    response = login(supervisor()).get(reverse("campaigns-dashboard"))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-campaign="{campaign.pk}"' in html
    assert reverse("campaigns-campaign-control", args=[campaign.pk, "start"]) in html
    # A draft can be started; the stop button is there but hidden until the status allows it.
    assert 'data-control="start" data-statuses="draft"' in html
    assert 'data-control="stop" data-statuses="loading running paused"\n               hidden' in html
    assert "Sandbox" in html  # no vendor credentials in tests: the banner shows


def test_billing_manager_reads_the_dashboard_but_gets_no_controls(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    client = login(billing_manager())
    response = client.get(reverse("campaigns-dashboard"))

    assert response.status_code == 200
    assert "data-control=" not in response.content.decode()
    url = reverse("campaigns-campaign-control", args=[campaign.pk, "start"])
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_counters_come_from_the_rows(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPING)  # no availability lookups
    red, reso = running_day["red"], running_day["reso"]
    move(red[0], S.RELEASING, S.DIALING, S.ANSWERED)
    move(red[1], S.RELEASING, S.DIALING, S.VOICEMAIL)
    move(red[2], S.RELEASING, S.DIALING, S.TRANSFERRED)
    move(red[3], S.RELEASING, S.DIALING, S.NO_ANSWER)
    move(red[4], S.RELEASING, S.DIALING, S.FAILED)
    move(red[5], S.RELEASING, S.DIALING)
    move(red[6], S.RELEASING)
    QueueItem.objects.filter(pk=reso[0].pk).update(status=S.SKIPPED, skip_reason="contact_cap")
    QueueItem.objects.filter(pk=reso[1].pk).update(status=S.SKIPPED, skip_reason="contact_cap")
    QueueItem.objects.filter(pk=reso[2].pk).update(status=S.SKIPPED, skip_reason="window_closed")
    QueueItem.objects.filter(pk=reso[3].pk).update(status=S.INELIGIBLE)
    make_sms(red[1])
    make_sms(red[3], status=SmsMessage.Status.DELIVERED)
    make_sms(red[4], status=SmsMessage.Status.FAILED)
    make_sms(red[1], kind=SmsMessage.Kind.HELP_REPLY)  # not outreach

    payload = login(billing_manager()).get(reverse("campaigns-dashboard-status")).json()

    (card,) = payload["campaigns"]
    assert card["id"] == campaign.pk and card["status"] == "stopping"
    assert card["total_items"] == 12
    assert card["counters"] == {
        "queued": 1,
        "dialing": 2,
        "answered": 1,
        "voicemail": 1,
        "transferred": 1,
        "no_answer": 1,
        "failed": 1,
        "sms_scheduled": 0,
        "sms_sent": 2,
        "skipped": 3,
        "ineligible": 1,
    }
    assert card["sms_failed"] == 1
    assert card["skipped_by_reason"] == [{"reason": "contact_cap", "reason_display": compliance.rule_label("contact_cap"), "count": 2}, {"reason": "window_closed", "reason_display": compliance.rule_label("window_closed"), "count": 1}]
    by_group = {rg["ring_group"]: rg for rg in card["ring_groups"]}
    billing = by_group[running_day["red_step"].segment.billing_ring_group]
    assert (billing["queued"], billing["in_flight"], billing["done"], billing["free_agents"]) == (1, 2, 5, None)
    resurrection = by_group[running_day["reso_step"].segment.resurrection_ring_group]
    assert (resurrection["queued"], resurrection["in_flight"]) == (0, 0)


def test_batches_alerts_and_charts_are_in_the_feed(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED, halt_reason="Retell reports no valid payment method")
    red = running_day["red"]
    ReleaseBatch.objects.create(campaign=campaign, ring_group="red-initial-billing", available_agents=3, size=3)
    Alert.objects.create(campaign=campaign, level=Alert.Level.ERROR, source="retell", message="Retell reports no valid payment method")
    Alert.objects.create(
        campaign=campaign, source="flush", message="acknowledged already", acknowledged_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    )
    move(red[0], S.RELEASING, S.DIALING, S.TRANSFERRED)
    make_attempt(red[0], outcome="transferred")
    make_attempt(red[1], outcome="voicemail")

    client = login(supervisor())
    payload = client.get(reverse("campaigns-dashboard-status")).json()
    (card,) = payload["campaigns"]
    assert card["halt_reason"] == "Retell reports no valid payment method"
    assert [(b["ring_group"], b["size"], b["resolved_at"], b["ended"]) for b in card["batches"]] == [("red-initial-billing", 3, "", "Calls in progress")]
    assert [a["message"] for a in payload["alerts"]] == ["Retell reports no valid payment method"]
    funnel = {stage["stage"]: stage["count"] for stage in card["funnel"]}
    assert funnel == {"queued": 12, "attempted": 1, "reached": 1, "resolved": 1}
    mix = card["outcome_mix"]
    assert len(mix["hours"]) == 1
    assert {s["outcome"]: s["counts"] for s in mix["series"]}["transferred"] == [1]

    html = client.get(reverse("campaigns-dashboard")).content.decode()
    assert "Retell reports no valid payment method" in html
    assert 'data-control="resume" data-statuses="paused"\n               >' in html


def test_the_page_and_feed_cost_the_same_queries_for_ten_or_five_hundred_items(
    running_day: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPING)
    client = login(supervisor())
    client.get(reverse("campaigns-dashboard"))  # session and permission caches warm

    with CaptureQueriesContext(connection) as small:
        client.get(reverse("campaigns-dashboard-status"))
    items = make_items(campaign, running_day["red_step"], 500)
    for item in items[:200]:
        make_attempt(item, outcome="answered")
        make_sms(item)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(reverse("campaigns-dashboard-status"))
    with CaptureQueriesContext(connection) as page_small:
        client.get(reverse("campaigns-dashboard"))
    make_items(campaign, running_day["reso_step"], 300)
    with django_assert_max_num_queries(len(page_small.captured_queries)):
        client.get(reverse("campaigns-dashboard"))


@pytest.fixture(autouse=True)
def dialflow(settings: Any) -> Iterator[type[StubDialflow]]:
    """Every test here talks to its own stand-in Dialflow: never to a server that happens to run."""
    with stub_dialflow(settings) as stub:
        yield stub


def test_free_agents_come_from_the_availability_api_and_are_reused_for_a_few_seconds(
    running_day: dict[str, Any], dialflow: type[StubDialflow]
) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    billing_group = running_day["red_step"].segment.billing_ring_group
    resurrection_group = running_day["reso_step"].segment.resurrection_ring_group
    dialflow.agents = {billing_group: 4, resurrection_group: 1}
    client = login(supervisor())

    first = client.get(reverse("campaigns-dashboard-status")).json()
    client.get(reverse("campaigns-dashboard-status"))
    client.get(reverse("campaigns-dashboard"))

    free = {rg["ring_group"]: rg["free_agents"] for rg in first["campaigns"][0]["ring_groups"]}
    assert free == {billing_group: 4, resurrection_group: 1}
    assert sorted(dialflow.hits) == sorted([billing_group, resurrection_group])  # once each, then cached


def test_a_slow_availability_api_does_not_hold_the_page(
    running_day: dict[str, Any], dialflow: type[StubDialflow], monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    billing_group = running_day["red_step"].segment.billing_ring_group
    dialflow.agents = {billing_group: 6}
    dialflow.delay_seconds = 1.0
    monkeypatch.setattr(selectors, "FREE_AGENTS_WAIT_SECONDS", 0.1)
    client = login(supervisor())

    started = time.monotonic()
    first = client.get(reverse("campaigns-dashboard-status")).json()
    assert time.monotonic() - started < dialflow.delay_seconds
    free = {rg["ring_group"]: rg["free_agents"] for rg in first["campaigns"][0]["ring_groups"]}
    assert free[billing_group] is None  # unknown yet, shown as such

    deadline = time.monotonic() + 10
    while free[billing_group] is None and time.monotonic() < deadline:
        time.sleep(0.2)
        later = client.get(reverse("campaigns-dashboard-status")).json()
        free = {rg["ring_group"]: rg["free_agents"] for rg in later["campaigns"][0]["ring_groups"]}
    assert free[billing_group] == 6  # the lookup finished in the background
    assert dialflow.hits.count(billing_group) == 1


def test_stop_asks_for_confirmation_then_stops_on_post(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    client = login(supervisor(), Client(enforce_csrf_checks=True))
    url = reverse("campaigns-campaign-control", args=[campaign.pk, "stop"])

    confirm = client.get(url)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Stop the campaign for the day?" in html and 'name="csrfmiddlewaretoken"' in html
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING  # asking changes nothing

    assert client.post(url).status_code == 403  # no CSRF token: refused
    token = confirm.context["csrf_token"]
    response = client.post(url, {"csrfmiddlewaretoken": str(token)}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("campaigns-dashboard")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.STOPPING
    assert "stop requested" in response.content.decode()


def test_an_illegal_transition_is_reported_and_changes_nothing(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.STOPPED)
    client = login(supervisor())
    response = client.post(reverse("campaigns-campaign-control", args=[campaign.pk, "pause"]), follow=True)
    assert "is not running" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.STOPPED
    assert client.post(reverse("campaigns-campaign-control", args=[campaign.pk, "explode"])).status_code == 404


def test_pause_and_resume_from_the_dashboard(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    client = login(supervisor())
    client.post(reverse("campaigns-campaign-control", args=[campaign.pk, "pause"]))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    client.post(reverse("campaigns-campaign-control", args=[campaign.pk, "resume"]))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING


def test_a_supervisor_creates_todays_campaign_as_a_draft() -> None:
    client = login(supervisor())
    assert "Create today's campaign" in client.get(reverse("campaigns-dashboard")).content.decode()
    client.post(reverse("campaigns-campaign-create"))
    campaign = Campaign.objects.get(date=selectors.today())
    assert campaign.status == Campaign.Status.DRAFT
    assert login(billing_manager()).post(reverse("campaigns-campaign-create")).status_code == 403


def test_a_flushed_day_shows_the_counters_it_kept(running_day: dict[str, Any]) -> None:
    campaign = running_day["campaign"]
    QueueItem.objects.filter(campaign=campaign).delete()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.FLUSHED, answered=7, voicemail=3, sms_sent=5, skipped=2, rows_inserted=20
    )
    payload = login(supervisor()).get(reverse("campaigns-dashboard-status")).json()
    (card,) = payload["campaigns"]
    assert (card["counters"]["answered"], card["counters"]["voicemail"], card["counters"]["sms_sent"]) == (7, 3, 5)
    assert card["total_items"] == 20


def test_unfinished_campaigns_of_earlier_days_stay_on_the_dashboard(running_day: dict[str, Any]) -> None:
    yesterday = selectors.today() - dt.timedelta(days=1)
    stuck = make_campaign(date=yesterday, status=Campaign.Status.STOPPED, flush_error="warehouse unreachable")
    make_campaign(date=yesterday - dt.timedelta(days=1), status=Campaign.Status.FLUSHED)
    shown = selectors.dashboard_campaigns(date=selectors.today())
    assert [c.pk for c in shown] == [running_day["campaign"].pk, stuck.pk]


def _static_dir(tmp_path: Path, *, with_chart_library: bool) -> Path:
    root = tmp_path / ("with" if with_chart_library else "without")
    (root / "campaigns").mkdir(parents=True)
    for name in ("dashboard.css", "dashboard.js", "charts.js", "kpis.js"):
        (root / "campaigns" / name).write_text("/* test */")
    if with_chart_library:
        (root / "vendor" / "chart.js").mkdir(parents=True)
        (root / "vendor" / "chart.js" / "chart.umd.min.js").write_text("/* chart */")
    return root


@pytest.mark.parametrize("with_chart_library", [True, False])
def test_charts_load_the_library_only_when_it_was_fetched_and_keep_their_tables(
    running_day: dict[str, Any], settings: Any, tmp_path: Path, with_chart_library: bool
) -> None:
    settings.STATICFILES_DIRS = [_static_dir(tmp_path, with_chart_library=with_chart_library)]
    settings.STATIC_ROOT = tmp_path / "collected"
    client = login(supervisor())
    for name in ("campaigns-dashboard", "campaigns-kpis"):
        html = client.get(reverse(name)).content.decode()
        assert ("vendor/chart.js/chart.umd.min.js" in html) is with_chart_library
        assert 'class="data chart-table"' in html or 'class="kpi-table chart-table"' in html


def test_a_day_without_a_campaign_points_to_the_last_one(db) -> None:  # type: ignore[no-untyped-def]
    from campaigns.dashboard import selectors as dashboard_selectors

    last = make_campaign(date=dashboard_selectors.today() - dt.timedelta(days=1))
    client = login(supervisor())
    html = client.get(reverse("campaigns-dashboard")).content.decode()
    assert "No campaign for today yet." in html
    assert f'?date={last.date.isoformat()}"' in html and "open it for its end of day" in html
