"""Long-running operations the way ARM runs them: `Azure-AsyncOperation` and `Location` monitors.

An operation holds no timer: its status is read from the resource it acts on (provisioning state, power
transition, or the resource being gone), so it is always consistent with what a GET would show.
Polling delays are announced in wall seconds: the simulated remaining time divided by the time scale. A
delay under one wall second goes in `retry-after-ms`, which azure-core honours, so a fast simulated clock
is not slowed down by whole-second `Retry-After` values.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.emulator.clock import SimClock

MAX_OPERATIONS = 50_000
MAX_RETRY_AFTER = 10


@dataclass(frozen=True)
class Progress:
    status: str  # InProgress | Succeeded | Failed | Canceled
    remaining: float = 0.0  # simulated seconds
    error: dict[str, Any] | None = None


Probe = Callable[[dict[str, Any]], Progress]


def retry_headers(remaining_sim: float, clock: SimClock) -> dict[str, str]:
    wall = remaining_sim / clock.time_scale
    if wall >= 1:
        return {"Retry-After": str(min(MAX_RETRY_AFTER, math.ceil(wall)))}
    return {"retry-after-ms": str(max(1, math.ceil(wall * 1000)))}


class Operations:
    """Operation records (plain data) and the probes that tell each kind's status."""

    def __init__(self, clock: SimClock, subscription_id: str) -> None:
        self.clock = clock
        self.subscription_id = subscription_id
        self.records: dict[str, dict[str, Any]] = {}
        self.probes: dict[str, Probe] = {}

    def start(self, kind: str, target: str, provider: str, location: str, **extra: Any) -> str:
        operation_id = str(uuid.uuid4())
        self.records[operation_id] = {
            "kind": kind,
            "target": target,
            "provider": provider,
            "location": location,
            "startTime": self.clock.now().isoformat(),
            **extra,
        }
        while len(self.records) > MAX_OPERATIONS:
            del self.records[next(iter(self.records))]
        return operation_id

    def progress(self, operation_id: str) -> Progress | None:
        record = self.records.get(operation_id)
        if record is None:
            return None
        progress = self.probes[record["kind"]](record)
        if progress.status != "InProgress" and "endTime" not in record:
            record["endTime"] = self.clock.now().isoformat()
        return progress

    def status_body(self, operation_id: str, progress: Progress) -> dict[str, Any]:
        record = self.records[operation_id]
        body: dict[str, Any] = {
            "name": operation_id,
            "status": progress.status,
            "startTime": record["startTime"],
        }
        if progress.status != "InProgress":
            body["endTime"] = record.get("endTime", self.clock.now().isoformat())
        if progress.error is not None:
            body["error"] = progress.error
        return body

    def urls(self, base_url: str, operation_id: str, api_version: str) -> tuple[str, str]:
        """(Azure-AsyncOperation, Location) monitor URLs of an operation."""
        record = self.records[operation_id]
        root = (
            f"{base_url}/subscriptions/{self.subscription_id}/providers/{record['provider']}"
            f"/locations/{record['location']}"
        )
        query = f"?api-version={api_version}"
        return f"{root}/operations/{operation_id}{query}", f"{root}/operationResults/{operation_id}{query}"

    def headers(
        self, base_url: str, operation_id: str, api_version: str, remaining: float, *, location: bool
    ) -> dict[str, str]:
        async_url, location_url = self.urls(base_url, operation_id, api_version)
        headers = {"Azure-AsyncOperation": async_url, **retry_headers(remaining, self.clock)}
        if location:
            headers["Location"] = location_url
        return headers

    def dump(self) -> dict[str, Any]:
        return dict(self.records)

    def load(self, data: dict[str, Any]) -> None:
        self.records = dict(data)
