"""The production build of the static files works, and with it the pages answer.

`collectstatic` with DEBUG=False (the hashed, manifest storage) refused to build when Chart.js was
there without the source map it names, and with no manifest every page answered 500. The whole
path, through gunicorn, is `make production-check`; this is its quick half, in the test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.contrib.staticfiles import finders

from campaigns.templatetags.dashboard_tags import CHART_LIBRARY

ROOT = Path(__file__).resolve().parents[2]


def _production(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "STATIC_ROOT", "SANDBOX_ENABLED"}
    env = {k: v for k, v in os.environ.items() if k not in dropped} | {
        "DEBUG": "False",
        "SECRET_KEY": "k3x9-production-like-secret-value-with-enough-entropy-0f8a7d6c5b4e3f2a1",
        "ALLOWED_HOSTS": "testserver",
        "STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_SETTINGS_MODULE": "billing_dialer.settings",
        "SQLITE_TEST_NAME": "",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
    }
    return subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_static_files_build_with_debug_off_and_the_pages_answer(tmp_path: Path) -> None:
    built = _production(tmp_path, "manage.py", "collectstatic", "--noinput")
    assert built.returncode == 0, built.stderr[-2000:]
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
    assert "admin/css/base.css" in manifest and "campaigns/dashboard.js" in manifest
    if finders.find(CHART_LIBRARY):
        # The source map the script names is built with it, or the build fails.
        assert CHART_LIBRARY in manifest and f"{CHART_LIBRARY}.map" in manifest

    migrated = _production(tmp_path, "manage.py", "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    page = _production(
        tmp_path, "-c",
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client().get('/admin/login/', secure=True)\n"
        "print(response.status_code, '/static/admin/css/base.' in response.content.decode())",
    )  # fmt: skip
    assert page.stdout.split()[-2:] == ["200", "True"], page.stderr[-2000:]
