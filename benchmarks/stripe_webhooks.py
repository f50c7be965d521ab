"""A busy day's Stripe webhook burst: 1,000 signed events, duplicated and reordered, through the
real view and database, processed with 0 lost and 0 double-counted.

450 payments of 450 accounts, each named by two events (checkout.session.completed and
payment_intent.succeeded for the same PaymentIntent), and 50 of them refunded in two steps (two
charge.refunded events, a quarter then half of the amount, cumulative) — 1,000 events — plus a
redelivery of one in five, all shuffled, posted from 4 threads. A refund that arrives before its
payment waits in the inbox for the retry, which runs once after the burst as the schedule would.
Target: every event stored once and processed, exactly 450 payments whose sum is the sum sent,
each refund counted once (the larger of its two figures), every balance right, and at least 50
events a second on the embedded default. What it makes is removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import stripe
from django.conf import settings
from django.db import close_old_connections
from django.test import Client
from django.test.utils import override_settings

from campaigns.models import Account, Payment, WebhookEvent
from campaigns.webhooks import inbox
from integrations import clock

PAYMENTS = 450
REFUNDED = 50  # the first 50 payments are refunded in part, in two events each
THREADS = 4
TARGET_EVENTS_PER_SECOND = 50.0


def _events(prefix: str) -> tuple[list[dict[str, object]], Decimal, Decimal]:
    rng = random.Random(19)
    events: list[dict[str, object]] = []
    total = refunded = Decimal("0")
    for n in range(PAYMENTS):
        cents = rng.randint(1000, 50000)
        total += Decimal(cents) / 100
        client_id, intent = f"{prefix}-{n}", f"pi_{prefix}_{n}"
        created = int(time.time())
        events.append({"id": f"evt_{prefix}_{n}_s", "object": "event", "type": "checkout.session.completed", "created": created, "data": {"object": {
            "id": f"cs_{prefix}_{n}", "object": "checkout.session", "amount_total": cents, "currency": "usd", "client_reference_id": client_id,
            "metadata": {"client_id": client_id}, "payment_intent": intent, "payment_status": "paid", "status": "complete"}}})  # fmt: skip
        events.append({"id": f"evt_{prefix}_{n}_i", "object": "event", "type": "payment_intent.succeeded", "created": created, "data": {"object": {
            "id": intent, "object": "payment_intent", "amount": cents, "amount_received": cents, "currency": "usd",
            "metadata": {"client_id": client_id}, "status": "succeeded"}}})  # fmt: skip
        if n < REFUNDED:
            for step, share in enumerate((4, 2)):
                events.append({"id": f"evt_{prefix}_{n}_r{step}", "object": "event", "type": "charge.refunded", "created": created, "data": {"object": {
                    "id": f"ch_{prefix}_{n}", "object": "charge", "amount": cents, "amount_refunded": cents // share, "payment_intent": intent,
                    "currency": "usd", "refunded": False}}})  # fmt: skip
            refunded += Decimal(cents // 2) / 100
    return events, total, refunded


def main() -> bool:
    figures = burst_run()
    held = figures["all_200"] and figures["lost"] == 0 and figures["doubled"] == 0 and figures["amount_ok"] and figures["refunds_ok"]
    return bool(held) and float(figures["rate"]) >= TARGET_EVENTS_PER_SECOND


def burst_run() -> dict[str, object]:
    """Post the burst and count what was stored, processed and paid (the chaos suite runs it too)."""
    prefix = "bench" + uuid.uuid4().hex[:6]
    now = clock.now()
    Account.objects.bulk_create(
        Account(client_id=f"{prefix}-{n}", name="Bench Client", phone="+12125550100", amount_due=Decimal("1000"), first_seen_at=now, last_seen_at=now)
        for n in range(PAYMENTS)
    )
    events, total, refunded_total = _events(prefix)
    deliveries = events + random.Random(7).sample(events, len(events) // 5)
    random.Random(8).shuffle(deliveries)
    try:
        with override_settings(STRIPE_API_KEY="", SANDBOX_ENABLED=True, ALLOWED_HOSTS=["testserver"]):
            secret = settings.STRIPE_SANDBOX_WEBHOOK_SECRET

            def post(event: dict[str, object]) -> int:
                body = json.dumps(event)
                header = stripe.WebhookSignature.generate_signature_header(body, secret)
                try:
                    return Client().post("/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header).status_code
                finally:
                    close_old_connections()

            started = time.perf_counter()
            with ThreadPoolExecutor(THREADS) as pool:
                statuses = list(pool.map(post, deliveries))
            elapsed = time.perf_counter() - started
        # A refund that came before its payment was kept unprocessed: the scheduled retry applies it.
        retried = inbox.webhook_events_retry(now=clock.now() + inbox.RETRY_AFTER + dt.timedelta(seconds=1), vendor="stripe", limit=len(events))
        stored = WebhookEvent.objects.filter(vendor="stripe", dedupe_key__startswith=f"evt_{prefix}_")
        processed = stored.filter(processed_at__isnull=False).count()
        payments = Payment.objects.filter(client_id__startswith=f"{prefix}-")
        counted = payments.count()
        amount = sum((p for p in payments.values_list("amount", flat=True)), Decimal("0"))
        refunded = sum((p for p in payments.values_list("refunded_amount", flat=True)), Decimal("0"))
        balances = dict(Account.objects.filter(client_id__startswith=f"{prefix}-").values_list("client_id", "amount_due"))
        balances_ok = all(
            balances.get(client_id) == Decimal("1000") - paid + back for client_id, paid, back in payments.values_list("client_id", "amount", "refunded_amount")
        )
        lost = len(events) - processed
        doubled = counted - PAYMENTS
        rate = len(deliveries) / elapsed
        figures = {
            "lost": lost, "doubled": doubled, "amount_ok": amount == total, "all_200": all(st == 200 for st in statuses), "rate": rate,
            "refunds_ok": refunded == refunded_total and balances_ok,
        }  # fmt: skip
        print(f"deliveries: {len(deliveries)} ({len(events)} events, {len(deliveries) - len(events)} redelivered), {THREADS} threads")
        print(f"answers: {sorted(set(statuses))}; {rate:.0f} events/s ({elapsed:.1f} s)")
        print(f"events stored {stored.count()}, processed {processed}: lost {lost}")
        print(f"payments {counted} of {PAYMENTS}, amount {amount} of {total}: double-counted {doubled}")
        print(f"refunds {REFUNDED} payments, refunded {refunded} of {refunded_total}; {retried} early refunds applied on retry; balances right: {balances_ok}")
        return figures
    finally:
        WebhookEvent.objects.filter(vendor="stripe", dedupe_key__startswith=f"evt_{prefix}_").delete()
        Payment.objects.filter(client_id__startswith=f"{prefix}-").delete()
        Account.objects.filter(client_id__startswith=f"{prefix}-").delete()
