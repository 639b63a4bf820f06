"""Compute nodes and the states they pass through, as `list_nodes` reports them."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.emulator.batch.jobs import Task

# States in which a node counts as allocated but cannot run tasks yet.
BOOTING = ("creating", "starting", "waitingforstarttask")
USABLE = ("idle", "running")


@dataclass
class Node:
    id: str
    dedicated: bool
    state: str
    state_time: float
    allocation_time: float
    ip: str
    next_at: float | None = None
    boot_time: float | None = None
    start_task_fails: bool = False
    start_task_state: str | None = None
    start_task_start: float | None = None
    start_task_end: float | None = None
    leave_option: str | None = None
    retain_until: float = 0.0
    scheduling: str = "enabled"
    running: list[Task] = field(default_factory=list)
    total_run: int = 0
    total_succeeded: int = 0

    @property
    def leaving(self) -> bool:
        return self.state == "leavingpool" or self.leave_option is not None

    def used_slots(self) -> int:
        return sum(task.slots for task in self.running)

    def move(self, state: str, at: float, next_at: float | None = None) -> None:
        self.state, self.state_time, self.next_at = state, at, next_at
