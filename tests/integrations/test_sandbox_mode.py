"""Sandbox by default: the banner, the start-up line, 404s for live vendors, the knobs endpoint,
and `check_integrations`."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from integrations import modes
from integrations.sandbox import delivery
from integrations.sandbox.models import SimulatorConfig

BANNER = "Sandbox mode — no real calls or texts are made"


def _no_vendor_credentials(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RETELL_API_KEY = ""
    settings.HEYMARKET_API_TOKEN = ""
    settings.DIALFLOW_URL = ""
    settings.DIALFLOW_API_KEY = ""


def _live_everything(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RETELL_API_KEY = "key_live"
    settings.HEYMARKET_API_TOKEN = "hm_live"
    settings.DIALFLOW_URL = "https://dialflow.example.com"
    settings.DIALFLOW_API_KEY = "df_live"


@pytest.fixture
def staff_client(db) -> Client:  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user("staff", password="pw-not-used", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_with_no_credentials_every_vendor_is_simulated(settings) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    assert modes.sandboxed_vendors() == ["retell", "heymarket", "dialflow"]
    settings.RETELL_API_KEY = "key_live"
    assert modes.sandboxed_vendors() == ["heymarket", "dialflow"]


def test_every_staff_page_shows_the_banner_in_sandbox(settings, staff_client: Client) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    for url in ("/admin/", "/admin/sandbox/simulatorconfig/", "/admin/auth/user/"):
        page = staff_client.get(url).content.decode()
        assert BANNER in page, url
        assert "simulated: retell, heymarket, dialflow" in page


def test_the_login_page_shows_the_banner_too(settings, db) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    assert BANNER in Client().get("/admin/login/").content.decode()


def test_no_banner_when_every_vendor_is_live(settings, staff_client: Client) -> None:  # type: ignore[no-untyped-def]
    _live_everything(settings)
    assert BANNER not in staff_client.get("/admin/").content.decode()


def test_one_log_line_at_start_says_sandbox(settings, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    with caplog.at_level(logging.INFO, logger="integrations.sandbox.apps"):
        apps.get_app_config("sandbox").ready()
    [record] = caplog.records
    assert record.getMessage() == BANNER and record.sandbox_vendors == ["retell", "heymarket", "dialflow"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "method"),
    [
        ("/sandbox/retell/v2/create-phone-call", "post"),
        ("/sandbox/retell/v2/get-call/call_x", "get"),
        ("/sandbox/retell/get-concurrency", "get"),
        ("/sandbox/heymarket/v1/message/send", "post"),
        ("/sandbox/heymarket/v1/contact/status", "post"),
        ("/sandbox/heymarket/inject", "post"),
        ("/sandbox/dialflow/v1/ring-groups/billing/availability", "get"),
        ("/sandbox/config", "get"),
        ("/sandbox/dispatch", "post"),
    ],
)
def test_simulators_answer_404_when_their_vendor_is_live(settings, db, url: str, method: str) -> None:  # type: ignore[no-untyped-def]
    _live_everything(settings)
    response = getattr(Client(), method)(url)
    assert response.status_code == 404


def test_only_the_live_vendor_disappears(settings, db) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    settings.RETELL_API_KEY = "key_live"
    client = Client()
    assert client.get("/sandbox/retell/get-concurrency").status_code == 404
    response = client.get("/sandbox/dialflow/v1/ring-groups/billing/availability", HTTP_AUTHORIZATION="Bearer sandbox-dialflow-key")
    assert response.status_code == 200


def test_knobs_can_be_read_and_changed_by_staff(settings, staff_client: Client) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    assert staff_client.get("/sandbox/config").json()["speed_factor"] == 1.0
    change = {"speed_factor": 60, "duplicate_rate": 0.1, "outcome_weights": {"answered": 1}}
    response = staff_client.post("/sandbox/config", json.dumps(change), content_type="application/json")
    assert response.status_code == 200 and response.json()["speed_factor"] == 60
    config = SimulatorConfig.load()
    assert config.speed_factor == 60 and config.duplicate_rate == 0.1 and config.outcome_weights == {"answered": 1}
    bad = staff_client.post("/sandbox/config", json.dumps({"duplicate_rate": 2}), content_type="application/json")
    assert bad.status_code == 400 and "duplicate_rate" in bad.json()["fields"]
    unknown = staff_client.post("/sandbox/config", json.dumps({"sped": 2}), content_type="application/json")
    assert unknown.status_code == 400 and "sped" in unknown.json()["error"]
    assert SimulatorConfig.load().duplicate_rate == 0.1


@pytest.mark.parametrize(
    "change",
    [
        {"outcome_weights": {"answerd": 1}},
        {"outcome_weights": {"answered": -1}},
        {"outcome_weights": ["answered"]},
        {"conversation_weights": {"dispute": 1.5}},
        {"forced_outcomes": {"+12125550147": "maybe"}},
        {"dialflow_pattern": []},
        {"dialflow_pattern": [1, "2"]},
        {"dialflow_overrides": {"billing": [-1]}},
        {"talk_seconds_min": 100, "talk_seconds_max": 50},
    ],
)
def test_knobs_that_would_break_a_simulator_are_refused(settings, staff_client: Client, change: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    before = staff_client.get("/sandbox/config").json()
    response = staff_client.post("/sandbox/config", json.dumps(change), content_type="application/json")
    assert response.status_code == 400 and set(response.json()["fields"]) & set(change)
    assert staff_client.get("/sandbox/config").json() == before


def test_no_dispatcher_thread_under_tests() -> None:
    assert delivery.auto_dispatch_allowed() is False
    assert delivery.dispatcher_ensure_started() is False


def _check(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("check_integrations", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_check_integrations_all_reachable_in_sandbox(settings, sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    call_command("seed_warehouse", "--clients", "5", stdout=io.StringIO())
    status, output = _check("--json")
    results = {r["vendor"]: r for r in json.loads(output)}
    assert status == 0, output
    assert {v: (r["mode"], r["reachable"], r["problems"]) for v, r in results.items()} == {
        "retell": ("sandbox", True, []),
        "heymarket": ("sandbox", True, []),
        "dialflow": ("sandbox", True, []),
        "warehouse": ("sandbox", True, []),
    }
    assert results["retell"]["detail"] == "0 of 20 concurrent calls in use"


def test_check_integrations_says_what_to_fix(settings, tmp_path, fast_retries) -> None:  # type: ignore[no-untyped-def]
    _no_vendor_credentials(settings)
    settings.SANDBOX_APP_URL = "http://127.0.0.1:9"  # nothing listens: the web server is not running
    settings.DIALFLOW_URL = "https://dialflow.example.com"  # the key is missing
    settings.DATABRICKS_TOKEN = "dapi-x"  # hostname and path are missing
    settings.WAREHOUSE_URL = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    status, output = _check()
    assert status == 1
    assert "retell     sandbox  UNREACHABLE" in output
    assert "start the web server (make run) or point SANDBOX_APP_URL at it" in output
    assert "DIALFLOW_API_KEY is not set" in output
    assert "DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH not set" in output
    assert "seed_warehouse" in output


def test_check_integrations_reports_refused_live_credentials(settings, sandbox, stub_server, fast_retries) -> None:  # type: ignore[no-untyped-def]
    settings.RETELL_API_KEY = "key_wrong"
    settings.RETELL_AGENT_ID = ""
    settings.RETELL_FROM_NUMBERS = ["+12125550100", "555-0100"]
    settings.RETELL_BASE_URL = stub_server.url  # stands in for api.retellai.com refusing the key
    stub_server.answer((401, {"error_message": "Invalid API key"}))
    status, output = _check("--json")
    retell = {r["vendor"]: r for r in json.loads(output)}["retell"]
    assert status == 1 and retell["mode"] == "live" and not retell["reachable"]
    assert retell["problems"] == [
        "RETELL_AGENT_ID is not set to the live agent's id",
        "RETELL_FROM_NUMBERS has numbers that are not E.164: 555-0100",
        "retell refused the credentials (HTTP 401): check RETELL_API_KEY",
    ]
    assert stub_server.requests[0].headers["Authorization"] == "Bearer key_wrong"
