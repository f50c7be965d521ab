"""Dialflow availability client: free agents per ring group, the gate for releasing call batches.

Dialflow publishes no API specification, so the contract is the project's own (DESIGN.md):

    GET {DIALFLOW_URL}/v1/ring-groups/{ring_group}/availability
    Authorization: Bearer {DIALFLOW_API_KEY}
    → 200 {"ring_group": "<ring group>", "available_agents": <int ≥ 0>}

Anything else — a timeout, an error status, a body that does not say how many agents are free —
counts as zero available agents, with a warning: a batch is never released on an unknown.
Keeping it this small lets another source (e.g. Talkdesk's Live API) replace it.
"""

# Reference: DESIGN.md, "Contracts with the outside world" → Dialflow (no public vendor docs)

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from django.conf import settings

from integrations import modes
from integrations.http import IntegrationError, request

log = logging.getLogger(__name__)

VENDOR = "dialflow"
SANDBOX_PATH = "/sandbox/dialflow"
SANDBOX_KEY = "sandbox-dialflow-key"

# The release loop asks every few seconds; a slow answer is worth less than the next poll.
TIMEOUT: tuple[float, float] = (2.0, 3.0)


def base_url() -> str:
    if modes.is_live(VENDOR):
        return settings.DIALFLOW_URL.rstrip("/")
    modes.simulator_required(VENDOR, credentials="DIALFLOW_URL and DIALFLOW_API_KEY")
    return settings.SANDBOX_APP_URL.rstrip("/") + SANDBOX_PATH


def api_key() -> str:
    return settings.DIALFLOW_API_KEY if modes.is_live(VENDOR) else SANDBOX_KEY


def availability_url(ring_group: str) -> str:
    return f"{base_url()}/v1/ring-groups/{quote(ring_group, safe='')}/availability"


def fetch_availability(ring_group: str) -> dict[str, Any]:
    """The raw availability answer; raises IntegrationError (used by `check_integrations`)."""
    if not ring_group:
        raise IntegrationError("no ring group given", permanent=True, vendor=VENDOR)
    # Not retried inside the call: the release loop polls again in a few seconds anyway, and
    # retrying here would only hold back that next decision.
    response = request(
        VENDOR,
        "GET",
        availability_url(ring_group),
        idempotent=False,
        timeout=TIMEOUT,
        headers={"Authorization": f"Bearer {api_key()}"},
    )
    try:
        payload = response.json()
    except ValueError as exc:
        raise IntegrationError("Dialflow answered with a body that is not JSON", permanent=False, vendor=VENDOR) from exc
    if not isinstance(payload, dict):
        raise IntegrationError("Dialflow answered with something other than an object", permanent=False, vendor=VENDOR, body=payload)
    return payload


def available_agents(ring_group: str) -> int:
    """Free agents in `ring_group` now; 0 (and a warning) when that cannot be known."""
    return availability(ring_group)[0]


def availability(ring_group: str) -> tuple[int, str]:
    """(free agents, "") — or (0, why they are unknown), with a warning logged."""
    try:
        payload = fetch_availability(ring_group)
    except IntegrationError as exc:
        log.warning(
            "dialflow availability unknown, counting zero",
            extra={"vendor": VENDOR, "ring_group": ring_group, "error": str(exc), "status": exc.status},
        )
        return 0, str(exc)
    value = payload.get("available_agents")
    # bool is an int in Python; `true` is not a number of agents.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        log.warning(
            "dialflow availability malformed, counting zero",
            extra={"vendor": VENDOR, "ring_group": ring_group, "available_agents": repr(value)[:50]},
        )
        return 0, f"Dialflow answered available_agents={repr(value)[:50]}, not a number of agents"
    answered_for = payload.get("ring_group")
    if answered_for is not None and answered_for != ring_group:
        log.warning(
            "dialflow answered for another ring group, counting zero",
            extra={"vendor": VENDOR, "ring_group": ring_group, "answered_for": str(answered_for)[:64]},
        )
        return 0, f"Dialflow answered for ring group {str(answered_for)[:64]!r}"
    return value, ""
