"""A reconciler killed in the middle of creating a cluster leaves nothing the next run cannot finish.

Both the emulator and the reconciler run as processes of their own, and the reconciler gets SIGKILL: no
cleanup code of ours runs. The worker VM PUT that is in flight when it dies is held by a latency fault,
so the kill lands at a known point: scheduler and two workers PUT, the third worker's NIC made, its VM not.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cluster_env import FAST, RG, cluster_spec, make_network, raw_config

from reconciler.azure.clients import AzureClients
from reconciler.engine.clusters import ClusterEngine
from reconciler.engine.wait import Pacing
from reconciler.spec.config import Config

HERE = Path(__file__).parent
W = "analytics-dask-worker-{:04d}"
STARTUP_POLLS = 600
POLL = 0.05


@pytest.fixture
async def emulator_process(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    connection_file = tmp_path / "emulator.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler",
        "emulator",
        "--port",
        "0",
        "--arm-port",
        "0",
        "--time-scale",
        str(FAST),
        "--connection-file",
        str(connection_file),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(STARTUP_POLLS):
            if connection_file.exists() or process.returncode is not None:
                break
            await asyncio.sleep(POLL)
        assert connection_file.exists(), "the emulator did not start"
        yield json.loads(connection_file.read_text())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def vm_puts(session: aiohttp.ClientSession, admin: str) -> int:
    async with session.get(
        f"{admin}/counters", params={"operation": "arm.VirtualMachines_CreateOrUpdate"}
    ) as response:
        return int((await response.json())["total"])


async def test_killed_mid_create_then_run_again_completes_without_duplicates(
    emulator_process: dict[str, Any], tmp_path: Path
) -> None:
    connection = emulator_process
    admin = connection["admin"]
    raw = raw_config(connection, {"analytics": cluster_spec(n_workers=3)})
    config = Config.model_validate(raw)
    async with AzureClients(config, caller="cluster-crash-check") as clients:
        subscription = connection["arm"]["subscription_id"]
        compute, network = clients.compute(subscription), clients.network(subscription)
        await make_network(network)
        async with aiohttp.ClientSession() as session:
            hold = {
                "operation": "arm.VirtualMachines_CreateOrUpdate",
                "kind": "latency",
                "latency_ms": 600_000,
                "match": {"vmName": W.format(2)},
            }
            async with session.post(f"{admin}/faults", json=hold) as response:
                assert response.status == 201
            config_file = tmp_path / "config.json"
            config_file.write_text(json.dumps(raw))
            reconciler = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "reconcile_once.py"),
                str(config_file),
                str(FAST),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
            )
            for _ in range(STARTUP_POLLS):
                if await vm_puts(session, admin) >= 3 or reconciler.returncode is not None:
                    break
                await asyncio.sleep(POLL)
            assert reconciler.returncode is None, (await reconciler.communicate())[1].decode()
            reconciler.send_signal(signal.SIGKILL)
            await reconciler.wait()
            async with session.delete(f"{admin}/faults") as response:
                assert response.status < 300

        left = sorted([str(vm.name) async for vm in compute.virtual_machines.list(RG)])
        assert left == ["analytics-dask-scheduler", W.format(0), W.format(1)]
        nics = {str(nic.name): nic async for nic in network.network_interfaces.list(RG)}
        assert nics[f"{W.format(2)}-nic"].virtual_machine is None

        engine = ClusterEngine(clients, pacing=Pacing(time_scale=FAST))
        again = await engine.reconcile(config)

        assert again.ok, [o for r in again.results for o in r.outcomes if not o.ok]
        (result,) = again.results
        assert result.orphans_deleted == {"nic": 1}
        assert result.created == (W.format(3),)
        vms = sorted([str(vm.name) async for vm in compute.virtual_machines.list(RG)])
        assert vms == ["analytics-dask-scheduler", W.format(0), W.format(1), W.format(3)]
        nics = {str(nic.name): nic async for nic in network.network_interfaces.list(RG)}
        assert sorted(nics) == sorted(f"{name}-nic" for name in vms)
        assert all(nic.virtual_machine is not None for nic in nics.values())
        disks = [disk async for disk in compute.disks.list_by_resource_group(RG)]
        assert sorted(str(d.name) for d in disks) == sorted(f"{name}-osdisk" for name in vms)
        assert (await engine.reconcile(config)).plans[0].in_sync
