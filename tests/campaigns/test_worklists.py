"""The portal's worklists: the follow-up queue and the Clients page, searched, filtered and paged."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cadences.models import Segment
from campaigns.dashboard import selectors
from campaigns.models import Account, FollowUpTask
from tests.campaigns.dashboard_factories import billing_manager, make_user, supervisor

pytestmark = pytest.mark.django_db


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def task(kind: str, client_id: str, *, due_in_hours: float, owner: Any = None, status: str = FollowUpTask.Status.OPEN, detail: str = "") -> FollowUpTask:
    return FollowUpTask.objects.create(
        kind=kind, client_id=client_id, client_name=f"Name of {client_id}", owner=owner, status=status, detail=detail,
        due_at=timezone.now() + dt.timedelta(hours=due_in_hours), source_ref=f"ref-{client_id}-{kind}",
    )  # fmt: skip


def shown(response: Any) -> list[str]:
    return [t.client_id for t in response.context["page"].object_list]


def test_the_follow_up_queue_filters_by_kind_owner_overdue_and_status() -> None:
    ana = make_user("ana.agent")
    late_dispute = task(FollowUpTask.Kind.DISPUTE, "C-1", due_in_hours=-3, owner=ana, detail="Says the charge is wrong")
    task(FollowUpTask.Kind.HARDSHIP, "C-2", due_in_hours=5)
    task(FollowUpTask.Kind.DISPUTE, "C-3", due_in_hours=-1, status=FollowUpTask.Status.DONE)
    client = login(supervisor())
    url = reverse("campaigns-follow-ups")

    everything = client.get(url)
    assert everything.status_code == 200
    assert shown(everything) == ["C-1", "C-2"]  # open work, soonest due first
    html = everything.content.decode()
    assert reverse("campaigns-client-timeline", args=["C-1"]) in html  # each client id opens its timeline
    assert "Dispute" in html and "Hardship" in html and ">dispute<" not in html  # kinds in words
    assert "overdue" in html and "Says the charge is wrong" in html
    assert reverse("admin:campaigns_followuptask_change", args=[late_dispute.pk]) in html  # supervisors work it there

    assert shown(client.get(url, {"kind": "dispute"})) == ["C-1"]
    assert shown(client.get(url, {"owner": str(ana.pk)})) == ["C-1"]
    assert shown(client.get(url, {"owner": "none"})) == ["C-2"]
    assert shown(client.get(url, {"overdue": "1"})) == ["C-1"]
    assert shown(client.get(url, {"status": "done"})) == ["C-3"]
    assert shown(client.get(url, {"status": "all", "kind": "dispute"})) == ["C-1", "C-3"]


def test_the_follow_up_queue_pages_and_keeps_its_filters_across_pages() -> None:
    for n in range(selectors.WORKLIST_PAGE_SIZE + 3):
        task(FollowUpTask.Kind.CALLBACK_REQUEST, f"CB-{n:03d}", due_in_hours=n)
    client = login(billing_manager())
    first = client.get(reverse("campaigns-follow-ups"), {"kind": "callback_request"})
    assert len(shown(first)) == selectors.WORKLIST_PAGE_SIZE
    assert "?kind=callback_request&amp;page=2" in first.content.decode()
    second = client.get(reverse("campaigns-follow-ups"), {"kind": "callback_request", "page": "2"})
    assert shown(second) == [f"CB-{n:03d}" for n in range(selectors.WORKLIST_PAGE_SIZE, selectors.WORKLIST_PAGE_SIZE + 3)]
    assert "admin:campaigns_followuptask_change" not in second.content.decode()


def test_the_follow_up_queue_is_for_staff_in_a_role() -> None:
    assert login(make_user("no.role")).get(reverse("campaigns-follow-ups")).status_code == 403
    assert Client().get(reverse("campaigns-follow-ups")).status_code == 302


def account(client_id: str, name: str, *, status: str = Account.Status.ACTIVE, segment: Segment | None = None, owner: str = "", seen_days_ago: int = 0) -> Account:
    seen = timezone.now() - dt.timedelta(days=seen_days_ago)
    return Account.objects.create(
        client_id=client_id, name=name, phone=f"+1212555{int(client_id[-3:]):04d}", status=status, segment=segment, owner=owner,
        amount_due=Decimal("249.00"), days_past_due=23, first_seen_at=seen, last_seen_at=seen,
    )  # fmt: skip


def test_the_clients_page_lists_accounts_with_search_filters_and_paging() -> None:
    red = Segment.objects.get(name="RED Initial")
    reso = Segment.objects.get(name="Reso Initial")
    account("AC-001", "Jordan Avery", segment=red, owner="ana", seen_days_ago=2)
    account("AC-002", "Maria Núñez", status=Account.Status.SUSPENDED, segment=reso, seen_days_ago=1)
    account("AC-003", "Sam Jordan", segment=red, owner="bo")
    client = login(supervisor())
    url = reverse("campaigns-client-search")

    listing = client.get(url)
    assert listing.status_code == 200
    assert shown(listing) == ["AC-003", "AC-002", "AC-001"]  # most recently named first
    html = listing.content.decode()
    assert reverse("campaigns-client-timeline", args=["AC-002"]) in html
    assert "Suspended" in html and "$249.00" in html and ">suspended<" not in html

    assert shown(client.get(url, {"q": "jordan"})) == ["AC-003", "AC-001"]  # part of a name
    assert shown(client.get(url, {"q": "jordan", "owner": "ana"})) == ["AC-001"]
    assert shown(client.get(url, {"status": "suspended"})) == ["AC-002"]
    assert shown(client.get(url, {"segment": str(red.pk)})) == ["AC-003", "AC-001"]
    assert shown(client.get(url, {"q": "AC-00"})) == ["AC-003", "AC-002", "AC-001"]  # the start of an id

    # One exact id or phone opens the timeline, as the header's lookup box expects.
    exact = client.get(url, {"q": "AC-002"})
    assert exact.status_code == 302 and exact["Location"] == reverse("campaigns-client-timeline", args=["AC-002"])


def test_the_clients_page_pages() -> None:
    for n in range(selectors.WORKLIST_PAGE_SIZE + 1):
        account(f"PG-{n:03d}", f"Client {n}", seen_days_ago=n)
    client = login(supervisor())
    first = client.get(reverse("campaigns-client-search"))
    assert len(shown(first)) == selectors.WORKLIST_PAGE_SIZE and "Page 1 of 2" in first.content.decode()
    assert shown(client.get(reverse("campaigns-client-search"), {"page": "2"})) == [f"PG-{selectors.WORKLIST_PAGE_SIZE:03d}"]


def test_open_alone_leaves_out_tasks_in_progress() -> None:
    task(FollowUpTask.Kind.DISPUTE, "C-OPEN", due_in_hours=1)
    task(FollowUpTask.Kind.DISPUTE, "C-WORKING", due_in_hours=2, status=FollowUpTask.Status.IN_PROGRESS)
    client = login(supervisor())
    assert shown(client.get(reverse("campaigns-follow-ups"))) == ["C-OPEN", "C-WORKING"]
    assert shown(client.get(reverse("campaigns-follow-ups"), {"status": "open"})) == ["C-OPEN"]
    assert shown(client.get(reverse("campaigns-follow-ups"), {"status": "in_progress"})) == ["C-WORKING"]
