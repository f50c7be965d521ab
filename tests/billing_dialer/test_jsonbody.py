"""Request bodies: strict JSON, nested at most MAX_DEPTH deep, refused with a ValueError otherwise."""

from __future__ import annotations

import pytest

from integrations import jsonbody


def nested(depth: int, *, leaf: str = "1") -> str:
    # Alternating arrays and objects, `depth` containers deep.
    text = leaf
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k": {text}}}'
    return text


def test_values_up_to_the_limit_are_read() -> None:
    assert jsonbody.loads('{"event": "call_ended", "call": {"call_id": "c1"}}') == {"event": "call_ended", "call": {"call_id": "c1"}}
    assert jsonbody.loads(b"[1, 2.5, null, true]") == [1, 2.5, None, True]
    assert jsonbody.loads("7") == 7
    deepest = jsonbody.loads(nested(jsonbody.MAX_DEPTH))
    for _ in range(jsonbody.MAX_DEPTH):
        deepest = deepest["k"] if isinstance(deepest, dict) else deepest[0]
    assert deepest == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (nested(jsonbody.MAX_DEPTH + 1), "nests deeper than 32 levels"),
        ("[" * 100_000, "nests deeper than 32 levels"),  # json.loads alone raises RecursionError
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "nests deeper than 32 levels"),
        ('{"amount": NaN}', "NaN is not a JSON value"),
        ("[Infinity]", "Infinity is not a JSON value"),
        ("{'single': 'quotes'}", "Expecting property name"),
        (b"\xff\xfe{}", "can't decode byte"),
        ("", "Expecting value"),
    ],
)
def test_anything_else_is_a_value_error_saying_why(body: str | bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        jsonbody.loads(body)
    assert isinstance(caught.value, jsonbody.JsonBodyError)
