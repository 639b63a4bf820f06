"""Detached actions in-process, against the emulator: one task per pool, results recorded when it ends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
import structlog
from daemon_env import ACCOUNT, make_config

from reconciler.azure.observe import observe
from reconciler.daemon.app import Daemon
from reconciler.daemon.dispatch import Dispatcher, InFlight
from reconciler.daemon.engine import DaemonEngine
from reconciler.emulator import Emulator
from reconciler.engine.cycle import CycleEvent
from reconciler.engine.executor import ActionResult
from reconciler.engine.wait import Pacing
from reconciler.plan.actions import ActionKind
from reconciler.plan.diff import make_plan

SCALE = 600.0
QUIET = {"reconcile_interval": "3000h", "jitter": "0s"}
PACING = Pacing(min_interval=10.0, time_scale=SCALE)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator({ACCOUNT: None}, time_scale=SCALE) as emulator:
        yield emulator


async def test_one_task_per_pool_whatever_the_case_of_its_id(emu: Emulator) -> None:
    config = make_config(emu, "p1", "p2", **QUIET)
    daemon = Daemon([], config, env={}, pacing=PACING, client_options={"retry_total": 0})
    ended: list[tuple[str, tuple[ActionResult, ...]]] = []

    def on_finished(flight: InFlight, results: tuple[ActionResult, ...]) -> None:
        ended.append((flight.pool_id, results))

    dispatcher = Dispatcher(on_finished)
    engine: DaemonEngine = daemon.engine
    try:
        snapshot = await observe(daemon.clients)
        plan = make_plan(config, snapshot, now=snapshot.observed_at)
        assert [a.kind for a in plan.actions] == [ActionKind.create, ActionKind.create]

        first = dispatcher.dispatch(engine, plan.actions)
        assert [a.pool_id for a in first.started] == ["p1", "p2"]
        shouted = dataclasses.replace(plan.actions[0], pool_id="P1")
        again = dispatcher.dispatch(engine, [shouted, plan.actions[1]])
        assert again.started == ()
        assert [a.pool_id for a in again.busy] == ["P1", "p2"]
        assert dispatcher.busy(ACCOUNT, "P1")
        assert {f.pool_id for f in dispatcher.flights()} == {"p1", "p2"}

        await asyncio.wait_for(asyncio.gather(*dispatcher.tasks()), 20)
        assert dispatcher.flights() == ()
        assert sorted((pool, [r.outcome.value for r in results]) for pool, results in ended) == [
            ("p1", ["done"]),
            ("p2", ["done"]),
        ]
        assert set(emu.batch.account(ACCOUNT).pools) == {"p1", "p2"}
    finally:
        await daemon.clients.close()


async def test_the_pass_returns_while_its_cycle_runs_and_shutdown_counts_no_failure(emu: Emulator) -> None:
    config = make_config(emu, "p1", **QUIET)
    daemon = Daemon([], config, env={}, pacing=PACING, client_options={"retry_total": 0})
    allocating = asyncio.Event()

    def stop_while_allocating(event: CycleEvent) -> None:
        if event.kind == "phase" and event.phase == "allocating":
            allocating.set()

    daemon.engine.observers = [*daemon.engine.observers, stop_while_allocating]
    sample = daemon.metrics.registry.get_sample_value
    try:
        with structlog.testing.capture_logs() as logged:
            await asyncio.wait_for(daemon._tick(), 5)
            assert daemon.ready()[0], "the first pass ended: ready, though p1 is still being built"
            (flight,) = daemon.dispatcher.flights()
            assert flight.pool_id == "p1"
            assert sample("reconciler_actions_in_flight", {"action": "create"}) == 1

            await asyncio.wait_for(allocating.wait(), 10)
            assert flight.phase == "allocating"
            await asyncio.wait_for(daemon._tick(), 5)
            assert sample("reconciler_pool_refresh_phase", {"pool": "p1", "phase": "allocating"}) == 1

            daemon.stop()
            await asyncio.wait_for(asyncio.gather(*daemon.dispatcher.tasks()), 5)
        assert daemon.dispatcher.flights() == ()
        assert sample("reconciler_actions_in_flight", {"action": "create"}) == 0
        assert sample("reconciler_actions_total", {"action": "create", "result": "failed"}) is None
        assert daemon.engine.backoff.get(ACCOUNT, "p1") is None, "an interrupted cycle is no failure"
        events = [e["event"] for e in logged]
        assert "pool.action.interrupted" in events
        assert "reconcile.interrupted" in events
        passes = [e for e in logged if e["event"] == "reconcile.pass"]
        assert [p["in_flight"] for p in passes] == [1, 1]
        assert all(p["seconds"] < 1.0 for p in passes)
        assert passes[1]["busy"] == 0, "nothing was planned for p1 while it was being built"
    finally:
        await daemon.clients.close()


async def test_finished_actions_are_counted_and_bring_the_next_pass_forward(emu: Emulator) -> None:
    config = make_config(emu, "p1", **QUIET)
    daemon = Daemon([], config, env={}, metrics_port=0, pacing=PACING, stop_grace=2.0)
    running = asyncio.create_task(daemon.run(install_signals=False))
    sample = daemon.metrics.registry.get_sample_value
    executed = {"job": "reconcile", "event": "executed"}

    def runs() -> float:
        return sample("reconciler_scheduler_job_events_total", executed) or 0

    def created() -> float:
        return sample("reconciler_actions_total", {"action": "create", "result": "done"}) or 0

    try:
        for _ in range(2000):
            if created() == 1 and runs() >= 2:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the create counted and a second pass run, without waiting 3000 h")
        assert daemon.status_line() == "1 pool in sync"
        assert sample("reconciler_pools", {"status": "in_sync"}) == 1
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 10) == 0
