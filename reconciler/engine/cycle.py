"""The refresh cycle of one pool: observe → `next_refresh_step` → act or wait, until done.

The loop holds no progress of its own: every iteration starts from a fresh GET of the pool and the
planner's pure step function, so a process killed anywhere and run again continues from what Azure shows.
The phase deadline is counted from when Azure says the phase began, where it says so: a drain or an
allocation found running from the pool's `allocationStateTransitionTime`, a deletion from its
`stateTransitionTime`. A process restarted in the middle of a phase therefore times it out at the same
instant the first one would have, instead of granting it a fresh deadline. Only a phase this process
began itself (its own call just made) or one Azure gives no start for is counted from now. The one thing
kept in memory is, after a drain timed out under `on_drain_timeout: requeue`, the switch to requeue for
the rest of this run.

Each phase is bounded by its deadline from the spec (drain, delete, allocation). Quota and allocation
errors end the cycle as `degraded`, never in a recreate loop: the rebuilt pool carries the new spec hash
and a creation time after the request, so the next pass sees it as built and only reports it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from reconciler.azure import markers, operations
from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import ErrorKind
from reconciler.azure.operations import OperationFailed
from reconciler.azure.rest import rest_name
from reconciler.azure.snapshot import ObservedPool
from reconciler.engine.limits import Limits
from reconciler.engine.wait import Clock, DeadlineExceeded, Pacing, Sleep, wait_until
from reconciler.plan.refresh import RefreshStep, next_refresh_step, phase
from reconciler.plan.rules import desired_markers, patch_fields
from reconciler.spec.pool import Pool
from reconciler.spec.pool_refresh import RefreshPolicy

log = structlog.get_logger("reconciler.engine.cycle")

WAIT_STEPS: Final = frozenset(
    {RefreshStep.wait_steady, RefreshStep.wait_drained, RefreshStep.wait_deleted, RefreshStep.wait_allocated}
)
_FOLLOWS: Final = {
    RefreshStep.drain: RefreshStep.wait_drained,
    RefreshStep.delete: RefreshStep.wait_deleted,
    RefreshStep.create: RefreshStep.wait_allocated,
    RefreshStep.resize: RefreshStep.wait_allocated,
}
_MAX_CALL_FAILURES: Final = 5


class Outcome(enum.StrEnum):
    DONE = "done"
    DEGRADED = "degraded"
    """Built, but Azure could not give it what the spec asks (quota, allocation failure)."""
    WAITING = "waiting"
    """The drain outlived its deadline under `on_drain_timeout: wait`: still draining, look again later."""
    ABORTED = "aborted"
    """The drain outlived its deadline under `on_drain_timeout: abort`: the pool was left as it is."""
    TIMED_OUT = "timed_out"
    FAILED = "failed"

    @property
    def ok(self) -> bool:
        return self is Outcome.DONE


@dataclass(frozen=True)
class CycleEvent:
    """What observers hear: a phase began (`phase`), a call was made (`step`), or the cycle ended."""

    kind: str
    """`phase` (a phase began), `step` (a mutating call), `timeout` (a drain deadline) or `outcome`."""
    account: str
    pool_id: str
    phase: str
    step: str | None = None
    seconds: float = 0.0
    """For `phase`: how long the previous phase lasted; for `outcome`: the whole cycle."""
    previous: str | None = None
    detail: str = ""


Observer = Callable[[CycleEvent], None]


@dataclass(frozen=True)
class PhaseRecord:
    name: str
    seconds: float
    gets: int


@dataclass(frozen=True)
class CycleResult:
    account: str
    pool_id: str
    outcome: Outcome
    detail: str
    gets: int
    """Single-pool GETs this cycle made (its whole cost in reads)."""
    phases: tuple[PhaseRecord, ...] = ()
    observed: ObservedPool | None = None

    @property
    def ok(self) -> bool:
        return self.outcome.ok


def patched_markers(desired: Pool) -> dict[str, str | None]:
    """Our metadata after a PATCH that brings the pool to `desired`: stale optional markers removed."""
    return {markers.DELETION_PROTECTION: None, markers.SECRET_DIGESTS: None, **desired_markers(desired)}


_CLEARED: Final[dict[str, Any]] = {
    "applicationPackageReferences": [],
    "metadata": [],
    "targetNodeCommunicationMode": "default",
    "userAccounts": [],
    "mountConfiguration": [],
}
"""What a PATCH sends for a property the spec no longer sets (a PATCH leaves out what it omits)."""


def patch_properties(pool_id: str, desired: Pool, fields: set[str]) -> dict[str, Any]:
    """The REST body of `fields` (top-level snake_case names) as the spec sets them, or cleared.

    A start task cannot be removed by a PATCH: it is left out here, see `removes_start_task`.
    """
    body = desired.to_batch_json(pool_id)
    out: dict[str, Any] = {}
    for name in sorted(fields):
        info = Pool.model_fields.get(name)
        if info is None:
            continue
        key = rest_name(name, info)
        if key in body:
            out[key] = body[key]
        elif key in _CLEARED:
            out[key] = _CLEARED[key]
    return out


def removes_start_task(desired: Pool, fields: set[str]) -> bool:
    """The change drops the start task, which only updateproperties (replacing all) can do."""
    return "start_task" in fields and desired.start_task is None


class _Ended(Exception):
    """Ends the cycle from deep inside it with a finished result."""

    def __init__(self, result: CycleResult) -> None:
        super().__init__(result.detail)
        self.result = result


@dataclass
class _Phase:
    name: str
    started: float
    end: float
    gets: int = 0


@dataclass
class CycleRunner:
    """One refresh (or create, or prune) cycle of one pool; `run()` once."""

    clients: AzureClients
    account: str
    pool_id: str
    desired: Pool | None
    pacing: Pacing = field(default_factory=Pacing)
    limits: Limits = field(default_factory=Limits)
    observers: Sequence[Observer] = ()
    sleep: Sleep = asyncio.sleep
    clock: Clock = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The service's wall clock as well as we know it, to count a phase from Azure's transition times."""

    def __post_init__(self) -> None:
        self.policy = self.desired.refresh if self.desired is not None else RefreshPolicy()
        self.drain_option: str = self.policy.node_deallocation_option
        self.gets = 0
        self.phases: list[PhaseRecord] = []
        self.current: _Phase | None = None
        self.started = self.clock()
        self.log = log.bind(pool=self.pool_id, account=self.account)
        self.call_failures = 0
        self.get_failures = 0

    # --- events ----------------------------------------------------------------------------------

    def _emit(self, event: CycleEvent) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                self.log.exception("pool.refresh.observer_failed")

    def _enter(self, step: RefreshStep, observed: ObservedPool | None = None) -> None:
        """Begin the phase of `step`; with `observed`, counted from when Azure says it began."""
        name = phase(step)
        if self.current is not None and self.current.name == name:
            return
        now = self.clock()
        previous = self.current
        if previous is not None:
            self.phases.append(PhaseRecord(previous.name, now - previous.started, previous.gets))
        started = now - self._running_for(step, observed)
        self.current = _Phase(name, started, started + self._deadline(name))
        seconds = now - previous.started if previous is not None else 0.0
        self.log.info(
            "pool.refresh.phase",
            phase=name,
            step=step.value,
            previous=previous.name if previous else None,
            previous_seconds=round(seconds, 3),
        )
        self._emit(
            CycleEvent(
                "phase",
                self.account,
                self.pool_id,
                name,
                step=step.value,
                seconds=seconds,
                previous=previous.name if previous else None,
            )
        )

    def _running_for(self, step: RefreshStep, observed: ObservedPool | None) -> float:
        """Wall seconds the phase of a wait step has already run in Azure (0 when Azure cannot say)."""
        if observed is None or step not in WAIT_STEPS:
            return 0.0
        if step is RefreshStep.wait_deleted:
            began = observed.state_transition_time if observed.state == "deleting" else None
        elif observed.allocation_state != "steady":
            began = observed.allocation_state_transition_time
        else:
            began = None
        if began is None:
            return 0.0
        return self.pacing.seconds(max((self.now() - began).total_seconds(), 0.0))

    def _deadline(self, name: str) -> float:
        if name == "draining":
            duration = self.policy.drain_timeout
        elif name == "deleting":
            duration = self.policy.delete_timeout
        else:
            duration = self.policy.allocation_timeout
        return self.pacing.seconds(duration)

    # --- observation -----------------------------------------------------------------------------

    async def _get(self) -> ObservedPool | None:
        self.gets += 1
        if self.current is not None:
            self.current.gets += 1
        return await operations.get_pool(self.clients, self.account, self.pool_id)

    def _step(self, observed: ObservedPool | None) -> RefreshStep:
        strategy = self.desired.refresh.strategy if self.desired is not None else "recreate"
        requested = observed.refresh_requested_at if observed is not None else None
        return next_refresh_step(observed, self.desired, requested_at=requested, strategy=strategy)

    # --- the loop --------------------------------------------------------------------------------

    async def run(self, observed: ObservedPool | None = None, *, fresh: bool = False) -> CycleResult:
        """Carry the cycle out; `observed` (with `fresh=True`) saves the first GET."""
        try:
            if not fresh:
                observed = await self._observe()
            return await self._loop(observed)
        except _Ended as ended:
            return ended.result
        except OperationFailed as failed:
            return self._finish(Outcome.FAILED, str(failed), None)
        except DeadlineExceeded as exceeded:
            return self._finish(Outcome.TIMED_OUT, str(exceeded), None)

    async def _loop(self, observed: ObservedPool | None) -> CycleResult:
        while True:
            if observed is not None and not observed.managed:
                detail = "exists without reconciler.managed-by: never touched"
                return self._finish(Outcome.FAILED, detail, observed)
            step = self._step(observed)
            self._enter(step, observed)
            if step is RefreshStep.done:
                return self._done(observed)
            if step in WAIT_STEPS:
                outcome = await self._wait(step)
                if isinstance(outcome, CycleResult):
                    return outcome
                observed = outcome
                continue
            try:
                await self._act(step, observed)
            except OperationFailed as failed:
                self.call_failures += 1
                await self._call_failed(step.value, failed, self.call_failures)
                observed = await self._observe()
                continue
            follows = _FOLLOWS.get(step)
            if follows is None:
                await self.sleep(self.pacing.floor)
                observed = await self._observe()
                continue
            # The wait that usually follows starts now; its first poll is the post-call observation.
            self._enter(follows)
            outcome = await self._wait(follows)
            if isinstance(outcome, CycleResult):
                return outcome
            observed = outcome

    async def _observe(self) -> ObservedPool | None:
        """A GET; after throttling or a transient failure, observed again as the next poll would be."""
        while True:
            try:
                observed = await self._get()
            except OperationFailed as failed:
                if failed.kind not in (ErrorKind.THROTTLED, ErrorKind.TRANSIENT):
                    raise
                self.get_failures += 1
                await self._call_failed("get", failed, self.get_failures)
                continue
            self.get_failures = 0
            return observed

    async def _wait(self, step: RefreshStep) -> ObservedPool | CycleResult | None:
        assert self.current is not None
        remaining = self.current.end - self.clock()
        cap = self.pacing.cap(self._deadline(self.current.name))
        try:
            return await wait_until(
                self._get,
                lambda seen: self._step(seen) is not step,
                phase=self.current.name,
                deadline=max(remaining, 0.0),
                min_interval=self.pacing.floor,
                max_interval=cap,
                sleep=self.sleep,
                clock=self.clock,
                first_delay=self.pacing.floor,
            )
        except DeadlineExceeded as exceeded:
            last = exceeded.last if isinstance(exceeded.last, ObservedPool) else None
            if self.current.name == "draining":
                return await self._drain_timed_out(last)
            return self._finish(Outcome.TIMED_OUT, str(exceeded), last)

    async def _drain_timed_out(self, last: ObservedPool | None) -> ObservedPool | CycleResult | None:
        policy = self.policy.on_drain_timeout
        drained_for = self._drained_for()
        self.log.warning("pool.refresh.drain_timeout", on_drain_timeout=policy, waited=round(drained_for))
        self._emit(CycleEvent("timeout", self.account, self.pool_id, "draining", detail=policy))
        if policy == "wait":
            detail = f"drain not finished after {drained_for:.0f}s; still draining (on_drain_timeout: wait)"
            return self._finish(Outcome.WAITING, detail, last)
        await self._mutate("stop_resize", operations.stop_resize(self.clients, self.account, self.pool_id))
        if policy == "requeue":
            self.drain_option = "requeue"
            assert self.current is not None
            self.current.end = self.clock() + self._deadline("draining")
            return await self._settled()
        observed = await self._settled()
        if self.desired is not None and self.desired.enable_auto_scale and observed is not None:
            await self._enable_autoscale(self.desired)
            observed = await self._observe()
        detail = f"drain not finished after {drained_for:.0f}s; refresh aborted, pool left as it is"
        return self._finish(Outcome.ABORTED, detail, observed)

    def _drained_for(self) -> float:
        """Seconds of the drain so far, as the spec counts them (simulated under a time scale)."""
        started = self.current.started if self.current is not None else self.started
        return (self.clock() - started) * self.pacing.time_scale

    async def _settled(self) -> ObservedPool | None:
        """After a stop-resize: the pool once its allocation state is steady again."""
        result = await wait_until(
            self._get,
            lambda seen: seen is None or seen.allocation_state == "steady",
            phase="stopping",
            deadline=self._deadline("allocating"),
            min_interval=self.pacing.floor,
            max_interval=self.pacing.cap(self._deadline("allocating")),
            sleep=self.sleep,
            clock=self.clock,
            first_delay=self.pacing.floor,
        )
        return result

    # --- acting ----------------------------------------------------------------------------------

    async def _mutate(self, name: str, call: Any) -> Any:
        self.log.info("pool.refresh.call", call=name)
        self._emit(CycleEvent("step", self.account, self.pool_id, self._phase_name(), step=name))
        async with self.limits.mutation(self.account):
            return await call

    def _phase_name(self) -> str:
        return self.current.name if self.current is not None else ""

    async def _act(self, step: RefreshStep, observed: ObservedPool | None) -> None:
        desired = self.desired
        ops, clients, account, pool_id = operations, self.clients, self.account, self.pool_id
        if step is RefreshStep.disable_autoscale:
            await self._mutate(step.value, ops.disable_autoscale(clients, account, pool_id))
        elif step is RefreshStep.drain:
            # Outlive our own drain deadline, so that `on_drain_timeout` decides, not the service.
            timeout = max(self.policy.drain_timeout.total_seconds() * 1.25, 600.0)
            await self._mutate(
                step.value,
                ops.resize_pool(
                    clients,
                    account,
                    pool_id,
                    target_dedicated_nodes=0,
                    target_low_priority_nodes=0,
                    node_deallocation_option=self.drain_option,
                    resize_timeout=timedelta(seconds=timeout),
                ),
            )
        elif step is RefreshStep.delete:
            await self._mutate(step.value, ops.delete_pool(clients, account, pool_id))
        elif step is RefreshStep.create:
            assert desired is not None
            created = await self._mutate(
                step.value, ops.create_pool(clients, account, pool_id, desired, desired_markers(desired))
            )
            if created is operations.CreateOutcome.ADOPTED:
                self.log.info("pool.refresh.adopted")
        elif step is RefreshStep.resize:
            assert desired is not None
            await self._mutate(
                step.value,
                ops.resize_pool(
                    clients,
                    account,
                    pool_id,
                    target_dedicated_nodes=desired.target_dedicated_nodes or 0,
                    target_low_priority_nodes=desired.target_low_priority_nodes or 0,
                    node_deallocation_option=desired.refresh.node_deallocation_option,
                    resize_timeout=desired.resize_timeout,
                ),
            )
        elif step is RefreshStep.enable_autoscale:
            assert desired is not None
            await self._enable_autoscale(desired)
        elif step is RefreshStep.patch_empty:
            assert desired is not None
            assert observed is not None
            fields = set(patch_fields(desired, observed))
            ours = {**patched_markers(desired), markers.REFRESH_REQUESTED_AT: None}
            await self._mutate(
                step.value,
                ops.patch_pool(
                    clients,
                    account,
                    pool_id,
                    patch_properties(pool_id, desired, fields),
                    ours=ours,
                    observed=observed,
                ),
            )
        self.call_failures = 0

    async def _enable_autoscale(self, desired: Pool) -> None:
        formula = desired.auto_scale_formula or ""
        await self._mutate(
            "enable_autoscale",
            operations.enable_autoscale(
                self.clients, self.account, self.pool_id, formula, desired.auto_scale_evaluation_interval
            ),
        )

    async def _call_failed(self, call: str, failed: OperationFailed, failures: int) -> None:
        """States and throttling are waited out (the caller observes again); anything else ends the cycle.

        Raises `_Ended`: degraded on quota, failed on an error no waiting cures or after too many in a
        row, timed out when the phase's deadline has passed.
        """
        self.log.warning("pool.refresh.call_failed", call=call, error=str(failed), kind=failed.kind.value)
        if failed.kind is ErrorKind.QUOTA:
            raise _Ended(self._finish(Outcome.DEGRADED, str(failed), None))
        if failed.code == "PoolExists":
            raise _Ended(self._finish(Outcome.FAILED, f"{failed}; it was not built from this spec", None))
        waitable = failed.kind in (ErrorKind.STATE, ErrorKind.THROTTLED, ErrorKind.TRANSIENT)
        if not waitable or failures > _MAX_CALL_FAILURES:
            raise _Ended(self._finish(Outcome.FAILED, str(failed), None))
        end = self.current.end if self.current is not None else self.started + self._deadline("")
        if self.clock() >= end:
            raise _Ended(self._finish(Outcome.TIMED_OUT, f"{self._phase_name()}: {failed}", None))
        pause = self.pacing.floor * 2 ** (failures - 1)
        if failed.error.retry_after is not None:
            pause = max(pause, failed.error.retry_after)
        await self.sleep(min(pause, max(end - self.clock(), 0.0)))

    # --- ending ----------------------------------------------------------------------------------

    def _done(self, observed: ObservedPool | None) -> CycleResult:
        if observed is not None and observed.resize_errors:
            codes = ", ".join(sorted({e.code for e in observed.resize_errors}))
            return self._finish(Outcome.DEGRADED, f"built, but short of its target: {codes}", observed)
        detail = "deleted" if self.desired is None else "built from the spec and at its target"
        return self._finish(Outcome.DONE, detail, observed)

    def _finish(self, outcome: Outcome, detail: str, observed: ObservedPool | None) -> CycleResult:
        now = self.clock()
        if self.current is not None and self.current.name != "done":
            self.phases.append(PhaseRecord(self.current.name, now - self.current.started, self.current.gets))
        self.current = None
        seconds = now - self.started
        level = "info" if outcome in (Outcome.DONE, Outcome.WAITING) else "warning"
        getattr(self.log, level)(
            f"pool.refresh.{outcome.value}", detail=detail, seconds=round(seconds, 3), gets=self.gets
        )
        self._emit(
            CycleEvent("outcome", self.account, self.pool_id, outcome.value, seconds=seconds, detail=detail)
        )
        return CycleResult(
            self.account, self.pool_id, outcome, detail, self.gets, tuple(self.phases), observed
        )


async def run_cycle(
    clients: AzureClients,
    account: str,
    pool_id: str,
    desired: Pool | None,
    *,
    pacing: Pacing | None = None,
    limits: Limits | None = None,
    observers: Sequence[Observer] = (),
    observed: ObservedPool | None = None,
    sleep: Sleep = asyncio.sleep,
) -> CycleResult:
    """Refresh, create or (with `desired=None`) prune one pool; `observed` saves the first GET."""
    runner = CycleRunner(
        clients,
        account,
        pool_id,
        desired,
        pacing=pacing or Pacing(),
        limits=limits or Limits(),
        observers=observers,
        sleep=sleep,
    )
    return await runner.run(observed, fresh=observed is not None)
