"""Network resources and the Microsoft examples, through azure-mgmt-network and azure-mgmt-compute."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from emulator_env import missing_fields

from reconciler.emulator import Emulator

FAST = 20_000.0
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "azure-reference" / "compute"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=FAST) as emulator:
        yield emulator


def example(emu: Emulator, name: str) -> dict[str, Any]:
    """An example with its placeholder subscription replaced by the emulator's."""
    text = (EXAMPLES / name).read_text()
    for placeholder in ("{subscription-id}", "/subid/"):
        replacement = (
            f"/{emu.ctx.subscription_id}/" if placeholder.startswith("/") else emu.ctx.subscription_id
        )
        text = text.replace(placeholder, replacement)
    text = text.replace("{existing-nic-name}", "existing-nic")
    return dict(json.loads(text))


def code(error: HttpResponseError) -> str | None:
    return error.error.code if error.error is not None else None


async def vnet(network: Any, rg: str, name: str, prefix: str, subnet: str, subnet_prefix: str) -> Any:
    body = {
        "location": "eastus",
        "properties": {
            "addressSpace": {"addressPrefixes": [prefix]},
            "subnets": [{"name": subnet, "properties": {"addressPrefix": subnet_prefix}}],
        },
    }
    return await (await network.virtual_networks.begin_create_or_update(rg, name, body)).result()


async def test_network_interface_and_public_ip_examples(emu: Emulator, network: Any) -> None:
    await vnet(network, "rg1", "rg1-vnet", "172.20.0.0/16", "default", "172.20.2.0/24")
    pip_example = example(emu, "PublicIpAddressCreateDefaults.json")
    pip = await (
        await network.public_ip_addresses.begin_create_or_update(
            "rg1", "test-ip", pip_example["parameters"]["parameters"]
        )
    ).result()
    expected_pip = pip_example["responses"]["201"]["body"]
    assert (pip.sku.name, pip.public_ip_allocation_method) == ("Basic", "Dynamic")
    assert pip.ip_address is None
    pip_raw = pip.as_dict()
    assert missing_fields(expected_pip, pip_raw) == ["/properties/ipConfiguration"]

    nic_example = example(emu, "NetworkInterfaceCreate.json")
    nic = await (
        await network.network_interfaces.begin_create_or_update(
            "rg1", "test-nic", nic_example["parameters"]["parameters"]
        )
    ).result()
    expected_nic = nic_example["responses"]["201"]["body"]
    assert missing_fields(expected_nic, nic.as_dict()) == []
    first, second = nic.ip_configurations
    assert first.private_ip_address == "172.20.2.4"
    assert first.primary is True
    assert second.private_ip_address == "172.20.2.16/28"
    assert nic.enable_accelerated_networking is True
    used = await network.public_ip_addresses.get("rg1", "test-ip")
    assert used.ip_configuration.id.lower() == first.id.lower()
    subnet = await network.subnets.get("rg1", "rg1-vnet", "default")
    assert sorted(c.id.rsplit("/", 1)[-1] for c in subnet.ip_configurations) == ["ipconfig1", "ipconfig2"]


async def test_vm_example_is_accepted_and_answered_with_the_same_fields(
    emu: Emulator, network: Any, compute: Any
) -> None:
    spec = example(emu, "VirtualMachine_Create_WithSshAuthentication.json")
    rg = spec["parameters"]["resourceGroupName"]
    await vnet(network, rg, "vnet", "10.0.0.0/16", "default", "10.0.0.0/24")
    subnet_id = f"/subscriptions/{emu.ctx.subscription_id}/resourceGroups/{rg}/providers/"
    subnet_id += "Microsoft.Network/virtualNetworks/vnet/subnets/default"
    nic_body = {
        "location": "westus",
        "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}]},
    }
    await (await network.network_interfaces.begin_create_or_update(rg, "existing-nic", nic_body)).result()
    initial: list[Any] = []
    poller = await compute.virtual_machines.begin_create_or_update(
        rg,
        spec["parameters"]["vmName"],
        spec["parameters"]["parameters"],
        raw_response_hook=lambda response: initial.append(response.http_response),
    )
    first = initial[0]
    assert first.status_code == 201
    assert "Azure-AsyncOperation" in first.headers
    answered = json.loads(first.text())
    expected = dict(spec["responses"]["201"]["body"])
    assert missing_fields(expected, answered) == []
    assert answered["properties"]["provisioningState"] == "Creating"
    assert answered["properties"]["storageProfile"]["osDisk"]["osType"] == "Linux"
    vm = await poller.result()
    assert vm.provisioning_state == "Succeeded"
    disk = await compute.disks.get(rg, "myVMosdisk")
    assert disk.managed_by.lower() == vm.id.lower()


