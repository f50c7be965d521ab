"""Retell AI client: create a phone call, read a call, read the account's concurrency, and sign
and verify webhooks.

Live when RETELL_API_KEY is set (base URL RETELL_BASE_URL, default https://api.retellai.com);
otherwise the simulator this project serves at SANDBOX_APP_URL + "/sandbox/retell", reached over
real HTTP through the same code.
"""

# Reference: https://docs.retellai.com/api-references/create-phone-call
# Reference: https://docs.retellai.com/api-references/get-call
# Reference: https://docs.retellai.com/api-references/get-concurrency
# Reference: https://docs.retellai.com/features/secure-webhook

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

from django.conf import settings

from integrations import modes
from integrations.http import IntegrationError, json_body, request

log = logging.getLogger(__name__)

VENDOR = "retell"
DEFAULT_BASE_URL = "https://api.retellai.com"
SANDBOX_PATH = "/sandbox/retell"

# Creating a call can take Retell a few seconds (number lookup, agent warm-up).
CREATE_TIMEOUT: tuple[float, float] = (3.05, 15.0)
READ_TIMEOUT: tuple[float, float] = (3.05, 10.0)

SIGNATURE_HEADER = "X-Retell-Signature"
# Webhooks signed further than this from our clock (either way) are refused as replays.
SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000
# Exactly "v=<ASCII decimal ms>,d=<64 lowercase hex>": no spaces, no upper case, no extra parts
# (`\d` would also accept other scripts' digits, which int() happily parses).
_SIGNATURE = re.compile(r"v=([0-9]{1,15}),d=([0-9a-f]{64})", re.ASCII)


@dataclass
class RetellCall:
    call_id: str
    call_status: str
    raw: dict[str, Any]


def base_url() -> str:
    if modes.is_live(VENDOR):
        return (settings.RETELL_BASE_URL or DEFAULT_BASE_URL).rstrip("/")
    modes.simulator_required(VENDOR, credentials="RETELL_API_KEY")
    return settings.SANDBOX_APP_URL.rstrip("/") + SANDBOX_PATH


def api_key() -> str:
    """The key calls are made with: RETELL_API_KEY live, the sandbox key otherwise."""
    return settings.RETELL_API_KEY if modes.is_live(VENDOR) else settings.RETELL_SANDBOX_KEY


def webhook_key() -> str:
    """The key webhooks are signed with — Retell signs with the account's API key; the simulator
    with the sandbox key. Neither live nor simulated: no key, so every signature is refused
    (the sandbox key is in the source, and must open nothing in production)."""
    if modes.is_live(VENDOR):
        return str(settings.RETELL_API_KEY)
    return str(settings.RETELL_SANDBOX_KEY) if modes.sandbox_enabled() else ""


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key()}", "Content-Type": "application/json"}


def _call_from(payload: Any) -> RetellCall:
    if not isinstance(payload, dict) or not payload.get("call_id"):
        raise IntegrationError("Retell answered without a call_id", permanent=False, vendor=VENDOR, body=payload)
    return RetellCall(call_id=str(payload["call_id"]), call_status=str(payload.get("call_status") or ""), raw=payload)


