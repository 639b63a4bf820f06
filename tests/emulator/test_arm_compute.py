"""Virtual machines, their OS disks and network resources, driven through azure-mgmt-compute/-network."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from reconciler.emulator import Emulator
from reconciler.emulator.arm.compute import CREATE_SECONDS

RG = "rg-vms"
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "azure-reference" / "compute"
FAST = 20_000.0  # simulated seconds per wall second: a 90 s VM create polls out in a few milliseconds


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=FAST) as emulator:
        yield emulator


def nid(emu: Emulator, kind: str, name: str) -> str:
    return f"/subscriptions/{emu.ctx.subscription_id}/resourceGroups/{RG}/providers/{kind}/{name}"


async def make_network(emu: Emulator, network: Any, *, pip: bool = True, name: str = "nic1") -> Any:
    await (
        await network.virtual_networks.begin_create_or_update(
            RG,
            "vnet1",
            {
                "location": "japaneast",
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.2.0/24"}}],
                },
            },
        )
    ).result()
    await (
        await network.network_security_groups.begin_create_or_update(
            RG,
            "nsg1",
            {
                "location": "japaneast",
                "properties": {
                    "securityRules": [
                        {
                            "name": "ssh",
                            "properties": {
                                "protocol": "Tcp",
                                "sourcePortRange": "*",
                                "destinationPortRange": "22",
                                "sourceAddressPrefix": "*",
                                "destinationAddressPrefix": "*",
                                "access": "Allow",
                                "priority": 100,
                                "direction": "Inbound",
                            },
                        }
                    ]
                },
            },
        )
    ).result()
    config: dict[str, Any] = {
        "subnet": {"id": nid(emu, "Microsoft.Network/virtualNetworks", "vnet1/subnets/default")}
    }
    if pip:
        await (
            await network.public_ip_addresses.begin_create_or_update(
                RG, f"{name}-pip", {"location": "japaneast", "sku": {"name": "Standard"}}
            )
        ).result()
        config["publicIPAddress"] = {"id": nid(emu, "Microsoft.Network/publicIPAddresses", f"{name}-pip")}
    return await (
        await network.network_interfaces.begin_create_or_update(
            RG,
            name,
            {
                "location": "japaneast",
                "properties": {
                    "ipConfigurations": [{"name": "ipconfig1", "properties": config}],
                    "networkSecurityGroup": {
                        "id": nid(emu, "Microsoft.Network/networkSecurityGroups", "nsg1")
                    },
                },
            },
        )
    ).result()


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / name).read_text()))


def vm_body(emu: Emulator, nic: str = "nic1", **properties: Any) -> dict[str, Any]:
    return {
        "location": "japaneast",
        "tags": {"reconciler.managed-by": "test"},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "canonical",
                    "offer": "ubuntu-24_04-lts",
                    "sku": "server",
                    "version": "latest",
                },
                "osDisk": {
                    "name": f"{nic}-os",
                    "createOption": "FromImage",
                    "managedDisk": {"storageAccountType": "Premium_LRS"},
                },
            },
            "osProfile": {
                "computerName": "vm1",
                "adminUsername": "azureuser",
                "customData": base64.b64encode(b"#cloud-config\n").decode(),
                "linuxConfiguration": {"disablePasswordAuthentication": True},
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": nid(emu, "Microsoft.Network/networkInterfaces", nic),
                        "properties": {"primary": True},
                    }
                ]
            },
            **properties,
        },
    }


def code(error: HttpResponseError) -> str | None:
    return error.error.code if error.error is not None else None


def power_state(view: Any) -> str:
    return str(next(s.code for s in view.statuses if s.code.startswith("PowerState/")))


async def test_vm_with_nic_public_ip_and_os_disk_created_and_torn_down(
    emu: Emulator, network: Any, compute: Any
) -> None:
    nic = await make_network(emu, network)
    address = nic.ip_configurations[0].private_ip_address
    assert ipaddress.ip_address(address) in ipaddress.ip_network("10.1.2.0/24")
    assert address == "10.1.2.4"

    vm = await (await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu))).result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.os_profile.custom_data is None
    assert vm.storage_profile.os_disk.name == "nic1-os"

    fetched = await compute.virtual_machines.get(RG, "vm1", expand="instanceView")
    assert power_state(fetched.instance_view) == "PowerState/running"
    view = (await compute.virtual_machines.instance_view(RG, "vm1")).as_dict()
    modelled = {"bootDiagnostics", "extensions", "patchStatus"}  # what a VM without extensions never shows
    assert set(example("VirtualMachine_Get_InstanceView.json")["responses"]["200"]["body"]) - modelled <= set(
        view
    )
    assert view["disks"][0]["name"] == "nic1-os"
    assert fetched.tags == {"reconciler.managed-by": "test"}
    attached = await network.network_interfaces.get(RG, "nic1")
    assert attached.virtual_machine.id.lower() == vm.id.lower()
    pip = await network.public_ip_addresses.get(RG, "nic1-pip")
    assert pip.ip_address
    assert pip.ip_configuration.id.lower().endswith("nic1/ipconfigurations/ipconfig1")
    disk = await compute.disks.get(RG, "nic1-os")
    assert disk.managed_by.lower() == vm.id.lower()
    assert disk.disk_state == "Attached"
    assert [d.name async for d in compute.disks.list_by_resource_group(RG)] == ["nic1-os"]
    assert [v.name async for v in compute.virtual_machines.list(RG)] == ["vm1"]
    assert [v.name async for v in compute.virtual_machines.list_all()] == ["vm1"]

    with pytest.raises(HttpResponseError) as in_use:
        await network.network_interfaces.begin_delete(RG, "nic1")
    assert code(in_use.value) == "NicInUse"
    assert in_use.value.status_code == 400
    with pytest.raises(HttpResponseError) as pip_in_use:
        await network.public_ip_addresses.begin_delete(RG, "nic1-pip")
    assert code(pip_in_use.value) == "PublicIPAddressInUse"
    with pytest.raises(HttpResponseError) as subnet_in_use:
        await network.subnets.begin_delete(RG, "vnet1", "default")
    assert code(subnet_in_use.value) == "InUseSubnetCannotBeDeleted"
    with pytest.raises(HttpResponseError) as disk_attached:
        await compute.disks.begin_delete(RG, "nic1-os")
    assert disk_attached.value.status_code == 409

    await (await compute.virtual_machines.begin_delete(RG, "vm1", force_deletion=True)).result()
    with pytest.raises(ResourceNotFoundError):
        await compute.virtual_machines.get(RG, "vm1")
    assert (await compute.disks.get(RG, "nic1-os")).disk_state == "Unattached"
    assert (await network.network_interfaces.get(RG, "nic1")).virtual_machine is None

    await (await network.network_interfaces.begin_delete(RG, "nic1")).result()
    await (await network.public_ip_addresses.begin_delete(RG, "nic1-pip")).result()
    await (await compute.disks.begin_delete(RG, "nic1-os")).result()
    await (await network.virtual_networks.begin_delete(RG, "vnet1")).result()
    assert [d async for d in compute.disks.list_by_resource_group(RG)] == []
    assert [n async for n in network.network_interfaces.list(RG)] == []
    with pytest.raises(ResourceNotFoundError):
        await network.public_ip_addresses.get(RG, "nic1-pip")


async def test_deallocate_and_start_move_the_power_state(emu: Emulator, network: Any, compute: Any) -> None:
    await make_network(emu, network)
    await (await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu))).result()
    await (await compute.virtual_machines.begin_deallocate(RG, "vm1")).result()
    assert power_state(await compute.virtual_machines.instance_view(RG, "vm1")) == "PowerState/deallocated"
    await (await compute.virtual_machines.begin_start(RG, "vm1")).result()
    assert power_state(await compute.virtual_machines.instance_view(RG, "vm1")) == "PowerState/running"


async def test_creation_follows_the_simulated_clock(emu: Emulator, network: Any, compute: Any) -> None:
    await make_network(emu, network)
    emu.clock.time_scale = 1.0
    await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu))
    assert (await compute.virtual_machines.get(RG, "vm1")).provisioning_state == "Creating"
    emu.clock.advance(CREATE_SECONDS / 2)
    assert (await compute.virtual_machines.get(RG, "vm1")).provisioning_state == "Creating"
    emu.clock.advance(CREATE_SECONDS / 2)
    vm = await compute.virtual_machines.get(RG, "vm1", expand="instanceView")
    assert vm.provisioning_state == "Succeeded"
    assert power_state(vm.instance_view) == "PowerState/running"


@pytest.mark.parametrize(("policy", "deleted"), [("Deallocate", False), ("Delete", True)])
async def test_spot_eviction_follows_the_eviction_policy(
    emu: Emulator, network: Any, compute: Any, policy: str, deleted: bool
) -> None:
    await make_network(emu, network, pip=False)
    body = vm_body(emu, priority="Spot", evictionPolicy=policy, billingProfile={"maxPrice": -1})
    vm = await (await compute.virtual_machines.begin_create_or_update(RG, "spot1", body)).result()
    assert (vm.priority, vm.eviction_policy, vm.billing_profile.max_price) == ("Spot", policy, -1)
    emu.arm.evict(RG, "spot1")
    if deleted:
        with pytest.raises(ResourceNotFoundError):
            await compute.virtual_machines.get(RG, "spot1")
        with pytest.raises(ResourceNotFoundError):
            await compute.disks.get(RG, "nic1-os")
        assert (await network.network_interfaces.get(RG, "nic1")).virtual_machine is None
    else:
        view = await compute.virtual_machines.instance_view(RG, "spot1")
        assert power_state(view) == "PowerState/deallocated"


async def test_simulate_eviction_through_the_sdk(emu: Emulator, network: Any, compute: Any) -> None:
    await make_network(emu, network, pip=False)
    body = vm_body(emu, priority="Spot", evictionPolicy="Deallocate")
    await (await compute.virtual_machines.begin_create_or_update(RG, "spot1", body)).result()
    await compute.virtual_machines.simulate_eviction(RG, "spot1")
    assert power_state(await compute.virtual_machines.instance_view(RG, "spot1")) == "PowerState/deallocated"


async def test_failed_provisioning_is_reported_by_the_poller_and_the_vm(
    emu: Emulator, network: Any, compute: Any
) -> None:
    await make_network(emu, network, pip=False)
    emu.arm.fail_next_vm_create("vm1", code="OSProvisioningTimedOut")
    with pytest.raises(HttpResponseError, match="OSProvisioningTimedOut"):
        await (await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu))).result()
    vm = await compute.virtual_machines.get(RG, "vm1", expand="instanceView")
    assert vm.provisioning_state == "Failed"
    assert vm.instance_view.statuses[0].code == "ProvisioningState/failed/OSProvisioningTimedOut"


async def test_invalid_requests_get_arm_errors(emu: Emulator, network: Any, compute: Any) -> None:
    with pytest.raises(HttpResponseError) as missing_nic:
        await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu, nic="absent"))
    assert (missing_nic.value.status_code, code(missing_nic.value)) == (400, "InvalidResourceReference")
    await make_network(emu, network, pip=False)
    body = vm_body(emu)
    body["properties"]["osProfile"]["customData"] = "A" * 87_384
    with pytest.raises(HttpResponseError) as too_big:
        await compute.virtual_machines.begin_create_or_update(RG, "vm1", body)
    assert (too_big.value.status_code, code(too_big.value)) == (400, "InvalidParameter")
    with pytest.raises(HttpResponseError) as bad_subnet:
        await network.network_interfaces.begin_create_or_update(
            RG,
            "nic2",
            {
                "location": "japaneast",
                "properties": {
                    "ipConfigurations": [
                        {
                            "name": "c",
                            "properties": {
                                "subnet": {
                                    "id": nid(emu, "Microsoft.Network/virtualNetworks", "vnet1/subnets/none")
                                }
                            },
                        }
                    ]
                },
            },
        )
    assert code(bad_subnet.value) == "InvalidResourceReference"
    with pytest.raises(ResourceNotFoundError) as no_group:
        await compute.virtual_machines.get("rg-nobody-used", "vm1")
    assert code(no_group.value) == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as no_vm:
        await compute.virtual_machines.get(RG, "vm-absent")
    assert code(no_vm.value) == "ResourceNotFound"


async def test_sync_clients_work_from_a_thread(emu: Emulator, network: Any) -> None:
    await make_network(emu, network, pip=False)
    compute = emu.compute_client(aio=False, polling_interval=0)

    def create_and_list() -> list[str]:
        compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu)).result()
        return [vm.name for vm in compute.virtual_machines.list(RG)]

    assert await asyncio.to_thread(create_and_list) == ["vm1"]


async def test_identity_is_echoed_and_delete_options_remove_disk_and_nic(
    emu: Emulator, network: Any, compute: Any
) -> None:
    await make_network(emu, network, pip=False)
    identity_id = f"/subscriptions/{emu.ctx.subscription_id}/resourceGroups/ids/providers/"
    identity_id += "Microsoft.ManagedIdentity/userAssignedIdentities/dask"
    body = vm_body(emu)
    body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}
    body["properties"]["storageProfile"]["osDisk"]["deleteOption"] = "Delete"
    body["properties"]["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"] = "Delete"
    vm = await (await compute.virtual_machines.begin_create_or_update(RG, "vm1", body)).result()
    assigned = vm.identity.user_assigned_identities[identity_id]
    assert assigned.principal_id
    assert assigned.client_id
    await (await compute.virtual_machines.begin_delete(RG, "vm1")).result()
    with pytest.raises(ResourceNotFoundError):
        await compute.disks.get(RG, "nic1-os")
    with pytest.raises(ResourceNotFoundError):
        await network.network_interfaces.get(RG, "nic1")
    subnet = await network.subnets.get(RG, "vnet1", "default")
    assert not subnet.ip_configurations


async def test_put_on_an_existing_vm_updates_it_in_place(emu: Emulator, network: Any, compute: Any) -> None:
    await make_network(emu, network, pip=False)
    created = await (await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu))).result()
    body = vm_body(emu)
    body["tags"] = {"reconciler.managed-by": "test", "generation": "2"}
    body["properties"]["hardwareProfile"]["vmSize"] = "Standard_D8s_v5"
    initial: list[Any] = []
    poller = await compute.virtual_machines.begin_create_or_update(
        RG, "vm1", body, raw_response_hook=lambda response: initial.append(response.http_response)
    )
    assert initial[0].status_code == 200
    updated = await poller.result()
    assert updated.hardware_profile.vm_size == "Standard_D8s_v5"
    assert updated.tags["generation"] == "2"
    assert updated.vm_id == created.vm_id
    assert updated.storage_profile.os_disk.managed_disk.id == created.storage_profile.os_disk.managed_disk.id
    assert [d.name async for d in compute.disks.list_by_resource_group(RG)] == ["nic1-os"]


async def test_vm_nic_and_disk_lists_page_with_next_link(emu: Emulator, network: Any, compute: Any) -> None:
    names = [f"n{i}" for i in range(5)]
    for name in names:
        await make_network(emu, network, pip=False, name=name)
        await (
            await compute.virtual_machines.begin_create_or_update(RG, f"vm-{name}", vm_body(emu, nic=name))
        ).result()
    emu.arm.set_page_size(2)
    emu.counters.reset()

    assert [n.name async for n in network.network_interfaces.list(RG)] == names
    assert [n.name async for n in network.network_interfaces.list_all()] == names
    assert [v.name async for v in compute.virtual_machines.list(RG)] == [f"vm-{n}" for n in names]
    assert [v.name async for v in compute.virtual_machines.list_all()] == [f"vm-{n}" for n in names]
    assert [d.name async for d in compute.disks.list_by_resource_group(RG)] == [f"{n}-os" for n in names]
    for operation in (
        "arm.NetworkInterfaces_List",
        "arm.NetworkInterfaces_ListAll",
        "arm.VirtualMachines_List",
        "arm.VirtualMachines_ListAll",
        "arm.Disks_ListByResourceGroup",
    ):
        assert emu.counters.total(operation=operation, status=200) == 3, operation

    # The link carries the first request's query, so every page answers what was asked.
    listed = [v async for v in compute.virtual_machines.list(RG, expand="instanceView")]
    assert [v.instance_view is not None for v in listed] == [True] * 5


async def test_os_disk_tags_are_set_by_disk_update(emu: Emulator, network: Any, compute: Any) -> None:
    await make_network(emu, network, pip=False)
    await (await compute.virtual_machines.begin_create_or_update(RG, "vm1", vm_body(emu))).result()
    assert (await compute.disks.get(RG, "nic1-os")).tags in (None, {})

    tags = {"reconciler.managed-by": "reconciler", "reconciler.cluster": "c1"}
    updated = await (await compute.disks.begin_update(RG, "nic1-os", {"tags": tags})).result()

    assert updated.tags == tags
    disk = await compute.disks.get(RG, "nic1-os")
    assert disk.tags == tags
    assert disk.managed_by is not None
    assert [d.tags async for d in compute.disks.list()] == [tags]
