"""HeyMarket webhooks (`/webhooks/heymarket/`): replies, opt-outs and delivery updates.

HeyMarket authenticates a delivery with the shared `token` inside the JSON body (no header
signature), so the body is parsed first and the token compared in constant time before anything
is stored; a wrong or missing token gets a 401 and a log line. The event is stored once, keyed by
type + `event_data.id`; a duplicate of a processed event is a no-op answering 200. Processing is a
few small queries (replies are sent by a task after the commit), so it runs inline. If it fails
the stored event keeps the error, the answer is 500 and HeyMarket's retry processes it again (the
minute SMS task also retries stored events that never completed).

Reference: https://developers.heymarket.com/guides/webhooks
Reference: https://developers.heymarket.com/api-reference/webhooks
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.webhooks import inbox
from integrations import jsonbody
from integrations.heymarket import client as heymarket

log = logging.getLogger(__name__)

# HeyMarket events are small (a message and its conversation); anything far larger is not one.
MAX_BODY_BYTES = 1024 * 1024


@csrf_exempt
@require_POST
def heymarket_webhook(request: HttpRequest) -> HttpResponse:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        log.warning("heymarket webhook refused: body too large", extra={"bytes": length})
        return HttpResponse(status=413)
    raw = request.read(MAX_BODY_BYTES + 1)
    try:
        payload: Any = jsonbody.loads(raw)
    except ValueError as exc:
        log.warning("heymarket webhook rejected: malformed JSON", extra={"error": str(exc)[:200]})
        return JsonResponse({"error": "The body is not valid JSON."}, status=400)
    if not isinstance(payload, dict):
        log.warning("heymarket webhook rejected: not an object")
        return JsonResponse({"error": "The body must be a JSON object."}, status=400)
    token = payload.get("token")
    if not isinstance(token, str) or not heymarket.verify_webhook_token(token):
        log.warning("heymarket webhook rejected: token", extra={"reason": "missing" if not token else "wrong"})
        return HttpResponse(status=401)

    event, created = inbox.heymarket_event_accept(payload=payload)
    if not created:
        log.info("heymarket webhook duplicate ignored", extra={"event_type": event.event_type, "webhook_event_id": event.pk})
        return JsonResponse({"status": "duplicate", "event_id": event.pk})
    return JsonResponse({"status": "accepted", "event_id": event.pk})
