"""The admin sign-in form with login throttling (the dashboard signs in through the admin)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from access import services

log = logging.getLogger(__name__)


def client_ip(request: HttpRequest | None) -> str | None:
    """The caller's address. Without BEHIND_PROXY it is the peer gunicorn sees, and
    X-Forwarded-For is not read at all: anyone could write one. Behind BEHIND_PROXY_HOPS proxies
    it is the entry the outermost proxy appended — counted from the right, since each proxy
    appends what it saw; whatever stands further left is what the client chose to send."""
    if request is None:
        return None
    candidate = request.META.get("REMOTE_ADDR", "")
    if settings.BEHIND_PROXY:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            # Fewer entries than proxies: the request skipped the outer ones, and the leftmost
            # entry is still one a proxy of ours wrote.
            candidate = forwarded[max(len(forwarded) - settings.BEHIND_PROXY_HOPS, 0)]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": (
            "Too many failed sign-in attempts. Sign-in is paused for this account or address; "
            "try again in %(minutes)d minute(s)."
        ),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        ip = client_ip(self.request)
        now = timezone.now()
        throttle = services.login_throttle_check(username=username, ip=ip, now=now)
        if throttle is not None:
            log.warning("sign-in refused: throttled", extra={"username": username, "ip": ip, "reason": throttle.reason})
            raise ValidationError(self.error_messages["throttled"], code="throttled", params={"minutes": throttle.minutes})
        try:
            cleaned = super().clean()
        except ValidationError as exc:
            # Only a wrong password counts: a right password for an account that may not use
            # the admin is not a guess.
            if self.user_cache is None:
                services.login_failure_record(username=username, ip=ip, now=now)
                log.info("sign-in failed", extra={"username": username, "ip": ip})
            raise exc
        services.login_success_record(username=username)
        return cleaned
