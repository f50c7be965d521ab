"""Which vendors are live and which run against the local simulators.

A vendor is live when its base URL/credentials are configured; otherwise its client talks to
the simulator the project serves under /sandbox/<vendor>/ — over real HTTP, through the very
same client code.
"""

from __future__ import annotations

from django.conf import settings

VENDORS = ("retell", "heymarket", "dialflow", "warehouse")


def is_live(vendor: str) -> bool:
    if vendor == "retell":
        return bool(settings.RETELL_API_KEY)
    if vendor == "heymarket":
        return bool(settings.HEYMARKET_API_TOKEN)
    if vendor == "dialflow":
        return bool(settings.DIALFLOW_URL and settings.DIALFLOW_API_KEY)
    if vendor == "warehouse":
        return bool(settings.DATABRICKS_SERVER_HOSTNAME and settings.DATABRICKS_HTTP_PATH and settings.DATABRICKS_TOKEN)
    raise ValueError(f"unknown vendor {vendor!r}")


def sandboxed_vendors() -> list[str]:
    """Vendors (of the three that place calls, send texts or gate release) running simulated."""
    return [v for v in ("retell", "heymarket", "dialflow") if not is_live(v)]


def any_sandbox() -> bool:
    return bool(sandboxed_vendors())
