"""The REST API: authentication, role permissions, campaign controls, filters, tasks, KPIs, schema."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from cadences.models import Phase
from campaigns.dashboard import selectors
from campaigns.compliance import gate as compliance
from campaigns.models import Campaign, DailyKpi, FollowUpTask, QueueItem
from tests.campaigns.dashboard_factories import (
    at,
    billing_manager,
    make_attempt,
    make_campaign,
    make_items,
    make_segment,
    make_step,
    make_user,
    supervisor,
)

pytestmark = pytest.mark.django_db

S = QueueItem.Status


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    cache.clear()


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def day() -> dict[str, Any]:
    red = make_step(make_segment("RED Initial"), day=20, phase=Phase.PAST_DUE)
    reso = make_step(make_segment("Reso Initial", suspension_day=90), day=95, phase=Phase.RE_ENGAGEMENT)
    campaign = make_campaign(date=selectors.today(), status=Campaign.Status.DRAFT)
    red_items = make_items(campaign, red, 5)
    reso_items = make_items(campaign, reso, 3)
    QueueItem.objects.filter(pk__in=[red_items[0].pk, red_items[1].pk]).update(status=S.ANSWERED)
    QueueItem.objects.filter(pk=reso_items[0].pk).update(status=S.SKIPPED, skip_reason="suppressed")
    return {"campaign": campaign, "red": red_items, "reso": reso_items, "red_step": red, "reso_step": reso}


def test_a_token_from_the_token_endpoint_authenticates() -> None:
    supervisor("sam")
    anonymous = APIClient()
    assert anonymous.get("/api/campaigns/").status_code in (401, 403)
    response = anonymous.post("/api/token/", {"username": "sam", "password": "pw-for-tests-1"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anonymous.get("/api/campaigns/").status_code == 200
    assert APIClient().post("/api/token/", {"username": "sam", "password": "wrong"}, format="json").status_code == 401


def test_session_authentication_works_too(day: dict[str, Any]) -> None:
    client = APIClient()
    client.force_login(billing_manager())
    assert client.get("/api/campaigns/").status_code == 200


def test_campaign_list_and_detail_with_live_counters(day: dict[str, Any]) -> None:
    campaign = day["campaign"]
    client = api(billing_manager())
    listing = client.get("/api/campaigns/").json()
    assert [c["id"] for c in listing["results"]] == [campaign.pk]
    assert listing["results"][0]["status"] == "draft"

    detail = client.get(f"/api/campaigns/{campaign.pk}/").json()
    assert detail["date"] == campaign.date.isoformat()
    live = detail["live"]
    assert live["total_items"] == 8
    assert live["counters"]["answered"] == 2 and live["counters"]["queued"] == 5 and live["counters"]["skipped"] == 1
    assert live["skipped_by_reason"] == [{"reason": "suppressed", "reason_display": compliance.rule_label("suppressed"), "count": 1}]
    assert {rg["ring_group"] for rg in live["ring_groups"]} == {
        day["red_step"].segment.billing_ring_group,
        day["reso_step"].segment.resurrection_ring_group,
    }


def test_supervisors_control_campaigns_and_billing_managers_cannot(day: dict[str, Any]) -> None:
    campaign = day["campaign"]
    assert api(billing_manager()).post(f"/api/campaigns/{campaign.pk}/start/").status_code == 403
    assert api(make_user("nobody")).get("/api/campaigns/").status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT

    boss = api(supervisor())
    started = boss.post(f"/api/campaigns/{campaign.pk}/start/")
    assert started.status_code == 200 and started.json()["status"] == "loading"
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)  # the load finished
    assert boss.post(f"/api/campaigns/{campaign.pk}/pause/").json()["status"] == "paused"
    assert boss.post(f"/api/campaigns/{campaign.pk}/resume/").json()["status"] == "running"
    assert boss.post(f"/api/campaigns/{campaign.pk}/stop/").json()["status"] == "stopping"

    conflict = boss.post(f"/api/campaigns/{campaign.pk}/pause/")
    assert conflict.status_code == 409
    assert conflict.json()["status"] == "stopping"
    assert boss.get(f"/api/campaigns/{campaign.pk}/start/").status_code == 405


def test_supervisors_create_the_campaign_of_a_date_once() -> None:
    tomorrow = selectors.today() + dt.timedelta(days=1)
    assert api(billing_manager()).post("/api/campaigns/", {"date": tomorrow.isoformat()}, format="json").status_code == 403
    boss = api(supervisor())
    created = boss.post("/api/campaigns/", {"date": tomorrow.isoformat()}, format="json")
    assert created.status_code == 201 and created.json()["status"] == "draft" and created.json()["date"] == tomorrow.isoformat()
    again = boss.post("/api/campaigns/", {"date": tomorrow.isoformat()}, format="json")
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert Campaign.objects.filter(date=tomorrow).count() == 1
    bad = boss.post("/api/campaigns/", {"date": "not a date"}, format="json")
    assert bad.status_code == 400 and "date" in bad.json()
    past = boss.post("/api/campaigns/", {"date": (selectors.today() - dt.timedelta(days=1)).isoformat()}, format="json")
    assert past.status_code == 400 and "passed" in past.json()["date"][0]


def test_queue_items_filter_by_status_ring_group_segment_phase_and_client(day: dict[str, Any]) -> None:
    client = api(billing_manager())
    url = "/api/queue-items/"

    def ids(**params: Any) -> set[int]:
        response = client.get(url, params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    red_ids = {i.pk for i in day["red"]}
    reso_ids = {i.pk for i in day["reso"]}
    assert ids() == red_ids | reso_ids
    assert ids(status="answered") == {day["red"][0].pk, day["red"][1].pk}
    assert ids(status=["answered", "skipped"]) == {day["red"][0].pk, day["red"][1].pk, day["reso"][0].pk}
    assert ids(ring_group=day["reso_step"].segment.resurrection_ring_group) == reso_ids
    assert ids(segment="RED Initial") == red_ids
    assert ids(phase=Phase.RE_ENGAGEMENT) == reso_ids
    assert ids(client_id=day["red"][3].client_id) == {day["red"][3].pk}
    assert ids(campaign=day["campaign"].pk, skip_reason="suppressed") == {day["reso"][0].pk}

    row = client.get(url, {"client_id": day["red"][3].client_id}).json()["results"][0]
    assert row["segment"] == "RED Initial" and row["phase"] == "past_due" and row["campaign_date"] == day["campaign"].date.isoformat()
    assert row["phase_display"] == "Past due" and "_" not in row["status_display"]
    skipped = client.get(url, {"campaign": day["campaign"].pk, "skip_reason": "suppressed"}).json()["results"][0]
    assert (skipped["skip_reason"], skipped["skip_reason_display"]) == ("suppressed", "Suppressed (do not contact)")
    assert skipped["status_display"] == "Skipped"

    bad = client.get(url, {"status": "exploded"})
    assert bad.status_code == 400 and "status" in bad.json()
    assert client.post(url, {}).status_code in (403, 405)


def test_queue_items_are_paginated(day: dict[str, Any]) -> None:
    make_items(day["campaign"], day["red_step"], 120)
    page = api(supervisor()).get("/api/queue-items/").json()
    assert page["count"] == 128 and len(page["results"]) == 100 and page["next"]


def test_follow_up_tasks_list_and_update(day: dict[str, Any]) -> None:
    attempt = make_attempt(day["red"][0], outcome="answered")
    dispute = FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.DISPUTE, client_id=day["red"][0].client_id, due_at=at(day["campaign"].date, 17), source_ref=attempt.call_id
    )
    FollowUpTask.objects.create(
        kind=FollowUpTask.Kind.CALLBACK_REQUEST, client_id=day["red"][1].client_id, due_at=at(day["campaign"].date, 18),
        source_ref="call_other", status=FollowUpTask.Status.DONE,
    )
    agent = supervisor("ana.agent")
    boss = api(supervisor())

    open_tasks = boss.get("/api/follow-up-tasks/", {"status": "open"}).json()["results"]
    assert [t["id"] for t in open_tasks] == [dispute.pk]
    assert boss.get("/api/follow-up-tasks/", {"kind": "callback_request"}).json()["count"] == 1
    assert boss.get("/api/follow-up-tasks/", {"unassigned": "true"}).json()["count"] == 2

    url = f"/api/follow-up-tasks/{dispute.pk}/"
    reader = api(billing_manager())
    assert reader.get(url).status_code == 200
    assert reader.patch(url, {"status": "done"}, format="json").status_code == 403

    taken = boss.patch(url, {"owner": "ana.agent", "status": "in_progress"}, format="json")
    assert taken.status_code == 200 and taken.json()["owner"] == "ana.agent"
    done = boss.patch(url, {"status": "done", "kind": "hardship"}, format="json").json()
    dispute.refresh_from_db()
    assert dispute.owner == agent and dispute.status == "done" and dispute.resolved_at is not None
    assert dispute.kind == FollowUpTask.Kind.DISPUTE and done["kind"] == "dispute"  # read-only fields stay
    assert boss.get("/api/follow-up-tasks/", {"owner": "ana.agent"}).json()["count"] == 1

    reopened = boss.patch(url, {"status": "open"}, format="json").json()
    assert reopened["resolved_at"] is None
    assert (reopened["kind_display"], reopened["status_display"]) == ("Dispute", "Open")
    assert boss.patch(url, {"owner": "nobody-by-that-name"}, format="json").status_code == 400
    assert boss.patch(url, {"status": "finished"}, format="json").status_code == 400


def test_kpis_today_and_the_stored_windows(day: dict[str, Any]) -> None:
    today = day["campaign"].date
    make_attempt(day["red"][0], outcome="answered")
    make_attempt(day["red"][1], outcome="voicemail")
    for days_ago, calls, answered in ((1, 10, 4), (5, 20, 5), (20, 30, 3), (40, 99, 99)):
        DailyKpi.objects.create(
            date=today - dt.timedelta(days=days_ago), segment_name="RED Initial", phase=Phase.PAST_DUE,
            calls_placed=calls, answered=answered, right_party_contacts=answered, promises=1, amount_promised=Decimal("50.00"),
        )
    client = api(billing_manager())
    data = client.get("/api/kpis/").json()

    red_today = next(r for r in data["today"]["rows"] if r["segment"] == "RED Initial")
    assert red_today["figures"]["calls_placed"] == 2
    assert red_today["rates"]["contact_rate"] == pytest.approx(0.5)
    assert data["last_7_days"]["total"]["figures"]["calls_placed"] == 30
    assert data["last_7_days"]["total"]["rates"]["contact_rate"] == pytest.approx(9 / 30)
    assert data["last_30_days"]["total"]["figures"]["calls_placed"] == 60
    assert data["last_30_days"]["total"]["figures"]["amount_promised"] == "150.00"
    assert len(data["trend"]["dates"]) == 30
    contact = next(r for r in data["trend"]["rates"] if r["key"] == "contact_rate")
    assert contact["values"][-2] == pytest.approx(0.4) and contact["values"][-1] is None

    only_reso = client.get("/api/kpis/", {"segment": "Reso Initial"}).json()
    assert only_reso["last_30_days"]["rows"] == []
    assert client.get("/api/kpis/", {"phase": "nonsense"}).status_code == 400
    assert api(make_user("nobody")).get("/api/kpis/").status_code == 403


def test_the_openapi_schema_and_docs_page(day: dict[str, Any]) -> None:
    client = api(billing_manager())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for expected in (
        "/api/campaigns/",
        "/api/campaigns/{id}/",
        "/api/campaigns/{id}/stop/",
        "/api/queue-items/",
        "/api/follow-up-tasks/{id}/",
        "/api/kpis/",
        "/api/token/",
    ):
        assert expected in paths, expected
    params = {p["name"] for p in paths["/api/queue-items/"]["get"]["parameters"]}
    assert {"status", "ring_group", "segment", "phase", "client_id"} <= params

    docs = client.get(reverse("campaigns-api-docs"))
    assert docs.status_code == 200
    html = docs.content.decode()
    # Served from static/, never from another host (a bare "cdn" could be part of a CSRF token).
    assert "swagger-ui" in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_the_schema_generates_without_warnings_and_validates(tmp_path: Any) -> None:
    # --fail-on-warn turns any unresolved serializer, enum clash or untyped field into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/queue-items/" in (tmp_path / "schema.yaml").read_text()


def _queries(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_api_queries_do_not_grow_with_the_rows(day: dict[str, Any]) -> None:
    """Aggregates in SQL, related rows joined: a page of 8 items costs what a page of 100 does."""
    campaign = day["campaign"]
    client = api(supervisor())
    owner = supervisor("ana.agent")

    def add_tasks(count: int) -> None:
        FollowUpTask.objects.bulk_create(
            FollowUpTask(
                kind=FollowUpTask.Kind.DISPUTE, client_id=f"C-{n}", owner=owner, due_at=at(campaign.date, 17), source_ref=f"call_{uuid.uuid4().hex}"
            )
            for n in range(count)
        )

    urls = (
        "/api/campaigns/",
        f"/api/campaigns/{campaign.pk}/",
        "/api/queue-items/",
        "/api/follow-up-tasks/",
        "/api/kpis/",
    )
    for item in day["red"][:3]:
        make_attempt(item, outcome="answered")
    add_tasks(3)
    _queries(client, urls[0])  # the first request fills the per-process caches (permissions, content types)
    few = {url: _queries(client, url) for url in urls}

    more = make_items(campaign, day["red_step"], 150) + make_items(campaign, day["reso_step"], 150)
    for item in more[:120]:
        make_attempt(item, outcome="voicemail")
    add_tasks(120)
    cache.clear()
    many = {url: _queries(client, url) for url in urls}
    assert many == few
