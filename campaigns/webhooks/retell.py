"""Retell webhooks: call events (`/webhooks/retell/`), inbound-call lookups
(`/webhooks/retell/inbound/`) and Grace's custom functions (`/webhooks/retell/functions/`).

All three are signed with the Retell API key (`X-Retell-Signature: v=<ms>,d=<hex>`), verified on the
raw body before anything else: a request that fails gets a 401 and a log line, and nothing is
stored. A call event is stored once, with its processing task, in one commit, and answered at
once (far inside Retell's 10-second timeout); a django-q task processes it. Processing an outcome
costs a dozen ORM statements and takes the campaign's counter row, so keeping it out of the
request keeps the answer fast under a burst; a stored event whose processing fails or is never
enqueued is run again by the periodic retry, so nothing is lost and Retell never has to retry.

Reference: https://docs.retellai.com/features/secure-webhook
Reference: https://docs.retellai.com/features/webhook-overview
Reference: https://docs.retellai.com/build/conversation-flow/custom-function
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from integrations import clock, jsonbody
from campaigns.agent import functions
from campaigns.calls import inbound
from campaigns.webhooks import inbox
from integrations.retell import client as retell

log = logging.getLogger(__name__)

# Retell sends the whole call object, transcript included; an hour-long call with word timings
# can pass Django's 2.5 MB form-data limit, and refusing it would lose the outcome. Beyond this
# cap a body is refused (413) before it is read.
MAX_BODY_BYTES = 20 * 1024 * 1024


class _Refused(Exception):
    """A request answered before it reaches a service (its response says why)."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _signed_payload(request: HttpRequest) -> tuple[str, dict[str, Any]]:
    """The raw body as text and its JSON object, once the signature holds."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        log.warning("retell webhook refused: body too large", extra={"path": request.path, "bytes": length})
        raise _Refused(HttpResponse(status=413))
    # Read the stream directly (not request.body) so the size cap above is the only one.
    raw = request.read(MAX_BODY_BYTES + 1)
    header = request.headers.get(retell.SIGNATURE_HEADER)
    # Verified on the raw bytes as sent (Retell signs their UTF-8 text), never on re-serialised JSON.
    if not retell.verify_signature(raw, header, api_key=retell.webhook_key()):
        log.warning(
            "retell webhook rejected: signature",
            extra={"path": request.path, "reason": "missing" if not header else "malformed, wrong or stale"},
        )
        raise _Refused(HttpResponse(status=401))
    body = raw.decode("utf-8")  # cannot fail: a signature only verifies over valid UTF-8
    try:
        payload = jsonbody.loads(body)
    except ValueError as exc:
        log.warning("retell webhook rejected: malformed JSON", extra={"path": request.path, "error": str(exc)[:200]})
        raise _Refused(JsonResponse({"error": "The body is not valid JSON."}, status=400)) from None
    if not isinstance(payload, dict):
        log.warning("retell webhook rejected: not an object", extra={"path": request.path})
        raise _Refused(JsonResponse({"error": "The body must be a JSON object."}, status=400))
    return body, payload


@csrf_exempt
@require_POST
def retell_webhook(request: HttpRequest) -> HttpResponse:
    try:
        body, payload = _signed_payload(request)
        event, created = inbox.retell_event_accept(payload=payload, raw_body=body)
    except _Refused as refused:
        return refused.response
    except inbox.MalformedEvent as exc:
        log.warning("retell webhook rejected: not an event", extra={"error": str(exc)})
        return JsonResponse({"error": str(exc)}, status=400)
    if not created:
        log.info(
            "retell webhook duplicate ignored",
            extra={"event_type": event.event_type, "call_id": event.reference, "webhook_event_id": event.pk},
        )
        return HttpResponse(status=200)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def retell_inbound_webhook(request: HttpRequest) -> HttpResponse:
    try:
        _, payload = _signed_payload(request)
    except _Refused as refused:
        return refused.response
    call_inbound = payload.get("call_inbound")
    if not isinstance(call_inbound, dict):
        log.warning("retell inbound webhook rejected: no call_inbound object", extra={"event_type": payload.get("event")})
        return JsonResponse({"error": "'call_inbound' must be an object."}, status=400)
    try:
        answer = inbound.inbound_call_answer(call_inbound=call_inbound, now=clock.now())
    except inbound.MalformedInbound as exc:
        log.warning("retell inbound webhook rejected", extra={"error": str(exc)})
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(answer)


@csrf_exempt
@require_POST
def retell_function_webhook(request: HttpRequest) -> HttpResponse:
    """A custom function Grace calls mid-call: `{"name", "call", "args"}` → a small JSON answer.

    Signed and refused like every Retell request (401 when forged or stale); anything the
    function cannot use is answered 200 with an `error` sentence she can say, so the call goes on.
    """
    try:
        _, payload = _signed_payload(request)
    except _Refused as refused:
        if refused.response.status_code == 400:
            return JsonResponse({"error": functions.SAY_FAILED})
        return refused.response
    return JsonResponse(functions.live_function_answer(payload=payload, now=clock.now()))
