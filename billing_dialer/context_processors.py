from __future__ import annotations

from django.http import HttpRequest

from integrations import modes


def sandbox_banner(request: HttpRequest) -> dict[str, object]:
    """Tells every staff page which vendors are simulated, so nobody mistakes a sandbox run — or,
    with the sandbox off, which vendors have no credentials and so do nothing."""
    not_live = modes.sandboxed_vendors()
    if modes.sandbox_enabled():
        return {"sandbox_vendors": not_live, "unconfigured_vendors": []}
    return {"sandbox_vendors": [], "unconfigured_vendors": not_live}
