from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DEBUG": "False",
    "SECRET_KEY": "k3x9-production-like-secret-value-with-enough-entropy-0f8a7d6c5b4e3f2a1",
    "ALLOWED_HOSTS": "dialer.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://dialer.example.com",
}


def _manage(*args: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only the variables a production host would have: nothing a test run sets for itself.
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_deploy_check_is_clean_with_the_documented_production_variables() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", extra_env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key() -> None:
    env = dict(PRODUCTION_ENV, SECRET_KEY="")
    result = _manage("check", extra_env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_task_timeout_is_shorter_than_retry_and_attempts_are_finite() -> None:
    q = settings.Q_CLUSTER
    assert q["timeout"] < q["retry"]
    assert 0 < q["max_attempts"] < 10
    assert q["catch_up"] is False


def test_broker_is_the_orm_unless_redis_is_configured() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='billing_dialer.settings';"
         "django.setup();from django.conf import settings as s;print(s.Q_CLUSTER.get('redis'),s.Q_CLUSTER.get('orm'))"],
        cwd=ROOT, env=dict(os.environ, REDIS_URL="redis://127.0.0.1:6379/3"), capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.split() == ["redis://127.0.0.1:6379/3", "None"], result.stderr
