"""Structured JSON log lines with personal data masked.

Phone numbers keep at most their last four digits; card-like digit runs and SSNs are replaced
entirely. The filter runs on every handler, so a careless `log.info("... %s", phone)` anywhere
in the code (or in a library) still cannot leak a full number.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

# Card-like: 13-19 digits, optionally split by spaces or dashes, standing on their own. A run
# inside an identifier (a Retell call id is 32 hex characters) is part of that id, and masking it
# would only make the id impossible to find in the logs.
_CARD = re.compile(r"(?<![0-9A-Za-z_])(?:\d[ -]?){12,18}\d(?![0-9A-Za-z_])")
_SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
# Phone-like: optional +, 10-12 digits possibly separated by spaces, dots, dashes or parentheses.
_PHONE = re.compile(r"(?<![\w])\+?(?:\(?\d\)?[ .\-()]*){6,11}\d{4}(?!\d)")

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def mask_phone(value: str | None) -> str:
    """Return a phone number with everything but its last four digits hidden."""
    digits = re.sub(r"\D", "", value or "")
    return f"***{digits[-4:]}" if digits else ""


def mask_text(text: str) -> str:
    text = _SSN.sub("***-**-****", text)
    text = _CARD.sub(lambda m: "[card removed]" if len(re.sub(r"\D", "", m.group())) >= 13 else m.group(), text)
    return _PHONE.sub(lambda m: mask_phone(m.group()), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(v) for v in value]
    return value


class MaskPiiFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg = mask_text(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED:
                setattr(record, key, _mask_value(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                # An extra field never overwrites the line's own keys (ts, level, logger, event).
                line[f"extra_{key}" if key in line else key] = value
        if record.exc_info:
            line["exc"] = mask_text(self.formatException(record.exc_info))
        # Objects in `extra` (Django's `request`, for one) are written as their text, which the
        # filter never saw: mask that text too.
        return json.dumps(line, default=lambda value: mask_text(str(value)))


class TextFormatter(logging.Formatter):
    """One line a person reads at a terminal: '14:02:07 warning campaigns.calls: event  key=value'."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).astimezone().strftime("%H:%M:%S")
        fields = " ".join(
            f"{key}={value}" for key, value in vars(record).items() if key not in _RESERVED and not key.startswith("_")
        )
        line = f"{when} {record.levelname.lower():<7} {record.name}: {record.getMessage()}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + mask_text(self.formatException(record.exc_info))
        return mask_text(line)


def use_text_lines(log_format: str, stream: Any) -> bool:
    """'text' or 'json' as set; 'auto' (the default): text when the stream is a terminal."""
    if log_format in ("text", "json"):
        return log_format == "text"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, in readable lines for a person at a terminal (`make run`, a command typed by hand)
    and in JSON for anything that collects the logs; LOG_FORMAT=text|json decides instead."""

    def __init__(self, log_format: str = "auto") -> None:
        super().__init__()
        self.setFormatter(TextFormatter() if use_text_lines(log_format, self.stream) else JsonFormatter())
