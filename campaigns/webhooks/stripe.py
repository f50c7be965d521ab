"""Stripe webhooks (`/webhooks/stripe/`): payments confirmed.

The `Stripe-Signature` header is checked by the library itself (`stripe.Webhook.construct_event`,
tolerance 300 s) on the raw body before anything else: a missing, forged or stale signature gets a
400 and nothing is stored. The event is stored once by its id (a redelivery is a 200 no-op) and
processed at once, so the client's outreach stops within seconds; a processing failure stays on
the stored event for the minute retry, and the answer is still 2xx (Stripe need not resend).

Reference: https://docs.stripe.com/webhooks#verify-events
Reference: https://docs.stripe.com/webhooks#handle-duplicate-events
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.webhooks import inbox
from integrations import clock
from integrations.stripe import client as stripe

log = logging.getLogger(__name__)

# Stripe's events are small (one object); anything far larger is not one.
MAX_BODY_BYTES = 1024 * 1024


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        log.warning("stripe webhook refused: body too large", extra={"bytes": length})
        return HttpResponse(status=413)
    raw = request.read(MAX_BODY_BYTES + 1)
    header = request.headers.get(stripe.SIGNATURE_HEADER)
    try:
        event = stripe.event_verify(raw, header)
    except stripe.SignatureError as exc:
        log.warning("stripe webhook rejected: signature", extra={"reason": "missing" if not header else str(exc)[:120]})
        return JsonResponse({"error": "The Stripe-Signature does not verify."}, status=400)
    try:
        stored, created = inbox.stripe_event_accept(payload=event)
    except inbox.MalformedEvent as exc:
        log.warning("stripe webhook rejected: not an event", extra={"error": str(exc)})
        return JsonResponse({"error": str(exc)}, status=400)
    if not created:
        log.info("stripe webhook duplicate ignored", extra={"event_type": stored.event_type, "webhook_event_id": stored.pk})
        return JsonResponse({"status": "duplicate"})
    inbox.webhook_event_process(event_id=stored.pk, now=clock.now())
    return JsonResponse({"status": "accepted"})
