"""What the engine does with a failed Azure call, decided once from the azure-core exception.

The Batch service answers many expected situations with errors: a 409 `PoolBeingDeleted` is a state to
wait out, a `PoolQuotaReached` a reason to back off, a 429 an order to slow down. Classifying here keeps
status codes and service error codes out of the engine, and gives logs one secret-free line per error
(`code: message`, never headers, never a request body).
"""

from __future__ import annotations

import email.utils
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)


class ErrorKind(enum.StrEnum):
    THROTTLED = "throttled"
    """Slow down: retry after `retry_after` seconds (429, or 503 with Retry-After)."""
    TRANSIENT = "transient"
    """A server or network failure; retrying the same call may succeed."""
    STATE = "state"
    """A 409 naming a state of the resource (being resized, being deleted, exists): wait, then re-observe."""
    QUOTA = "quota"
    """The account or subscription is out of quota: back off, never retry in a loop."""
    NOT_FOUND = "not_found"
    AUTH = "auth"
    INVALID = "invalid"
    """The service rejected the request itself (400); the message says why."""
    PRECONDITION = "precondition"
    """If-Match failed (412): someone changed the resource since we observed it."""
    OTHER = "other"


STATE_CODES: Final = frozenset(
    {
        "PoolBeingResized",
        "PoolBeingDeleted",
        "PoolBeingCreated",
        "PoolExists",
        "PoolNotResizing",
        "PoolIsStopping",
        "TooManyEnableAutoScaleRequests",
        "AutoScalingNotEnabledForPool",
        "JobBeingDeleted",
        "JobExists",
        "TaskExists",
        "Conflict",
        "AnotherOperationInProgress",
        "OperationNotAllowedOnPoolDuringResize",
    }
)
QUOTA_CODES: Final = frozenset(
    {
        "PoolQuotaReached",
        "AccountCoreQuotaReached",
        "AccountLowPriorityCoreQuotaReached",
        "AccountSpotCoreQuotaReached",
        "AccountVMSeriesCoreQuotaReached",
        "ActiveJobAndScheduleQuotaReached",
        "QuotaExceeded",
        "OperationNotAllowedQuotaExceeded",
    }
)
_RETRY_AFTER_MS: Final = ("retry-after-ms", "x-ms-retry-after-ms")
_MAX_MESSAGE: Final = 300


class ConfigurationError(ValueError):
    """The settings cannot make a working client (token auth over plain http, no account name)."""


@dataclass(frozen=True)
class AzureError:
    """A classified failure; `describe()` is safe to log and to show to a user."""

    kind: ErrorKind
    message: str
    code: str | None = None
    status: int | None = None
    retry_after: float | None = None
    """Seconds the service asked us to wait, when it said so."""

    def describe(self) -> str:
        return f"{self.code or self.kind.value}: {self.message}"

    def __str__(self) -> str:
        return self.describe()


def classify(exc: BaseException) -> AzureError:
    """Classify any exception raised by an Azure SDK call (or by the transport under it)."""
    if isinstance(exc, ConfigurationError):
        return AzureError(ErrorKind.INVALID, _one_line(str(exc)), code="InvalidConfiguration")
    if isinstance(exc, ClientAuthenticationError):
        # Entra ID refuses a bad tenant or client with a 400: still a credential problem, not our request.
        if exc.response is None or exc.status_code is None:
            return AzureError(ErrorKind.AUTH, _one_line(exc.message or type(exc).__name__))
        code, message = _code_and_message(exc)
        return AzureError(ErrorKind.AUTH, message, code=code, status=exc.status_code)
    if isinstance(exc, HttpResponseError) and exc.response is not None and exc.status_code is not None:
        return _classify_response(exc, exc.status_code)
    if isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
        return AzureError(ErrorKind.TRANSIENT, _transport_message(exc), code=type(exc).__name__)
    if isinstance(exc, HttpResponseError):
        return AzureError(ErrorKind.OTHER, _one_line(exc.message or type(exc).__name__))
    return AzureError(ErrorKind.OTHER, type(exc).__name__, code=type(exc).__name__)


def _classify_response(exc: HttpResponseError, status: int) -> AzureError:
    code, message = _code_and_message(exc)
    response: Any = exc.response
    headers: Mapping[str, str] = response.headers if response is not None else {}
    retry_after = retry_after_seconds(headers)
    kind: ErrorKind
    if status == 429 or (status == 503 and retry_after is not None):
        kind = ErrorKind.THROTTLED
    elif status >= 500:
        kind = ErrorKind.TRANSIENT
    elif code in QUOTA_CODES:
        kind = ErrorKind.QUOTA
    elif status == 409:
        kind = ErrorKind.STATE if code in STATE_CODES or code is None else ErrorKind.OTHER
    elif status in (401, 403):
        kind = ErrorKind.AUTH
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 412:
        kind = ErrorKind.PRECONDITION
    elif status == 400:
        kind = ErrorKind.INVALID
    else:
        kind = ErrorKind.OTHER
    return AzureError(kind, message, code=code, status=status, retry_after=retry_after)


def _code_and_message(exc: HttpResponseError) -> tuple[str | None, str]:
    """The service's error code and first message line; Batch, ARM and Entra ID each shape them apart."""
    code: str | None = None
    message: str | None = None
    model: Any = getattr(exc, "model", None)
    if model is not None:
        code = getattr(model, "code", None)
        raw = getattr(model, "message", None)
        message = getattr(raw, "value", None) if raw is not None and not isinstance(raw, str) else raw
    error: Any = exc.error
    if error is not None:
        code = code or error.code
        message = message or error.message
    if code is None or message is None:
        body = _json_body(exc)
        if isinstance(body, dict):
            code = code or _text(body.get("code")) or _text(body.get("error"))
            raw_message = body.get("message")
            if isinstance(raw_message, dict):
                raw_message = raw_message.get("value")
            message = message or _text(raw_message) or _text(body.get("error_description"))
    reason = exc.reason or (f"HTTP {exc.status_code}" if exc.status_code else "")
    return code, _one_line(message or reason or type(exc).__name__)


def _json_body(exc: HttpResponseError) -> Any:
    try:
        response: Any = exc.response
        return response.json() if response is not None else None
    except Exception:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _one_line(message: str) -> str:
    """The first line: Batch appends `RequestId:`/`Time:` lines, azure-core appends code and headers."""
    line = message.strip().splitlines()[0].strip() if message.strip() else ""
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _transport_message(exc: BaseException) -> str:
    """azure-core's own text (`Cannot connect to host ...`), which names the host but never a header."""
    inner = getattr(exc, "inner_exception", None) or exc.__cause__
    name = type(inner).__name__ if inner is not None else type(exc).__name__
    text = getattr(exc, "message", None)
    detail = _one_line(text) if isinstance(text, str) and text.strip() else ""
    return f"connection failed ({name}): {detail}" if detail else f"connection failed ({name})"


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The wait the service asked for: `retry-after-ms`/`x-ms-retry-after-ms`, else `Retry-After`.

    `Retry-After` may be seconds or an HTTP date; a date is measured from the response's `Date`
    header when it has one, so a skewed local clock does not distort it.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in _RETRY_AFTER_MS:
        value = _number(lowered.get(name))
        if value is not None:
            return max(value / 1000.0, 0.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    when = _http_date(raw)
    if when is None:
        return None
    reference = _http_date(lowered.get("date", "")) or now or datetime.now(UTC)
    return max((when - reference).total_seconds(), 0.0)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number != float("inf") else None


def _http_date(value: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
