"""The Batch service state shared by the data plane and by ARM's `batchAccounts/pools`.

Both faces speak data-plane REST JSON (camelCase dicts) to it, so one pool is one object whatever the
caller. Time is evaluated lazily: every call first replays the transitions that fell due (a heap keyed by
simulated time), so nothing polls in the background and idle pools cost nothing.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from functools import partial
from typing import Any

from reconciler.emulator.batch import validation as check
from reconciler.emulator.batch.accounts import AccountState
from reconciler.emulator.batch.autoscale import AutoScaleInputs, FormulaError, evaluate, validate
from reconciler.emulator.batch.bodies import (
    job_body,
    metadata_url,
    node_body,
    node_counts,
    pool_body,
    task_body,
)
from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.nodes import Node
from reconciler.emulator.batch.paging import ListQuery, Page, keyed_page, page
from reconciler.emulator.batch.pools import Pool, Timings
from reconciler.emulator.batch.state import dump_accounts, load_accounts
from reconciler.emulator.batch.tasking import JobOperations, not_found
from reconciler.emulator.batch.timefmt import iso
from reconciler.emulator.context import AccountSettings, EmulatorContext

ENABLE_AUTOSCALE_SPACING = 30.0

_UPDATABLE = (
    "displayName",
    "vmSize",
    "enableInterNodeCommunication",
    "startTask",
    "certificateReferences",
    "applicationPackageReferences",
    "metadata",
    "virtualMachineConfiguration",
    "targetNodeCommunicationMode",
    "taskSlotsPerNode",
    "taskSchedulingPolicy",
    "networkConfiguration",
    "resourceTags",
    "userAccounts",
    "mountConfiguration",
    "upgradePolicy",
)


def _being_deleted() -> BatchServiceError:
    return BatchServiceError(409, "PoolBeingDeleted", "The specified pool has been marked for deletion.")


def _autoscale_settings(reason: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "InvalidAutoScalingSettings",
        f"The specified auto-scaling settings are not valid: {reason}.",
        {"Reason": reason},
    )


def _being_resized() -> BatchServiceError:
    return BatchServiceError(409, "PoolBeingResized", "The specified pool is currently being resized.")


class BatchService(JobOperations):
    name = "batch"

    def __init__(self, ctx: EmulatorContext, timings: Timings | None = None) -> None:
        self.ctx = ctx
        self.clock = ctx.clock
        self.timings = timings or Timings()
        self._accounts: dict[str, AccountState] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._serial = itertools.count()
        self._bases: dict[str, str] = {}
        ctx.parts.setdefault(self.name, self)

    # ---- plumbing ----

    def now(self) -> float:
        return self.clock.monotonic()

    def account(self, name: str) -> AccountState:
        state = self._accounts.get(name)
        if state is None:
            settings = self.ctx.accounts.get(name)
            if settings is None:
                raise BatchServiceError(404, "AccountNotFound", f"The Batch account '{name}' does not exist.")
            state = AccountState(settings, self.clock, self.timings)
            self._accounts[name] = state
        return state

    def note_base_url(self, account: str, base: str) -> None:
        self._bases[account] = base

    def base_url(self, account: str) -> str:
        return self._bases.get(account, f"http://127.0.0.1/{account}")

    def sync(self) -> None:
        """Replay every transition that fell due since the last call."""
        now = self.now()
        while self._heap and self._heap[0][0] <= now:
            due, _, account, key = heapq.heappop(self._heap)
            pool = self._accounts[account].pools.get(key) if account in self._accounts else None
            if pool is None or pool.scheduled_at != due:
                continue
            pool.scheduled_at = None
            pool.advance_to(now, self._autoscale_run)
            self._reschedule(pool)

    def _reschedule(self, pool: Pool) -> None:
        if pool.gone:
            return
        pool.record_counts(self.now())
        due = pool.next_event()
        if due is None:
            pool.scheduled_at = None
        elif due != pool.scheduled_at:
            pool.scheduled_at = due
            heapq.heappush(self._heap, (due, next(self._serial), pool.account.name, pool.key))

    def _settle(self, pool: Pool) -> None:
        pool.advance_to(self.now(), self._autoscale_run)
        self._reschedule(pool)

    def pool(self, account: str, pool_id: str) -> Pool:
        self.sync()
        found = self.account(account).pools.get(pool_id.lower())
        if found is None:
            raise not_found("Pool", "pool")
        return found

    def _active_pool(self, account: str, pool_id: str) -> Pool:
        pool = self.pool(account, pool_id)
        if pool.state == "deleting":
            raise _being_deleted()
        return pool

    # ---- pools ----

    def create_pool(
        self, account: str, body: dict[str, Any], *, identity: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return pool_body(self.add_pool(account, body, identity=identity), self.base_url(account))

    def add_pool(self, account: str, body: dict[str, Any], *, identity: dict[str, Any] | None = None) -> Pool:
        self.sync()
        state = self.account(account)
        pool_id = check.require_id(body)
        existing = state.pools.get(pool_id.lower())
        if existing is not None:
            if existing.state == "deleting":
                raise _being_deleted()
            raise BatchServiceError(409, "PoolExists", "The specified pool already exists.")
        if len(state.pools) >= state.settings.pool_quota:
            raise BatchServiceError(
                409, "PoolQuotaReached", "The pool quota for the specified account has been reached."
            )
        if not body.get("vmSize"):
            raise check.missing("vmSize")
        check.resize_timeout(body)
        dedicated = check.node_count(body, "targetDedicatedNodes")
        low_priority = check.node_count(body, "targetLowPriorityNodes")
        autoscale = bool(body.get("enableAutoScale"))
        if autoscale:
            if dedicated is not None or low_priority is not None:
                raise _autoscale_settings("node targets cannot be set on a pool with autoscale enabled")
            if not body.get("autoScaleFormula"):
                raise _autoscale_settings("a pool with autoscale enabled needs an autoScaleFormula")
            check.autoscale_interval(body)
            self._validate_formula(str(body["autoScaleFormula"]))
        elif body.get("autoScaleFormula"):
            raise _autoscale_settings("an autoScaleFormula needs enableAutoScale set to true")
        slots = body.get("taskSlotsPerNode", 1)
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 256:
            raise check.invalid("taskSlotsPerNode", slots, "The value must be between 1 and 256")
        spec = self._pool_spec(body)
        now = self.now()
        pool = Pool(state, spec, now, state.new_etag(), identity=_pool_identity(identity))
        pool.state_time = pool.allocation_time = pool.last_modified = now
        state.add_pool(pool)
        pool.record_counts(now)  # tasks may wait for the pool already; its history starts with them
        if autoscale:
            pool.autoscale_enabled_at = now
            pool.autoscale_next = now + pool.autoscale_interval()
            self._autoscale_run(pool, now)
        else:
            pool.target_dedicated, pool.target_low_priority = dedicated or 0, low_priority or 0
            if pool.target_dedicated or pool.target_low_priority:
                pool.start_resize(now, "requeue")
        self._settle(pool)
        return pool

    @staticmethod
    def _pool_spec(body: dict[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in body.items() if k not in ("targetDedicatedNodes", "targetLowPriorityNodes")}
        spec.setdefault("resizeTimeout", "PT15M")
        spec["enableAutoScale"] = bool(spec.get("enableAutoScale"))
        if spec["enableAutoScale"]:
            spec.setdefault("autoScaleEvaluationInterval", "PT15M")
        spec.setdefault("enableInterNodeCommunication", False)
        if "startTask" in spec:
            spec["startTask"] = check.start_task_defaults(spec["startTask"])
        spec.setdefault("taskSlotsPerNode", 1)
        spec.setdefault("taskSchedulingPolicy", {"nodeFillType": "spread"})
        return spec

    def get_pool(self, account: str, pool_id: str) -> dict[str, Any]:
        return pool_body(self.pool(account, pool_id), self.base_url(account))

    def list_pools(self, account: str) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """Each pool's key with a renderer of its body: a management-plane page renders only its own."""
        self.sync()
        base = self.base_url(account)
        return [
            (p.key, partial(pool_body, p, base, element=False))
            for p in self.account(account).pools_after(None)
        ]

    def list_pool_page(self, account: str, base: str, query: ListQuery) -> Page:
        self.sync()
        pools = ((pool.key, pool) for pool in self.account(account).pools_after(query.skip))
        return keyed_page(pools, query, row=_pool_row, body=lambda pool: pool_body(pool, base, element=False))

    def patch_pool(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        if "vmSize" in body and pool.nodes:
            raise BatchServiceError(
                409,
                "OperationInvalidForCurrentState",
                "The vmSize of a pool can be changed only while it has no nodes.",
            )
        for key in _UPDATABLE:
            if key in body:
                value = body[key]
                pool.spec[key] = check.start_task_defaults(value) if key == "startTask" else value
        pool.touch(self.now())
        return pool_body(pool, self.base_url(account))

    def replace_pool(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        for key in ("applicationPackageReferences", "metadata"):
            if key not in body:
                raise check.missing(key)
            pool.spec[key] = body[key]
        pool.spec["certificateReferences"] = body.get("certificateReferences") or []
        if body.get("startTask"):
            pool.spec["startTask"] = check.start_task_defaults(body["startTask"])
        else:
            pool.spec.pop("startTask", None)
        if "targetNodeCommunicationMode" in body:
            pool.spec["targetNodeCommunicationMode"] = body["targetNodeCommunicationMode"]
        pool.touch(self.now())
        return pool_body(pool, self.base_url(account))

    def resize_pool(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        if pool.autoscale:
            raise BatchServiceError(
                409,
                "OperationInvalidForCurrentState",
                "The specified operation is not valid for the current state of the resource: "
                "the pool has automatic scaling enabled.",
            )
        if pool.allocation_state != "steady":
            raise _being_resized()
        dedicated = check.node_count(body, "targetDedicatedNodes")
        low_priority = check.node_count(body, "targetLowPriorityNodes")
        timeout = check.resize_timeout(body)
        option = check.deallocation_option(body)
        if "resizeTimeout" in body:
            pool.spec["resizeTimeout"] = body["resizeTimeout"]
        if dedicated is not None:
            pool.target_dedicated = dedicated
        if low_priority is not None:
            pool.target_low_priority = low_priority
        pool.start_resize(self.now(), option, timeout)
        self._settle(pool)
        return pool_body(pool, self.base_url(account))

    def stop_resize(self, account: str, pool_id: str) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        if pool.allocation_state == "resizing":
            pool.stop_resize(self.now())
            self._settle(pool)
        return pool_body(pool, self.base_url(account))

    def remove_nodes(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        if pool.allocation_state != "steady":
            raise _being_resized()
        wanted = body.get("nodeList")
        if not isinstance(wanted, list) or not wanted:
            raise check.missing("nodeList")
        if len(wanted) > 100:
            raise check.invalid("nodeList", len(wanted), "At most 100 nodes can be removed at a time")
        timeout = check.resize_timeout(body)
        option = check.deallocation_option(body)
        victims: list[Node] = []
        for node_id in wanted:
            node = pool.nodes.get(str(node_id))
            if node is None:
                raise not_found("Node", "node")
            if not node.leaving:
                victims.append(node)
        now = self.now()
        pool.target_dedicated -= min(pool.target_dedicated, sum(1 for n in victims if n.dedicated))
        pool.target_low_priority -= min(pool.target_low_priority, sum(1 for n in victims if not n.dedicated))
        pool.start_resize(now, option, timeout)
        pool.remove_nodes(victims, option, now)
        self._settle(pool)
        return pool_body(pool, self.base_url(account))

    def enable_autoscale(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        now = self.now()
        if (
            pool.autoscale_enabled_at is not None
            and now - pool.autoscale_enabled_at < ENABLE_AUTOSCALE_SPACING
        ):
            raise BatchServiceError(
                503,
                "TooManyEnableAutoScaleRequests",
                "Enable AutoScale requests for the same pool must be separated by at least 30 seconds.",
                retry_after=pool.autoscale_enabled_at + ENABLE_AUTOSCALE_SPACING - now,
            )
        if pool.allocation_state != "steady" and not pool.autoscale:
            raise _being_resized()
        formula = body.get("autoScaleFormula") or (
            pool.spec.get("autoScaleFormula") if pool.autoscale else None
        )
        if not formula:
            raise check.missing("autoScaleFormula")
        check.autoscale_interval(body)
        self._validate_formula(str(formula))
        pool.spec["enableAutoScale"] = True
        pool.spec["autoScaleFormula"] = str(formula)
        pool.spec["autoScaleEvaluationInterval"] = body.get("autoScaleEvaluationInterval") or pool.spec.get(
            "autoScaleEvaluationInterval", "PT15M"
        )
        pool.autoscale_enabled_at = now
        pool.autoscale_next = now + pool.autoscale_interval()
        pool.touch(now)
        self._autoscale_run(pool, now)
        self._settle(pool)
        return pool_body(pool, self.base_url(account))

    def disable_autoscale(self, account: str, pool_id: str) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        pool.spec["enableAutoScale"] = False
        for key in ("autoScaleFormula", "autoScaleEvaluationInterval"):
            pool.spec.pop(key, None)
        pool.autoscale_next = None
        pool.autoscale_run = None
        pool.touch(self.now())
        self._reschedule(pool)
        return pool_body(pool, self.base_url(account))

    def evaluate_autoscale(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self._active_pool(account, pool_id)
        if not pool.autoscale:
            raise BatchServiceError(
                409,
                "OperationInvalidForCurrentState",
                "The specified operation is not valid for the current state of the resource: "
                "automatic scaling is not enabled on the pool.",
            )
        formula = body.get("autoScaleFormula")
        if not formula:
            raise check.missing("autoScaleFormula")
        self._validate_formula(str(formula))
        run = self._formula_run(pool, str(formula), self.now())[0]
        return {"odata.metadata": metadata_url(self.base_url(account), _AUTOSCALE_RUN), **run}

    def delete_pool(self, account: str, pool_id: str) -> None:
        pool = self._active_pool(account, pool_id)
        pool.begin_delete(self.now())
        self._settle(pool)

    # ---- autoscale ----

    @staticmethod
    def _validate_formula(formula: str) -> None:
        try:
            validate(formula)
        except FormulaError as err:
            raise BatchServiceError(
                400, err.code, f"The autoscale formula is invalid: {err.message}", {"Message": err.message}
            ) from err

    def _formula_run(self, pool: Pool, formula: str, at: float) -> tuple[dict[str, Any], Any]:
        pool.record_counts(at)
        inputs = AutoScaleInputs(
            current_dedicated=pool.count(True),
            current_low_priority=pool.count(False),
            target_dedicated=pool.target_dedicated,
            target_low_priority=pool.target_low_priority,
            samples=pool.history.samples(at),
            now=self.clock.at(at),
        )
        stamp = iso(self.clock.at(at))
        try:
            outcome = evaluate(formula, inputs)
        except FormulaError as err:
            values = [{"name": "Message", "value": err.message}]
            return {
                "timestamp": stamp,
                "error": {"code": err.code, "message": err.message, "values": values},
            }, None
        return {"timestamp": stamp, "results": outcome.results}, outcome

    def _autoscale_run(self, pool: Pool, at: float) -> None:
        if not pool.autoscale or pool.state != "active":
            return
        run, outcome = self._formula_run(pool, str(pool.spec.get("autoScaleFormula", "")), at)
        pool.autoscale_run = run
        pool.touch(at)
        if outcome is None or pool.allocation_state != "steady":
            return
        pool.target_dedicated = outcome.target_dedicated
        pool.target_low_priority = outcome.target_low_priority
        kept_dedicated = sum(1 for n in pool.nodes.values() if n.dedicated and not n.leaving)
        kept_low = sum(1 for n in pool.nodes.values() if not n.dedicated and not n.leaving)
        if (kept_dedicated, kept_low) != (pool.target_dedicated, pool.target_low_priority):
            pool.start_resize(at, outcome.node_deallocation_option or "requeue")

    # ---- nodes ----

    def list_node_page(self, account: str, pool_id: str, base: str, query: ListQuery) -> Page:
        pool = self.pool(account, pool_id)
        return page([node_body(pool, node, base, element=False) for node in pool.nodes.values()], query)

    def get_node(self, account: str, pool_id: str, node_id: str, base: str) -> dict[str, Any]:
        pool = self.pool(account, pool_id)
        node = pool.nodes.get(node_id)
        if node is None:
            raise not_found("Node", "node")
        return node_body(pool, node, base)

    def list_node_counts(self, account: str, query: ListQuery) -> Page:
        """Counts per pool; the operation has no `$select`, so one given is not carried to the next page."""
        self.sync()
        query = replace(query, select=None)
        rows = ((pool.key, _node_count_row(pool)) for pool in self.account(account).pools_after(query.skip))
        return keyed_page(rows, query, row=_same, body=_same)

    # ---- admin controls ----

    def set_quotas(
        self,
        account: str,
        *,
        dedicated_cores: int | None = None,
        low_priority_cores: int | None = None,
        pools: int | None = None,
    ) -> AccountSettings:
        settings = self.account(account).settings
        if dedicated_cores is not None:
            settings.dedicated_core_quota = dedicated_cores
        if low_priority_cores is not None:
            settings.low_priority_core_quota = low_priority_cores
        if pools is not None:
            settings.pool_quota = pools
        return settings

    def fail_start_tasks(self, account: str, pool_id: str, count: int = 1) -> None:
        """The next `count` nodes allocated to the pool fail their start task (and stay unusable)."""
        failures = self.account(account).start_task_failures
        failures[pool_id.lower()] = failures.get(pool_id.lower(), 0) + count

    def occupy_nodes(
        self, account: str, pool_id: str, tasks: int, seconds: float, job_id: str | None = None
    ) -> str:
        """Give the pool real work: a job with `tasks` tasks of `sleep <seconds>`."""
        state = self.account(account)
        job_id = job_id or f"emulator-occupy-{pool_id}-{len(state.jobs) + 1}"
        job = state.jobs.get(job_id.lower()) or self.create_job(
            account, {"id": job_id, "poolInfo": {"poolId": pool_id}}
        )
        new = [
            self._new_task(
                account, job, {"id": f"task-{len(job.tasks) + 1:05d}", "commandLine": f"sleep {seconds:g}"}
            )
            for _ in range(tasks)
        ]
        self._enqueue(account, job, new)
        return job.id

    def set_timings(self, **durations: float) -> Timings:
        names = {f.name for f in fields(Timings)}
        for key, value in durations.items():
            if key not in names:
                raise ValueError(f"unknown timing {key!r}; known: {sorted(names)}")
            setattr(self.timings, key, float(value))
        return self.timings

    def describe(self) -> dict[str, Any]:
        """The whole Batch state as the data plane would show it, for the admin dump."""
        self.sync()
        out: dict[str, Any] = {"timings": asdict(self.timings), "accounts": {}}
        for name, state in self._accounts.items():
            base = self.base_url(name)
            out["accounts"][name] = {
                "quotas": {
                    "dedicatedCores": state.settings.dedicated_core_quota,
                    "lowPriorityCores": state.settings.low_priority_core_quota,
                    "pools": state.settings.pool_quota,
                },
                "pools": [
                    {
                        **pool_body(p, base, element=False),
                        "nodes": [node_body(p, n, base, element=False) for n in p.nodes.values()],
                    }
                    for p in state.pools_after(None)
                ],
                "jobs": [
                    {
                        **job_body(j, base, self.clock.at, element=False),
                        "tasks": [task_body(t, base, self.clock.at, element=False) for t in j.tasks.values()],
                    }
                    for j in state.jobs.values()
                ],
            }
        return out

    # ---- persistence ----

    def dump(self) -> dict[str, Any]:
        self.sync()
        return {"timings": asdict(self.timings), "accounts": dump_accounts(self._accounts)}

    def load(self, data: dict[str, Any]) -> None:
        for key, value in (data.get("timings") or {}).items():
            if hasattr(self.timings, key):
                setattr(self.timings, key, float(value))
        self._accounts = load_accounts(data.get("accounts") or {}, self.account)
        self._heap.clear()
        for state in self._accounts.values():
            for pool in state.pools.values():
                pool.scheduled_at = None
                self._reschedule(pool)


_AUTOSCALE_RUN = "Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"


def _pool_identity(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """ARM spells user-assigned identities as a map; the data plane lists them."""
    if not identity:
        return None
    assigned = identity.get("userAssignedIdentities")
    if isinstance(assigned, dict):
        listed = [{"resourceId": rid, **(props or {})} for rid, props in assigned.items()]
        return {"type": identity.get("type", "UserAssigned"), "userAssignedIdentities": listed}
    return identity


def _node_count_row(pool: Pool) -> dict[str, Any]:
    return {
        "poolId": pool.id,
        "dedicated": node_counts([n for n in pool.nodes.values() if n.dedicated]),
        "lowPriority": node_counts([n for n in pool.nodes.values() if not n.dedicated]),
    }


def _same(row: dict[str, Any]) -> dict[str, Any]:
    return row


def _pool_row(pool: Pool) -> dict[str, Any]:
    """The properties `$filter` may test, without rendering the whole pool."""
    return {
        "id": pool.id,
        "state": pool.state,
        "allocationState": pool.allocation_state,
        "vmSize": pool.vm_size,
        "displayName": pool.spec.get("displayName"),
        "enableAutoScale": pool.autoscale,
        "currentDedicatedNodes": pool.count(True),
        "currentLowPriorityNodes": pool.count(False),
        "targetDedicatedNodes": pool.target_dedicated,
        "targetLowPriorityNodes": pool.target_low_priority,
    }
