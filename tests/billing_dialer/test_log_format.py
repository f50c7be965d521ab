"""Log lines: readable at a terminal, JSON for whatever collects them, or as LOG_FORMAT says."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from billing_dialer.logging import ConsoleHandler, MaskPiiFilter, TextFormatter, use_text_lines

ROOT = Path(__file__).resolve().parents[2]

# A command's start-up as far as logging goes: settings configure the handler, then a line.
SCRIPT = (
    "import django, logging, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'billing_dialer.settings'); django.setup(); "
    "logging.getLogger('campaigns.demo').warning('queue loaded', extra={'rows': 12, 'phone': '+12125550142'})"
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_chooses_text_for_a_terminal_and_json_otherwise() -> None:
    assert use_text_lines("auto", _Terminal()) and not use_text_lines("auto", io.StringIO())
    assert use_text_lines("text", io.StringIO()) and not use_text_lines("json", _Terminal())


def test_a_text_line_reads_like_a_sentence_with_its_fields_and_masks_phones() -> None:
    record = logging.LogRecord("campaigns.calls", logging.WARNING, __file__, 1, "call failed", None, None)
    record.phone = "+12125550142"
    MaskPiiFilter().filter(record)
    line = TextFormatter().format(record)
    assert " warning campaigns.calls: call failed  phone=***0142" in line
    assert "5550142" not in line


def _run(env_extra: dict[str, str], *, stderr_is_terminal: bool) -> str:
    env = {key: value for key, value in os.environ.items() if key != "LOG_FORMAT"} | env_extra
    if not stderr_is_terminal:
        done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
        return done.stderr
    leader, follower = pty.openpty()
    try:
        subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, stderr=follower, stdout=subprocess.DEVNULL, timeout=120, check=True)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)


def _line(output: str) -> str:
    return next(line for line in output.splitlines() if "queue loaded" in line)


@pytest.mark.parametrize("stderr_is_terminal", [False, True])
def test_a_command_logs_text_at_a_terminal_and_json_into_a_pipe(stderr_is_terminal: bool) -> None:
    line = _line(_run({}, stderr_is_terminal=stderr_is_terminal))
    if stderr_is_terminal:
        assert "warning campaigns.demo: queue loaded  rows=12 phone=***0142" in line
    else:
        assert json.loads(line) | {"ts": ""} == {"ts": "", "level": "warning", "logger": "campaigns.demo", "event": "queue loaded", "rows": 12, "phone": "***0142"}


def test_log_format_chooses_whatever_stderr_is() -> None:
    assert "warning campaigns.demo: queue loaded" in _line(_run({"LOG_FORMAT": "text"}, stderr_is_terminal=False))
    assert json.loads(_line(_run({"LOG_FORMAT": "json"}, stderr_is_terminal=True)))["event"] == "queue loaded"


def test_the_handler_writes_to_stderr() -> None:
    assert ConsoleHandler().stream is sys.stderr
