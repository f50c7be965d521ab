from __future__ import annotations

import logging

from django.apps import AppConfig

from integrations import modes

log = logging.getLogger(__name__)


class SandboxConfig(AppConfig):
    name = "integrations.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox vendors"

    def ready(self) -> None:
        sandboxed = modes.sandboxed_vendors()
        if sandboxed and not modes.sandbox_enabled():
            log.warning(
                "Vendors without credentials do nothing: the sandbox is off (SANDBOX_ENABLED)",
                extra={"not_configured_vendors": sandboxed, "live_vendors": [v for v in modes.VENDORS if modes.is_live(v)]},
            )
        elif sandboxed:
            log.warning(
                "Sandbox mode — no real calls or texts are made",
                extra={"sandbox_vendors": sandboxed, "live_vendors": [v for v in modes.VENDORS if modes.is_live(v)]},
            )
        else:
            log.info("All vendors live", extra={"live_vendors": list(modes.VENDORS)})
