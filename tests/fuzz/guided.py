"""Coverage-guided fuzzing (atheris on libFuzzer) of the code that reads outside input.

    python -m tests.fuzz.guided TARGET [CORPUS_DIR] [libFuzzer options]   e.g. -runs=20000
    python -m tests.fuzz.guided --list                                        the targets
    make fuzz                                                                 every target, FUZZ_SECONDS each

Each target feeds what the fuzzer makes to the product's own functions, with no database, and
checks what they promise: the documented refusal with a message, or a result that keeps its
invariants. Any other exception, or a broken promise, is a crash that libFuzzer reports with the
input that caused it (written next to -artifact_prefix). The property tests beside this file
cover the same inputs through the database and the views; this search is guided by coverage,
so it reaches the branches random inputs seldom do: it found an amount past Decimal's precision,
a CSV file of nothing but a byte-order mark, opt-out wording inside a comment and a ZIP code in
Gurmukhi digits.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import re
import sys
import types
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import atheris

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_dialer.settings")

import django  # noqa: E402

django.setup()
logging.disable(logging.CRITICAL)  # the product logs every refusal; the fuzzer needs none of it

from django.db import models  # noqa: E402

from integrations import jsonbody  # noqa: E402
from billing_dialer.logging import mask_text  # noqa: E402
from cadences import templating  # noqa: E402
from cadences.models import Phase  # noqa: E402
from campaigns import geo  # noqa: E402
from campaigns.models import CallAttempt  # noqa: E402
from campaigns.compliance import gate as compliance  # noqa: E402
from campaigns.calls import outcomes  # noqa: E402
from campaigns.queue import load as queue  # noqa: E402
from integrations.retell import client as retell  # noqa: E402
from integrations.warehouse.client import OPTIONAL_COLUMNS, REQUIRED_COLUMNS  # noqa: E402
from campaigns.conversations import results  # noqa: E402
from campaigns.webhooks import inbox  # noqa: E402

Provider = atheris.FuzzedDataProvider

# Product code and the libraries it parses with; Django's ORM and the standard library are left out.
INSTRUMENTED = ("billing_dialer", "cadences", "campaigns", "integrations", "phonenumbers", "django.template")

COLUMNS = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
         "America/Anchorage", "Pacific/Honolulu", "Pacific/Guam", "America/Puerto_Rico", "Mars/Olympus", ""]  # fmt: skip
NOW_MS = 1_750_000_000_000


def instrument() -> None:
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith(INSTRUMENTED):
            atheris.instrument_func(obj)


def text(fdp: Provider, size: int = 24) -> str:
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, size))


def json_value(fdp: Provider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 7 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-(2**63), 2**63)
    if kind == 3:
        number = fdp.ConsumeFloat()
        return number if number == number and abs(number) != float("inf") else 0.0
    if kind in (4, 5):
        return text(fdp)
    if kind == 6:
        return [json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {text(fdp, 12): json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}


def warehouse_value(fdp: Provider) -> Any:
    """A value as a CSV cell or a Databricks column brings it (BIGINT, DOUBLE, DECIMAL(38), DATE)."""
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeIntInRange(-(2**63), 2**63 - 1)
    if kind == 2:
        return fdp.ConsumeFloat()
    if kind == 3:
        digits = fdp.ConsumeIntInRange(0, 10**38 - 1)
        return Decimal(digits).scaleb(-fdp.ConsumeIntInRange(0, 6))
    if kind == 4:
        return fdp.ConsumeBool()
    if kind == 5:
        return dt.date(2000, 1, 1) + dt.timedelta(days=fdp.ConsumeIntInRange(0, 40_000))
    return text(fdp, 30)


# --- targets ----------------------------------------------------------------------------------


def csv_file(data: bytes) -> None:
    """An uploaded file: CsvFileError with a message, or a header and rows keyed by it."""
    fdp = Provider(data)
    if fdp.ConsumeBool():
        raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        header = [fdp.PickValueInList([*COLUMNS, "", "extra", " Phone "]) for _ in range(fdp.ConsumeIntInRange(1, 14))]
        lines = [",".join(header)]
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            lines.append(",".join(text(fdp, 12) for _ in range(fdp.ConsumeIntInRange(0, 16))))
        raw = ("\ufeff" if fdp.ConsumeBool() else "").encode() + "\r\n".join(lines).encode("utf-8", "surrogatepass")
    try:
        header, rows = queue._csv_rows(raw)
    except queue.CsvFileError as exc:
        assert str(exc), "a refused file says why"
        return
    assert set(REQUIRED_COLUMNS) <= set(header)
    assert all(name == name.strip().lower() for name in header)
    allowed = set(header) | {queue.EXTRA_FIELDS}
    line_numbers = [number for number, _ in rows]
    assert line_numbers == sorted(set(line_numbers)), line_numbers
    for _, row in rows:
        assert set(row) <= allowed, row
        assert all(isinstance(v, str) for k, v in row.items() if k != queue.EXTRA_FIELDS)


_E164_NANP = re.compile(r"\+1[2-9][0-9]{9}")  # phonenumbers decides which exchanges exist
_ZIP = re.compile(r"[0-9]{5}(-[0-9]{4})?")


def queue_values(data: bytes) -> None:
    """A queue row's values: each checker returns its normal form or a GeoError/ValueError saying why."""
    fdp = Provider(data)
    value = warehouse_value(fdp)
    try:
        phone = geo.phone_to_e164(value)
    except geo.GeoError as exc:
        assert str(exc)
        phone = "+12125550123"
    else:
        assert _E164_NANP.fullmatch(phone), phone
    state = ""
    try:
        state = geo.normalize_state(value)
    except geo.GeoError as exc:
        assert str(exc)
    else:
        assert state == "" or state in geo.STATE_TIME_ZONES, state
    try:
        postal_code = geo.normalize_postal_code(value)
    except geo.GeoError as exc:
        assert str(exc)
    else:
        assert postal_code == "" or _ZIP.fullmatch(postal_code), postal_code
        by_zip = geo.state_for_postal_code(postal_code)
        assert by_zip == "" or by_zip in geo.STATE_TIME_ZONES, by_zip
    try:
        zones = geo.time_zones_for_client(timezone=value, state=state, phone=phone)
    except geo.GeoError as exc:
        assert str(exc)
    else:
        assert zones and all(zoneinfo.ZoneInfo(zone) for zone in zones), zones
    try:
        amount = queue._amount(value)
    except ValueError as exc:
        assert str(exc)
    else:
        assert amount is None or (amount.as_tuple().exponent == -2 and 0 <= amount < queue._AMOUNT_LIMIT), amount
    days = queue._whole_number(value)
    assert days is None or type(days) is int
    assert isinstance(queue.normalize_client_id(value), str)