def create_phone_call(
    *,
    from_number: str,
    to_number: str,
    agent_id: str,
    dynamic_variables: Mapping[str, str],
    metadata: Mapping[str, Any],
    idempotency_key: str,
) -> RetellCall:
    """Place one outbound call (POST /v2/create-phone-call); returns the `registered` call.

    Errors: 429 (concurrency or rate limit) → IntegrationError(permanent=False, status=429);
    402 (no valid payment) → permanent, status 402; 400 → permanent. The idempotency key makes
    the request safe to repeat, so 429/5xx/network errors are retried with backoff first.
    """
    if not agent_id:
        raise IntegrationError("no Retell agent id: set RETELL_AGENT_ID", permanent=True, vendor=VENDOR)
    if not idempotency_key:
        raise IntegrationError("a Retell call needs an idempotency key", permanent=True, vendor=VENDOR)
    # Retell substitutes dynamic variables as text; anything else is refused by the API.
    not_strings = sorted(k for k, v in dynamic_variables.items() if not isinstance(k, str) or not isinstance(v, str))
    if not_strings:
        raise IntegrationError(
            f"Retell dynamic variables must be strings: {', '.join(map(str, not_strings))}", permanent=True, vendor=VENDOR
        )
    body = {
        "from_number": from_number,
        "to_number": to_number,
        "override_agent_id": agent_id,
        "retell_llm_dynamic_variables": dict(dynamic_variables),
        "metadata": dict(metadata),
        "idempotency_key": idempotency_key,
    }
    response = request(
        VENDOR,
        "POST",
        f"{base_url()}/v2/create-phone-call",
        idempotent=True,
        timeout=CREATE_TIMEOUT,
        json=body,
        headers=_headers(),
    )
    call = _call_from(json_body(VENDOR, response))
    log.info(
        "retell call created",
        extra={"vendor": VENDOR, "call_id": call.call_id, "call_status": call.call_status, "to_number": to_number},
    )
    return call


def get_call(call_id: str) -> dict[str, Any]:
    """The call object (GET /v2/get-call/{call_id}), with status, disconnection reason and analysis."""
    if not call_id:
        raise IntegrationError("get_call needs a call id", permanent=True, vendor=VENDOR)
    response = request(
        VENDOR, "GET", f"{base_url()}/v2/get-call/{quote(call_id, safe='')}", idempotent=True, timeout=READ_TIMEOUT, headers=_headers()
    )
    payload = json_body(VENDOR, response)
    if not isinstance(payload, dict):
        raise IntegrationError("Retell answered get-call with something other than a call object", permanent=False, vendor=VENDOR, body=payload)
    return payload


def get_concurrency() -> dict[str, Any]:
    """{"current_concurrency", "concurrency_limit", ...} for the account (GET /get-concurrency)."""
    response = request(VENDOR, "GET", f"{base_url()}/get-concurrency", idempotent=True, timeout=READ_TIMEOUT, headers=_headers())
    payload = json_body(VENDOR, response)
    if not isinstance(payload, dict) or "concurrency_limit" not in payload:
        raise IntegrationError("Retell answered get-concurrency without a concurrency_limit", permanent=False, vendor=VENDOR, body=payload)
    return payload


# --- Webhook signatures ---------------------------------------------------------------------


def _digest(body: str, *, api_key: str, timestamp_ms: int) -> str:
    message = (body + str(timestamp_ms)).encode("utf-8")
    return hmac.new(api_key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: str, *, api_key: str, timestamp_ms: int) -> str:
    """The X-Retell-Signature value for `body`: "v=<ms>,d=<hex HMAC-SHA256 of body + ms>"."""
    return f"v={timestamp_ms},d={_digest(body, api_key=api_key, timestamp_ms=timestamp_ms)}"


def verify_signature(body: str | bytes, header: str | None, *, api_key: str, now_ms: int | None = None) -> bool:
    """True only for a well-formed header, signed with `api_key` over exactly this body, within
    five minutes of now (either direction). Never raises: a bad header is simply not valid.

    Verify the raw request body decoded as UTF-8 — never re-serialised JSON, whose spacing and
    key order differ from what Retell signed.
    """
    try:
        if not api_key or not header or not isinstance(header, str):
            return False
        match = _SIGNATURE.fullmatch(header)
        if match is None:
            return False
        timestamp_ms = int(match.group(1))
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if abs(now - timestamp_ms) > SIGNATURE_TOLERANCE_MS:
            return False
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        expected = _digest(text, api_key=api_key, timestamp_ms=timestamp_ms)
        return hmac.compare_digest(expected, match.group(2))
    except Exception:  # a malformed body or header must never turn into a 500
        log.warning("retell signature check failed on malformed input", exc_info=True)
        return False
