"""Settings for the webhook benchmark's gunicorn: the project's own, plus a no-op view to compare with.

Only `python -m benchmarks.webhooks` points DJANGO_SETTINGS_MODULE here; the no-op view is never
reachable from the project's own URLs.
"""

from __future__ import annotations

from billing_dialer.settings import *  # noqa: F403 - the very same settings, one URLconf changed

ROOT_URLCONF = "benchmarks._webhooks_urls"