def retell_signature(data: bytes) -> None:
    """X-Retell-Signature: True exactly for this body's digest within five minutes; never raises."""
    fdp = Provider(data)
    key = text(fdp, 12)
    body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    mode = fdp.ConsumeIntInRange(0, 3)
    stamp = NOW_MS + fdp.ConsumeIntInRange(-2 * retell.SIGNATURE_TOLERANCE_MS, 2 * retell.SIGNATURE_TOLERANCE_MS)
    try:
        body_text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        body_text = None
    if mode == 0 or body_text is None:
        header = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 100))
    else:
        header = retell.sign(body_text, api_key=key, timestamp_ms=stamp)
        if mode == 2 and header:  # one character changed
            at = fdp.ConsumeIntInRange(0, len(header) - 1)
            header = header[:at] + fdp.ConsumeUnicode(1) + header[at + 1 :]
        elif mode == 3:
            header = fdp.PickValueInList([header.upper(), header + " ", " " + header, header.replace(",", ", ")])
    valid = retell.verify_signature(body, header, api_key=key, now_ms=NOW_MS)
    assert isinstance(valid, bool)
    match = re.fullmatch(r"v=([0-9]+),d=([0-9a-f]{64})", header or "", re.ASCII)
    expected = (
        bool(key)
        and body_text is not None
        and match is not None
        and abs(NOW_MS - int(match.group(1))) <= retell.SIGNATURE_TOLERANCE_MS
        and match.group(2) == retell._digest(body_text, api_key=key, timestamp_ms=int(match.group(1)))
    )
    assert valid == expected, (header, valid)


_CALL_FIELDS = ("call_id", "call_status", "disconnection_reason", "start_timestamp", "end_timestamp", "duration_ms",
                "transcript", "recording_url", "from_number", "to_number", "transfer_destination", "call_cost",
                "call_analysis", "metadata")  # fmt: skip
_STATUSES = [s.value for s in CallAttempt.Status] + ["ongoing", "registered"]
_REASONS = sorted(outcomes.KNOWN_REASONS) + ["", "brand_new_reason"]
_CHAR_FIELDS = [f for f in CallAttempt._meta.concrete_fields if isinstance(f, models.CharField) and f.max_length]


def _call_object(fdp: Provider) -> dict[str, Any]:
    call: dict[str, Any] = {}
    for name in _CALL_FIELDS:
        if not fdp.ConsumeBool():
            continue
        if name == "call_status":
            call[name] = fdp.PickValueInList(_STATUSES) if fdp.ConsumeBool() else json_value(fdp)
        elif name == "disconnection_reason":
            call[name] = fdp.PickValueInList(_REASONS) if fdp.ConsumeBool() else json_value(fdp)
        elif name == "call_analysis" and fdp.ConsumeBool():
            call[name] = {"in_voicemail": json_value(fdp), "call_summary": json_value(fdp), "user_sentiment": json_value(fdp),
                          "custom_analysis_data": json_value(fdp)}  # fmt: skip
        elif name == "call_cost" and fdp.ConsumeBool():
            call[name] = {"combined_cost": json_value(fdp)}
        else:
            call[name] = json_value(fdp)
    return call


