"""Clients' replies injected into the sandbox HeyMarket reach the app as HeyMarket delivers them."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf

from campaigns.models import FollowUpTask, SmsMessage, Suppression, WebhookEvent
from integrations import http
from integrations.sandbox.delivery import sandbox_dispatch_due
from integrations.sandbox.models import SimulatedDelivery, SimulatedMessage
from tests.campaigns.sms_factories import queue_item, running_campaign, shipped_cadences  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heymarket_sandbox(settings, live_server, shipped_cadences, monkeypatch):
    settings.HEYMARKET_API_TOKEN = ""
    settings.SANDBOX_APP_URL = live_server.url
    monkeypatch.setattr(Conf, "SYNC", True)
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.01)
    http.reset_sessions()
    yield live_server
    http.reset_sessions()


def inject(live_server, phone: str, text: str, inbox_id: str = "") -> None:
    # The sandbox controls take a staff session (and its CSRF token), as a person uses them.
    staff = get_user_model().objects.get_or_create(username="sandbox.staff", defaults={"is_staff": True, "is_superuser": True})[0]
    session = requests.Session()
    session.cookies.update(_session_cookie(staff))
    session.get(f"{live_server.url}/admin/", timeout=10)
    response = session.post(
        f"{live_server.url}/sandbox/heymarket/inject",
        json={"phone": phone, "text": text, "inbox_id": inbox_id},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{live_server.url}/admin/"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # Deliver what HeyMarket would POST now (the message, then any opt status event).
    sandbox_dispatch_due(now=timezone.now() + dt.timedelta(seconds=1))
    assert set(SimulatedDelivery.objects.values_list("last_status_code", flat=True)) == {200}


def _session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {name: morsel.value for name, morsel in client.cookies.items()}


def outbound(phone: str) -> list[SimulatedMessage]:
    return list(SimulatedMessage.objects.filter(direction=SimulatedMessage.Direction.OUTBOUND, phone=phone.lstrip("+")))


def test_an_injected_reply_becomes_a_task(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign, segment="Reso Servicing", day=122, action_type="BOTH")
    inject(heymarket_sandbox, item.phone, "Can I pay half now and half next week?", inbox_id=item.inbox_id)
    task = FollowUpTask.objects.get(phone=item.phone)
    assert task.kind == FollowUpTask.Kind.SMS_REPLY and task.team == "resurrection"
    assert task.detail == "Can I pay half now and half next week?" and task.client_id == item.client_id


def test_an_injected_stop_suppresses_the_number(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign, segment="RED Initial", day=20)
    inject(heymarket_sandbox, item.phone, "  sToP ", inbox_id=item.inbox_id)

    assert set(WebhookEvent.objects.values_list("event_type", flat=True)) == {"message_recieved", "target_opt_out"}
    [suppression] = Suppression.objects.filter(phone=item.phone)
    assert suppression.reason == Suppression.Reason.SMS_OPT_OUT and suppression.lifted_at is None
    # HeyMarket itself had opted the contact out on receipt, so it refuses our confirmation:
    # the attempt is kept with HeyMarket's reason, never retried into a second text.
    confirmation = SmsMessage.objects.get(phone=item.phone, kind=SmsMessage.Kind.OPT_OUT_CONFIRMATION)
    assert confirmation.status == SmsMessage.Status.FAILED and "opted out" in confirmation.error
    assert outbound(item.phone) == []

    inject(heymarket_sandbox, item.phone, "start", inbox_id=item.inbox_id)
    assert not Suppression.objects.filter(phone=item.phone, lifted_at__isnull=True).exists()
    [welcome_back] = outbound(item.phone)
    assert "subscribed to account texts again" in welcome_back.text


def test_an_injected_help_gets_the_help_reply(heymarket_sandbox):
    campaign = running_campaign()
    item = queue_item(campaign, segment="RED Initial", day=20)
    inject(heymarket_sandbox, item.phone, "HELP", inbox_id=item.inbox_id)
    [reply] = outbound(item.phone)
    assert reply.inbox_id == item.inbox_id and "reply to this text" in reply.text
