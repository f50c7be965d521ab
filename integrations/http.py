"""The one HTTP seam every vendor client goes through.

One `requests.Session` per vendor, connect and read timeouts always set, and bounded retries
with exponential backoff and jitter done by urllib3's `Retry` mounted on the session (never a
hand-written loop). Retries on 429, 5xx and read errors happen only for requests that are safe to
repeat — idempotent by nature or carrying an idempotency key; a request that is not safe to
repeat is retried only when the connection could not be opened at all (nothing was sent).

Every failure comes out as one exception, `IntegrationError`, whose `permanent` flag tells the
caller whether trying again later can help (a 400 never will; a 429 or a 503 may).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from urllib.parse import urlsplit
from typing import Any, Mapping

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# (connect, read) seconds. The connect timeout sits just above a TCP retransmission window.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)

# Bounded retries: 3 retries after the first try, backoff 0 s, ~0.6 s, ~1.2 s plus up to
# 0.3 s of jitter so workers that failed together do not retry together. A Retry-After
# longer than RETRY_AFTER_MAX is capped: a worker must not sleep for minutes inside a call.
MAX_RETRIES = 3
BACKOFF_FACTOR = 0.3
BACKOFF_JITTER = 0.3
BACKOFF_MAX = 5.0
RETRY_AFTER_MAX = 10
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Client errors that retrying can never fix. Other 4xx are treated the same way except the
# ones that mean "later" (408 Request Timeout, 425 Too Early, 429 Too Many Requests).
PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404, 422})
TRANSIENT_CLIENT_STATUSES = frozenset({408, 425, 429})

# Headers vendors use for their request id, in order of preference.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-amz-cf-id", "cf-ray")

_LONG_DIGITS = re.compile(r"\+?\d{7,}")


class IntegrationError(Exception):
    """A vendor call failed. `permanent=True`: do not retry the same request."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        vendor: str = "",
        status: int | None = None,
        request_id: str = "",
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.vendor = vendor
        self.status = status
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        prefix = f"{self.vendor}: " if self.vendor else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{prefix}{self.message}{status}"

    def __repr__(self) -> str:
        return (
            f"IntegrationError({self.message!r}, permanent={self.permanent}, vendor={self.vendor!r}, "
            f"status={self.status!r}, request_id={self.request_id!r})"
        )


def _retry(*, repeatable: bool) -> Retry:
    common: dict[str, Any] = {
        "total": MAX_RETRIES,
        "connect": MAX_RETRIES,
        "other": 0,
        "redirect": 0,
        "allowed_methods": None,  # every verb: whether to repeat is decided per request
        "backoff_factor": BACKOFF_FACTOR,
        "backoff_jitter": BACKOFF_JITTER,
        "backoff_max": BACKOFF_MAX,
        "raise_on_status": False,  # hand back the last response so its status can be mapped
        "raise_on_redirect": False,
    }
    if repeatable:
        return Retry(
            **common,
            read=MAX_RETRIES,
            status=MAX_RETRIES,
            status_forcelist=RETRY_STATUSES,
            respect_retry_after_header=True,
            retry_after_max=RETRY_AFTER_MAX,
        )
    # Not safe to repeat: only a connection that never opened is retried (nothing reached the
    # vendor). A read timeout or a 5xx may mean the vendor acted, so it goes back to the caller.
    return Retry(**common, read=0, status=0, status_forcelist=None, respect_retry_after_header=False)


class _VendorAdapter(BaseAdapter):
    """Two urllib3 pools behind one adapter: the request's own flag picks the retry policy.

    `requests` gives an adapter no per-request retry setting, and mutating `max_retries` on a
    shared adapter is not thread-safe, so each policy gets its own HTTPAdapter.
    """

    def __init__(self) -> None:
        super().__init__()
        self.repeatable = HTTPAdapter(max_retries=_retry(repeatable=True), pool_maxsize=20)
        self.once = HTTPAdapter(max_retries=_retry(repeatable=False), pool_maxsize=20)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        adapter = self.repeatable if getattr(request, "safe_to_repeat", False) else self.once
        return adapter.send(request, **kwargs)

    def close(self) -> None:
        self.repeatable.close()
        self.once.close()


_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def vendor_session(vendor: str) -> requests.Session:
    """The process-wide session for `vendor` (connection pooling, retry policy mounted)."""
    with _sessions_lock:
        session = _sessions.get(vendor)
        if session is None:
            session = requests.Session()
            adapter = _VendorAdapter()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = "billing-dialer/1.0"
            session.headers["Accept"] = "application/json"
            _sessions[vendor] = session
        return session


def reset_sessions() -> None:
    """Close and forget every vendor session (after a fork, or between tests)."""
    with _sessions_lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()