def retell_event(data: bytes) -> None:
    """A signed Retell body: refused as a ValueError, or keyed, made storable and merged onto an
    attempt whose every column still fits, with an outcome from the known set."""
    fdp = Provider(data)
    if fdp.ConsumeBool():
        raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    else:
        event = fdp.PickValueInList(sorted(outcomes.KNOWN_EVENTS)) if fdp.ConsumeBool() else text(fdp, 16)
        raw = json.dumps({"event": event, "call": _call_object(fdp)}).encode()
    try:
        payload = jsonbody.loads(raw)
    except ValueError as exc:
        assert str(exc)
        return
    if not isinstance(payload, dict):
        return  # answered 400 by the view
    body = raw.decode("utf-8")
    key = inbox.retell_dedupe_key(payload=payload, raw_body=body)
    assert isinstance(key, str) and len(key) <= 200
    stored = json.dumps(inbox.storable(payload), allow_nan=False)
    stored.encode("utf-8")  # no lone surrogate left
    assert "\\u0000" not in stored
    call = payload.get("call")
    if not isinstance(call, dict) or not call.get("call_id"):
        return  # stored, and processing records "no call id"
    attempt = CallAttempt()
    event_type = str(payload.get("event") or "")
    outcomes._attempt_merge_facts(attempt, call=call, event_type=event_type)
    outcomes._attempt_merge_facts(attempt, call=call, event_type=event_type)  # a retry changes nothing more
    for column in _CHAR_FIELDS:
        assert len(getattr(attempt, column.attname) or "") <= column.max_length, column.name
    assert attempt.duration_ms is None or 0 <= attempt.duration_ms <= outcomes.MAX_DURATION_MS
    assert attempt.cost is None or (0 <= attempt.cost < Decimal(10**6) and attempt.cost.as_tuple().exponent >= -4)  # max_digits=10, 4 places
    resolution = outcomes.call_outcome_resolve(
        call_status=attempt.status,
        disconnection_reason=attempt.disconnection_reason,
        in_voicemail=attempt.in_voicemail,
        transferred=bool(attempt.transfer_destination),
    )
    assert resolution.outcome in {"", *CallAttempt.Outcome.values}, resolution
    assert isinstance(results.conversation_has_results(call.get("call_analysis")), bool)


_ANALYSIS_TEXT = ["", "yes", "no", "2028-02-29", "Feb 29", "February 29th", "12/31/9999", "9999-12-31",
                  "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "tomorrow at 3", "2025-06-11T22:30:00",
                  "$1,250.00", "USD 40", "1e400", "-5", "NaN", "0.005"]  # fmt: skip


def analysis_value(fdp: Provider) -> Any:
    return fdp.PickValueInList(_ANALYSIS_TEXT) + text(fdp, 4) if fdp.ConsumeBool() else json_value(fdp)


