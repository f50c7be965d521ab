from __future__ import annotations

import os
import re
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


def _env_example() -> tuple[dict[str, str], set[str]]:
    """(the variables .env.example sets, every variable it names, set or commented out)."""
    values: dict[str, str] = {}
    named: set[str] = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]+)=(.*)$", line.strip())
        if match:
            named.add(match.group(2))
            if not match.group(1):
                values[match.group(2)] = match.group(3).strip()
    return values, named


def test_env_example_copied_to_env_leaves_a_working_portal() -> None:
    # Settings read .env without overriding the environment, so an empty line there would replace
    # a safe default with nothing (an empty DATABASE_URL, an empty sandbox webhook token...).
    values, _ = _env_example()
    empty = sorted(name for name, value in values.items() if not value)
    assert not empty, f"set but empty in .env.example: {empty}"
    result = _manage("check", extra_env=values)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_setting_read_from_the_environment_is_documented() -> None:
    read = set(re.findall(r'env\.(?:str|bool|int|float|list|db_url|url|path)\(\s*"([A-Z][A-Z0-9_]+)"', (ROOT / "billing_dialer" / "settings.py").read_text()))
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", (ROOT / "Procfile").read_text()))
    assert read, "no settings found: the pattern no longer matches settings.py"
    readme = (ROOT / "README.md").read_text()
    _, named = _env_example()
    internal = {"SQLITE_TEST_NAME", "CONTENT_SECURITY_POLICY"}  # for tests, and a policy kept in the README only
    assert sorted(v for v in read if f"`{v}`" not in readme) == []
    assert sorted(read - named - internal) == []
