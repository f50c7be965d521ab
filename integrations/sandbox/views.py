"""HTTP face of the simulators. Every URL answers 404 while its vendor is live, and none is
served at all unless SANDBOX_ENABLED is on (default: DEBUG; never in production).

The vendor-shaped endpoints take the sandbox keys the portal's own clients send, as the real APIs
take theirs. The controls — the knobs, dispatching, injecting a reply, the recorded messages —
take a staff session (and CSRF, as every session-authenticated form does): the sandbox keys are
in the source, so they cannot be what guards the free-agent pattern that gates call release.
"""

from __future__ import annotations

import logging
import random
import time
from functools import wraps
from typing import Any, Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import jsonbody
from integrations import modes
from integrations.dialflow import client as dialflow_client
from integrations.heymarket import client as heymarket_client
from integrations.sandbox import delivery, dialflow, heymarket, retell, stripe
from integrations.sandbox.models import SimulatedCall, SimulatedCheckoutSession, SimulatedMessage, SimulatorConfig

log = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def _sandbox_of(vendor: str | None) -> Callable[[View], View]:
    """404 when the sandbox is off, when the vendor is live (or, for shared endpoints, when no
    vendor is simulated)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # The URLs are not even mounted when SANDBOX_ENABLED is off; this holds if they are.
            if not modes.sandbox_enabled():
                raise Http404("The sandbox is off (SANDBOX_ENABLED).")
            if (vendor and modes.is_live(vendor)) or (vendor is None and not modes.any_sandbox()):
                raise Http404("This simulator is off: the vendor is live.")
            delivery.dispatcher_ensure_started()
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


CHANGE_PERMISSION = "sandbox.change_simulatorconfig"


def _staff_only(view: View) -> View:
    """A staff session to look; the permission to change the simulators' settings to act."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return _error(403, "the sandbox controls take a staff session: sign in at /admin/ first", key="error")
        if request.method not in ("GET", "HEAD") and not user.has_perm(CHANGE_PERMISSION):
            return _error(403, "changing the simulators takes the permission to change the sandbox settings", key="error")
        return view(request, *args, **kwargs)

    return wrapper


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else ""


_INVALID_JSON = object()


def _json(request: HttpRequest) -> Any:
    try:
        return jsonbody.loads(request.body or b"null")
    except ValueError:
        return _INVALID_JSON


