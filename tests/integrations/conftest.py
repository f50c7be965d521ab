from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from django.test import override_settings

from integrations import http

# The warehouse tests run against both DB-API backends. PostgreSQL gets its own database so the
# sample tables never land in the application's test database.
WAREHOUSE_PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
WAREHOUSE_PG_URL = "postgres://postgres@127.0.0.1:5432/bd_integrations_warehouse"


def _postgres_warehouse_url() -> str | None:
    try:
        with psycopg.connect(WAREHOUSE_PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'bd_integrations_warehouse'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE bd_integrations_warehouse")
    except psycopg.OperationalError:
        return None
    return WAREHOUSE_PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """WAREHOUSE_URL pointing at a fresh SQLite file, then at a PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.sqlite3'}"
    else:
        pg = _postgres_warehouse_url()
        if pg is None:
            pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432")
        url = pg
    with override_settings(WAREHOUSE_URL=url, DATABRICKS_SERVER_HOSTNAME="", DATABRICKS_HTTP_PATH="", DATABRICKS_TOKEN=""):
        yield url


@pytest.fixture
def table_name() -> str:
    """A table name no other test (or concurrent run) uses, three-part like the real history table."""
    return f"analytics.billing.t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _fresh_vendor_sessions() -> Iterator[None]:
    # Sessions pool connections per process; a test's server goes away with the test.
    yield
    http.reset_sessions()


class RecordedRequest:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self) -> object:
        return json.loads(self.body.decode("utf-8"))


class StubServer:
    """A real HTTP server on a free port that records requests and answers from a script.

    `responses` is consumed one per request: (status, json body, headers, delay seconds); the
    last entry repeats. It stands in for a vendor or for the app's webhook endpoint.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.responses: list[tuple[int, object, dict[str, str], float]] = [(200, {"ok": True}, {}, 0.0)]
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with stub._lock:
                    stub.requests.append(RecordedRequest(self.command, self.path, dict(self.headers.items()), body))
                    index = min(len(stub.requests) - 1, len(stub.responses) - 1)
                    status, payload, headers, delay = stub.responses[index]
                if delay:
                    time.sleep(delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer(self, *responses: tuple[int, object] | tuple[int, object, dict[str, str]] | tuple[int, object, dict[str, str], float]) -> None:
        self.responses = [(r[0], r[1], r[2] if len(r) > 2 else {}, r[3] if len(r) > 3 else 0.0) for r in responses]  # type: ignore[misc]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_server() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the retry policy (same counts, same statuses) but without seconds of backoff."""
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(http, "BACKOFF_JITTER", 0.0)
    monkeypatch.setattr(http, "RETRY_AFTER_MAX", 0)
    http.reset_sessions()


@pytest.fixture
def sandbox(settings, live_server, fast_retries):  # type: ignore[no-untyped-def]
    """Every vendor in sandbox mode, the clients pointed at this test's live server."""
    settings.RETELL_API_KEY = ""
    settings.HEYMARKET_API_TOKEN = ""
    settings.DIALFLOW_URL = ""
    settings.DIALFLOW_API_KEY = ""
    settings.SANDBOX_APP_URL = live_server.url
    return live_server
