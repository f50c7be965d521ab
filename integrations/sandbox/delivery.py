"""Delivering the simulators' webhooks to the app, like the vendors do: over HTTP, at least once.

Deliveries wait in `SimulatedDelivery` until due. `sandbox_dispatch_due(now=...)` claims each due
row with a conditional update (pending → sending) before POSTing it, so several processes
dispatching at once never send the same row twice; duplicates happen only when the duplicate
knob created a second row on purpose. A non-2xx answer or a timeout is retried up to
MAX_RETRIES times (Retell's behaviour), then the row is marked failed.

In the web process a daemon thread started on the first simulator request calls it every
fraction of a second. Tests call `sandbox_dispatch_due(now=...)` themselves, with the clock they
choose, and the thread never starts under Django's test environment.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

import requests
from django.conf import settings
from django.core import mail
from django.db import close_old_connections
from django.utils import timezone

from integrations.retell import client as retell
from integrations.stripe import client as stripe
from integrations.sandbox.models import SimulatedCall, SimulatedDelivery, SimulatorConfig

log = logging.getLogger(__name__)

MAX_RETRIES = 3
RETRY_DELAYS_SECONDS = (1.0, 3.0, 9.0)  # simulated seconds, scaled by the speed factor
WEBHOOK_TIMEOUT: tuple[float, float] = (3.05, 10.0)  # Retell waits 10 s for an answer
STALE_CLAIM = dt.timedelta(seconds=60)  # a sender that died mid-POST gives its row back
WEBHOOK_PATHS = {
    "retell": "/webhooks/retell/",
    "retell_function": "/webhooks/retell/functions/",
    "heymarket": "/webhooks/heymarket/",
    "stripe": "/webhooks/stripe/",
}
SIGNED_VENDORS = frozenset({"retell", "retell_function"})  # Retell signs its custom-function calls like its webhooks
# A sandbox client opening a payment link it was texted: a GET of the link that follows redirects.
CLIENT = "client"

_session = requests.Session()
_worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def webhook_url(vendor: str) -> str:
    return settings.SANDBOX_APP_URL.rstrip("/") + WEBHOOK_PATHS[vendor]


def encode(payload: Any) -> bytes:
    # Compact and with non-ASCII characters kept as they are, like Retell's bodies.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _headers(vendor: str, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": f"billing-dialer-sandbox-{vendor}"}
    if vendor in SIGNED_VENDORS:
        # Signed at send time with the wall clock, as the receiver checks against its own clock.
        headers[retell.SIGNATURE_HEADER] = retell.sign(
            body.decode("utf-8"), api_key=retell.webhook_key(), timestamp_ms=int(time.time() * 1000)
        )
    if vendor == "stripe":
        headers[stripe.SIGNATURE_HEADER] = stripe.signature_header(
            body.decode("utf-8"), secret=stripe.webhook_secret(), timestamp=int(time.time())
        )
    return headers


def _release_stale_claims(now: dt.datetime) -> None:
    SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.SENDING, claimed_at__lt=now - STALE_CLAIM).update(
        status=SimulatedDelivery.Status.PENDING, claimed_by=""
    )


def sandbox_dispatch_due(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """POST every webhook due at `now` (default: the clock) that this call manages to claim.

    Returns how many deliveries were attempted.
    """
    now = now or timezone.now()
    _release_stale_claims(now)
    due = list(
        SimulatedDelivery.objects.filter(status=SimulatedDelivery.Status.PENDING, due_at__lte=now)
        .order_by("due_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    attempted = 0
    for pk in due:
        claimed = SimulatedDelivery.objects.filter(pk=pk, status=SimulatedDelivery.Status.PENDING).update(
            status=SimulatedDelivery.Status.SENDING, claimed_by=_worker_id, claimed_at=now
        )
        if not claimed:
            continue  # another process got it first
        delivery = SimulatedDelivery.objects.get(pk=pk)
        _deliver(delivery, now=now)
        attempted += 1
    return attempted


def _deliver(delivery: SimulatedDelivery, *, now: dt.datetime) -> None:
    body = encode(delivery.payload)
    if delivery.vendor == "retell":
        # Once Retell has said a call ended, get-call says so too (whatever the clock).
        if delivery.event in ("call_ended", "call_analyzed"):
            SimulatedCall.objects.filter(call_id=delivery.reference).update(ended_delivered=True)
        if delivery.event == "call_analyzed":
            SimulatedCall.objects.filter(call_id=delivery.reference).update(analyzed_delivered=True)
    status_code: int | None = None
    error = ""
    try:
        if delivery.vendor == CLIENT:
            response = _session.get(
                settings.SANDBOX_APP_URL.rstrip("/") + str(delivery.payload.get("path") or "/"),
                headers={"User-Agent": "billing-dialer-sandbox-client"}, timeout=WEBHOOK_TIMEOUT, allow_redirects=True,
            )  # fmt: skip
        else:
            response = _session.post(webhook_url(delivery.vendor), data=body, headers=_headers(delivery.vendor, body), timeout=WEBHOOK_TIMEOUT)
        status_code = response.status_code
        ok = 200 <= response.status_code < 300
        if not ok:
            error = f"HTTP {response.status_code}: {response.text[:200]}"
    except requests.RequestException as exc:
        ok = False
        error = f"{type(exc).__name__}: {str(exc)[:250]}"
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "last_status_code": status_code, "last_error": error[:300], "claimed_by": ""}
    if ok:
        fields.update(status=SimulatedDelivery.Status.DELIVERED, delivered_at=timezone.now())
    elif attempts > MAX_RETRIES:
        fields.update(status=SimulatedDelivery.Status.FAILED)
    else:
        speed = max(SimulatorConfig.load().speed_factor, 0.01)
        delay = max(RETRY_DELAYS_SECONDS[attempts - 1] / speed, 0.05)
        fields.update(status=SimulatedDelivery.Status.PENDING, due_at=now + dt.timedelta(seconds=delay))
    SimulatedDelivery.objects.filter(pk=delivery.pk, status=SimulatedDelivery.Status.SENDING).update(**fields)
    log.log(
        logging.INFO if ok else logging.WARNING,
        "sandbox webhook delivered" if ok else "sandbox webhook not accepted",
        extra={
            "vendor": delivery.vendor,
            "webhook_event": delivery.event,
            "reference": delivery.reference,
            "attempt": attempts,
            "status": status_code,
            "duplicate": delivery.is_duplicate,
            "error": error[:200],
        },
    )


# --- The background dispatcher of the web process ----------------------------------------

_thread: threading.Thread | None = None
_thread_pid: int | None = None
_thread_lock = threading.Lock()


def auto_dispatch_allowed() -> bool:
    """False under Django's test environment (tests drive the clock) or when switched off."""
    if not getattr(settings, "SANDBOX_AUTO_DISPATCH", True):
        return False
    # setup_test_environment() installs mail.outbox: a test run dispatches by hand.
    return not hasattr(mail, "outbox")


def dispatcher_ensure_started() -> bool:
    """Start the dispatcher thread of this process once (again after a fork). True if running."""
    global _thread, _thread_pid
    if not auto_dispatch_allowed():
        return False
    with _thread_lock:
        if _thread is not None and _thread.is_alive() and _thread_pid == os.getpid():
            return True
        _thread = threading.Thread(target=_run, name="sandbox-webhook-dispatcher", daemon=True)
        _thread_pid = os.getpid()
        _thread.start()
    log.info("sandbox webhook dispatcher started", extra={"pid": os.getpid()})
    return True


def _run() -> None:
    while True:
        attempted = 0
        try:
            if SimulatorConfig.load().auto_dispatch:
                attempted = sandbox_dispatch_due()
        except Exception:  # the loop must outlive a database hiccup
            log.exception("sandbox webhook dispatcher pass failed")
        finally:
            close_old_connections()
        time.sleep(0.05 if attempted else 0.25)