def _error(status: int, message: str, *, retry_after: int | None = None, key: str = "error_message") -> JsonResponse:
    response = JsonResponse({key: message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


# --- Retell ---------------------------------------------------------------------------------


def _retell_auth(request: HttpRequest) -> JsonResponse | None:
    if _bearer(request) != settings.RETELL_SANDBOX_KEY:
        return _error(401, "Invalid API key (the Retell simulator takes RETELL_SANDBOX_KEY).")
    return None


@csrf_exempt
@require_POST
@_sandbox_of("retell")
def retell_create_phone_call(request: HttpRequest) -> HttpResponse:
    if (denied := _retell_auth(request)) is not None:
        return denied
    body = _json(request)
    if body is _INVALID_JSON:
        return _error(400, "request body is not valid JSON")
    now = timezone.now()
    try:
        call, replayed = retell.call_create(body=body, now=now)
    except retell.Refused as refusal:
        return _error(refusal.status, refusal.message, retry_after=refusal.retry_after)
    log.info(
        "sandbox retell call created",
        extra={"call_id": call.call_id, "outcome": call.outcome, "replayed": replayed, "to_number": call.to_number},
    )
    return JsonResponse(retell.call_state(call, now=now) if replayed else retell.base_call_object(call), status=201)


@require_GET
@_sandbox_of("retell")
def retell_get_call(request: HttpRequest, call_id: str) -> HttpResponse:
    if (denied := _retell_auth(request)) is not None:
        return denied
    call = SimulatedCall.objects.filter(call_id=call_id).first()
    if call is None:
        return _error(404, "Call not found")
    return JsonResponse(retell.call_state(call, now=timezone.now()))


@require_GET
@_sandbox_of("retell")
def retell_get_concurrency(request: HttpRequest) -> HttpResponse:
    if (denied := _retell_auth(request)) is not None:
        return denied
    return JsonResponse(retell.concurrency(now=timezone.now()))


# --- Dialflow -------------------------------------------------------------------------------


@require_GET
@_sandbox_of("dialflow")
def dialflow_availability(request: HttpRequest, ring_group: str) -> HttpResponse:
    if _bearer(request) != dialflow_client.SANDBOX_KEY:
        return _error(401, "invalid API key", key="error")
    return JsonResponse({"ring_group": ring_group, "available_agents": dialflow.available_agents(ring_group, now=timezone.now())})


# --- HeyMarket ------------------------------------------------------------------------------


def _heymarket_call(request: HttpRequest, action: Callable[[Any], Any]) -> HttpResponse:
    if _bearer(request) != heymarket_client.SANDBOX_TOKEN:
        return _error(401, "invalid token", key="error")
    body = _json(request)
    if body is _INVALID_JSON:
        return _error(400, "request body is not valid JSON", key="error")
    try:
        result = action(body)
    except heymarket.Refused as refusal:
        return _error(refusal.status, refusal.message, key="error")
    return JsonResponse(result, safe=False)


@csrf_exempt
@require_POST
@_sandbox_of("heymarket")
def heymarket_send(request: HttpRequest) -> HttpResponse:
    def send(body: Any) -> dict[str, Any]:
        message, _replayed = heymarket.message_send(body=body, now=timezone.now())
        return message.as_api()

    return _heymarket_call(request, send)


@csrf_exempt
@require_POST
@_sandbox_of("heymarket")
def heymarket_contact_status(request: HttpRequest) -> HttpResponse:
    return _heymarket_call(request, lambda body: heymarket.contact_status(body=body))


@csrf_exempt
@require_POST
@_sandbox_of("heymarket")
def heymarket_contact_set_status(request: HttpRequest) -> HttpResponse:
    return _heymarket_call(request, lambda body: heymarket.contact_set_status(body=body))


@require_POST
@_sandbox_of("heymarket")
@_staff_only
def heymarket_inject(request: HttpRequest) -> HttpResponse:
    """A client's reply, as staff play it (a staff session, not the sandbox token)."""
    body = _json(request)
    if body is _INVALID_JSON:
        return _error(400, "request body is not valid JSON", key="error")

    def inject(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise heymarket.Refused(400, "request body must be a JSON object")
        message = heymarket.inject_inbound(
            phone=str(body.get("phone") or ""), text=body.get("text") or "", inbox_id=str(body.get("inbox_id") or ""), now=timezone.now()
        )
        return {"id": message.pk, "phone": message.phone, "text": message.text, "inbox_id": message.inbox_id}

    try:
        return JsonResponse(inject(body))
    except heymarket.Refused as refusal:
        return _error(refusal.status, refusal.message, key="error")


@require_GET
@_sandbox_of("heymarket")
@_staff_only
def heymarket_messages(request: HttpRequest) -> HttpResponse:
    messages = SimulatedMessage.objects.all()
    phone = (request.GET.get("phone") or "").lstrip("+ ")
    if phone:
        messages = messages.filter(phone=phone)
    rows = [
        {
            "id": m.pk,
            "direction": m.direction,
            "local_id": m.local_id,
            "inbox_id": m.inbox_id,
            "phone": m.phone,
            "text": m.text,
            "date": m.created_at.isoformat(),
        }
        for m in messages[:500]
    ]
    return JsonResponse({"messages": rows})


# --- Knobs and the dispatcher ---------------------------------------------------------------

CONFIG_FIELDS = tuple(f.name for f in SimulatorConfig._meta.fields if f.name not in ("id", "updated_at"))


@require_http_methods(["GET", "POST", "PATCH"])
@_sandbox_of(None)
@_staff_only
def config(request: HttpRequest) -> HttpResponse:
    """GET the simulator knobs; POST/PATCH a JSON object of the ones to change (staff session)."""
    current = SimulatorConfig.load()
    if request.method != "GET":
        body = _json(request)
        if not isinstance(body, dict):
            return _error(400, "send a JSON object of settings to change", key="error")
        unknown = sorted(set(body) - set(CONFIG_FIELDS))
        if unknown:
            return _error(400, f"unknown settings: {', '.join(unknown)}", key="error")
        for name, value in body.items():
            setattr(current, name, value)
        try:
            current.full_clean()
        except ValidationError as exc:
            return JsonResponse({"error": "invalid settings", "fields": exc.message_dict}, status=400)
        current.save()
        log.info("sandbox settings changed", extra={"changed": sorted(body)})
    return JsonResponse(model_to_dict(current, fields=CONFIG_FIELDS))


@require_POST
@_sandbox_of(None)
@_staff_only
def dispatch(request: HttpRequest) -> HttpResponse:
    """Deliver every due webhook now (for a person who does not wait for the background thread)."""
    return JsonResponse({"attempted": delivery.sandbox_dispatch_due()})


# --- Stripe ---------------------------------------------------------------------------------


def _stripe_call(request: HttpRequest, action: Callable[[SimulatorConfig], HttpResponse]) -> HttpResponse:
    if _bearer(request) != settings.STRIPE_SANDBOX_KEY:
        return JsonResponse(
            {"error": {"message": "Invalid API Key provided (the Stripe simulator takes STRIPE_SANDBOX_KEY).", "type": "invalid_request_error"}},
            status=401,
        )
    config = SimulatorConfig.load()
    if config.stripe_latency_seconds:
        time.sleep(config.stripe_latency_seconds)  # the fault knob: a slow Stripe
    if config.stripe_error_rate and random.random() < config.stripe_error_rate:
        return JsonResponse({"error": {"message": "The simulator's error knob answered 500.", "type": "api_error"}}, status=500)
    try:
        return action(config)
    except stripe.Refused as refusal:
        return JsonResponse(refusal.as_body(), status=refusal.status)


@csrf_exempt
@require_POST
@_sandbox_of("stripe")
def stripe_checkout_sessions(request: HttpRequest) -> HttpResponse:
    def create(config: SimulatorConfig) -> HttpResponse:
        now = timezone.now()
        session, replayed = stripe.session_create(form=request.POST, idempotency_key=request.headers.get("Idempotency-Key", ""), now=now)
        log.info("sandbox stripe checkout session", extra={"session_id": session.session_id, "replayed": replayed})
        response = JsonResponse(stripe.session_object(session, now=now))
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    return _stripe_call(request, create)


@require_GET
@_sandbox_of("stripe")
def stripe_checkout_session(request: HttpRequest, session_id: str) -> HttpResponse:
    def retrieve(config: SimulatorConfig) -> HttpResponse:
        session = SimulatedCheckoutSession.objects.filter(session_id=session_id).first()
        if session is None:
            raise stripe.Refused(404, f"No such checkout.session: '{session_id}'", param="session")
        return JsonResponse(stripe.session_object(session, now=timezone.now()))

    return _stripe_call(request, retrieve)


@csrf_exempt
@require_POST
@_sandbox_of("stripe")
def stripe_checkout_session_expire(request: HttpRequest, session_id: str) -> HttpResponse:
    def expire(config: SimulatorConfig) -> HttpResponse:
        now = timezone.now()
        session = SimulatedCheckoutSession.objects.filter(session_id=session_id).first()
        if session is None:
            raise stripe.Refused(404, f"No such checkout.session: '{session_id}'", param="session")
        if stripe.session_object(session, now=now)["status"] != "open" or session.completes_at is not None:
            raise stripe.Refused(400, "Only Checkout Sessions with a status in ['open'] can be expired.", param="session")
        SimulatedCheckoutSession.objects.filter(pk=session.pk).update(expires_at=now)
        session.expires_at = now
        return JsonResponse(stripe.session_object(session, now=now))

    return _stripe_call(request, expire)


@require_GET
@_sandbox_of("stripe")
def stripe_checkout_page(request: HttpRequest, session_id: str) -> HttpResponse:
    """The hosted checkout page a payment link redirects to (no card is ever asked for here)."""
    session = SimulatedCheckoutSession.objects.filter(session_id=session_id).first()
    if session is None:
        raise Http404("No such checkout session.")
    state = stripe.checkout_open(session, now=timezone.now())
    words = {
        "open": "The sandbox client looks at the page and does not pay.",
        "paying": "The sandbox client is paying.",
        "paid": "Paid.",
        "expired": "This checkout session has expired.",
    }[state]
    amount = f"{session.amount_total / 100:,.2f} {session.currency.upper()}"
    return HttpResponse(
        f"<!DOCTYPE html><title>Sandbox checkout</title><h1>Sandbox checkout: {amount}</h1><p>{words}</p>",
        status=410 if state == "expired" else 200,
    )