async def test_subnets_are_resources_of_their_own(emu: Emulator, network: Any) -> None:
    await vnet(network, "rg-net", "vnet", "10.5.0.0/16", "a", "10.5.1.0/24")
    added = await (
        await network.subnets.begin_create_or_update(
            "rg-net", "vnet", "b", {"properties": {"addressPrefix": "10.5.2.0/24"}}
        )
    ).result()
    assert added.address_prefix == "10.5.2.0/24"
    listed = await network.virtual_networks.get("rg-net", "vnet")
    assert sorted(s.name for s in listed.subnets) == ["a", "b"]
    assert sorted([s.name async for s in network.subnets.list("rg-net", "vnet")]) == ["a", "b"]
    with pytest.raises(HttpResponseError) as outside:
        await network.subnets.begin_create_or_update(
            "rg-net", "vnet", "c", {"properties": {"addressPrefix": "10.9.0.0/24"}}
        )
    assert code(outside.value) == "NetcfgSubnetRangeOutsideVnet"
    await (await network.subnets.begin_delete("rg-net", "vnet", "b")).result()
    assert [s.name async for s in network.subnets.list("rg-net", "vnet")] == ["a"]


async def test_private_addresses_are_allocated_in_order_and_released(emu: Emulator, network: Any) -> None:
    await vnet(network, "rg-net", "vnet", "10.6.0.0/16", "a", "10.6.1.0/29")
    subnet_id = (await network.subnets.get("rg-net", "vnet", "a")).id
    body = {
        "location": "eastus",
        "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}]},
    }
    addresses = []
    for name in ("n1", "n2", "n3"):
        nic = await (await network.network_interfaces.begin_create_or_update("rg-net", name, body)).result()
        addresses.append(nic.ip_configurations[0].private_ip_address)
    assert addresses == ["10.6.1.4", "10.6.1.5", "10.6.1.6"]
    with pytest.raises(HttpResponseError) as full:
        await network.network_interfaces.begin_create_or_update("rg-net", "n4", body)
    assert code(full.value) == "SubnetIsFull"
    tagged = await network.network_interfaces.update_tags(
        "rg-net", "n1", {"tags": {"reconciler.cluster": "c1"}}
    )
    assert tagged.tags == {"reconciler.cluster": "c1"}
    assert (await network.network_interfaces.get("rg-net", "n1")).tags == {"reconciler.cluster": "c1"}
    await (await network.network_interfaces.begin_delete("rg-net", "n2")).result()
    again = await (await network.network_interfaces.begin_create_or_update("rg-net", "n4", body)).result()
    assert again.ip_configurations[0].private_ip_address == "10.6.1.5"


async def test_security_group_in_use_cannot_be_deleted(emu: Emulator, network: Any) -> None:
    nsg = await (
        await network.network_security_groups.begin_create_or_update("rg-net", "nsg", {"location": "eastus"})
    ).result()
    assert {r.name for r in nsg.default_security_rules} >= {"DenyAllInBound", "AllowVnetInBound"}
    await vnet(network, "rg-net", "vnet", "10.7.0.0/16", "a", "10.7.1.0/24")
    subnet_id = (await network.subnets.get("rg-net", "vnet", "a")).id
    body = {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}],
            "networkSecurityGroup": {"id": nsg.id},
        },
    }
    await (await network.network_interfaces.begin_create_or_update("rg-net", "nic", body)).result()
    with pytest.raises(HttpResponseError) as in_use:
        await network.network_security_groups.begin_delete("rg-net", "nsg")
    assert code(in_use.value) == "InUseNetworkSecurityGroupCannotBeDeleted"
    with pytest.raises(HttpResponseError) as vnet_in_use:
        await network.virtual_networks.begin_delete("rg-net", "vnet")
    assert code(vnet_in_use.value) == "InUseSubnetCannotBeDeleted"
    await (await network.network_interfaces.begin_delete("rg-net", "nic")).result()
    await (await network.network_security_groups.begin_delete("rg-net", "nsg")).result()
    assert [g async for g in network.network_security_groups.list("rg-net")] == []


async def test_nic_put_again_without_its_public_ip_detaches_it(emu: Emulator, network: Any) -> None:
    await vnet(network, "rg-net", "vnet", "10.7.0.0/16", "a", "10.7.1.0/24")
    subnet_id = (await network.subnets.get("rg-net", "vnet", "a")).id
    pip = await (
        await network.public_ip_addresses.begin_create_or_update(
            "rg-net", "ip1", {"location": "eastus", "sku": {"name": "Standard"}}
        )
    ).result()
    config: dict[str, Any] = {"name": "c", "properties": {"subnet": {"id": subnet_id}}}
    with_ip = {
        "location": "eastus",
        "properties": {
            "ipConfigurations": [
                {**config, "properties": {**config["properties"], "publicIPAddress": {"id": pip.id}}}
            ]
        },
    }
    first = await (await network.network_interfaces.begin_create_or_update("rg-net", "n1", with_ip)).result()
    address = first.ip_configurations[0].private_ip_address
    assert (await network.public_ip_addresses.get("rg-net", "ip1")).ip_configuration is not None

    without = {"location": "eastus", "properties": {"ipConfigurations": [config]}}
    again = await (await network.network_interfaces.begin_create_or_update("rg-net", "n1", without)).result()

    assert again.ip_configurations[0].public_ip_address is None
    assert again.ip_configurations[0].private_ip_address == address
    assert (await network.public_ip_addresses.get("rg-net", "ip1")).ip_configuration is None
    await (await network.public_ip_addresses.begin_delete("rg-net", "ip1")).result()
    assert [p.name async for p in network.public_ip_addresses.list("rg-net")] == []
