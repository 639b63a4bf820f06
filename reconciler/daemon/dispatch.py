"""Each pool's actions as a background task of their own, so a pass never waits for a drain.

A pass observes, plans and hands each pool's actions to `Dispatcher.dispatch`; the actions run as one
task per pool, at most one per pool at a time, keyed by account and case-folded pool id (Batch ids are
case-insensitive). A pool whose task is still running is left out of later passes' dispatches: its
cycle re-reads Azure at every step, so a second task would only race it. The limits still hold,
because every task acts through the same `Engine` and its shared `Limits`.

What a task remembers is only what a restart may lose: the actions it started with (an in-flight cycle
keeps the spec it began with across a reload) and the phase it last reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from reconciler.daemon.engine import DaemonEngine
from reconciler.engine.executor import ActionResult
from reconciler.plan.actions import Plan, PoolAction

log = structlog.get_logger("reconciler.daemon.dispatch")

Key = tuple[str, str]


def pool_key(account: str, pool_id: str) -> Key:
    return (account, pool_id.casefold())


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


@dataclass(frozen=True)
class Dispatch:
    """What one pass handed out, and what it planned but left to a task already running."""

    started: tuple[PoolAction, ...] = ()
    busy: tuple[PoolAction, ...] = ()


Finished = Callable[[InFlight, tuple[ActionResult, ...]], None]


class Dispatcher:
    """The pools' running tasks; `on_finished` hears each group's results when its task ends."""

    def __init__(self, on_finished: Finished) -> None:
        self._on_finished = on_finished
        self._flights: dict[Key, InFlight] = {}

    def busy(self, account: str, pool_id: str) -> bool:
        return pool_key(account, pool_id) in self._flights

    def flights(self) -> tuple[InFlight, ...]:
        return tuple(self._flights.values())

    def tasks(self) -> set[asyncio.Task[None]]:
        return {f.task for f in self._flights.values() if f.task is not None}

    def note_phase(self, account: str, pool_id: str, phase: str) -> None:
        flight = self._flights.get(pool_key(account, pool_id))
        if flight is not None:
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
            self._flights[key] = flight
            flight.task = asyncio.get_running_loop().create_task(
                self._run(flight), name=f"pool:{key[0]}/{group[0].pool_id}"
            )
            started.extend(group)
        return Dispatch(tuple(started), tuple(busy))

    async def _run(self, flight: InFlight) -> None:
        results: tuple[ActionResult, ...] = ()
        try:
            results = await flight.engine.carry_out(Plan(flight.actions))
        except Exception as exc:
            # The engine reports Azure failures as results; anything else is a bug that must not be lost.
            log.error(
                "pool.dispatch.crashed",
                pool=flight.pool_id,
                account=flight.account,
                error=type(exc).__name__,
            )
        finally:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        self._on_finished(flight, results)
