"""One pool's life on simulated time: allocation, resizes, node states, task scheduling, deletion.

A pool is advanced lazily: `advance_to(t)` replays every timed transition up to `t` in order, and
`next_event()` tells the service when the pool next needs attention, so 10 000 idle pools cost nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.emulator.batch.count_history import CountHistory, counts
from reconciler.emulator.batch.jobs import Task, task_exit_code, task_seconds
from reconciler.emulator.batch.nodes import BOOTING, USABLE, Node
from reconciler.emulator.batch.quotas import cores_per_node
from reconciler.emulator.batch.timefmt import parse_duration

if TYPE_CHECKING:
    from reconciler.emulator.batch.accounts import AccountState

DEFAULT_RESIZE_TIMEOUT = 15 * 60.0
DEFAULT_AUTOSCALE_INTERVAL = 15 * 60.0


@dataclass
class Timings:
    """Simulated durations of what Azure takes minutes for."""

    creating: float = 90.0
    starting: float = 45.0
    start_task: float = 30.0
    leaving: float = 30.0
    resize_min: float = 15.0
    stop_resize: float = 15.0
    delete_empty: float = 30.0


@dataclass
class Pool:
    account: AccountState
    spec: dict[str, Any]
    created: float
    etag: str
    identity: dict[str, Any] | None = None
    state: str = "active"
    state_time: float = 0.0
    allocation_state: str = "steady"
    allocation_time: float = 0.0
    last_modified: float = 0.0
    target_dedicated: int = 0
    target_low_priority: int = 0
    nodes: dict[str, Node] = field(default_factory=dict)
    resize_errors: list[dict[str, Any]] = field(default_factory=list)
    pending_errors: list[dict[str, Any]] = field(default_factory=list)
    resize_deadline: float | None = None
    steady_not_before: float | None = None
    stop_done_at: float | None = None
    delete_done_at: float | None = None
    autoscale_next: float | None = None
    autoscale_run: dict[str, Any] | None = None
    autoscale_enabled_at: float | None = None
    scheduled_at: float | None = None
    node_serial: int = 0
    communication_mode: str | None = None
    gone: bool = False
    history: CountHistory = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.history = CountHistory(self.created)

    @property
    def id(self) -> str:
        return str(self.spec["id"])

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def vm_size(self) -> str:
        return str(self.spec.get("vmSize") or "")

    @property
    def cores(self) -> int:
        return cores_per_node(self.vm_size)

    @property
    def timings(self) -> Timings:
        return self.account.timings

    @property
    def autoscale(self) -> bool:
        return bool(self.spec.get("enableAutoScale"))

    @property
    def slots_per_node(self) -> int:
        return int(self.spec.get("taskSlotsPerNode") or 1)

    @property
    def resize_timeout(self) -> float:
        seconds = parse_duration(str(self.spec.get("resizeTimeout") or "PT15M"))
        return DEFAULT_RESIZE_TIMEOUT if seconds is None else seconds

    def count(self, dedicated: bool) -> int:
        return sum(1 for node in self.nodes.values() if node.dedicated == dedicated)

    def cores_in_use(self, dedicated: bool) -> int:
        return self.count(dedicated) * self.cores

    def touch(self, at: float) -> None:
        self.etag = self.account.new_etag()
        self.last_modified = at

    # ---- time ----

    def next_event(self) -> float | None:
        times = [node.next_at for node in self.nodes.values() if node.next_at is not None]
        if self.allocation_state == "resizing":
            times += [t for t in (self.resize_deadline, self.steady_not_before) if t is not None]
        if self.stop_done_at is not None:
            times.append(self.stop_done_at)
        if self.delete_done_at is not None:
            times.append(self.delete_done_at)
        if self.autoscale_next is not None and self.state == "active":
            times.append(self.autoscale_next)
        return min(times) if times else None

    def advance_to(self, now: float, on_autoscale: Callable[[Pool, float], None]) -> None:
        while not self.gone:
            due = self.next_event()
            if due is None or due > now:
                return
            self._step(due, on_autoscale)

    def _step(self, at: float, on_autoscale: Callable[[Pool, float], None]) -> None:
        for node in list(self.nodes.values()):
            if node.next_at is not None and node.next_at <= at:
                self._node_due(node, at)
        if self.delete_done_at is not None and at >= self.delete_done_at:
            if not self.nodes:
                self.gone = True
                self.account.forget_pool(self)
                return
            self.delete_done_at = None
        if self.delete_done_at is None and self.state == "deleting" and not self.nodes:
            self.delete_done_at = at
        if self.stop_done_at is not None and at >= self.stop_done_at:
            self.stop_done_at = None
        if self.autoscale_next is not None and at >= self.autoscale_next and self.state == "active":
            self.autoscale_next = at + self.autoscale_interval()
            on_autoscale(self, at)
        self.schedule_tasks(at)
        self.check_steady(at)
        self.record_counts(at)

    def record_counts(self, at: float) -> None:
        """Note the counts autoscale samples; called wherever they may have changed."""
        queue = self.account.queues.get(self.key)
        active = len(queue) if queue else 0
        self.history.record(
            at, counts(active, self.running_tasks(), self.count(True), self.count(False), len(self.nodes))
        )

    def autoscale_interval(self) -> float:
        value = self.spec.get("autoScaleEvaluationInterval")
        seconds = parse_duration(value) if isinstance(value, str) else None
        return DEFAULT_AUTOSCALE_INTERVAL if seconds is None else seconds

    def _node_due(self, node: Node, at: float) -> None:
        start_task = self.spec.get("startTask")
        if node.state == "creating":
            node.move("starting", at, at + self.timings.starting)
        elif node.state == "starting":
            node.boot_time = at
            if start_task and start_task.get("waitForSuccess", True):
                node.start_task_state, node.start_task_start = "running", at
                node.move("waitingforstarttask", at, at + self.timings.start_task)
            else:
                if start_task:
                    node.start_task_state, node.start_task_start = "completed", at
                    node.start_task_end = at
                node.move("idle", at)
        elif node.state == "waitingforstarttask":
            node.start_task_state, node.start_task_end = "completed", at
            node.move("starttaskfailed" if node.start_task_fails else "idle", at)
        elif node.state == "leavingpool":
            del self.nodes[node.id]
            self.account.cores_used[node.dedicated] -= self.cores
        else:
            self._finish_tasks(node, at)

    def _finish_tasks(self, node: Node, at: float) -> None:
        for task in [t for t in node.running if t.end_at is not None and t.end_at <= at]:
            node.running.remove(task)
            node.total_run += 1
            code = task_exit_code(str(task.spec.get("commandLine", "")))
            task.exit_code, task.end_time, task.end_at = code, at, None
            task.result = "success" if code == 0 else "failure"
            if code == 0:
                node.total_succeeded += 1
            else:
                task.failure = {
                    "category": "usererror",
                    "code": "FailureExitCode",
                    "message": "The task exited with an exit code representing a failure",
                }
            node.retain_until = max(node.retain_until, at + task.retention)
            task.move("completed", at)
        self.settle_node(node, at)

    def settle_node(self, node: Node, at: float) -> None:
        """Put a node whose running set changed into the state and wake-up time that follow from it."""
        if node.running:
            ends = [t.end_at for t in node.running if t.end_at is not None]
            node.next_at = min(ends) if ends else None
            if node.state != "running":
                node.state, node.state_time = "running", at
            return
        if node.leave_option is not None:
            until = at + self.timings.leaving
            if node.leave_option == "retaineddata":
                until = max(until, node.retain_until)
            node.move("leavingpool", at, until)
            return
        if node.state == "running":
            node.move("idle", at)
        else:
            node.next_at = None

    # ---- tasks ----

    def schedule_tasks(self, at: float) -> None:
        queue = self.account.queues.get(self.key)
        if not queue or self.state != "active":
            return
        nodes = [
            n
            for n in self.nodes.values()
            if n.state in USABLE and n.leave_option is None and n.scheduling == "enabled"
        ]
        if not nodes:
            return
        pack = (self.spec.get("taskSchedulingPolicy") or {}).get("nodeFillType") == "pack"
        slots = self.slots_per_node
        waiting: list[Task] = []
        while queue:
            task = queue.pop(0)
            fits = [n for n in nodes if slots - n.used_slots() >= task.slots]
            if not fits:
                waiting.append(task)
                if not any(slots - n.used_slots() > 0 for n in nodes):
                    break
                continue
            free = {n.id: slots - n.used_slots() for n in fits}
            node = min(fits, key=lambda n: free[n.id]) if pack else max(fits, key=lambda n: free[n.id])
            self._start_task(task, node, at)
        queue[:0] = waiting

    def _start_task(self, task: Task, node: Node, at: float) -> None:
        task.node_id, task.pool_id = node.id, self.id
        task.start_time, task.end_time, task.exit_code, task.result, task.failure = at, None, None, None, None
        task.end_at = at + task_seconds(str(task.spec.get("commandLine", "")))
        task.move("running", at)
        node.running.append(task)
        self.settle_node(node, at)

    def requeue(self, task: Task, at: float) -> None:
        task.requeue_count += 1
        task.last_requeue = at
        task.node_id, task.end_at, task.start_time = None, None, None
        task.move("active", at)
        self.account.queues.setdefault(self.key, []).insert(0, task)

    def _terminate(self, task: Task, at: float) -> None:
        task.end_time, task.end_at, task.exit_code, task.result = at, None, -1, "failure"
        task.failure = {
            "category": "usererror",
            "code": "TaskEnded",
            "message": "The task was terminated because its compute node was removed from the pool",
        }
        task.move("completed", at)

    # ---- resizing ----

    def start_resize(self, at: float, option: str, timeout: float | None = None) -> None:
        self.allocation_state, self.allocation_time = "resizing", at
        self.resize_errors, self.pending_errors = [], []
        self.resize_deadline = at + (self.resize_timeout if timeout is None else timeout)
        self.steady_not_before = at + self.timings.resize_min
        self.touch(at)
        for dedicated, target in ((True, self.target_dedicated), (False, self.target_low_priority)):
            kept = [n for n in self.nodes.values() if n.dedicated == dedicated and not n.leaving]
            if target > len(kept):
                self._grow(at, dedicated, target - len(kept))
            elif target < len(kept):
                self.remove_nodes(self._pick_victims(kept, len(kept) - target), option, at)

    def _grow(self, at: float, dedicated: bool, wanted: int) -> None:
        quota = self.account.settings_quota(dedicated)
        used_elsewhere = self.account.cores_in_use(dedicated, exclude=self)
        mine = self.cores_in_use(dedicated)
        room = max(0, (quota - used_elsewhere - mine) // self.cores)
        adding = min(wanted, room)
        if adding < wanted:
            code = "AccountCoreQuotaReached" if dedicated else "AccountLowPriorityCoreQuotaReached"
            kind = "dedicated" if dedicated else "low-priority"
            self.pending_errors.append(
                {
                    "code": code,
                    "message": f"The specified account has reached its {kind} VM core quota",
                    "values": [
                        {"name": "Quota", "value": str(quota)},
                        {"name": "CoresPerNode", "value": str(self.cores)},
                    ],
                }
            )
        if adding and not self.nodes:
            self.communication_mode = self._resolved_communication_mode()
        for _ in range(adding):
            node = self._new_node(at, dedicated)
            self.nodes[node.id] = node
            self.account.cores_used[dedicated] += self.cores
            failures = self.account.start_task_failures
            if failures.get(self.key, 0) > 0:
                node.start_task_fails = True
                failures[self.key] -= 1

    def _resolved_communication_mode(self) -> str:
        """The mode a pool's first nodes join in: `default` is `classic` (what the service reports for pools
        created without a target), and nodes already in the pool keep theirs until they leave."""
        target = str(self.spec.get("targetNodeCommunicationMode") or "default").lower()
        return target if target in ("classic", "simplified") else "classic"

    def _new_node(self, at: float, dedicated: bool) -> Node:
        self.node_serial += 1
        stamp = self.account.clock_at(at).strftime("%Y%m%dt%H%M%Sz")
        node_id = f"tvm-{random.randint(1_000_000_000, 4_000_000_000)}_{self.node_serial}-{stamp}"
        if not dedicated:
            node_id += "p"
        ip = f"10.{(self.node_serial >> 16) & 255}.{(self.node_serial >> 8) & 255}.{self.node_serial & 255}"
        return Node(node_id, dedicated, "creating", at, at, ip, next_at=at + self.timings.creating)

    @staticmethod
    def _pick_victims(nodes: list[Node], how_many: int) -> list[Node]:
        """The service removes the nodes that lose least first: unstarted, then idle, then the least busy."""
        rank = {"starttaskfailed": 0, "unusable": 0, "creating": 1, "starting": 1, "waitingforstarttask": 1}
        ordered = sorted(nodes, key=lambda n: (rank.get(n.state, 2), len(n.running), n.allocation_time))
        return ordered[:how_many]

    def remove_nodes(self, nodes: list[Node], option: str, at: float) -> None:
        for node in nodes:
            if (
                node.state in BOOTING
                or node.state in ("starttaskfailed", "unusable", "idle")
                or not node.running
            ):
                node.leave_option = option if option == "retaineddata" else None
                node.move("leavingpool", at, at + self.timings.leaving)
                if option == "retaineddata":
                    node.next_at = max(at + self.timings.leaving, node.retain_until)
                continue
            if option == "requeue":
                for task in list(node.running):
                    node.running.remove(task)
                    self.requeue(task, at)
                node.move("leavingpool", at, at + self.timings.leaving)
            elif option == "terminate":
                for task in list(node.running):
                    node.running.remove(task)
                    node.total_run += 1
                    self._terminate(task, at)
                node.move("leavingpool", at, at + self.timings.leaving)
            else:
                node.leave_option = option

    def check_steady(self, at: float) -> None:
        if self.allocation_state == "steady":
            return
        if self.allocation_state == "stopping":
            if self.stop_done_at is None and not any(n.state == "leavingpool" for n in self.nodes.values()):
                self._become_steady(at)
            return
        if self.steady_not_before is not None and at >= self.steady_not_before:
            self.steady_not_before = None
        timed_out = self.resize_deadline is not None and at >= self.resize_deadline
        busy = any(n.state == "creating" or n.leaving for n in self.nodes.values())
        early = self.steady_not_before is not None and at < self.steady_not_before
        if timed_out and busy:
            self.pending_errors.append(
                {
                    "code": "ResizeTimedOut",
                    "message": "The resize operation did not complete within the specified resize timeout",
                    "values": [{"name": "ResizeTimeout", "value": str(self.spec.get("resizeTimeout"))}],
                }
            )
            self._become_steady(at)
        elif not busy and not early:
            self._become_steady(at)

    def _become_steady(self, at: float) -> None:
        self.allocation_state, self.allocation_time = "steady", at
        self.resize_errors, self.pending_errors = self.pending_errors, []
        self.resize_deadline = self.steady_not_before = None
        self.touch(at)

    def stop_resize(self, at: float) -> None:
        self.allocation_state, self.allocation_time = "stopping", at
        self.stop_done_at = at + self.timings.stop_resize
        self.touch(at)
        for node in list(self.nodes.values()):
            if node.state == "creating":
                node.move("leavingpool", at, at + self.timings.leaving)
            elif node.leave_option is not None and node.state != "leavingpool":
                node.leave_option = None

    def begin_delete(self, at: float) -> None:
        self.state, self.state_time = "deleting", at
        self.autoscale_next = None
        self.touch(at)
        for node in self.nodes.values():
            for task in list(node.running):
                node.running.remove(task)
                self.requeue(task, at)
            node.leave_option = None
            node.move("leavingpool", at, at + self.timings.leaving)
        self.delete_done_at = at + (self.timings.leaving if self.nodes else self.timings.delete_empty)

    def running_tasks(self) -> int:
        return sum(len(n.running) for n in self.nodes.values())
