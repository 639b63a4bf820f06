"""The engine as the daemon runs it: no new actions once stopping, refreshes begun only inside a window.

Both rules sit in front of `Engine.execute`, so `reconcile_once` stays the same pass `apply` runs; the
daemon's own pass applies `gate` itself and hands each pool's actions to `carry_out`, detached. The
window rule holds back only the *beginning* of a refresh (the steps before anything is torn down): a
cycle already draining, deleting or recreating is carried on, since stopping it halfway would leave a
pool smaller than its spec until the next window.

Stopping is cooperative: the daemon's `sleep` raises `ShutdownRequested` at the next wait, which is a
step boundary; the level-triggered cycle resumes from what Azure shows after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import structlog

from reconciler.engine.cycle import Outcome
from reconciler.engine.executor import ActionResult, Engine
from reconciler.plan.actions import ActionKind, HeldAction, Plan, PoolAction
from reconciler.plan.refresh import RefreshStep, effective_strategy, next_refresh_step

log = structlog.get_logger("reconciler.daemon.engine")

NOT_BEGUN: Final = frozenset({RefreshStep.disable_autoscale, RefreshStep.wait_steady, RefreshStep.drain})
"""Steps of a cycle that has not torn anything down yet; only these wait for a refresh window."""
INTERRUPTED: Final = "interrupted: stopping"
NOT_STARTED: Final = "not started: stopping"


class ShutdownRequested(BaseException):
    """Raised at the next step boundary once the daemon is stopping.

    A BaseException, like `CancelledError`, because it is not a failure: the engine's safety net for
    unexpected errors (`except Exception`) must let it through rather than report a crashed action.
    """


def refresh_begun(action: PoolAction) -> bool:
    """The cycle is already past its start (draining, deleting, absent, recreating)."""
    observed = action.observed
    if observed is None:
        return True
    step = next_refresh_step(
        observed,
        action.desired,
        requested_at=observed.refresh_requested_at,
        strategy=effective_strategy(observed, action.desired),
    )
    return step not in NOT_BEGUN


def _always_open(_now: datetime) -> bool:
    return True


def _never_stopping() -> bool:
    return False


@dataclass
class DaemonEngine(Engine):
    in_window: Callable[[datetime], bool] = _always_open
    stopping: Callable[[], bool] = _never_stopping
    _deferred: set[tuple[str, str]] = field(default_factory=set, init=False)

    def gate(self, plan: Plan, now: datetime) -> tuple[Plan, tuple[HeldAction, ...]]:
        """The plan to carry out now, and the refreshes that wait for a window."""
        if self.in_window(now):
            self._deferred.clear()
            return plan, ()
        kept: list[PoolAction] = []
        held: list[HeldAction] = []
        for action in plan.actions:
            if action.kind is ActionKind.refresh and not refresh_begun(action):
                held.append(HeldAction(action, "outside every refresh window"))
            else:
                kept.append(action)
        waiting = {(h.action.account, h.action.pool_id) for h in held}
        for account, pool_id in sorted(waiting - self._deferred):
            log.info("pool.refresh.deferred", pool=pool_id, account=account, reason="outside refresh windows")
        self._deferred = waiting
        return Plan(tuple(kept), plan.statuses, (*plan.held, *held)), tuple(held)

    async def execute(self, plan: Plan) -> tuple[ActionResult, ...]:
        """Raises `ShutdownRequested` once every pool's actions have stopped at a step boundary."""
        if self.stopping():
            if plan.actions:
                log.info("reconcile.not_acting", reason="stopping", actions=len(plan.actions))
            return ()
        gated, _held = self.gate(plan, self.now())
        if not gated.actions:
            return ()
        results = await super().execute(gated)
        if self.stopping():
            raise ShutdownRequested
        return results

    async def carry_out(self, plan: Plan) -> tuple[ActionResult, ...]:
        """One pool's actions, already gated by the pass that dispatched them, detached from it.

        Never raises `ShutdownRequested`: an interrupted action comes back as a result that
        `finished` leaves out, so a task stopped by shutdown is not counted as a failure.
        """
        if self.stopping():
            return ()
        return await Engine.execute(self, plan)

    async def run_action(self, action: PoolAction) -> ActionResult:
        """An interrupted action ends its pool's sequence without leaving a task running elsewhere.

        Raising from here would end the pass while the other pools' cycles still run, unawaited; their
        results are waited for instead, each ending at its own next step boundary.
        """
        if self.stopping():
            return ActionResult(action, Outcome.FAILED, NOT_STARTED, 0.0)
        started = time.monotonic()
        try:
            return await super().run_action(action)
        except ShutdownRequested:
            log.info(
                "pool.action.interrupted",
                pool=action.pool_id,
                account=action.account,
                action=action.kind.value,
            )
            return ActionResult(action, Outcome.FAILED, INTERRUPTED, time.monotonic() - started)


def finished(results: tuple[ActionResult, ...]) -> tuple[ActionResult, ...]:
    """The results that ended on their own: none from the first one shutdown stopped onwards."""
    kept: list[ActionResult] = []
    for result in results:
        if result.detail in (INTERRUPTED, NOT_STARTED):
            break
        kept.append(result)
    return tuple(kept)
