from __future__ import annotations

from django.http import HttpRequest

from integrations import modes


def sandbox_banner(request: HttpRequest) -> dict[str, object]:
    """Tells every staff page which vendors are simulated, so nobody mistakes a sandbox run."""
    sandboxed = modes.sandboxed_vendors()
    return {"sandbox_vendors": sandboxed}
