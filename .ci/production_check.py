"""The production path, end to end, as README's "Going live" describes it (`make production-check`).

1. Build: `make build` — collectstatic with DEBUG=False (hashed, compressed files and a manifest).
2. Release: the Procfile's `release` command (migrate, periodic schedules).
3. Web: the Procfile's `web` command, as written there (gunicorn), on a free local port.
4. Requests through it as the TLS-terminating proxy in front of it would send them
   (`X-Forwarded-Proto: https`, BEHIND_PROXY on): the login page answers 200, a hashed static file
   200 with far-future cache headers, a signed-in staff member's pages 200, the closed doors
   (sandbox, unsigned webhooks, the API without a token) their 4xx — and no answer is a 5xx, in
   what the check received or in gunicorn's access log.
5. `manage.py check --deploy` with the same environment prints no issues.

PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres) gets a scratch database, dropped at the
end; without it, a SQLite file. Exits 1 and says what failed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
ONE_YEAR = 365 * 24 * 3600
HASHED = re.compile(r"/static/[^\"' ]+\.[0-9a-f]{12}\.(?:css|js)")
STAFF_PAGES = ("/dashboard/", "/dashboard/kpis/", "/dashboard/clients/", "/admin/", "/admin/cadences/segment/", "/api/docs/")


class Failed(Exception):
    pass


def say(message: str) -> None:
    print(f"production-check: {message}", flush=True)


def procfile(process: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise Failed(f"the Procfile has no {process!r} process")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


def scratch_database(workdir: Path) -> tuple[str, str | None]:
    """(DATABASE_URL, the PostgreSQL database to drop afterwards or None)."""
    if not postgres_answers():
        return f"sqlite:///{workdir / 'portal.sqlite3'}", None
    import psycopg

    name = f"bd_production_check_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}", name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def production_env(*, database_url: str, workdir: Path, port: int) -> dict[str, str]:
    keep = {"HOME", "LANG", "LC_ALL", "TMPDIR", "USER"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        DEBUG="False",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        CSRF_TRUSTED_ORIGINS=f"https://127.0.0.1:{port}",
        DATABASE_URL=database_url,
        # TLS ends at the proxy in front of gunicorn, which says so in X-Forwarded-Proto.
        BEHIND_PROXY="True",
        STATIC_ROOT=str(workdir / "static"),
        RECONCILED_FILE_DIR=str(workdir / "reconciled"),
        WAREHOUSE_URL=f"sqlite:///{workdir / 'warehouse.sqlite3'}",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_LEVEL="WARNING",
        DJANGO_SUPERUSER_USERNAME="production.check",
        DJANGO_SUPERUSER_EMAIL="production.check@example.com",
        DJANGO_SUPERUSER_PASSWORD=secrets.token_urlsafe(24),
    )
    return env


def run(command: list[str] | str, env: dict[str, str], *, what: str) -> str:
    shell = isinstance(command, str)
    result = subprocess.run(command, cwd=ROOT, env=env, shell=shell, executable="/bin/bash" if shell else None, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise Failed(f"{what} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


class Portal:
    """The Procfile's web process, in a process group of its own so every worker stops with it."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.handle = log.open("wb")
        self.process = subprocess.Popen(["/bin/bash", "-c", procfile("web")], cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)
        self.session = requests.Session()
        self.session.headers["X-Forwarded-Proto"] = "https"
        self.answers: list[tuple[str, str, int]] = []

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failed(f"gunicorn exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", int(self.base.rsplit(":", 1)[1])), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise Failed(f"gunicorn did not answer within {timeout:g} s")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        # The cookies are Secure and the proxy's TLS is left out here: send them as a browser
        # would over the HTTPS the proxy serves.
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.session.cookies)
        if cookies:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Cookie": cookies}
        response = self.session.request(method, self.base + path, **kwargs)
        self.answers.append((method, path, response.status_code))
        return response

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.handle.close()


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)
    say(f"ok: {message}")


