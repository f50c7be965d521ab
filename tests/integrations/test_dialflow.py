"""The Dialflow client against its simulator, and what it does when the answer is unknown."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from integrations.dialflow import client as dialflow
from integrations.sandbox import dialflow as simulator
from integrations.sandbox.models import SimulatorConfig

from .conftest import StubServer


def _configure(**fields: object) -> SimulatorConfig:
    config = SimulatorConfig.load()
    for name, value in fields.items():
        setattr(config, name, value)
    config.save()
    return config


@pytest.mark.usefixtures("sandbox")
def test_available_agents_over_real_http_matches_the_pattern() -> None:
    _configure(dialflow_overrides={"billing": [3], "resurrection-east": [0]})
    assert dialflow.available_agents("billing") == 3
    assert dialflow.available_agents("resurrection-east") == 0


@pytest.mark.usefixtures("sandbox")
def test_ring_group_names_are_escaped_in_the_path() -> None:
    _configure(dialflow_overrides={"RED billing/east": [5]})
    assert dialflow.available_agents("RED billing/east") == 5


@pytest.mark.django_db
def test_the_pattern_changes_with_time_and_is_deterministic() -> None:
    config = _configure(dialflow_pattern=[0, 1, 2, 3, 4, 5], dialflow_step_seconds=30, speed_factor=1.0)
    start = dt.datetime(2026, 3, 2, 15, 0, 0, tzinfo=dt.timezone.utc)
    series = [simulator.available_agents("billing", now=start + dt.timedelta(seconds=30 * i), config=config) for i in range(6)]
    assert sorted(series) == [0, 1, 2, 3, 4, 5]  # one full cycle, starting at the ring group's offset
    assert all((b - a) % 6 == 1 for a, b in zip(series, series[1:]))
    again = [simulator.available_agents("billing", now=start + dt.timedelta(seconds=30 * i), config=config) for i in range(6)]
    assert again == series
    # Within a step the count holds still.
    assert simulator.available_agents("billing", now=start + dt.timedelta(seconds=1), config=config) == series[0]
    # The speed factor walks the pattern faster: 10× speed moves 10 steps in 30 real seconds.
    config.speed_factor = 10.0
    fast = simulator.available_agents("billing", now=start + dt.timedelta(seconds=30), config=config)
    config.speed_factor = 1.0
    slow = simulator.available_agents("billing", now=start + dt.timedelta(seconds=300), config=config)
    assert fast == slow


@pytest.mark.django_db
def test_ring_groups_open_up_at_different_times() -> None:
    config = _configure(dialflow_pattern=list(range(12)))
    now = dt.datetime(2026, 3, 2, 15, 0, 0, tzinfo=dt.timezone.utc)
    counts = {rg: simulator.available_agents(rg, now=now, config=config) for rg in ("billing", "resurrection", "red-billing", "reso-billing")}
    assert len(set(counts.values())) > 1


def _live_dialflow(settings, url: str) -> None:  # type: ignore[no-untyped-def]
    settings.DIALFLOW_URL = url
    settings.DIALFLOW_API_KEY = "df-key"


@pytest.mark.parametrize(
    "answer",
    [
        (500, {"error": "down"}),
        (503, {}),
        (401, {"error": "bad key"}),
        (404, {"error": "no such ring group"}),
        (200, {"ring_group": "billing"}),
        (200, {"ring_group": "billing", "available_agents": -2}),
        (200, {"ring_group": "billing", "available_agents": "7"}),
        (200, {"ring_group": "billing", "available_agents": True}),
        (200, {"ring_group": "other", "available_agents": 4}),
        (200, ["not", "an", "object"]),
    ],
)
def test_errors_and_malformed_answers_count_as_zero_with_a_warning(settings, stub_server: StubServer, caplog: pytest.LogCaptureFixture, answer: tuple[int, object]) -> None:  # type: ignore[no-untyped-def]
    _live_dialflow(settings, stub_server.url)
    stub_server.answer(answer)
    with caplog.at_level(logging.WARNING, logger="integrations.dialflow.client"):
        assert dialflow.available_agents("billing") == 0
    assert any("counting zero" in r.getMessage() for r in caplog.records)
    assert stub_server.requests[0].headers["Authorization"] == "Bearer df-key"
    assert stub_server.requests[0].path == "/v1/ring-groups/billing/availability"


def test_a_timeout_counts_as_zero_quickly(settings, stub_server: StubServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    _live_dialflow(settings, stub_server.url)
    monkeypatch.setattr(dialflow, "TIMEOUT", (1.0, 0.3))
    stub_server.answer((200, {"ring_group": "billing", "available_agents": 9}, {}, 1.0))
    with caplog.at_level(logging.WARNING, logger="integrations.dialflow.client"):
        assert dialflow.available_agents("billing") == 0
    assert "timeout" in caplog.records[-1].error  # type: ignore[attr-defined]
    assert len(stub_server.requests) == 1  # the next poll is the retry


def test_a_live_answer_is_used(settings, stub_server: StubServer) -> None:  # type: ignore[no-untyped-def]
    _live_dialflow(settings, stub_server.url + "/")
    stub_server.answer((200, {"ring_group": "billing", "available_agents": 6}))
    assert dialflow.available_agents("billing") == 6


def test_unreachable_dialflow_counts_as_zero(settings) -> None:  # type: ignore[no-untyped-def]
    _live_dialflow(settings, "http://127.0.0.1:9")
    assert dialflow.available_agents("billing") == 0
