"""The daemon in-process: status line, probes, shutdown, and `run` refusing a config it cannot load."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from reconciler.azure import operations
from reconciler.commands.run import run_command
from reconciler.daemon.app import Daemon, summary
from reconciler.daemon.sdnotify import Notifier
from reconciler.emulator import Emulator
from reconciler.engine.wait import Pacing
from reconciler.plan.actions import PoolState, PoolStatus
from reconciler.spec.config import Config

ACCOUNT = "demo"
SCALE = 600.0
IMAGE = {
    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}


def status(pool_id: str, state: PoolState, phase: str | None = None) -> PoolStatus:
    return PoolStatus(ACCOUNT, pool_id, state, phase, "")


def test_the_status_line_counts_pools_and_names_refreshing_phases() -> None:
    statuses = [status(f"p{i}", PoolState.in_sync) for i in range(14)]
    statuses.append(status("p_id2", PoolState.refreshing, "creating"))
    assert summary(statuses, {"p_id2": "draining"}) == "14 pools in sync, 1 refreshing (p_id2: draining)"
    assert summary(statuses) == "14 pools in sync, 1 refreshing (p_id2: creating)"
    assert (
        summary([status("a", PoolState.drifted), status("b", PoolState.unmanaged)])
        == "1 pool drifted, 1 unmanaged"
    )
    assert summary([]) == "no pools"


def test_run_refuses_a_config_it_cannot_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("pools:\n  p1:\n    account: nowhere\n    vm_size: [\n")
    assert run_command([path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:")
    assert "Traceback" not in err


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator({ACCOUNT: None}, time_scale=SCALE) as emulator:
        yield emulator


def make_config(batch_url: str, key: str, interval: str = "600s") -> Config:
    return Config.model_validate(
        {
            "accounts": {ACCOUNT: {"batch_url": batch_url, "auth": {"method": "shared_key", "key": key}}},
            "pools": {
                "p1": {
                    "account": ACCOUNT,
                    "vm_size": "standard_d2s_v3",
                    "virtual_machine_configuration": copy.deepcopy(IMAGE),
                    "target_dedicated_nodes": 1,
                }
            },
            "schedule": {"reconcile_interval": interval, "jitter": "0s"},
        }
    )


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def wait_for(condition: Any, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def test_probes_follow_the_passes_and_stop_returns_zero(emu: Emulator) -> None:
    config = make_config(emu.batch_url(ACCOUNT), emu.account_key(ACCOUNT))
    daemon = Daemon(
        [], config, env={}, metrics_port=0, pacing=Pacing(min_interval=10.0, time_scale=SCALE), stop_grace=2.0
    )
    running = asyncio.create_task(daemon.run(install_signals=False))
    try:
        await wait_for(lambda: daemon.listener is not None, "the listener")
        assert daemon.listener is not None
        port = daemon.listener.port
        await wait_for(lambda: daemon.ready()[0], "ready after the first pass")
        assert (await get(port, "/readyz"))[0] == 200
        assert (await get(port, "/healthz"))[0] == 200
        # Ready follows the first pass, which dispatches the create without waiting for it.
        await wait_for(lambda: "p1" in emu.batch.account(ACCOUNT).pools, "p1 created")

        daemon.scheduler.last_progress -= 10 * daemon.health_window()
        code, text = await get(port, "/healthz")
        assert code == 503
        assert "no scheduler progress" in text
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 10) == 0
    with pytest.raises(aiohttp.ClientError):
        await get(port, "/healthz")


async def test_not_ready_while_no_account_answers() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = make_config(f"http://127.0.0.1:{closed_port}/{ACCOUNT}", "a2V5")
    daemon = Daemon([], config, env={}, metrics_port=0, client_options={"retry_total": 0}, stop_grace=2.0)
    running = asyncio.create_task(daemon.run(install_signals=False))
    try:
        await wait_for(
            lambda: daemon.metrics.registry.get_sample_value(
                "reconciler_reconcile_runs_total", {"result": "failure"}
            ),
            "a failed pass",
        )
        assert daemon.ready() == (False, "the last pass reached no Azure account")
        assert daemon.alive()[0]
        assert daemon.listener is not None
        assert (await get(daemon.listener.port, "/readyz"))[0] == 503
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 10) == 0


async def test_the_watchdog_is_fed_only_while_the_scheduler_progresses(emu: Emulator) -> None:
    path = Path("/tmp") / f"rcd-{uuid.uuid4().hex[:8]}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)

    messages: list[str] = []

    async def read() -> None:
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                await asyncio.sleep(0.002)

    def drain() -> list[str]:
        taken = list(messages)
        messages.clear()
        return taken

    reader = asyncio.create_task(read())
    config = make_config(emu.batch_url(ACCOUNT), emu.account_key(ACCOUNT), interval="3000h")
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000"})
    daemon = Daemon([], config, env={}, metrics_port=0, notifier=notifier, pacing=Pacing(time_scale=SCALE))
    running = asyncio.create_task(daemon.run(install_signals=False))
    try:
        await wait_for(lambda: daemon.ready()[0], "ready")
        await wait_for(lambda: "p1" in emu.batch.account(ACCOUNT).pools, "p1 created")
        await asyncio.sleep(0.1)
        fed = drain()
        assert "WATCHDOG=1" in fed
        assert any(m.startswith("READY=1\nSTATUS=") for m in fed)

        observed = await operations.get_pool(daemon.clients, ACCOUNT, "p1")
        assert observed is not None
        at = operations.request_time(observed, emu.clock.now())
        await operations.request_refresh(daemon.clients, ACCOUNT, "p1", at, observed=observed)
        daemon.scheduler.wake()
        live = re.compile(r"STATUS=1 pool refreshing \(p1: (draining|deleting|creating|allocating)\)")
        seen: list[str] = []

        def after_live(text: str) -> bool:
            seen.extend(drain())
            first = next((i for i, m in enumerate(seen) if live.fullmatch(m)), None)
            return first is not None and text in seen[first:]

        await wait_for(lambda: after_live("STATUS=1 pool in sync"), "a live STATUS, then in sync again")

        executed = {"job": "reconcile", "event": "executed"}
        sample = daemon.metrics.registry.get_sample_value
        await wait_for(
            lambda: (sample("reconciler_scheduler_job_events_total", executed) or 0) >= 2, "both passes"
        )
        assert not daemon.busy
        daemon.scheduler.last_progress -= 10 * daemon.health_window()
        await asyncio.sleep(0.05)
        drain()
        await asyncio.sleep(0.1)
        assert "WATCHDOG=1" not in drain()
    finally:
        daemon.stop()
        assert await asyncio.wait_for(running, 10) == 0
        await asyncio.sleep(0.05)
        assert any(m.startswith("STOPPING=1") for m in drain())
        reader.cancel()
        sock.close()
        path.unlink(missing_ok=True)


CLUSTER_SCALE = 20_000.0


async def make_network(emu: Emulator) -> None:
    """The vnet, subnet and NSG a cluster spec names, made through the network SDK."""
    network = emu.network_client(polling_interval=0)
    subnet = {"name": "workers", "properties": {"addressPrefix": "10.5.1.0/24"}}
    vnet = {
        "location": "japaneast",
        "properties": {"addressSpace": {"addressPrefixes": ["10.5.0.0/16"]}, "subnets": [subnet]},
    }
    await (await network.virtual_networks.begin_create_or_update("rg-dask", "dask-vnet", vnet)).result()
    nsg = {"location": "japaneast", "properties": {"securityRules": []}}
    await (await network.network_security_groups.begin_create_or_update("rg-dask", "dask-nsg", nsg)).result()


def arm_settings(emu: Emulator) -> dict[str, Any]:
    identity = emu.connection["identity"]
    return {
        "arm_endpoint": emu.connection["arm"]["url"],
        "authority": identity["authority"],
        "ca_bundle": emu.connection["ca_bundle"],
        "subscription_id": emu.connection["arm"]["subscription_id"],
        "auth": {
            "method": "client_secret",
            "tenant_id": identity["tenant_id"],
            "client_id": identity["client_id"],
            "client_secret": identity["client_secret"],
        },
    }


DASK1 = {
    "location": "japaneast",
    "resource_group": "rg-dask",
    "vnet": "dask-vnet",
    "security_group": "dask-nsg",
    "n_workers": 2,
}


async def test_clusters_are_reconciled_by_tasks_of_their_own_and_measured() -> None:
    async with Emulator(time_scale=CLUSTER_SCALE) as emu:
        await make_network(emu)
        config = Config.model_validate({"azure": arm_settings(emu), "clusters": {"dask1": DASK1}})
        daemon = Daemon([], config, env={}, metrics_port=0, pacing=Pacing(time_scale=CLUSTER_SCALE))
        running = asyncio.create_task(daemon.run(install_signals=False))
        sample = daemon.metrics.registry.get_sample_value
        try:
            await wait_for(
                lambda: sample("reconciler_cluster_workers", {"cluster": "dask1", "state": "running"}) == 2,
                "two running workers measured",
            )
            assert sample("reconciler_cluster_target_workers", {"cluster": "dask1"}) == 2
            assert sample("reconciler_cluster_scheduler_up", {"cluster": "dask1"}) == 1
            assert (sample("reconciler_reconcile_runs_total", {"result": "success"}) or 0) >= 1
            assert daemon.ready()[0]
        finally:
            daemon.stop()
            assert await asyncio.wait_for(running, 10) == 0


async def test_a_cluster_whose_workers_are_being_created_holds_back_no_pool_and_not_ready(
    tmp_path: Path,
) -> None:
    async with Emulator({ACCOUNT: None}, time_scale=CLUSTER_SCALE) as emu:
        await make_network(emu)
        hold = emu.faults.add(
            operation="arm.VirtualMachines_CreateOrUpdate",
            kind="latency",
            latency_ms=600_000,
            match={"vmName": "dask1-dask-worker-*"},
        )
        pool = make_config(emu.batch_url(ACCOUNT), emu.account_key(ACCOUNT)).model_dump(mode="json")["pools"]
        raw: dict[str, Any] = {
            "accounts": {
                ACCOUNT: {
                    "batch_url": emu.batch_url(ACCOUNT),
                    "auth": {"method": "shared_key", "key": emu.account_key(ACCOUNT)},
                }
            },
            "schedule": {"reconcile_interval": "600s", "jitter": "0s"},
            "azure": arm_settings(emu),
            "clusters": {"dask1": DASK1},
        }
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(raw))
        daemon = Daemon(
            [path],
            Config.model_validate(raw),
            env={},
            metrics_port=0,
            pacing=Pacing(time_scale=CLUSTER_SCALE),
            watch_interval=3600.0,
            stop_grace=1.0,
        )
        running = asyncio.create_task(daemon.run(install_signals=False))
        sample = daemon.metrics.registry.get_sample_value
        try:
            await wait_for(lambda: daemon.ready()[0], "ready")
            await wait_for(lambda: hold.fired == 2, "both worker creates held")

            path.write_text(json.dumps({**raw, "pools": pool}))
            daemon.request_reload()
            await wait_for(lambda: "p1" in emu.batch.account(ACCOUNT).pools, "the missing pool created")
            target = {"pool": "p1", "account": ACCOUNT, "priority": "dedicated"}
            await wait_for(lambda: sample("reconciler_pool_target_nodes", target) == 1, "p1 measured")
            assert daemon.listener is not None
            code, text = await get(daemon.listener.port, "/metrics")
            assert code == 200
            assert 'reconciler_pool_target_nodes{account="demo",pool="p1",priority="dedicated"} 1.0' in text
            assert [f.name for f in daemon.dispatcher.clusters()] == ["dask1"]
            assert hold.fired == 2
        finally:
            daemon.stop()
            assert await asyncio.wait_for(running, 10) == 0
        assert daemon.dispatcher.clusters() == ()


async def test_a_cluster_task_stops_at_its_next_wait_on_shutdown() -> None:
    async with Emulator(time_scale=1.0) as emu:
        await make_network(emu)
        config = Config.model_validate({"azure": arm_settings(emu), "clusters": {"dask1": DASK1}})
        puts = emu.counters.total("arm.*_CreateOrUpdate")
        daemon = Daemon([], config, env={}, metrics_port=0, pacing=Pacing(time_scale=1.0), stop_grace=30.0)
        running = asyncio.create_task(daemon.run(install_signals=False))
        try:
            await wait_for(lambda: daemon.ready()[0], "ready")
            await wait_for(lambda: emu.counters.total("arm.*_CreateOrUpdate") > puts, "the scheduler's NIC")
            assert [f.name for f in daemon.dispatcher.clusters()] == ["dask1"]
        finally:
            daemon.stop()
            # Well inside the 30 s grace: the task ends at its wait for the VM, it is not cancelled.
            assert await asyncio.wait_for(running, 5) == 0
        assert daemon.dispatcher.clusters() == ()
        sample = daemon.metrics.registry.get_sample_value
        assert (
            sample("reconciler_cluster_replacements_total", {"cluster": "dask1", "reason": "missing"}) is None
        )
