"""The admin answers "why was this client not called", and staff manage suppressions there."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from campaigns.models import ContactLedgerEntry, GateDecision, Suppression
from campaigns.compliance.gate import Block, Rule, gate_record
from campaigns.compliance.ledger import ledger_record, suppression_add

from .dialflow_stub import stub_dialflow
from .release_factories import make_call_step, make_campaign, make_item, make_segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("supervisor", "s@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def blocked_item():
    campaign = make_campaign(date=timezone.localdate())
    item = make_item(campaign, make_call_step(make_segment()), client_id="C-WHY-1")
    suppression_add(reason=Suppression.Reason.ATTORNEY, channel="all", source="letter 2025-06-01", client_id=item.client_id)
    block = Block(rule=Rule.SUPPRESSED, detail="The client has an active represented by attorney suppression.", inputs={"suppression_id": 1})
    gate_record(block=block, client_id=item.client_id, channel="call", now=timezone.now(), campaign=campaign, item=item)
    ledger_record(client_id=item.client_id, phone=item.phone, kind=ContactLedgerEntry.Kind.CALL_ATTEMPT, reference="call_x", occurred_at=timezone.now() - dt.timedelta(days=1))
    return item


def test_gate_decisions_are_searchable_by_client_id(staff, blocked_item):
    other = make_item(blocked_item.campaign, blocked_item.step, client_id="C-OTHER")
    gate_record(block=Block(rule=Rule.WEEKLY_CALL_CAP, detail="7 call attempts", inputs={}), client_id=other.client_id, channel="call", now=timezone.now(), item=other)
    page = staff.get(reverse("admin:campaigns_gatedecision_changelist"), {"q": "C-WHY-1"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "C-WHY-1" in text and "Suppressed (do not contact)" in text
    assert ">suppressed<" not in text and ">call<" not in text  # the rule and channel in words
    assert "Seven call attempts in seven days already" in text  # the rule filter, in words
    assert "C-OTHER" not in text


def test_gate_decision_detail_shows_the_inputs(staff, blocked_item):
    decision = GateDecision.objects.get(client_id="C-WHY-1")
    page = staff.get(reverse("admin:campaigns_gatedecision_change", args=[decision.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Suppression: 1" in html  # the inputs in words
    assert "suppression_id" in html  # and as recorded


def test_why_not_called_page_puts_the_evidence_together(staff, blocked_item):
    page = staff.get(reverse("admin:campaigns_gatedecision_why"), {"client_id": "C-WHY-1"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Represented by attorney" in text and "letter 2025-06-01" in text  # the active suppression
    assert "call_x" in text  # the ledger
    assert 'id="gate-now"' in text and "Suppressed (do not contact)" in text  # what the gate says right now
    assert ">suppressed<" not in text and "suppression_id" not in text  # rules and inputs in words, not codes
    assert re.search(r"<td>\w{3} \d{1,2}, \d{4} \d{2}:\d{2} E[SD]T</td>", text)  # times name the portal's zone
    assert reverse("admin:campaigns_queueitem_change", args=[blocked_item.pk]) in text


def test_queue_item_page_links_to_the_answer(staff, blocked_item):
    page = staff.get(reverse("admin:campaigns_queueitem_change", args=[blocked_item.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert reverse("admin:campaigns_gatedecision_why") + "?client_id=C-WHY-1" in text
    assert "The client has an active represented by attorney suppression." in text  # decisions inline


def test_gate_decisions_cannot_be_edited_or_deleted(staff, blocked_item):
    decision = GateDecision.objects.get(client_id="C-WHY-1")
    assert staff.post(reverse("admin:campaigns_gatedecision_delete", args=[decision.pk]), {"post": "yes"}).status_code == 403
    assert staff.get(reverse("admin:campaigns_gatedecision_add")).status_code == 403
    assert GateDecision.objects.filter(pk=decision.pk).exists()


def test_staff_add_a_suppression_through_the_service(staff):
    response = staff.post(
        reverse("admin:campaigns_suppression_add"),
        {"client_id": "C-55", "phone": "", "channel": "call", "reason": "do_not_call", "note": "asked on the phone"},
    )
    assert response.status_code == 302
    suppression = Suppression.objects.get(client_id="C-55")
    assert suppression.source == "staff:supervisor" and suppression.active
    # The same suppression again is not duplicated.
    staff.post(reverse("admin:campaigns_suppression_add"), {"client_id": "C-55", "phone": "", "channel": "call", "reason": "do_not_call", "note": ""})
    assert Suppression.objects.filter(client_id="C-55").count() == 1


def test_a_suppression_needs_a_target_and_an_e164_phone(staff):
    page = staff.post(reverse("admin:campaigns_suppression_add"), {"client_id": "", "phone": "", "channel": "call", "reason": "attorney", "note": ""})
    assert page.status_code == 200 and "Give a client id" in page.content.decode()
    page = staff.post(reverse("admin:campaigns_suppression_add"), {"client_id": "", "phone": "555-0100", "channel": "call", "reason": "attorney", "note": ""})
    assert "Use E.164" in page.content.decode()
    assert not Suppression.objects.exists()


def test_lifting_suppressions_from_the_list(staff):
    kept = suppression_add(reason=Suppression.Reason.DISPUTE_HOLD, channel="all", source="call_1", client_id="C-1")
    lifted = suppression_add(reason=Suppression.Reason.DO_NOT_CALL, channel="call", source="call_2", phone="+12125550147")
    response = staff.post(
        reverse("admin:campaigns_suppression_changelist"), {"action": "lift_selected", "_selected_action": [lifted.pk]}, follow=True
    )
    assert "Lifted 1 suppression" in response.content.decode()
    lifted.refresh_from_db()
    kept.refresh_from_db()
    assert lifted.lifted_by == "staff:supervisor" and not lifted.active and kept.active


@pytest.mark.parametrize(
    "name", ["campaigns_releasebatch_changelist", "campaigns_callattempt_changelist", "campaigns_contactledgerentry_changelist"]
)
def test_release_records_are_listed(staff, blocked_item, name):
    assert staff.get(reverse(f"admin:{name}")).status_code == 200


def test_the_answer_is_linked_from_the_admin_index_the_decision_list_the_dashboard_and_the_timeline(staff, blocked_item, settings):
    with stub_dialflow(settings):  # the dashboard asks for free agents
        _the_answer_is_linked(staff, blocked_item)


def _the_answer_is_linked(staff, blocked_item):
    why = reverse("admin:campaigns_gatedecision_why")
    for url in (
        reverse("admin:index"),
        reverse("admin:campaigns_gatedecision_changelist"),
        reverse("campaigns-dashboard"),
        reverse("campaigns-client-timeline", args=[blocked_item.client_id]),
    ):
        page = staff.get(url)
        assert page.status_code == 200, url
        assert f'href="{why}' in page.content.decode(), url
    # The dashboard's link to the day's decisions opens the list filtered to that day.
    dashboard = staff.get(reverse("campaigns-dashboard")).content.decode()
    day_list = f"{reverse('admin:campaigns_gatedecision_changelist')}?campaign_date={blocked_item.campaign.date.isoformat()}"
    assert day_list in dashboard
    listed = staff.get(day_list)
    assert listed.status_code == 200
    assert [d.client_id for d in listed.context["cl"].result_list] == ["C-WHY-1"]


def test_the_index_link_is_only_for_who_may_read_gate_decisions(client, blocked_item):
    user = get_user_model().objects.create_user("plain-staff", password="pw-for-tests-only", is_staff=True)
    client.force_login(user)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    assert reverse("admin:campaigns_gatedecision_why") not in page.content.decode()
