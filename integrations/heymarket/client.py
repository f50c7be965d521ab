"""HeyMarket client: send an SMS, read and set a contact's opt-out status, check webhook tokens.

Live when HEYMARKET_API_TOKEN is set (base URL HEYMARKET_BASE_URL, default
https://api.heymarket.com); otherwise the simulator served at SANDBOX_APP_URL + "/sandbox/heymarket".
Phone numbers come in as E.164 ("+15105553344") and go on the wire as HeyMarket wants them: the
digits without the "+" ("15105553344").
"""

# Reference: https://developers.heymarket.com/api-reference/messages/send
# Reference: https://developers.heymarket.com/api-reference/contacts/status
# Reference: https://developers.heymarket.com/api-reference/contacts/set-status

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from integrations import modes
from integrations.http import IntegrationError, json_body, request

log = logging.getLogger(__name__)

VENDOR = "heymarket"
DEFAULT_BASE_URL = "https://api.heymarket.com"
SANDBOX_PATH = "/sandbox/heymarket"
SANDBOX_TOKEN = "sandbox-heymarket-token"
# The token the simulator puts in its webhook bodies: its own, never HEYMARKET_WEBHOOK_TOKEN, so a
# simulated reply never carries the live configuration's secret.
SANDBOX_WEBHOOK_TOKEN = "sandbox-heymarket-webhook-token"
TIMEOUT: tuple[float, float] = (3.05, 10.0)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)


@dataclass
class SentMessage:
    id: str
    date: str


def base_url() -> str:
    if modes.is_live(VENDOR):
        return (settings.HEYMARKET_BASE_URL or DEFAULT_BASE_URL).rstrip("/")
    modes.simulator_required(VENDOR, credentials="HEYMARKET_API_TOKEN")
    return settings.SANDBOX_APP_URL.rstrip("/") + SANDBOX_PATH


def api_token() -> str:
    return settings.HEYMARKET_API_TOKEN if modes.is_live(VENDOR) else SANDBOX_TOKEN


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token()}", "Content-Type": "application/json"}


def wire_phone(phone: str) -> str:
    """"+15105553344" → "15105553344"; anything that is not E.164 is refused (permanent)."""
    if not isinstance(phone, str) or not _E164.fullmatch(phone):
        raise IntegrationError("phone number is not in E.164 format (+ and 7 to 15 digits)", permanent=True, vendor=VENDOR)
    return phone[1:]


def _numeric_id(value: str | int, *, name: str) -> int | str:
    # HeyMarket's ids are integers; ours are stored as text. Send numbers as numbers.
    text = str(value).strip()
    if not text:
        raise IntegrationError(f"no HeyMarket {name}", permanent=True, vendor=VENDOR)
    return int(text) if text.isdigit() else text


def send_message(*, inbox_id: str, phone: str, text: str, local_id: str) -> SentMessage:
    """Send one SMS (POST /v1/message/send). `local_id` is our idempotency key for the send.

    400 is permanent; 429/5xx/network errors are retried with backoff (the local_id makes a
    repeat safe) and then raised as IntegrationError(permanent=False).
    """
    if not local_id:
        raise IntegrationError("an SMS needs a local_id", permanent=True, vendor=VENDOR)
    if not text or not text.strip():
        raise IntegrationError("an SMS needs text", permanent=True, vendor=VENDOR)
    if modes.is_live(VENDOR) and not settings.HEYMARKET_CREATOR_ID:
        raise IntegrationError("no HeyMarket sender: set HEYMARKET_CREATOR_ID", permanent=True, vendor=VENDOR)
    body = {
        "inbox_id": _numeric_id(inbox_id, name="inbox id"),
        "creator_id": _numeric_id(settings.HEYMARKET_CREATOR_ID, name="creator id (HEYMARKET_CREATOR_ID)"),
        "phone_number": wire_phone(phone),
        "text": text,
        "local_id": local_id,
    }
    response = request(VENDOR, "POST", f"{base_url()}/v1/message/send", idempotent=True, timeout=TIMEOUT, json=body, headers=_headers())
    payload = json_body(VENDOR, response)
    if not isinstance(payload, dict) or payload.get("id") in (None, ""):
        raise IntegrationError("HeyMarket answered the send without a message id", permanent=False, vendor=VENDOR, body=payload)
    sent = SentMessage(id=str(payload["id"]), date=str(payload.get("date") or ""))
    log.info("heymarket message sent", extra={"vendor": VENDOR, "message_id": sent.id, "local_id": local_id, "phone": phone})
    return sent


def get_contact_status(phone: str) -> dict[str, Any]:
    """{"phone", "unsubscribed", "blocked", "opted_out", "exists"} for a number (E.164 in).

    A number HeyMarket has never seen (404) is reported as not opted out, with exists=False.
    """
    digits = wire_phone(phone)
    try:
        response = request(
            VENDOR, "POST", f"{base_url()}/v1/contact/status", idempotent=True, timeout=TIMEOUT, json={"phone": digits}, headers=_headers()
        )
    except IntegrationError as exc:
        if exc.status == 404:
            return {"phone": digits, "unsubscribed": False, "blocked": False, "opted_out": False, "exists": False}
        raise
    payload = json_body(VENDOR, response)
    if not isinstance(payload, dict):
        raise IntegrationError("HeyMarket answered contact status with something other than an object", permanent=False, vendor=VENDOR, body=payload)
    unsubscribed = bool(payload.get("unsubscribed") or payload.get("is_opted_out"))
    blocked = bool(payload.get("blocked"))
    return {**payload, "phone": digits, "unsubscribed": unsubscribed, "blocked": blocked, "opted_out": unsubscribed or blocked, "exists": True}


def set_contact_status(phone: str, *, opted_out: bool) -> dict[str, Any]:
    """Mark a number unsubscribed (opted out) or subscribed again (POST /v1/contact/set_status)."""
    digits = wire_phone(phone)
    status = "unsubscribed" if opted_out else "subscribed"
    response = request(
        VENDOR,
        "POST",
        f"{base_url()}/v1/contact/set_status",
        idempotent=True,  # setting a status twice leaves the same status
        timeout=TIMEOUT,
        json={"phone": digits, "status": status},
        headers=_headers(),
    )
    result = json_body(VENDOR, response)
    log.info("heymarket contact status set", extra={"vendor": VENDOR, "phone": phone, "status": status})
    return {"phone": digits, "status": status, "opted_out": opted_out, "result": result}


def verify_webhook_token(token: object) -> bool:
    """True when `token` (the webhook body's "token") equals HEYMARKET_WEBHOOK_TOKEN — or, only
    while HeyMarket is simulated, the simulator's own token — compared in constant time. Never
    raises."""
    if not isinstance(token, str) or not token:
        return False
    expected = [settings.HEYMARKET_WEBHOOK_TOKEN or ""]
    if modes.is_simulated(VENDOR):
        expected.append(SANDBOX_WEBHOOK_TOKEN)
    given = token.encode("utf-8")
    # Every candidate is compared, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(given, candidate.encode("utf-8")) for candidate in expected if candidate]
    return any(matches)
