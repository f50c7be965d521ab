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


# --- What a call's record keeps of the identity check ----------------------------------------------
#
# Callers say their date of birth or the last four digits of their SSN to Grace, so the words
# reach Retell's call object: the tool call's arguments and the caller's own turns. Before a
# call object is stored (webhook inbox, transcript), the arguments of verify_identity become
# "given" and, in the caller's turns, runs of four or more digits and written dates become
# "[withheld]". Spoken number words ("three three oh seven") are not recognised: keep Retell's
# own PII redaction on where it is available.

WITHHELD = "[withheld]"
_SPOKEN_SECRET = re.compile(
    r"\b\d{1,2}[/-]\d{1,2}[/-]\d{2,4}\b"  # 03/07/1984, 3-7-84
    r"|\b\d{4}-\d{2}-\d{2}\b"  # 1984-03-07
    r"|\b\d(?:[\s-]?\d){3,}\b"  # 4821, 4 8 2 1, 1984, a card number
)
_USER_LINE = re.compile(r"^(User|Caller|Client)(\s*:)(.*)$", re.I | re.M)


def spoken_secrets_withheld(text: str) -> str:
    """`text` with digit runs and written dates withheld (for what a caller said)."""
    return _SPOKEN_SECRET.sub(WITHHELD, text)


def transcript_withheld(transcript: str) -> str:
    """A plain "Agent: … / User: …" transcript with the caller's lines scrubbed."""
    return _USER_LINE.sub(lambda m: m.group(1) + m.group(2) + spoken_secrets_withheld(m.group(3)), transcript)


def call_object_withheld(call: Any) -> Any:
    """A copy of a Retell call object with the identity answers withheld (see above)."""
    if not isinstance(call, dict):
        return call
    kept = dict(call)
    if isinstance(kept.get("transcript"), str):
        kept["transcript"] = transcript_withheld(kept["transcript"])
    for key in ("transcript_object", "transcript_with_tool_calls"):
        turns = kept.get(key)
        if not isinstance(turns, list):
            continue
        scrubbed = []
        for turn in turns:
            if not isinstance(turn, dict):
                scrubbed.append(turn)
                continue
            turn = dict(turn)
            if turn.get("role") == "user" and isinstance(turn.get("content"), str):
                turn["content"] = spoken_secrets_withheld(turn["content"])
                turn.pop("words", None)  # word timings repeat the words
            if turn.get("role") == "tool_call_invocation" and turn.get("name") == "verify_identity":
                turn["arguments"] = '{"answer": "given"}'
            scrubbed.append(turn)
        kept[key] = scrubbed
    return kept