def check_requests(portal: Portal, env: dict[str, str]) -> None:
    # Plain HTTP is sent to HTTPS; through the proxy the login page answers.
    redirect = requests.get(portal.base + "/admin/login/", allow_redirects=False, timeout=30)
    portal.answers.append(("GET", "/admin/login/ (plain http)", redirect.status_code))
    expect(redirect.status_code == 301 and redirect.headers["Location"].startswith("https://"), "plain HTTP is redirected to HTTPS (301)")

    login = portal.request("GET", "/admin/login/?next=/dashboard/")
    expect(login.status_code == 200 and 'name="csrfmiddlewaretoken"' in login.text, "the login page answers 200 with its form")
    expect("Strict-Transport-Security" in login.headers, "HSTS is sent")

    hashed = sorted(set(HASHED.findall(login.text)))
    expect(bool(hashed), f"the login page links hashed static files ({len(hashed)})")
    manifest = json.loads((Path(env["STATIC_ROOT"]) / "staticfiles.json").read_text())["paths"]
    chart = manifest.get("vendor/chart.js/chart.umd.min.js")
    for path in [hashed[0], *([f"/static/{chart}", f"/static/{manifest['vendor/chart.js/chart.umd.min.js.map']}"] if chart else [])]:
        static = portal.request("GET", path)
        cache = static.headers.get("Cache-Control", "")
        max_age = int(re.search(r"max-age=(\d+)", cache).group(1)) if "max-age=" in cache else 0
        expect(static.status_code == 200 and static.content and max_age >= ONE_YEAR, f"{path} answers 200 with far-future caching ({cache})")
    if chart is None:
        say("note: Chart.js was not fetched (no npm): the dashboards show their tables")

    token = portal.session.cookies.get("csrftoken", "")
    signed_in = portal.request(
        "POST",
        "/admin/login/?next=/dashboard/",
        data={"username": env["DJANGO_SUPERUSER_USERNAME"], "password": env["DJANGO_SUPERUSER_PASSWORD"], "csrfmiddlewaretoken": token, "next": "/dashboard/"},
        headers={"Referer": f"https://127.0.0.1:{env['PORT']}/admin/login/", "Origin": f"https://127.0.0.1:{env['PORT']}"},
    )
    expect(signed_in.status_code == 302 and signed_in.headers["Location"] == "/dashboard/", "a staff member signs in")
    for path in STAFF_PAGES:
        page = portal.request("GET", path)
        expect(page.status_code == 200, f"{path} answers 200 to staff")
        for script in sorted(set(re.findall(r'<script src="([^"]+)"', page.text))):
            expect(portal.request("GET", script).status_code == 200, f"  its script {script} answers 200")

    anonymous = requests.Session()
    anonymous.headers["X-Forwarded-Proto"] = "https"
    closed = {
        ("GET", "/sandbox/config"): 404,
        ("POST", "/sandbox/config"): 404,
        ("GET", "/api/campaigns/"): 401,
        ("POST", "/webhooks/retell/"): 401,
        ("GET", "/no-such-page/"): 404,
    }
    for (method, path), status in closed.items():
        response = anonymous.request(method, portal.base + path, data=b"{}", allow_redirects=False, timeout=30)
        portal.answers.append((method, path, response.status_code))
        expect(response.status_code == status, f"{method} {path} answers {status} (got {response.status_code})")


def check_access_log(portal: Portal) -> None:
    statuses = [int(match) for match in re.findall(r'" (\d{3}) ', portal.log.read_text(errors="replace"))]
    expect(len(statuses) >= len(portal.answers), f"gunicorn logged every request ({len(statuses)} lines for {len(portal.answers)} requests)")
    server_errors = [status for status in statuses if status >= 500]
    expect(not server_errors and all(status < 500 for _, _, status in portal.answers), "no request answered 5xx")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bd-production-check-"))
    port = free_port()
    database_url, database = scratch_database(workdir)
    env = production_env(database_url=database_url, workdir=workdir, port=port)
    say(f"database {database_url.split('@')[-1]}, static files in {env['STATIC_ROOT']}, port {port}")
    portal: Portal | None = None
    requests_made = 0
    try:
        say("build: make build")
        run(["make", "--no-print-directory", "build"], env, what="make build")
        say(f"release: {procfile('release')}")
        run(procfile("release"), env, what="the Procfile's release command")
        run([sys.executable, "manage.py", "createsuperuser", "--noinput"], env, what="createsuperuser")
        say(f"web: {procfile('web')}")
        portal = Portal(env, port, workdir / "gunicorn.log")
        portal.wait_until_serving()
        check_requests(portal, env)
        deploy = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, what="check --deploy")
        expect("System check identified no issues" in deploy and "WARNINGS" not in deploy, "check --deploy prints no issues")
        portal.stop()
        check_access_log(portal)
        requests_made = len(portal.answers)
    except Failed as failure:
        print(f"production-check: FAILED: {failure}", file=sys.stderr)
        if portal is not None:
            portal.stop()
            print(f"--- gunicorn log ---\n{portal.log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        return 1
    finally:
        if portal is not None and portal.process.poll() is None:
            portal.stop()
        if database is not None:
            drop_database(database)
    say(f"passed: {requests_made} requests through gunicorn, none answered 5xx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
