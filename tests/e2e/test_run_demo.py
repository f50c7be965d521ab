"""`make run`'s demo: the portal answers with a running sandbox campaign and a printed login, and
Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from tests.e2e.sandbox_env import sandbox_env

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_the_demo_serves_a_running_campaign_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = _free_port()
    env = sandbox_env(tmp_path, PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    log = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "run_demo", "--clients", "200", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    children: set[int] = set()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/admin/login/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            time.sleep(0.5)
        else:
            pytest.fail("the portal did not answer within two minutes")
        output = (tmp_path / "demo.log").read_text()
        assert "demo login: demo / " in output and f"{base}/" in output
        # Built from nothing: the warehouse was never asked for before its file existed.
        assert "warehouse error" not in output and "unable to open database file" not in output
        # Once the portal answers, the login and address are printed again below its start-up lines.
        deadline = time.monotonic() + 10
        while (tmp_path / "demo.log").read_text().count("demo login: demo / ") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "demo.log").read_text().count("demo login: demo / ") == 2

        session = requests.Session()
        login = session.get(f"{base}/admin/login/", timeout=10)
        token = login.cookies["csrftoken"]
        password = output.split("demo login: demo / ", 1)[1].split()[0]
        session.post(
            f"{base}/admin/login/?next=/dashboard/", data={"username": "demo", "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/admin/login/"}, timeout=10,
        )  # fmt: skip
        statuses = set()
        for _ in range(60):  # the worker loads the queue, then the campaign runs
            feed = session.get(f"{base}/dashboard/status/", timeout=10)
            assert feed.status_code == 200, feed.text[:500]
            statuses = {c["status"] for c in feed.json()["campaigns"]}
            if "running" in statuses:
                break
            time.sleep(1)
        assert "running" in statuses, statuses

        children = _descendants(demo.pid)
        assert len(children) >= 2  # the worker (with its cluster's processes) and the web server
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert demo.wait(timeout=30) is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)], "processes left running after Ctrl-C"
        assert f"Billing Dialer ran at {base}/ (demo login: demo / " in (tmp_path / "demo.log").read_text()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/admin/login/", timeout=5)
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
