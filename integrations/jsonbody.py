"""JSON request bodies, read strictly and with a nesting limit.

Python's json module accepts NaN and Infinity (no JSON column stores them) and answers a body
of 100,000 `[` with RecursionError, which no view expects. It also turns `1e999999` into
infinity and `1e-999999` into 0.0 — numbers PostgreSQL's jsonb refuses ("value overflows numeric
format") when the event is stored, a 500 the vendor retries. Every body the portal reads — both
vendors' webhooks, the API, the sandbox simulators — goes through `loads`, so a hostile body is
a ValueError the caller already turns into a 400, on either database.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


# Retell's call objects nest a handful of levels (a transcript's words inside its utterances);
# nothing a vendor or a staff client sends comes near this.
MAX_DEPTH = 32


# A double needs 17 significant digits; a vendor's number is never near this long. Longer ones
# are refused: PostgreSQL's numeric keeps at most 16,383 digits after the point.
MAX_NUMBER_CHARS = 100
# Doubles span about 1e-324 to 1e308; an exponent beyond that says nothing a double can keep, and
# PostgreSQL refuses some of them even with a zero in front (`0e-999999`).
MAX_EXPONENT = 400
_NONZERO_DIGIT = re.compile(r"[1-9]")


class JsonBodyError(ValueError):
    """The body is not a JSON value the portal accepts; the message says why."""


def _not_json(constant: str) -> Any:
    raise JsonBodyError(f"{constant} is not a JSON value")


def _number(literal: str) -> float:
    """A JSON number with a fraction or exponent, refused unless a double holds it as written:
    every database stores what a double holds, and nothing beyond."""
    shown = literal if len(literal) <= 40 else literal[:37] + "..."
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonBodyError(f"the number {shown} has more than {MAX_NUMBER_CHARS} characters")
    mantissa, _, exponent = literal.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        raise JsonBodyError(f"the number {shown} is out of the range a number is stored in")
    value = float(literal)
    if not math.isfinite(value):
        raise JsonBodyError(f"the number {shown} is too large to store")
    if value == 0.0 and _NONZERO_DIGIT.search(mantissa):
        raise JsonBodyError(f"the number {shown} is too small to store")
    return value


def _too_deep(value: Any) -> bool:
    """Whether containers nest deeper than MAX_DEPTH (iterative: a deep value cannot recurse here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def loads(body: str | bytes) -> Any:
    """The JSON value of a request body; JsonBodyError (a ValueError) when it is not UTF-8, not
    strict JSON, or nested deeper than MAX_DEPTH."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        value = json.loads(text, parse_constant=_not_json, parse_float=_number)
    except RecursionError:
        raise JsonBodyError(f"the JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # NaN and Infinity, JSONDecodeError, UnicodeDecodeError
        raise JsonBodyError(str(exc)) from None
    if isinstance(value, (dict, list)) and _too_deep(value):
        raise JsonBodyError(f"the JSON nests deeper than {MAX_DEPTH} levels")
    return value