def is_web_url(value: str) -> bool:
    """Whether `value` is an http(s) address with a host: the only kind the portal links to,
    texts or hands to a vendor (never `javascript:` or a bare path)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def mask_url(url: str) -> str:
    """A URL fit for a log line: long digit runs (phone numbers in paths) keep their last 4."""
    return _LONG_DIGITS.sub(lambda m: "***" + m.group()[-4:], url.split("?", 1)[0])


def response_request_id(response: requests.Response | None) -> str:
    if response is None:
        return ""
    for header in REQUEST_ID_HEADERS:
        value = response.headers.get(header)
        if value:
            return value
    return ""


def response_body(response: requests.Response) -> object:
    """The decoded JSON body, or the first 1,000 characters of text when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text[:1000]


def _error_detail(body: object) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "error_message", "error", "detail", "errors"):
            if body.get(key):
                return str(body[key])[:300]
        return ""
    return str(body)[:300] if body else ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _is_timeout(exc: requests.exceptions.RequestException) -> bool:
    """Whether the vendor was too slow (as opposed to unreachable).

    Once urllib3 has used up its retries, requests reports an exhausted read timeout as a
    ConnectionError wrapping MaxRetryError(ReadTimeoutError), so look underneath.
    """
    if isinstance(exc, requests.exceptions.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # urllib3's NewConnectionError (refused, unresolvable) subclasses ConnectTimeoutError.
    return isinstance(reason, ReadTimeoutError) or (isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError))


def is_permanent_status(status: int) -> bool:
    if status in PERMANENT_STATUSES:
        return True
    return 400 <= status < 500 and status not in TRANSIENT_CLIENT_STATUSES


def request(
    vendor: str,
    method: str,
    url: str,
    *,
    idempotent: bool,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    **kw: Any,
) -> requests.Response:
    """Send one request to `vendor` and return its 2xx/3xx response, or raise IntegrationError.

    `idempotent=True` means repeating the request cannot do the work twice (a GET, or a POST that
    carries the vendor's idempotency key); only then are 429/5xx/read errors retried.
    `kw` goes to `requests.Request` (json, params, headers, data).
    """
    session = vendor_session(vendor)
    prepared = session.prepare_request(requests.Request(method.upper(), url, **kw))
    setattr(prepared, "safe_to_repeat", idempotent)
    send_settings = session.merge_environment_settings(prepared.url or url, {}, None, None, None)
    started = time.monotonic()
    fields: dict[str, Any] = {"vendor": vendor, "method": method.upper(), "url": mask_url(url), "idempotent": idempotent}
    try:
        response = session.send(prepared, timeout=timeout, allow_redirects=False, **send_settings)
    except requests.exceptions.RequestException as exc:
        elapsed_ms = round((time.monotonic() - started) * 1000)
        if _is_timeout(exc):
            # A timeout on a request that is not safe to repeat leaves the outcome unknown.
            detail = "no answer within the timeout" + ("" if idempotent else "; the vendor may have acted on it")
            event = "vendor request timed out"
        else:
            detail = f"could not reach the vendor ({type(exc).__name__})"
            event = "vendor request failed"
        log.warning(event, extra={**fields, "elapsed_ms": elapsed_ms, "error": type(exc).__name__})
        raise IntegrationError(f"{method.upper()} {mask_url(url)}: {detail}", permanent=False, vendor=vendor) from exc

    elapsed_ms = round((time.monotonic() - started) * 1000)
    request_id = response_request_id(response)
    fields.update({"status": response.status_code, "elapsed_ms": elapsed_ms, "request_id": request_id})
    if response.status_code < 400:
        log.info("vendor request", extra=fields)
        return response

    body = response_body(response)
    permanent = is_permanent_status(response.status_code)
    detail = _error_detail(body)
    log.warning("vendor request rejected", extra={**fields, "permanent": permanent, "detail": detail})
    message = f"{method.upper()} {mask_url(url)} answered {response.status_code}" + (f": {detail}" if detail else "")
    raise IntegrationError(
        message,
        permanent=permanent,
        vendor=vendor,
        status=response.status_code,
        request_id=request_id,
        body=body,
        retry_after=_retry_after(response),
    )


def json_body(vendor: str, response: requests.Response) -> Any:
    """Decode a successful response's JSON, or raise a transient IntegrationError."""
    try:
        return response.json()
    except ValueError as exc:
        raise IntegrationError(
            f"{response.request.method} {mask_url(response.url)} answered {response.status_code} with a body that is not JSON",
            permanent=False,
            vendor=vendor,
            status=response.status_code,
            request_id=response_request_id(response),
            body=response.text[:1000],
        ) from exc
