"""Owner alerts through notification URLs (Slack, Microsoft Teams, e-mail, …) with apprise.

apprise speaks some hundred services behind one URL syntax, so a team can point its alerts at
whatever it reads without the portal holding a client per service. The sink: in sandbox mode
(`NOTIFY_SANDBOX`, default `SANDBOX_ENABLED`), or when no URL is configured for the alert, the
message is recorded (`SimulatedNotification`, shown in the admin) instead of sent.

Reference: https://github.com/caronc/apprise/wiki (URL syntax per service)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import apprise
from django.conf import settings

from integrations.http import IntegrationError
from integrations.sandbox.models import SimulatedNotification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    sandbox: bool
    services: int


def is_sandbox(urls: Sequence[str]) -> bool:
    return bool(getattr(settings, "NOTIFY_SANDBOX", False)) or not urls


def urls_not_understood(urls: Sequence[str]) -> list[str]:
    """The schemes of the URLs apprise cannot use (only the scheme: the rest is a secret)."""
    return [url.split("://", 1)[0] or "(no scheme)" for url in urls if not apprise.Apprise().add(url)]


def notify_send(*, urls: Sequence[str], title: str, body: str, destination: str, tag: str) -> Delivery:
    """Send one alert to every URL; raises IntegrationError when any service did not take it
    (apprise answers False, or a URL is not one it knows), so the caller tries again later."""
    if is_sandbox(urls):
        SimulatedNotification.objects.create(destination=destination[:200], title=title[:250], body=body, tag=tag)
        return Delivery(sandbox=True, services=0)
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            # The URL itself is never logged nor kept in the error: it carries the service's secret.
            scheme = url.split("://", 1)[0]
            raise IntegrationError(f"a {scheme} notification URL of {destination} is not one apprise understands", permanent=True, vendor="notify")
    try:
        sent = notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
    except Exception as exc:  # a plugin's own failure must not lose the alert either
        raise IntegrationError(f"notification to {destination} failed: {type(exc).__name__}", permanent=False, vendor="notify") from exc
    if not sent:
        raise IntegrationError(f"notification to {destination} was not accepted by every service", permanent=False, vendor="notify")
    log.info("owner alert sent", extra={"destination": destination, "services": len(notifier), "tag": tag})
    return Delivery(sandbox=False, services=len(notifier))
