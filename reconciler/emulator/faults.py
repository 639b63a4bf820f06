"""Fault injection: errors, dropped connections and latency on chosen operations.

The reconciler's worth is in how it behaves when Azure misbehaves (throttling, 5xx, a pool that is still
resizing, a connection cut mid-call). Rules are keyed on the same route names as the counters, so any
operation of any part is faultable, and errors are rendered in the format of the service that owns the route
so the SDK raises exactly what it raises against Azure.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal["status", "reset", "latency"]
KINDS: tuple[str, ...] = ("status", "reset", "latency")
ADMIN_PREFIX = "emulator."

DEFAULT_CODES = {
    400: "InvalidRequest",
    401: "AuthenticationFailed",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "ConditionNotMet",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServerBusy",
    504: "GatewayTimeout",
}

# `match` keys are the facts a test knows; route parameters are named by each part as its API names them.
MATCH_ALIASES = {
    "account": ("account", "accountName", "account_name"),
    "pool": ("pool", "poolId", "pool_id", "poolName", "pool_name"),
}


@dataclass
class FaultRule:
    """One rule; `count=None` fires forever, `count=1` is a one-shot."""

    operation: str = "*"
    kind: FaultKind = "status"
    status: int = 500
    code: str | None = None
    message: str | None = None
    match: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    rate: float = 1.0
    count: int | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    id: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1 (or absent for a rule that never expires)")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if not isinstance(self.match, dict):
            raise ValueError('match must be an object such as {"pool": "p1"}')
        self.match = {str(key): str(value) for key, value in self.match.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        known = {name for name in cls.__dataclass_fields__ if name not in ("id", "fired")}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        try:
            return cls(**dict(data))
        except TypeError as error:
            raise ValueError(str(error)) from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def applies_to(self, operation: str, match_info: Mapping[str, str]) -> bool:
        if operation.startswith(ADMIN_PREFIX) and not self.operation.startswith(ADMIN_PREFIX):
            return False
        if not fnmatch.fnmatchcase(operation, self.operation):
            return False
        return all(_param_matches(match_info, key, pattern) for key, pattern in self.match.items())


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: wait `delay` seconds, then answer with `rule` if it is set."""

    delay: float
    rule: FaultRule | None


class FaultInjector:
    """Thread-safe so a test running the emulator in a background thread can add rules directly."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def add(self, rule: FaultRule | None = None, /, **fields: Any) -> FaultRule:
        """Add `rule`, or one built from fields: `add(operation="batch.Pools_DeletePool", status=409)`."""
        if rule is None:
            rule = FaultRule.from_json(fields)
        elif fields:
            raise TypeError("give either a FaultRule or keyword fields, not both")
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, operation: str, match_info: Mapping[str, str]) -> FaultDecision | None:
        if not self._rules:
            return None
        delay = 0.0
        chosen: FaultRule | None = None
        with self._lock:
            for rule in list(self._rules):
                if chosen is not None and rule.kind != "latency":
                    continue
                if not rule.applies_to(operation, match_info):
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                rule.fired += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                delay += (rule.latency_ms + self._random.uniform(0.0, rule.jitter_ms)) / 1000.0
                if rule.kind != "latency":
                    chosen = rule
        if chosen is None and delay == 0.0:
            return None
        return FaultDecision(delay, chosen)


def _param_matches(match_info: Mapping[str, str], key: str, pattern: str) -> bool:
    if key == "resource":
        candidates = list(match_info.values())
    else:
        candidates = [match_info[name] for name in MATCH_ALIASES.get(key, (key,)) if name in match_info]
    return any(fnmatch.fnmatchcase(value, pattern) for value in candidates)


def error_response(
    operation: str,
    status: int,
    code: str | None,
    message: str | None,
    *,
    request_id: str,
    now: datetime,
    account: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    """An error in the wire format of the service that owns `operation` (`batch.`, `arm.`, `identity.`)."""
    code = code or DEFAULT_CODES.get(status, "Error")
    message = message or f"The emulator injected a {status} {code} fault."
    service = operation.partition(".")[0]
    body: dict[str, Any]
    if service == "batch":
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
        body = {
            "odata.metadata": f"https://{account or 'account'}.batch.azure.com/$metadata"
            "#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
            "code": code,
            "message": {"lang": "en-US", "value": f"{message}\nRequestId:{request_id}\nTime:{stamp}"},
        }
    elif service == "identity":
        body = {"error": code, "error_description": message, "trace_id": request_id}
    else:
        body = {"error": {"code": code, "message": message}}
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = _seconds(retry_after)
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
