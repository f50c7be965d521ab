"""Dialflow down: free agents are unknown, so nothing is released and the supervisor is told; once
Dialflow answers again the queue is dialed, each item once."""

from __future__ import annotations

import socket

import pytest

from campaigns.models import Alert, CallAttempt, QueueItem
from campaigns.calls.release import LoopState, Pacer, release_pass
from integrations.http import reset_sessions
from integrations.sandbox.models import SimulatedCall

from .harness import NOW, assert_invariants, business_clock, deliver_webhooks, queued_campaign, release_until_done

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dialflow_down_releases_nothing_until_it_answers_again(sandbox, settings) -> None:
    campaign = queued_campaign(60, ring_group="billing")
    settings.DIALFLOW_URL = f"http://127.0.0.1:{closed_port()}"
    settings.DIALFLOW_API_KEY = "dialflow-key"
    reset_sessions()
    for _ in range(5):
        campaign.refresh_from_db()
        assert not release_pass(campaign=campaign, now_fn=lambda: NOW, state=LoopState(pacer=Pacer(None)))
    assert not CallAttempt.objects.exists() and not SimulatedCall.objects.exists()
    assert QueueItem.objects.filter(campaign=campaign, status=QueueItem.Status.QUEUED).count() == 60
    assert Alert.objects.filter(campaign=campaign, source="dialflow", acknowledged_at=None).count() == 1
    assert_invariants(campaign)

    settings.DIALFLOW_URL = settings.DIALFLOW_API_KEY = ""
    reset_sessions()
    release_until_done(campaign, now_fn=business_clock())
    assert SimulatedCall.objects.count() == 60
    deliver_webhooks()
    assert_invariants(campaign)
