"""Each pool's actions and each cluster's plan as a background task of their own, so a pass never waits
for a drain or a VM create.

A pass observes, plans and hands each pool's actions to `Dispatcher.dispatch`; the actions run as one
task per pool, at most one per pool at a time, keyed by account and case-folded pool id (Batch ids are
case-insensitive). A pool whose task is still running is left out of later passes' dispatches: its
cycle re-reads Azure at every step, so a second task would only race it. The limits still hold,
because every task acts through the same `Engine` and its shared `Limits`.

A cluster's plan runs the same way, keyed by the cluster's name, at most one task per cluster: its VM
creates wait up to their deadline (20 minutes), and a pass waiting for them would hold every pool back.

What a task remembers is only what a restart may lose: the actions or plan it started with (an in-flight
cycle keeps the spec it began with across a reload) and the phase it last reported.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from reconciler.daemon.engine import DaemonEngine, ShutdownRequested
from reconciler.engine.clusters import ClusterEngine, ClusterResult, StepOutcome
from reconciler.engine.executor import ActionResult
from reconciler.plan.actions import Plan, PoolAction
from reconciler.plan.clusters import ClusterPlan

log = structlog.get_logger("reconciler.daemon.dispatch")

T = TypeVar("T")
Key = tuple[str, str, str]


def pool_key(account: str, pool_id: str) -> Key:
    return ("pool", account, pool_id.casefold())


def cluster_key(name: str) -> Key:
    return ("cluster", "", name)


@dataclass
class InFlight:
    """One pool's running action group."""

    key: Key
    actions: tuple[PoolAction, ...]
    engine: DaemonEngine
    started: float = field(default_factory=time.monotonic)
    phase: str | None = None
    """The cycle's phase from its latest event, until the task ends."""
    task: asyncio.Task[None] | None = None

    @property
    def account(self) -> str:
        return self.actions[0].account

    @property
    def pool_id(self) -> str:
        return self.actions[0].pool_id


@dataclass
class ClusterFlight:
    """One cluster's running plan."""

    key: Key
    plan: ClusterPlan
    engine: ClusterEngine
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.plan.name


@dataclass(frozen=True)
class Dispatch:
    """What one pass handed out, and what it planned but left to a task already running."""

    started: tuple[PoolAction, ...] = ()
    busy: tuple[PoolAction, ...] = ()


Finished = Callable[[InFlight, tuple[ActionResult, ...]], None]
ClusterFinished = Callable[[ClusterFlight, ClusterResult | None], None]
"""Hears a cluster's result, or None when shutdown stopped its plan at a step boundary."""


def _ignore(_flight: ClusterFlight, _result: ClusterResult | None) -> None:
    return None


class Dispatcher:
    """The running tasks, pools' and clusters', each heard by its `on_finished` when it ends."""

    def __init__(self, on_finished: Finished, on_cluster_finished: ClusterFinished = _ignore) -> None:
        self._on_finished = on_finished
        self._on_cluster_finished = on_cluster_finished
        self._flights: dict[Key, InFlight | ClusterFlight] = {}

    def busy(self, account: str, pool_id: str) -> bool:
        return pool_key(account, pool_id) in self._flights

    def cluster_busy(self, name: str) -> bool:
        return cluster_key(name) in self._flights

    def flights(self) -> tuple[InFlight, ...]:
        """The pools' running tasks."""
        return tuple(f for f in self._flights.values() if isinstance(f, InFlight))

    def clusters(self) -> tuple[ClusterFlight, ...]:
        """The clusters' running tasks."""
        return tuple(f for f in self._flights.values() if isinstance(f, ClusterFlight))

    def tasks(self) -> set[asyncio.Task[None]]:
        return {f.task for f in self._flights.values() if f.task is not None}

    def note_phase(self, account: str, pool_id: str, phase: str) -> None:
        flight = self._flights.get(pool_key(account, pool_id))
        if isinstance(flight, InFlight):
            flight.phase = None if phase == "done" else phase

    def dispatch(self, engine: DaemonEngine, actions: Iterable[PoolAction]) -> Dispatch:
        """Start a task for every pool with actions and none running; returns at once."""
        groups: dict[Key, list[PoolAction]] = {}
        for action in actions:
            groups.setdefault(pool_key(action.account, action.pool_id), []).append(action)
        started: list[PoolAction] = []
        busy: list[PoolAction] = []
        for key, group in groups.items():
            if key in self._flights:
                busy.extend(group)
                continue
            flight = InFlight(key, tuple(group), engine)
            self._start(
                flight,
                f"pool:{key[1]}/{group[0].pool_id}",
                flight.engine.carry_out(Plan(flight.actions)),
                (),
                functools.partial(self._on_finished, flight),
                event="pool.dispatch.crashed",
                pool=flight.pool_id,
                account=flight.account,
            )
            started.extend(group)
        return Dispatch(tuple(started), tuple(busy))

    def dispatch_clusters(
        self, engine: ClusterEngine, plans: Iterable[ClusterPlan]
    ) -> tuple[ClusterPlan, ...]:
        """Start a task for every cluster plan whose cluster has none running; returns the started."""
        started: list[ClusterPlan] = []
        for plan in plans:
            key = cluster_key(plan.name)
            if key in self._flights:
                continue
            flight = ClusterFlight(key, plan, engine)
            self._start(
                flight,
                f"cluster:{plan.name}",
                _apply(engine, plan),
                ClusterResult(plan, (StepOutcome(f"apply cluster {plan.name}", False, "crashed"),)),
                functools.partial(self._on_cluster_finished, flight),
                event="cluster.dispatch.crashed",
                cluster=plan.name,
            )
            started.append(plan)
        return tuple(started)

    def _start(
        self,
        flight: InFlight | ClusterFlight,
        name: str,
        work: Awaitable[T],
        fallback: T,
        finished: Callable[[T], None],
        *,
        event: str,
        **context: str,
    ) -> None:
        self._flights[flight.key] = flight
        flight.task = asyncio.get_running_loop().create_task(
            self._run(flight, work, fallback, finished, event, context), name=name
        )

    async def _run(
        self,
        flight: InFlight | ClusterFlight,
        work: Awaitable[T],
        fallback: T,
        finished: Callable[[T], None],
        event: str,
        context: dict[str, str],
    ) -> None:
        result = fallback
        try:
            result = await work
        except Exception as exc:
            # The engines report Azure failures as results; anything else is a bug that must not be lost.
            log.error(event, error=type(exc).__name__, **context)
        finally:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        finished(result)


async def _apply(engine: ClusterEngine, plan: ClusterPlan) -> ClusterResult | None:
    """A cluster's plan, stopped at its next wait once the daemon is stopping.

    What it left half done (a NIC without its VM, a worker still creating) is what the next process
    observes and plans for, so an interrupted plan has no result to record.
    """
    try:
        return await engine.apply(plan)
    except ShutdownRequested:
        log.info("cluster.interrupted", cluster=plan.name, reason="stopping")
        return None
