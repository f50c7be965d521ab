"""Every coverage-guided fuzz target runs a few thousand inputs cleanly (`make fuzz` runs them longer).

Each run is its own process, as libFuzzer requires; the seed is fixed, so a failure here repeats.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = 4000

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris is not installed (it has wheels for Linux x86-64 only)"
)


def target_names() -> list[str]:
    if importlib.util.find_spec("atheris") is None:
        return []
    listing = subprocess.run([sys.executable, "-m", "tests.fuzz.guided", "--list"], cwd=ROOT, capture_output=True, text=True, check=True)
    return listing.stdout.split()


def fuzz(target: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "billing_dialer.settings"}
    return subprocess.run(
        [sys.executable, "-m", "tests.fuzz.guided", target, *args, f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize("target", target_names())
def test_the_target_runs_clean(target: str, tmp_path: Path) -> None:
    result = fuzz(target, f"-runs={RUNS}", "-seed=1", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {RUNS} runs" in result.stderr
    assert not list(tmp_path.iterdir()), "no crash input is written"
