"""Carrying out a Plan: every pool's actions in the plan's order, pools side by side, within the limits.

One pool's actions run one after the other (the patch that writes the new spec hash before the resize
that follows it); different pools run concurrently, bounded per account by `Limits.per_account` mutating
calls and overall by `Limits.refresh_cycles` refresh cycles handed out fairly across accounts. A failing
action is reported in its `ActionResult` and stops only the later actions of its own pool.

Every action that ends badly (quota, an aborted drain, a refused call, a deadline passed) puts its pool
into the requeue backoff, which the next plan reads as `backoff_until` and holds all of the pool's
actions against; a pool whose action ends well is cleared from it. A drain still running under
`on_drain_timeout: wait` is not a failure: the next pass follows it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import structlog

from reconciler.azure import operations
from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import ErrorKind
from reconciler.azure.operations import OperationFailed
from reconciler.azure.snapshot import ObservedPool
from reconciler.engine.backoff import RequeueBackoff
from reconciler.engine.cycle import (
    CycleResult,
    CycleRunner,
    Observer,
    Outcome,
    patch_properties,
    patched_markers,
    removes_start_task,
)
from reconciler.engine.limits import Limits
from reconciler.engine.wait import DeadlineExceeded, Pacing, Sleep, wait_until
from reconciler.plan.actions import ActionKind, ChangeRule, Plan, PoolAction
from reconciler.plan.rules import PATCH_ANY_TIME, top_field
from reconciler.spec.pool import Pool

log = structlog.get_logger("reconciler.engine.executor")

_CYCLE_KINDS: Final = frozenset({ActionKind.create, ActionKind.refresh, ActionKind.delete})
_BACKOFF_OUTCOMES: Final = frozenset(Outcome) - {Outcome.DONE, Outcome.WAITING}


@dataclass(frozen=True)
class ActionResult:
    action: PoolAction
    outcome: Outcome
    detail: str
    seconds: float
    cycle: CycleResult | None = None

    @property
    def ok(self) -> bool:
        return self.outcome.ok


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Engine:
    """What acting needs and what outlives one pass: clients, limits, pacing, the requeue backoff."""

    clients: AzureClients
    limits: Limits = field(default_factory=Limits)
    pacing: Pacing = field(default_factory=Pacing)
    backoff: RequeueBackoff = field(default_factory=RequeueBackoff)
    observers: Sequence[Observer] = ()
    sleep: Sleep = asyncio.sleep
    now: Callable[[], datetime] = _utc_now

    async def execute(self, plan: Plan) -> tuple[ActionResult, ...]:
        """Run every action of `plan`; the results come back in the plan's order."""
        by_pool: dict[tuple[str, str], list[int]] = {}
        for index, action in enumerate(plan.actions):
            by_pool.setdefault((action.account, action.pool_id.casefold()), []).append(index)
        results: list[ActionResult | None] = [None] * len(plan.actions)

        async def run_pool(indices: list[int]) -> None:
            for position, index in enumerate(indices):
                result = await self.run_action(plan.actions[index])
                results[index] = result
                if not result.ok:
                    for later in indices[position + 1 :]:
                        skipped = f"not run: {plan.actions[index].kind.value} ended {result.outcome.value}"
                        results[later] = ActionResult(plan.actions[later], Outcome.FAILED, skipped, 0.0)
                    return

        await asyncio.gather(*(run_pool(indices) for indices in by_pool.values()))
        return tuple(r for r in results if r is not None)

    async def run_action(self, action: PoolAction) -> ActionResult:
        """One action; never raises for an Azure failure, which is its result instead."""
        started = time.monotonic()
        bound = log.bind(pool=action.pool_id, account=action.account, action=action.kind.value)
        bound.info("pool.action.start", reason=action.reason)
        cycle: CycleResult | None = None
        try:
            if action.kind in _CYCLE_KINDS:
                cycle = await self._cycle(action)
                outcome, detail = cycle.outcome, cycle.detail
            else:
                outcome, detail = await self._direct(action)
        except OperationFailed as failed:
            outcome = Outcome.DEGRADED if failed.kind is ErrorKind.QUOTA else Outcome.FAILED
            detail = str(failed)
        except DeadlineExceeded as exceeded:
            outcome, detail = Outcome.TIMED_OUT, str(exceeded)
        except Exception as exc:
            # A bug must not stop the other pools; its message could carry spec values, its type cannot.
            bound.error("pool.action.crashed", error=type(exc).__name__)
            outcome, detail = Outcome.FAILED, f"internal error ({type(exc).__name__})"
        seconds = time.monotonic() - started
        if outcome in _BACKOFF_OUTCOMES:
            requeue = self.backoff.failed(action.account, action.pool_id, self.now(), detail)
            detail = f"{detail}; next attempt after {requeue.until.isoformat(timespec='seconds')}"
        elif outcome is Outcome.DONE:
            self.backoff.succeeded(action.account, action.pool_id)
        event = "pool.action.done" if outcome is Outcome.DONE else "pool.action.unfinished"
        getattr(bound, "info" if outcome is Outcome.DONE else "warning")(
            event, outcome=outcome.value, detail=detail, seconds=round(seconds, 3)
        )
        return ActionResult(action, outcome, detail, seconds, cycle)

    def runner(self, account: str, pool_id: str, desired: Pool | None) -> CycleRunner:
        return CycleRunner(
            self.clients,
            account,
            pool_id,
            desired,
            pacing=self.pacing,
            limits=self.limits,
            observers=self.observers,
            sleep=self.sleep,
            now=self.now,
        )

    async def _cycle(self, action: PoolAction) -> CycleResult:
        desired = None if action.kind is ActionKind.delete else action.desired
        runner = self.runner(action.account, action.pool_id, desired)
        if action.kind is ActionKind.create:
            return await runner.run()
        async with self.limits.refresh(action.account):
            return await runner.run()

    async def _direct(self, action: PoolAction) -> tuple[Outcome, str]:
        desired = action.desired
        clients, account, pool_id = self.clients, action.account, action.pool_id
        if desired is None:
            return Outcome.FAILED, f"{action.kind.value} needs the pool's spec"
        if action.kind is ActionKind.adopt:
            if action.observed is None:
                return Outcome.FAILED, "adopt needs the pool as it was compared"
            async with self.limits.mutation(account):
                await operations.adopt_pool(
                    clients, account, pool_id, action.observed, patched_markers(desired)
                )
            return Outcome.DONE, "adopted: ownership marker written"
        if action.kind is ActionKind.patch:
            fields = {top_field(c.path) for c in action.changes if c.rule is ChangeRule.patch}
            if not _spec_metadata_changed(action):
                fields.discard("metadata")
            if removes_start_task(desired, fields):
                everything = patch_properties(pool_id, desired, set(PATCH_ANY_TIME))
                async with self.limits.mutation(account):
                    await operations.replace_properties(
                        clients, account, pool_id, everything, ours=patched_markers(desired)
                    )
                return Outcome.DONE, f"replaced {', '.join(sorted(fields))} (updateproperties)"
            properties = patch_properties(pool_id, desired, fields)
            async with self.limits.mutation(account):
                await operations.patch_pool(
                    clients,
                    account,
                    pool_id,
                    properties,
                    ours=patched_markers(desired),
                    observed=action.observed,
                )
            return Outcome.DONE, f"patched {', '.join(sorted(fields)) or 'markers'}"
        if action.kind is ActionKind.disable_autoscale:
            await self._when_steady(desired, account, pool_id, "disable_autoscale")
            return Outcome.DONE, "autoscale disabled"
        if action.kind is ActionKind.enable_autoscale:
            await self._when_steady(desired, account, pool_id, "enable_autoscale")
            return Outcome.DONE, "autoscale enabled"
        if action.kind is ActionKind.resize:
            return await self._resize(account, pool_id, desired)
        return Outcome.FAILED, f"unknown action {action.kind.value}"

    async def _when_steady(self, desired: Pool, account: str, pool_id: str, call: str) -> None:
        """An autoscale call, waiting out the states the service refuses it in (a resize, 30 s spacing)."""
        for attempt in range(3):
            try:
                async with self.limits.mutation(account):
                    if call == "enable_autoscale":
                        await operations.enable_autoscale(
                            self.clients,
                            account,
                            pool_id,
                            desired.auto_scale_formula or "",
                            desired.auto_scale_evaluation_interval,
                        )
                    else:
                        await operations.disable_autoscale(self.clients, account, pool_id)
                return
            except OperationFailed as failed:
                if failed.kind is not ErrorKind.STATE or attempt == 2:
                    raise
                if failed.code == "TooManyEnableAutoScaleRequests":
                    await self.sleep(self.pacing.seconds(30.0))
                else:
                    await self._settle(account, pool_id, desired, "waiting_steady", self.pacing.floor)

    async def _settle(
        self, account: str, pool_id: str, desired: Pool, phase: str, first_delay: float
    ) -> ObservedPool | None:
        """The pool once its allocation state is steady (None once it is gone)."""
        deadline = self.pacing.seconds(desired.refresh.allocation_timeout)

        async def get() -> ObservedPool | None:
            return await operations.get_pool(self.clients, account, pool_id)

        return await wait_until(
            get,
            lambda seen: seen is None or seen.allocation_state == "steady",
            phase=phase,
            deadline=deadline,
            min_interval=self.pacing.floor,
            max_interval=self.pacing.cap(deadline),
            sleep=self.sleep,
            first_delay=first_delay,
        )

    async def _resize(self, account: str, pool_id: str, desired: Pool) -> tuple[Outcome, str]:
        """Level-triggered: wait out any running resize, resize if the targets differ, wait for steady."""
        want = (desired.target_dedicated_nodes or 0, desired.target_low_priority_nodes or 0)
        observed = await self._settle(account, pool_id, desired, "waiting_steady", 0.0)
        if observed is None:
            return Outcome.FAILED, "the pool disappeared"
        have = (observed.target_dedicated_nodes, observed.target_low_priority_nodes)
        if have != want or observed.resize_errors:
            async with self.limits.mutation(account):
                await operations.resize_pool(
                    self.clients,
                    account,
                    pool_id,
                    target_dedicated_nodes=want[0],
                    target_low_priority_nodes=want[1],
                    node_deallocation_option=desired.refresh.node_deallocation_option,
                    resize_timeout=desired.resize_timeout,
                )
            observed = await self._settle(account, pool_id, desired, "resizing", self.pacing.floor)
        if observed is not None and observed.resize_errors:
            codes = ", ".join(sorted({e.code for e in observed.resize_errors}))
            return Outcome.DEGRADED, f"resized, but short of its target: {codes}"
        return Outcome.DONE, f"resized to {want[0]} dedicated, {want[1]} low-priority"


def _spec_metadata_changed(action: PoolAction) -> bool:
    """The user's metadata changed, not only our markers (which the PATCH writes in any case)."""
    return any(
        top_field(c.path) == "metadata" and not c.path.startswith("metadata.reconciler.")
        for c in action.changes
    )
