"""The engine as the daemon runs it, against the in-process emulator: windows, stopping, step boundaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import structlog
from daemon_env import ACCOUNT, make_config

from reconciler.azure import operations
from reconciler.azure.clients import AzureClients
from reconciler.daemon.app import Daemon
from reconciler.daemon.engine import DaemonEngine, ShutdownRequested
from reconciler.emulator import Emulator
from reconciler.engine.cycle import CycleEvent
from reconciler.engine.reconcile import reconcile_once
from reconciler.engine.wait import Pacing
from reconciler.plan.actions import ActionKind
from reconciler.spec.config import Config

SCALE = 600.0
PACING = Pacing(min_interval=10.0, time_scale=SCALE)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator({ACCOUNT: None}, time_scale=SCALE) as emulator:
        yield emulator


def clients_for(config: Config) -> AzureClients:
    return AzureClients(config, caller="daemon-engine-test", client_options={"retry_total": 0})


async def test_a_refresh_begins_only_inside_a_window_but_a_begun_one_carries_on(emu: Emulator) -> None:
    config = make_config(emu, "p1")
    window = {"open": False}
    async with clients_for(config) as clients:
        engine = DaemonEngine(clients, pacing=PACING, in_window=lambda _now: window["open"])
        created = await reconcile_once(config, clients, engine=engine)
        assert [r.action.kind for r in created.results] == [ActionKind.create]
        first = emu.batch.account(ACCOUNT).pools["p1"].created

        requested = emu.clock.now()
        await operations.request_refresh(clients, ACCOUNT, "p1", requested)
        with structlog.testing.capture_logs() as logged:
            held = await reconcile_once(config, clients, engine=engine)
            again = await reconcile_once(config, clients, engine=engine)
        assert [a.kind for a in held.plan.actions] == [ActionKind.refresh]
        assert held.results == ()
        assert again.results == ()
        assert emu.batch.account(ACCOUNT).pools["p1"].created == first
        deferred = [e for e in logged if e["event"] == "pool.refresh.deferred"]
        assert len(deferred) == 1
        assert deferred[0]["pool"] == "p1"

        # Someone (a previous process) already drained the pool: the cycle has begun and goes on.
        await clients.batch(ACCOUNT).begin_resize_pool("p1", {"targetDedicatedNodes": 0})
        emu.clock.advance(timedelta(minutes=30).total_seconds())
        resumed = await reconcile_once(config, clients, engine=engine)
        assert [(r.action.kind, r.outcome.value) for r in resumed.results] == [(ActionKind.refresh, "done")]
        pool = emu.batch.account(ACCOUNT).pools["p1"]
        assert pool.created > first


async def test_an_open_window_lets_the_refresh_begin(emu: Emulator) -> None:
    config = make_config(emu, "p1")
    async with clients_for(config) as clients:
        engine = DaemonEngine(clients, pacing=PACING, in_window=lambda _now: True)
        await reconcile_once(config, clients, engine=engine)
        await operations.request_refresh(clients, ACCOUNT, "p1", emu.clock.now())
        result = await reconcile_once(config, clients, engine=engine)
    assert [(r.action.kind, r.outcome.value) for r in result.results] == [(ActionKind.refresh, "done")]


async def test_no_action_starts_once_stopping(emu: Emulator) -> None:
    config = make_config(emu, "p1")
    async with clients_for(config) as clients:
        engine = DaemonEngine(clients, pacing=PACING, stopping=lambda: True)
        result = await reconcile_once(config, clients, engine=engine)
    assert [a.kind for a in result.plan.actions] == [ActionKind.create]
    assert result.results == ()
    assert "p1" not in emu.batch.account(ACCOUNT).pools


async def test_stopping_ends_a_running_cycle_at_its_next_wait(emu: Emulator) -> None:
    config = make_config(emu, "p1")
    daemon = Daemon([], config, env={}, pacing=PACING, client_options={"retry_total": 0})
    phases: list[str] = []

    def stop_while_allocating(event: CycleEvent) -> None:
        if event.kind == "phase":
            phases.append(event.phase)
            if event.phase == "allocating":
                daemon.stop()

    daemon.engine.observers = [*daemon.engine.observers, stop_while_allocating]
    try:
        with pytest.raises(ShutdownRequested):
            await reconcile_once(config, daemon.clients, engine=daemon.engine)
        assert phases == ["creating", "allocating"]
        assert "p1" in emu.batch.account(ACCOUNT).pools
        assert daemon.ready() == (False, "stopping")
        with pytest.raises(ShutdownRequested):
            await daemon.engine.sleep(0.0)
    finally:
        await daemon.clients.close()
