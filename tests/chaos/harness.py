"""What every fault-injection case shares: a queued campaign, the release driven until the queue
is empty, the simulators' webhooks delivered over HTTP and processed, and the invariants."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import requests
from django.db import connection
from django.utils import timezone

from cadences.models import CadenceStep, DialerSettings
from campaigns.models import Campaign, QueueItem
from campaigns.lifecycle import invariants
from campaigns.calls.release import LoopState, Pacer, release_pass
from integrations.sandbox import delivery
from integrations.sandbox.models import SimulatedDelivery
from campaigns.webhooks import inbox
from tests.campaigns.release_factories import dialer_settings, make_call_step, make_campaign, make_items, make_segment

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2025, 6, 10, 10, 0, tzinfo=NY)
S = QueueItem.Status


def queued_campaign(count: int, *, date: dt.date = NOW.date(), **item_fields: object) -> Campaign:
    """A running campaign of `count` call items; pacing off, concurrency and batch timeout out of the way."""
    dialer_settings(max_concurrent_calls=30_000, max_call_attempts_per_day=1)
    DialerSettings.objects.update(calls_per_second=0)  # the admin refuses 0; pacing is not under test
    campaign = make_campaign(date=date, batch_size=50, batch_timeout_seconds=1, release_threshold=1)
    make_items(campaign, call_step(), count, **item_fields)
    return campaign


def call_step() -> CadenceStep:
    return make_call_step(make_segment())


def business_clock(start: dt.datetime = NOW, speed: float = 100.0) -> Callable[[], dt.datetime]:
    """Business time `speed` times real time, so backoffs of a minute pass in a fraction of it."""
    started = time.monotonic()
    return lambda: start + dt.timedelta(seconds=(time.monotonic() - started) * speed)


def open_call_items(campaign: Campaign) -> int:
    return QueueItem.objects.filter(campaign=campaign, status__in=[S.QUEUED, S.RELEASING]).count()


def release_until_done(campaign: Campaign, *, now_fn: Callable[[], dt.datetime], timeout: float = 300) -> None:
    """Release passes (each with a fresh loop state, so a Retell pause is the items' own backoff)
    until no call item is left queued or releasing."""
    deadline = time.monotonic() + timeout
    while open_call_items(campaign):
        assert time.monotonic() < deadline, f"{open_call_items(campaign)} items still not dialed"
        campaign.refresh_from_db()
        if not release_pass(campaign=campaign, now_fn=now_fn, state=LoopState(pacer=Pacer(None))):
            time.sleep(0.05)


def deliver_webhooks(*, senders: int = 4) -> None:
    """Every pending simulator webhook POSTed to the app (several senders at once, as in a sandbox
    day), then every stored event processed."""
    future = timezone.now() + dt.timedelta(days=1)

    def send() -> None:
        try:
            while delivery.sandbox_dispatch_due(now=future, limit=50):
                pass
        finally:
            connection.close()

    while SimulatedDelivery.objects.filter(status__in=[SimulatedDelivery.Status.PENDING, SimulatedDelivery.Status.SENDING]).exists():
        threads = [threading.Thread(target=send) for _ in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=900)
    assert not SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.FAILED).exists(), list(
        SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.FAILED).values("event", "last_error")[:3]
    )
    # The processing tasks the webhooks enqueued, run here in arrival order: the periodic retry
    # runs exactly those (every event not yet processed).
    later = timezone.now() + dt.timedelta(minutes=2)
    while inbox.webhook_events_retry(now=later, limit=2000):
        pass


def assert_invariants(campaign: Campaign) -> None:
    failed = [c for c in invariants.checks_before_flush(campaign=campaign) if not c.ok]
    assert not failed, json.dumps(invariants.as_dicts(failed), indent=2, default=str)


class SlowCreateCall(BaseHTTPRequestHandler):
    """A proxy in front of the app: every `slow_every`-th create-call is forwarded at once (so the
    simulator acts on it) but answered only after `delay` seconds — a Retell that times out."""

    target = ""
    delay = 0.0
    slow_every = 2
    counter = 0
    lock = threading.Lock()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        answer = requests.request(self.command, self.target + self.path, data=body, headers=headers, timeout=30)
        if self.path.endswith("/create-phone-call"):
            with self.lock:
                type(self).counter += 1
                slow = type(self).counter % self.slow_every == 0
            if slow:
                time.sleep(self.delay)
        try:
            self.send_response(answer.status_code)
            for name in ("Content-Type", "Retry-After"):
                if name in answer.headers:
                    self.send_header(name, answer.headers[name])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, which is the point

    do_GET = do_POST = do_PATCH = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


def slow_proxy(target: str, *, delay: float, slow_every: int) -> ThreadingHTTPServer:
    handler = type("SlowCreateCallTo", (SlowCreateCall,), {"target": target.rstrip("/"), "delay": delay, "slow_every": slow_every, "counter": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
