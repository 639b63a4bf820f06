"""One pass of reconciliation: observe → plan → act. `apply` runs it once; the daemon runs it every tick.

The pass is the only place the three meet, so both callers get the same behaviour: one snapshot per pass
(two listings per account), a pure plan that reads the engine's requeue backoff, and the engine's limits.
`approve` lets `apply` show the plan and ask before anything changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from reconciler.azure.clients import AzureClients
from reconciler.azure.observe import observe
from reconciler.azure.snapshot import Snapshot
from reconciler.engine.backoff import RequeueBackoff
from reconciler.engine.executor import ActionResult, Engine
from reconciler.plan.actions import Plan
from reconciler.plan.diff import make_plan
from reconciler.spec.config import Config

log = structlog.get_logger("reconciler.engine.reconcile")

Approve = Callable[[Plan], Awaitable[bool]]


@dataclass(frozen=True)
class PassResult:
    snapshot: Snapshot
    plan: Plan
    results: tuple[ActionResult, ...] = ()
    approved: bool = True
    """False when `approve` declined: nothing was done."""

    @property
    def failures(self) -> tuple[ActionResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        """Every action ended well and every account could be observed."""
        return not self.failures and not self.snapshot.errors


async def observe_and_plan(
    config: Config, clients: AzureClients, *, backoff: RequeueBackoff, now: datetime
) -> PassResult:
    """The first half of every pass, shared by `apply` and the daemon so both judge Azure the same way.

    The daemon acts on the plan itself (one task per pool), so acting stays out of here.
    """
    snapshot = await observe(clients)
    plan = make_plan(config, snapshot, now=now, backoff_until=backoff.until(now))
    for account, error in snapshot.errors.items():
        log.warning("reconcile.account_unreachable", account=account, error=error.describe())
    return PassResult(snapshot, plan)


async def reconcile_once(
    config: Config,
    clients: AzureClients,
    *,
    now: datetime | None = None,
    engine: Engine | None = None,
    approve: Approve | None = None,
) -> PassResult:
    """Observe every account once, plan, and (if approved) carry the plan out."""
    engine = engine or Engine(clients)
    observed = await observe_and_plan(config, clients, backoff=engine.backoff, now=now or datetime.now(UTC))
    snapshot, plan = observed.snapshot, observed.plan
    if not plan.actions:
        log.info("reconcile.in_sync", held=len(plan.held))
        return PassResult(snapshot, plan)
    if approve is not None and not await approve(plan):
        return PassResult(snapshot, plan, approved=False)
    log.info("reconcile.acting", actions=len(plan.actions), held=len(plan.held))
    results = await engine.execute(plan)
    return PassResult(snapshot, plan, results)
