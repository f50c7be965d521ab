"""Which vendors are live and which run against the local simulators.

A vendor is live when its base URL/credentials are configured; otherwise its client talks to
the simulator the project serves under /sandbox/<vendor>/ — over real HTTP, through the very
same client code — but only while SANDBOX_ENABLED is on (default: DEBUG). In production the
simulators are not mounted, and a vendor without credentials is simply not configured: its client
refuses with a permanent error naming the variable to set, instead of calling a simulator.
"""

from __future__ import annotations

from django.conf import settings

from integrations.http import IntegrationError

VENDORS = ("retell", "heymarket", "dialflow", "warehouse", "stripe")


def is_live(vendor: str) -> bool:
    if vendor == "retell":
        return bool(settings.RETELL_API_KEY)
    if vendor == "heymarket":
        return bool(settings.HEYMARKET_API_TOKEN)
    if vendor == "dialflow":
        return bool(settings.DIALFLOW_URL and settings.DIALFLOW_API_KEY)
    if vendor == "stripe":
        return bool(settings.STRIPE_API_KEY)
    if vendor == "warehouse":
        return bool(settings.DATABRICKS_SERVER_HOSTNAME and settings.DATABRICKS_HTTP_PATH and settings.DATABRICKS_TOKEN)
    raise ValueError(f"unknown vendor {vendor!r}")


def sandbox_enabled() -> bool:
    """Whether the simulators are served at all (never in production, where DEBUG is off)."""
    return bool(getattr(settings, "SANDBOX_ENABLED", False))


def is_simulated(vendor: str) -> bool:
    return not is_live(vendor) and sandbox_enabled()


def simulator_required(vendor: str, *, credentials: str) -> None:
    """Raise a permanent IntegrationError when `vendor` is neither live nor simulated."""
    if not is_live(vendor) and not sandbox_enabled():
        raise IntegrationError(
            f"{vendor} is not configured: set {credentials} (the sandbox simulators are off: SANDBOX_ENABLED is false)",
            permanent=True,
            vendor=vendor,
        )


def sandboxed_vendors() -> list[str]:
    """Vendors (of the three that place calls, send texts or gate release) running simulated."""
    return [v for v in ("retell", "heymarket", "dialflow") if not is_live(v)]


def any_sandbox() -> bool:
    return bool(sandboxed_vendors())
