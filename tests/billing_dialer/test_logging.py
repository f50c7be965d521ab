from __future__ import annotations

import json
import logging

from billing_dialer.logging import JsonFormatter, MaskPiiFilter, mask_phone, mask_text


def _format(msg: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    MaskPiiFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_phone_keeps_only_last_four_digits() -> None:
    assert mask_phone("+1 (212) 555-0147") == "***0147"
    line = _format("calling %s", "+12125550147", to_number="+12125550147")
    assert "2125550147" not in json.dumps(line)
    assert line["to_number"] == "***0147"


def test_card_and_ssn_are_removed() -> None:
    text = mask_text("card 4111 1111 1111 1111 ssn 123-45-6789")
    assert "4111" not in text and "6789" not in text


def test_ordinary_numbers_survive() -> None:
    assert mask_text("batch of 25 calls, 3 failed") == "batch of 25 calls, 3 failed"


def test_an_extra_field_never_overwrites_the_lines_own_keys() -> None:
    line = _format("heymarket event processed", event="message_recieved", level="x")
    assert line["event"] == "heymarket event processed" and line["level"] == "info"
    assert line["extra_event"] == "message_recieved" and line["extra_level"] == "x"
