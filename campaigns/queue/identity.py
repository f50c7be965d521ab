"""Identity-check values as the portal keeps them: keyed hashes, never the values.

The queue SQL may return `date_of_birth` and `ssn_last4`; each is normalised (a date as
YYYY-MM-DD, the last four digits) and stored only as HMAC-SHA256 with `IDENTITY_HASH_KEY`, a
key of its own. What a caller says is normalised and hashed the same way and compared in constant
time. A value that cannot be read gives no hash (the check then cannot pass on it), and is never
logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Any

from django.conf import settings

SECRET_COLUMNS = ("date_of_birth", "ssn_last4")

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y", "%B %d, %Y", "%B %d %Y", "%b %d, %Y", "%b %d %Y", "%d %B %Y")
_ORDINAL = re.compile(r"(\d)(st|nd|rd|th)\b", re.I)


def normalize_date_of_birth(value: Any) -> str:
    """YYYY-MM-DD, or "" when the value is no date (a future date or one before 1900 neither)."""
    if isinstance(value, dt.datetime):
        day: dt.date | None = value.date()
    elif isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and value.strip():
        text = _ORDINAL.sub(r"\1", " ".join(value.strip().split()))
        day = None
        try:
            day = dt.date.fromisoformat(text[:10])
        except ValueError:
            for fmt in _DATE_FORMATS:
                try:
                    day = dt.datetime.strptime(text, fmt).date()
                    break
                except ValueError:
                    continue
    else:
        day = None
    if day is None or day.year < 1900 or day > dt.date.today():
        return ""
    return day.isoformat()


def normalize_ssn_last4(value: Any) -> str:
    """The last four digits, or "" when there are fewer than four."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int):
        value = f"{value:04d}"
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else ""


def _hash(kind: str, normalized: str) -> str:
    if not normalized:
        return ""
    key = settings.IDENTITY_HASH_KEY.encode()
    return hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).hexdigest()


def date_of_birth_hash(value: Any) -> str:
    return _hash("dob", normalize_date_of_birth(value))


def ssn_last4_hash(value: Any) -> str:
    return _hash("ssn4", normalize_ssn_last4(value))


def hash_matches(stored: str, given: str) -> bool:
    return bool(stored) and bool(given) and hmac.compare_digest(stored, given)


def keyed_digest(text: str) -> str:
    """A keyed digest of any text that may hold a secret value (function-call arguments)."""
    return hmac.new(settings.IDENTITY_HASH_KEY.encode(), text.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def without_secrets(row: Any) -> Any:
    """A warehouse row with the identity values left out (for rejected rows and logs)."""
    if not isinstance(row, dict):
        return row
    return {k: ("[withheld]" if k in SECRET_COLUMNS and v not in (None, "") else v) for k, v in row.items()}
