from __future__ import annotations

import hashlib
import hmac

import pytest

from integrations.retell import client as retell

KEY = "test-api-key"
BODY = '{"event":"call_ended"}'
V = 1700000000000
PUBLISHED_D = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
FIVE_MINUTES = 5 * 60 * 1000


def test_published_vector() -> None:
    assert retell.sign(BODY, api_key=KEY, timestamp_ms=V) == f"v={V},d={PUBLISHED_D}"
    assert retell.verify_signature(BODY, f"v={V},d={PUBLISHED_D}", api_key=KEY, now_ms=V)


def test_non_ascii_body_is_signed_over_its_utf8_bytes() -> None:
    body = '{"event":"call_analyzed","call":{"transcript":"Agent: ¿Cómo está? User: Très bien — 谢谢 ✓"}}'
    header = retell.sign(body, api_key=KEY, timestamp_ms=V)
    expected = hmac.new(KEY.encode(), (body + str(V)).encode("utf-8"), hashlib.sha256).hexdigest()
    assert header == f"v={V},d={expected}"
    assert retell.verify_signature(body, header, api_key=KEY, now_ms=V)
    assert retell.verify_signature(body.encode("utf-8"), header, api_key=KEY, now_ms=V)  # raw bytes too
    # The same JSON re-serialised with escapes is a different body and does not verify.
    escaped = body.encode("ascii", "backslashreplace").decode()
    assert not retell.verify_signature(escaped, header, api_key=KEY, now_ms=V)


@pytest.mark.parametrize("offset", [FIVE_MINUTES, -FIVE_MINUTES, 0, 1, -1])
def test_timestamps_within_five_minutes_are_accepted(offset: int) -> None:
    header = retell.sign(BODY, api_key=KEY, timestamp_ms=V)
    assert retell.verify_signature(BODY, header, api_key=KEY, now_ms=V + offset)


@pytest.mark.parametrize("offset", [FIVE_MINUTES + 1, -(FIVE_MINUTES + 1), 10 * FIVE_MINUTES])
def test_timestamps_beyond_five_minutes_are_rejected(offset: int) -> None:
    header = retell.sign(BODY, api_key=KEY, timestamp_ms=V)
    assert not retell.verify_signature(BODY, header, api_key=KEY, now_ms=V + offset)


def test_wrong_key_or_changed_body_is_rejected() -> None:
    header = retell.sign(BODY, api_key=KEY, timestamp_ms=V)
    assert not retell.verify_signature(BODY, header, api_key="another-key", now_ms=V)
    assert not retell.verify_signature(BODY + " ", header, api_key=KEY, now_ms=V)
    assert not retell.verify_signature(BODY, header, api_key="", now_ms=V)


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    # Moving v forward (to dodge the replay window) without re-signing breaks the digest.
    assert not retell.verify_signature(BODY, f"v={V + 1000},d={PUBLISHED_D}", api_key=KEY, now_ms=V)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"v={V}",
        f"d={PUBLISHED_D}",
        f"v={V}, d={PUBLISHED_D}",
        f" v={V},d={PUBLISHED_D}",
        f"v={V},d={PUBLISHED_D} ",
        f"v = {V},d={PUBLISHED_D}",
        f"v={V},d={PUBLISHED_D.upper()}",
        f"V={V},D={PUBLISHED_D}",
        f"v={V},d={PUBLISHED_D},x=1",
        f"t=1,v={V},d={PUBLISHED_D}",
        f"d={PUBLISHED_D},v={V}",
        f"v={V},d={PUBLISHED_D[:-1]}",
        f"v={V},d={PUBLISHED_D}0",
        f"v={V},d={'g' * 64}",
        f"v=-{V},d={PUBLISHED_D}",
        f"v={V}.0,d={PUBLISHED_D}",
        f"v=1e12,d={PUBLISHED_D}",
        f"v={'9' * 400},d={PUBLISHED_D}",
        f"v={V};d={PUBLISHED_D}",
        "v=١٧٠٠٠٠٠٠٠٠٠٠٠,d=" + PUBLISHED_D,  # non-ASCII digits
        f"v={V},d={PUBLISHED_D}\n",
    ],
)
def test_malformed_headers_are_rejected_without_an_exception(header: str | None) -> None:
    assert retell.verify_signature(BODY, header, api_key=KEY, now_ms=V) is False


def test_non_utf8_bytes_and_odd_types_are_rejected_without_an_exception() -> None:
    header = retell.sign(BODY, api_key=KEY, timestamp_ms=V)
    assert retell.verify_signature(b"\xff\xfe\x00", header, api_key=KEY, now_ms=V) is False
    assert retell.verify_signature(BODY, 12345, api_key=KEY, now_ms=V) is False  # type: ignore[arg-type]
    assert retell.verify_signature(None, header, api_key=KEY, now_ms=V) is False  # type: ignore[arg-type]


def test_now_defaults_to_the_clock() -> None:
    import time

    now = int(time.time() * 1000)
    header = retell.sign(BODY, api_key=KEY, timestamp_ms=now)
    assert retell.verify_signature(BODY, header, api_key=KEY)
    old = retell.sign(BODY, api_key=KEY, timestamp_ms=now - FIVE_MINUTES - 60_000)
    assert not retell.verify_signature(BODY, old, api_key=KEY)


def test_webhook_key_is_the_api_key_live_and_the_sandbox_key_otherwise(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RETELL_API_KEY = ""
    assert retell.webhook_key() == settings.RETELL_SANDBOX_KEY
    assert retell.base_url() == settings.SANDBOX_APP_URL.rstrip("/") + "/sandbox/retell"
    settings.RETELL_API_KEY = "key_live_123"
    settings.RETELL_BASE_URL = ""
    assert retell.webhook_key() == "key_live_123"
    assert retell.base_url() == "https://api.retellai.com"