def call_analysis(data: bytes) -> None:
    """What a conversation produced: flags, a promise's date and amount, a callback that is due
    inside the calling window in every zone of the client."""
    fdp = Provider(data)
    today = dt.date(2000, 1, 1) + dt.timedelta(days=fdp.ConsumeIntInRange(0, 365 * 100))
    now = dt.datetime.combine(today, dt.time(0, 0), tzinfo=dt.timezone.utc) + dt.timedelta(minutes=fdp.ConsumeIntInRange(0, 1439))
    flag = results.analysis_flag(analysis_value(fdp))
    assert isinstance(flag[0], bool) and isinstance(flag[1], str)
    amount = results.parse_promise_amount(analysis_value(fdp))
    assert amount is None or (0 < amount < Decimal("10000000000") and amount.as_tuple().exponent == -2), amount
    promised = results.parse_promise_date(analysis_value(fdp), today=today)
    assert promised is None or isinstance(promised, dt.date)
    zones = [fdp.PickValueInList(ZONES) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    context = results.ClientContext(client_id="C1", phone="+12125550123", timezones=zones)
    due = results.callback_due_at(callback_text=analysis_value(fdp), context=context, now=now)
    assert due.tzinfo is not None and now <= due <= now + results.CALLBACK_HORIZON + dt.timedelta(days=8), (now, due)
    usable = [z for z in zones if z in ZONES and z not in ("", "Mars/Olympus")]
    if usable and len(usable) == len(zones):
        start, end = compliance.LEGAL_WINDOW
        assert compliance.local_window_block(timezones=zones, now=due, start=start, end=end) is None, (zones, due)


_TEMPLATE_PIECES = ["{{", "}}", "{%", "%}", "{#", "#}", " if ", " endif ", " else ", " firstof ", " comment ",
                    " endcomment ", " load ", " for ", "client_name", "first_name", "amount_due", "payment_link",
                    "company_name", "suspension_date", "|", "upper", "default:", "date:", "truncatechars:", "floatformat:",
                    "yesno:", '"x"', "'", ".", "__class__", "-1", ":", "Reply STOP to opt out.", "card number", "$5", " "]  # fmt: skip


def sms_template(data: bytes) -> None:
    """An SMS template: a list of problems a manager can act on, or a text that renders, carries
    its opt-out wording and has a length."""
    fdp = Provider(data)
    if fdp.ConsumeBool():
        body = text(fdp, 120)
    else:
        body = "".join(fdp.PickValueInList(_TEMPLATE_PIECES) if fdp.ConsumeBool() else text(fdp, 4) for _ in range(fdp.ConsumeIntInRange(0, 30)))
    phase = fdp.PickValueInList(list(Phase.values))
    problems = templating.validate_template(body, phase=phase)
    assert isinstance(problems, list) and all(isinstance(p, str) and p for p in problems)
    if problems:
        return
    context: dict[str, Any] = {}
    for name in templating.ALLOWED_VARIABLES:
        kind = fdp.ConsumeIntInRange(0, 3)
        context[name] = [text(fdp, 20), fdp.ConsumeIntInRange(-(10**9), 10**9), None, dt.date(2025, 6, 10)][kind]
    rendered = templating.render_template(body, context)
    assert isinstance(rendered, str) and "stop" in rendered.lower(), rendered
    info = templating.sms_length_info(rendered)
    assert info["segments"] >= 1 and templating.sms_length_summary(info)


_PHONE_SHAPES = ["{a}{e}{n}", "({a}) {e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "+1{a}{e}{n}", "+1 {a} {e} {n}", "1-{a}-{e}-{n}",
                 "+1 ({a}) {e}-{n}", "{a} {e} {n}", "1 ({a}) {e} {n}", "+1-{a}-{e}-{n}", "+1.{a}.{e}.{n}"]  # fmt: skip
_SEPARATORS = ["", " ", "-", ".", "  ", " - ", "(", ")", ") ", " ("]
_DIGITS = re.compile(r"\d")


def _no_digits(fdp: Provider) -> str:
    return _DIGITS.sub("", text(fdp, 16))


def log_mask(data: bytes) -> None:
    """A phone number, SSN or card number standing in any log text never survives the mask whole."""
    fdp = Provider(data)
    kind = fdp.ConsumeIntInRange(0, 3)
    area = f"{fdp.ConsumeIntInRange(2, 9)}{fdp.ConsumeIntInRange(0, 99):02d}"
    exchange = f"{fdp.ConsumeIntInRange(2, 9)}{fdp.ConsumeIntInRange(0, 99):02d}"
    number = f"{fdp.ConsumeIntInRange(0, 9999):04d}"
    if kind == 0:
        planted = fdp.PickValueInList(_PHONE_SHAPES).format(a=area, e=exchange, n=number)
        secret = area + exchange + number
    elif kind == 1:
        planted = fdp.PickValueInList(["+1", "1", ""]) + "".join(fdp.PickValueInList(_SEPARATORS) + part for part in (area, exchange, number))
        planted = planted.lstrip(")").rstrip("(")
        secret = area + exchange + number
    elif kind == 2:
        planted = f"{fdp.ConsumeIntInRange(1, 899):03d}-{fdp.ConsumeIntInRange(1, 99):02d}-{fdp.ConsumeIntInRange(1, 9999):04d}"
        secret = planted.replace("-", "")
    else:
        digits = str(fdp.ConsumeIntInRange(1, 9)) + "".join(str(fdp.ConsumeIntInRange(0, 9)) for _ in range(fdp.ConsumeIntInRange(12, 18)))
        separator = fdp.PickValueInList(["", " ", "-"])
        planted = separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))
        secret = digits
    before, after = _no_digits(fdp), _no_digits(fdp)
    # Standing on its own: not run together with a word, which would make it part of an identifier.
    if before and re.match(r"\w", before[-1]):
        before += " "
    if after and re.match(r"\w", after[0]):
        after = " " + after
    masked = mask_text(before + planted + after)
    assert secret not in "".join(_DIGITS.findall(masked)), (planted, masked)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "csv_file": csv_file,
    "queue_values": queue_values,
    "retell_signature": retell_signature,
    "retell_event": retell_event,
    "call_analysis": call_analysis,
    "sms_template": sms_template,
    "log_mask": log_mask,
}


def main(argv: list[str]) -> None:
    if argv[1:] == ["--list"]:
        print("\n".join(TARGETS))
        return
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.guided {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[argv[1]]
    instrument()
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
