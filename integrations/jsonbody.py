"""JSON request bodies, read strictly and with a nesting limit.

Python's json module accepts NaN and Infinity (no JSON column stores them) and answers a body
of 100,000 `[` with RecursionError, which no view expects. Every body the portal reads — both
vendors' webhooks, the API, the sandbox simulators — goes through `loads`, so a hostile body is
a ValueError the caller already turns into a 400.
"""

from __future__ import annotations

import json
from typing import Any


# Retell's call objects nest a handful of levels (a transcript's words inside its utterances);
# nothing a vendor or a staff client sends comes near this.
MAX_DEPTH = 32


class JsonBodyError(ValueError):
    """The body is not a JSON value the portal accepts; the message says why."""


def _not_json(constant: str) -> Any:
    raise JsonBodyError(f"{constant} is not a JSON value")


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
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise JsonBodyError(f"the JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # NaN and Infinity, JSONDecodeError, UnicodeDecodeError
        raise JsonBodyError(str(exc)) from None
    if isinstance(value, (dict, list)) and _too_deep(value):
        raise JsonBodyError(f"the JSON nests deeper than {MAX_DEPTH} levels")
    return value
