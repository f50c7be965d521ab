"""A stand-in Dialflow on a local port, speaking the documented availability contract.

The dashboard asks for free agents in background threads; a stand-in that touches no database
keeps those lookups away from the test's own database work.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubDialflow(BaseHTTPRequestHandler):
    """GET /v1/ring-groups/<ring group>/availability → {"ring_group", "available_agents"}; counts requests."""

    agents: dict[str, int] = {}
    hits: list[str] = []
    delay_seconds = 0.0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = self.path.strip("/").split("/")  # v1 / ring-groups / <rg> / availability
        ring_group = parts[2]
        type(self).hits.append(ring_group)
        time.sleep(self.delay_seconds)
        body = json.dumps({"ring_group": ring_group, "available_agents": self.agents.get(ring_group, 0)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@contextmanager
def stub_dialflow(settings: Any, *, agents: dict[str, int] | None = None) -> Iterator[type[StubDialflow]]:
    """Serve the stand-in and point the Dialflow settings at it (live mode) for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubDialflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.DIALFLOW_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.DIALFLOW_API_KEY = "test-key"
    StubDialflow.hits = []
    StubDialflow.agents = dict(agents or {})
    StubDialflow.delay_seconds = 0.0
    try:
        yield StubDialflow
    finally:
        server.shutdown()
        server.server_close()
