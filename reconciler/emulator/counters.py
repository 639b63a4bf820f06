"""Request counters per operation, caller and status.

The product promises a bounded number of API calls per account and per tick, and HA tests must tell two
daemons apart; counting at the emulator, keyed on the route name and on who called, checks both from the
outside without trusting the code under test to count itself.
"""

from __future__ import annotations

import fnmatch
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

CALLER_HEADER = "x-ms-caller"
UNKNOWN_CALLER = "unknown"
RESET_STATUS = 0  # the connection was aborted; no status ever reached the client


def caller_of(headers: Mapping[str, str]) -> str:
    """The `x-ms-caller` header, else the User-Agent's first product token (`azsdk-python-batch/15.1.0`)."""
    caller = headers.get(CALLER_HEADER)
    if caller:
        return caller
    agent = headers.get("User-Agent", "").split()
    return agent[0] if agent else UNKNOWN_CALLER


def account_of(match_info: Mapping[str, str]) -> str:
    """The Batch account a request is about (data plane `{account}`, ARM `{accountName}`), else ""."""
    return match_info.get("account") or match_info.get("accountName") or ""


@dataclass(frozen=True)
class CounterRow:
    operation: str
    caller: str
    status: int
    account: str
    count: int


class RequestCounters:
    """Thread-safe so that tests running the emulator in a background thread can read it directly."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, operation: str, caller: str, status: int, account: str = "") -> None:
        with self._lock:
            self._counts[operation, caller, status, account] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(
        self,
        operation: str | None = None,
        caller: str | None = None,
        status: int | None = None,
        account: str | None = None,
    ) -> list[CounterRow]:
        """Rows matching the filters; `operation`, `caller`, `account` are globs (`batch.Pools_*`)."""
        with self._lock:
            items = list(self._counts.items())
        rows = [
            CounterRow(op, who, code, acct, count)
            for (op, who, code, acct), count in items
            if _matches(op, operation)
            and _matches(who, caller)
            and _matches(acct, account)
            and (status is None or code == status)
        ]
        return sorted(rows, key=lambda row: (row.operation, row.caller, row.status, row.account))

    def total(
        self,
        operation: str | None = None,
        caller: str | None = None,
        status: int | None = None,
        account: str | None = None,
    ) -> int:
        return sum(row.count for row in self.snapshot(operation, caller, status, account))

    def to_json(self, rows: Iterable[CounterRow] | None = None) -> list[dict[str, str | int]]:
        return [asdict(row) for row in (self.snapshot() if rows is None else rows)]


def _matches(value: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    return value == pattern or fnmatch.fnmatchcase(value, pattern)
