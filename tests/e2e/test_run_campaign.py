"""`manage.py run_campaign --sandbox` as a user runs it: a whole day, then a JSON summary whose
invariant checks decide the exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from campaigns.management.commands import run_campaign
from campaigns.lifecycle import sandbox_day
from campaigns.lifecycle.sandbox_day import DayReport
from tests.e2e.sandbox_env import sandbox_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--one-process"]], ids=["processes", "one-process"])
def test_a_sandbox_day_prints_its_summary_and_exits_zero(tmp_path: Path, mode: list[str]) -> None:
    env = sandbox_env(tmp_path)
    run = [sys.executable, "manage.py"]
    subprocess.run([*run, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    day = subprocess.run(
        [*run, "run_campaign", "--sandbox", "--clients", "150", "--seed", "5", "--speed", "2400", *mode],
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
    # The sandbox clients opened the links texted to them and paid on the simulated Stripe.
    money = summary["money"]
    assert money["payments"] > 0 and float(money["recovered"]) > 0 and money["promises_made"] > 0, money
    assert money["links_paid"] <= money["links_opened"] and money["promises_kept"] + money["promises_partly_kept"] <= money["promises_made"]
    assert summary["history_rows_in_warehouse"] >= summary["rows_flushed"] > 0
    assert "placed" in day.stderr  # progress lines while the day runs
    assert (tmp_path / "reconciled" / f"reconciled-{summary['date']}.csv").exists()


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment mentions `marker` (the day's processes inherit its database path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finding the day's processes needs /proc")
def test_sigterm_stops_the_day_and_every_process_it_started(tmp_path: Path) -> None:
    env = sandbox_env(tmp_path)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    progress = tmp_path / "progress.log"
    with progress.open("w") as stderr:
        day = subprocess.Popen(
            [sys.executable, "manage.py", "run_campaign", "--sandbox", "--clients", "150", "--seed", "5", "--speed", "30"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while " placed " not in progress.read_text() and day.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert day.poll() is None, progress.read_text()[-3000:]
        assert len(_processes_with(str(tmp_path))) >= 4  # this day, gunicorn and its workers, the two worker processes
        day.send_signal(signal.SIGTERM)
        day.wait(timeout=60)
        deadline = time.monotonic() + 20
        while _processes_with(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_with(str(tmp_path)) == []
        assert day.returncode != 0
    finally:
        for pid in _processes_with(str(tmp_path)):  # a failed run leaves nothing behind either
            os.kill(pid, signal.SIGKILL)


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


@pytest.mark.parametrize(("clients", "speed"), [(500, 1200.0), (20000, 200.0), (40000, 100.0)])
def test_the_default_clock_slows_down_for_big_days(monkeypatch: pytest.MonkeyPatch, clients: int, speed: float) -> None:
    seen: dict[str, Any] = {}

    def run(**kwargs: Any) -> DayReport:
        seen.update(kwargs)
        return DayReport(invariants=[{"name": "ledger_caps_held", "ok": True}])

    monkeypatch.setattr(run_campaign, "sandbox_day_run", run)
    call_command("run_campaign", "--sandbox", "--clients", str(clients), "--quiet")
    assert seen["speed"] == speed and seen["processes"] is True


def test_a_day_process_that_cannot_start_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    children = sandbox_day.PortalProcesses(dispatchers=1, task_workers=1)
    children.commands = [[sys.executable, "-c", "import time; time.sleep(30)"], [sys.executable, "-c", "raise SystemExit(3)"]]
    with pytest.raises(sandbox_day.SandboxDayError, match=r"exited at start \(status 3\)"):
        with children:
            pass
    assert all(p.poll() is not None for p in children.processes)  # nothing left running
