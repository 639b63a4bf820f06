"""dask-cloudprovider's leftovers are reported, and removed only when adopted or collected with --yes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_env import LOCATION, RG, cluster_spec, config_of, raw_config

from reconciler.commands.gc import gc_command
from reconciler.emulator import Emulator
from reconciler.engine.clusters import ClusterEngine

DASK = {"creator": "dask-cloudprovider"}
ELSEWHERE = "rg-not-a-cluster"


async def make_leftovers(emu: Emulator, network: Any, compute: Any, subnet_id: str, tag: str) -> None:
    """What an `AzureVMCluster` whose process died leaves: scheduler VM, its NIC and public IP."""
    sub = emu.ctx.subscription_id
    pip = await (
        await network.public_ip_addresses.begin_create_or_update(
            RG, f"dask-{tag}-scheduler-ip", {"location": LOCATION, "tags": DASK, "sku": {"name": "Standard"}}
        )
    ).result()
    nic = await (
        await network.network_interfaces.begin_create_or_update(
            RG,
            f"dask-{tag}-scheduler-nic",
            {
                "location": LOCATION,
                "tags": DASK,
                "properties": {
                    "ipConfigurations": [
                        {
                            "name": "ipconfig1",
                            "properties": {"subnet": {"id": subnet_id}, "publicIPAddress": {"id": pip.id}},
                        }
                    ]
                },
            },
        )
    ).result()
    await (
        await compute.virtual_machines.begin_create_or_update(
            RG,
            f"dask-{tag}-scheduler",
            {
                "location": LOCATION,
                "tags": DASK,
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_DS1_v2"},
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "Canonical",
                            "offer": "UbuntuServer",
                            "sku": "18.04-LTS",
                            "version": "latest",
                        },
                        "osDisk": {"createOption": "FromImage", "deleteOption": "Delete"},
                    },
                    "osProfile": {
                        "computerName": "dask",
                        "adminUsername": "dask",
                        "adminPassword": "x-Y1!x-Y1!",
                    },
                    "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
                },
            },
        )
    ).result()
    assert sub in nic.id


async def names(compute: Any, network: Any, group: str = RG) -> set[str]:
    found = {vm.name async for vm in compute.virtual_machines.list(group)}
    found |= {nic.name async for nic in network.network_interfaces.list(group)}
    found |= {pip.name async for pip in network.public_ip_addresses.list(group)}
    return found


LEFTOVERS = {"dask-a1-scheduler", "dask-a1-scheduler-nic", "dask-a1-scheduler-ip"}


async def test_leftovers_are_reported_and_kept_then_collected_with_yes(
    emu: Emulator,
    network: Any,
    compute: Any,
    subnet_id: str,
    engine_for: Callable[..., ClusterEngine],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await make_leftovers(emu, network, compute, subnet_id, "a1")
    await (
        await network.public_ip_addresses.begin_create_or_update(
            ELSEWHERE, "dask-zz-ip", {"location": LOCATION, "tags": DASK}
        )
    ).result()
    raw = raw_config(emu, {"analytics": cluster_spec(n_workers=1)})
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1)})
    engine = engine_for(config)

    await engine.reconcile(config)
    done = await engine.reconcile(config)

    (plan,) = done.plans
    assert plan.in_sync
    assert sorted(plan.dask_cloudprovider_kept) == [
        "nic dask-a1-scheduler-nic (resource group rg-dask)",
        "public_ip dask-a1-scheduler-ip (resource group rg-dask)",
        "vm dask-a1-scheduler (resource group rg-dask)",
    ]
    assert await names(compute, network) >= LEFTOVERS

    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert await asyncio.to_thread(gc_command, [config_file], True, False) == 2
    listed = capsys.readouterr().out
    assert "dask-cloudprovider vm dask-a1-scheduler (resource group rg-dask)" in listed
    assert "3 leftover(s) kept" in listed
    assert "dask-zz-ip" not in listed
    assert await names(compute, network) >= LEFTOVERS
    assert await asyncio.to_thread(gc_command, [config_file], False, True) == 1

    assert await asyncio.to_thread(gc_command, [config_file], True, True) == 0

    assert "deleted: vm dask-a1-scheduler" in capsys.readouterr().out
    left = await names(compute, network)
    assert not LEFTOVERS & left
    assert {"analytics-dask-scheduler", "analytics-dask-worker-0000"} <= left
    assert await names(compute, network, ELSEWHERE) == {"dask-zz-ip"}
    assert await asyncio.to_thread(gc_command, [config_file], True, False) == 0


async def test_adopting_leftovers_deletes_them_in_the_pass(
    emu: Emulator, network: Any, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    await make_leftovers(emu, network, compute, subnet_id, "a1")
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1, adopt_dask_cloudprovider_orphans=True)})

    done = await engine_for(config).reconcile(config)

    (result,) = done.results
    assert done.ok
    assert result.dask_cloudprovider_deleted == {"vm": 1, "nic": 1, "public_ip": 1}
    assert result.orphans_deleted == {}
    left = await names(compute, network)
    assert not LEFTOVERS & left
    assert done.plans[0].dask_cloudprovider_kept == ()
