"""Jobs and tasks: just enough of the service for pools to have real work to drain.

A task's simulated run time comes from its command line (`sleep 120` occupies its node 120 simulated
seconds) so tests and the demo can build long-running work without anything actually running.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator.batch.timefmt import parse_duration

DEFAULT_TASK_SECONDS = 5.0
DEFAULT_RETENTION_SECONDS = 7 * 86400.0
UNBOUNDED = "P10675199DT2H48M5.4775807S"

_SLEEP = re.compile(r"\bsleep\s+(\d+(?:\.\d+)?)")
_EXIT = re.compile(r"\bexit\s+(\d+)")


def task_seconds(command_line: str) -> float:
    match = _SLEEP.search(command_line)
    return float(match.group(1)) if match else DEFAULT_TASK_SECONDS


def task_exit_code(command_line: str) -> int:
    match = _EXIT.search(command_line)
    return int(match.group(1)) if match else 0


@dataclass
class Task:
    job_id: str
    spec: dict[str, Any]
    created: float
    etag: str
    state: str = "active"
    state_time: float = 0.0
    previous_state: str | None = None
    previous_state_time: float | None = None
    last_modified: float = 0.0
    node_id: str | None = None
    pool_id: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    end_at: float | None = None
    exit_code: int | None = None
    result: str | None = None
    failure: dict[str, Any] | None = None
    requeue_count: int = 0
    last_requeue: float | None = None

    @property
    def id(self) -> str:
        return str(self.spec["id"])

    @property
    def slots(self) -> int:
        return int(self.spec.get("requiredSlots") or 1)

    @property
    def retention(self) -> float:
        value = (self.spec.get("constraints") or {}).get("retentionTime")
        seconds = parse_duration(value) if isinstance(value, str) else None
        return DEFAULT_RETENTION_SECONDS if seconds is None else seconds

    def move(self, state: str, at: float) -> None:
        self.previous_state, self.previous_state_time = self.state, self.state_time
        self.state, self.state_time, self.last_modified = state, at, at


@dataclass
class Job:
    spec: dict[str, Any]
    created: float
    etag: str
    state: str = "active"
    state_time: float = 0.0
    last_modified: float = 0.0
    tasks: dict[str, Task] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.spec["id"])

    @property
    def pool_id(self) -> str:
        return str((self.spec.get("poolInfo") or {}).get("poolId") or "")


def job_defaults(body: dict[str, Any]) -> dict[str, Any]:
    spec = dict(body)
    spec.setdefault("priority", 0)
    spec.setdefault("allowTaskPreemption", False)
    spec.setdefault("maxParallelTasks", -1)
    spec.setdefault("usesTaskDependencies", False)
    spec.setdefault("onAllTasksComplete", "noaction")
    spec.setdefault("onTaskFailure", "noaction")
    constraints = dict(spec.get("constraints") or {})
    constraints.setdefault("maxWallClockTime", UNBOUNDED)
    constraints.setdefault("maxTaskRetryCount", 0)
    spec["constraints"] = constraints
    return spec


def task_defaults(body: dict[str, Any]) -> dict[str, Any]:
    spec = dict(body)
    spec.setdefault("requiredSlots", 1)
    spec.setdefault("userIdentity", {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}})
    constraints = dict(spec.get("constraints") or {})
    constraints.setdefault("maxWallClockTime", UNBOUNDED)
    constraints.setdefault("retentionTime", "P7D")
    constraints.setdefault("maxTaskRetryCount", 0)
    spec["constraints"] = constraints
    return spec
