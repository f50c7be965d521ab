"""`manage.py run_campaign --sandbox` as a user runs it: a whole day, then a JSON summary whose
invariant checks decide the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from campaigns.management.commands import run_campaign
from campaigns.services.sandbox_day import DayReport
from tests.e2e.sandbox_env import sandbox_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_sandbox_day_prints_its_summary_and_exits_zero(tmp_path: Path) -> None:
    env = sandbox_env(tmp_path)
    run = [sys.executable, "manage.py"]
    subprocess.run([*run, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    day = subprocess.run(
        [*run, "run_campaign", "--sandbox", "--clients", "150", "--seed", "5", "--speed", "2400"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert day.returncode == 0, day.stderr[-4000:]
    summary = json.loads(day.stdout)
    assert summary["ok"] is True
    assert {c["name"] for c in summary["invariants"]} == {
        "no_item_dialed_twice", "no_contact_outside_local_window", "ledger_caps_held",
        "counters_equal_recount", "queue_cleaned_after_confirmed_flush",
    }  # fmt: skip
    assert summary["load"]["rows_read"] > 0 and summary["load"]["queued"] > 0
    assert sum(summary["outcomes"].values()) > 0 and summary["sms"]
    reach = summary["reach"]
    assert 0 < reach["call_touchpoints_dialed"] <= summary["load"]["call_touchpoints"]
    assert reach["call_touchpoints_dialed"] + reach["call_touchpoints_out_of_time"] <= summary["load"]["call_touchpoints"]
    assert summary["history_rows_in_warehouse"] >= summary["rows_flushed"] > 0
    assert "placed" in day.stderr  # progress lines while the day runs
    assert (tmp_path / "reconciled" / f"reconciled-{summary['date']}.csv").exists()


def test_a_failed_invariant_is_named_and_the_exit_status_is_one(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    report = DayReport(
        invariants=[{"name": "no_item_dialed_twice", "ok": False, "detail": "1 repeated"}, {"name": "ledger_caps_held", "ok": True}]
    )
    monkeypatch.setattr(run_campaign, "sandbox_day_run", lambda **_: report)
    with pytest.raises(SystemExit) as exited:
        call_command("run_campaign", "--sandbox", "--clients", "5", "--quiet")
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is False and "invariant failed: no_item_dialed_twice" in err
