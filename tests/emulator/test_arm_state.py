"""ARM state across a restart through `--state-file`, and the admin endpoints for ARM faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import HttpResponseError

from reconciler.emulator import Emulator
from reconciler.emulator.identity import ARM_AUDIENCE

FAST = 20_000.0
RG = "rg-state"


def nic_body(subnet_id: str) -> dict[str, Any]:
    return {
        "location": "japaneast",
        "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}]},
    }


def vm_body(nic_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "location": "japaneast",
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "canonical",
                    "offer": "ubuntu-24_04-lts",
                    "sku": "server",
                    "version": "latest",
                }
            },
            "osProfile": {"computerName": "vm", "adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
            **properties,
        },
    }


async def make_nic(emu: Emulator, name: str = "nic") -> str:
    network = emu.network_client(polling_interval=0)
    vnet = {
        "location": "japaneast",
        "properties": {
            "addressSpace": {"addressPrefixes": ["10.8.0.0/16"]},
            "subnets": [{"name": "a", "properties": {"addressPrefix": "10.8.1.0/24"}}],
        },
    }
    created = await (await network.virtual_networks.begin_create_or_update(RG, "vnet", vnet)).result()
    nic = await (
        await network.network_interfaces.begin_create_or_update(RG, name, nic_body(created.subnets[0].id))
    ).result()
    return str(nic.id)


async def test_vms_pools_and_tokens_survive_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with Emulator(time_scale=FAST, state_file=state_file) as first:
        nic_id = await make_nic(first)
        compute = first.compute_client(polling_interval=0)
        await (await compute.virtual_machines.begin_create_or_update(RG, "vm", vm_body(nic_id))).result()
        mgmt = first.batch_mgmt_client()
        rg = first.ctx.accounts["demo"].resource_group
        identity_id = f"/subscriptions/{first.ctx.subscription_id}/resourceGroups/ids/providers/"
        identity_id += "Microsoft.ManagedIdentity/userAssignedIdentities/pool-id"
        pool = {
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}},
            "properties": {
                "vmSize": "Standard_D2s_v3",
                "deploymentConfiguration": {
                    "virtualMachineConfiguration": {
                        "imageReference": {
                            "publisher": "canonical",
                            "offer": "ubuntu-24_04-lts",
                            "sku": "server",
                        },
                        "nodeAgentSkuId": "batch.node.ubuntu 24.04",
                    }
                },
                "scaleSettings": {
                    "fixedScale": {"targetDedicatedNodes": 0, "nodeDeallocationOption": "Requeue"}
                },
            },
        }
        await mgmt.pool.create(rg, "demo", "kept", pool)
        token = (await first.token_credential().get_token("https://management.azure.com/.default")).token
        json.dumps(first.arm.dump())

    async with Emulator(time_scale=FAST, state_file=state_file) as second:
        second.identity.verify_bearer(f"Bearer {token}", ARM_AUDIENCE)
        compute = second.compute_client(polling_interval=0)
        vm = await compute.virtual_machines.get(RG, "vm")
        assert vm.provisioning_state == "Succeeded"
        network = second.network_client()
        assert (await network.network_interfaces.get(RG, "nic")).virtual_machine.id.lower() == vm.id.lower()
        kept = await second.batch_mgmt_client().pool.get(rg, "demo", "kept")
        assert list(kept.identity.user_assigned_identities) == [identity_id]
        assert kept.scale_settings.fixed_scale.node_deallocation_option == "Requeue"
        await (await compute.virtual_machines.begin_delete(RG, "vm")).result()
        assert (await network.network_interfaces.get(RG, "nic")).virtual_machine is None


@pytest.fixture
async def emu() -> Any:
    async with Emulator(time_scale=FAST) as emulator:
        yield emulator


async def test_admin_endpoints_fail_a_create_and_evict_a_spot_vm(emu: Emulator) -> None:
    nic_id = await make_nic(emu)
    compute = emu.compute_client(polling_interval=0)
    async with aiohttp.ClientSession() as http:
        armed = await http.post(f"{emu.admin_url}/arm/faults/vmCreate", json={"code": "AllocationFailed"})
        assert armed.status == 202
        with pytest.raises(HttpResponseError, match="AllocationFailed"):
            await (await compute.virtual_machines.begin_create_or_update(RG, "vm", vm_body(nic_id))).result()
        await (await compute.virtual_machines.begin_delete(RG, "vm")).result()

        spot = vm_body(
            nic_id, priority="Spot", evictionPolicy="Deallocate", billingProfile={"maxPrice": 0.05}
        )
        await (await compute.virtual_machines.begin_create_or_update(RG, "spot", spot)).result()
        evicted = await http.post(f"{emu.admin_url}/arm/virtualMachines/{RG}/spot/evict")
        assert evicted.status == 200
        assert (await evicted.json())["deleted"] is False
        not_spot = await http.post(f"{emu.admin_url}/arm/virtualMachines/{RG}/absent/evict")
        assert not_spot.status == 404
    view = await compute.virtual_machines.instance_view(RG, "spot")
    assert [s.code for s in view.statuses if s.code.startswith("PowerState/")] == ["PowerState/deallocated"]
    vm = await compute.virtual_machines.get(RG, "spot")
    assert vm.billing_profile.max_price == 0.05
