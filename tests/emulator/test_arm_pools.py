"""Batch pools through azure-mgmt-batch: one pool state behind ARM and the Batch data plane."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch.models import BatchPoolCreateOptions, BatchPoolResizeOptions, VirtualMachineConfiguration
from azure.batch.models import BatchVmImageReference as ImageReference
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from emulator_env import missing_fields

from reconciler.emulator import Emulator
from reconciler.emulator.arm.pool_convert import ARM_READ_ONLY

SETTLE = 1_800.0  # simulated seconds after which any allocation in these tests is steady
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "azure-reference" / "batch-mgmt"
IDENTITY = "/subscriptions/{sub}/resourceGroups/rg-ids/providers/Microsoft.ManagedIdentity/" + (
    "userAssignedIdentities/{name}"
)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=1.0) as emulator:
        yield emulator


@pytest.fixture
def rg(emu: Emulator) -> str:
    return emu.ctx.accounts["demo"].resource_group


@pytest.fixture
def mgmt(emu: Emulator) -> Any:
    return emu.batch_mgmt_client(polling_interval=0)


@pytest.fixture
def data_plane(emu: Emulator) -> Any:
    return emu.batch_client()


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / name).read_text()))


def pool_body(emu: Emulator, dedicated: int = 2) -> dict[str, Any]:
    sub = emu.ctx.subscription_id
    return {
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {IDENTITY.format(sub=sub, name="id1"): {}},
        },
        "properties": {
            "vmSize": "Standard_D4ds_v5",
            "deploymentConfiguration": {
                "virtualMachineConfiguration": {
                    "imageReference": {
                        "publisher": "canonical",
                        "offer": "ubuntu-24_04-lts",
                        "sku": "server",
                        "version": "latest",
                    },
                    "nodeAgentSkuId": "batch.node.ubuntu 24.04",
                }
            },
            "scaleSettings": {"fixedScale": {"targetDedicatedNodes": dedicated, "resizeTimeout": "PT15M"}},
            "metadata": [{"name": "reconciler.managed-by", "value": "test"}],
        },
    }


async def test_pool_created_through_arm_is_visible_and_resizable_through_the_data_plane(
    emu: Emulator, rg: str, mgmt: Any, data_plane: Any
) -> None:
    created = await mgmt.pool.create(rg, "demo", "arm-pool", pool_body(emu))
    assert created.provisioning_state == "Succeeded"
    assert created.type == "Microsoft.Batch/batchAccounts/pools"
    [(identity_id, assigned)] = created.identity.user_assigned_identities.items()
    assert identity_id.endswith("/id1")
    assert assigned.principal_id
    assert assigned.client_id

    pool = await data_plane.get_pool("arm-pool")
    assert pool.vm_size.lower() == "standard_d4ds_v5"
    assert pool.target_dedicated_nodes == 2
    assert pool.virtual_machine_configuration.node_agent_sku_id == "batch.node.ubuntu 24.04"
    assert [i.resource_id for i in pool.identity.user_assigned_identities] == [identity_id]
    assert pool.metadata[0].value == "test"

    emu.clock.advance(SETTLE)
    await data_plane.begin_resize_pool("arm-pool", BatchPoolResizeOptions(target_dedicated_nodes=4))
    resizing = await mgmt.pool.get(rg, "demo", "arm-pool")
    assert resizing.allocation_state == "Resizing"
    assert resizing.resize_operation_status.target_dedicated_nodes == 4
    emu.clock.advance(SETTLE)
    seen = await mgmt.pool.get(rg, "demo", "arm-pool")
    assert seen.scale_settings.fixed_scale.target_dedicated_nodes == 4
    assert seen.current_dedicated_nodes == 4
    assert seen.allocation_state == "Steady"

    patch = {
        "properties": {
            "scaleSettings": {
                "fixedScale": {"targetDedicatedNodes": 1, "nodeDeallocationOption": "TaskCompletion"}
            }
        }
    }
    patched = await mgmt.pool.update(rg, "demo", "arm-pool", patch)
    assert patched.scale_settings.fixed_scale.target_dedicated_nodes == 1
    assert patched.scale_settings.fixed_scale.node_deallocation_option == "TaskCompletion"
    assert (await data_plane.get_pool("arm-pool")).target_dedicated_nodes == 1
    assert [p.name async for p in mgmt.pool.list_by_batch_account(rg, "demo")] == ["arm-pool"]


async def test_pool_created_through_the_data_plane_is_visible_in_arm(
    rg: str, mgmt: Any, data_plane: Any
) -> None:
    image = ImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server", version="latest")
    config = VirtualMachineConfiguration(image_reference=image, node_agent_sku_id="batch.node.ubuntu 24.04")
    options = BatchPoolCreateOptions(
        id="dp-pool",
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=config,
        target_dedicated_nodes=1,
    )
    await data_plane.create_pool(options)
    pool = await mgmt.pool.get(rg, "demo", "dp-pool")
    vm_config = pool.deployment_configuration.virtual_machine_configuration
    assert vm_config.image_reference.offer == "ubuntu-24_04-lts"
    assert pool.scale_settings.fixed_scale.target_dedicated_nodes == 1
    assert pool.inter_node_communication == "Disabled"
    assert pool.etag.startswith('W/"')


async def test_arm_pool_delete_is_a_long_running_operation(
    emu: Emulator, rg: str, mgmt: Any, data_plane: Any
) -> None:
    await mgmt.pool.create(rg, "demo", "doomed", pool_body(emu, dedicated=0))
    emu.clock.advance(SETTLE)
    emu.clock.time_scale = 1_000.0
    initial: list[Any] = []
    poller = await mgmt.pool.begin_delete(
        rg, "demo", "doomed", raw_response_hook=lambda response: initial.append(response.http_response)
    )
    first = initial[0]
    assert first.status_code == 202
    assert "/poolOperationResults/delete-doomed-" in first.headers["Location"]
    assert "Retry-After" in first.headers or "retry-after-ms" in first.headers
    await poller.result()
    with pytest.raises(ResourceNotFoundError):
        await mgmt.pool.get(rg, "demo", "doomed")
    with pytest.raises(ResourceNotFoundError):
        await data_plane.get_pool("doomed")
    await (await mgmt.pool.begin_delete(rg, "demo", "doomed")).result()


async def test_autoscale_stop_resize_and_disable_through_arm(
    emu: Emulator, rg: str, mgmt: Any, data_plane: Any
) -> None:
    await mgmt.pool.create(rg, "demo", "auto", pool_body(emu, dedicated=0))
    auto = {
        "properties": {
            "scaleSettings": {
                "autoScale": {"formula": "$TargetDedicatedNodes=3", "evaluationInterval": "PT5M"}
            }
        }
    }
    enabled = await mgmt.pool.update(rg, "demo", "auto", auto)
    assert enabled.scale_settings.auto_scale.formula == "$TargetDedicatedNodes=3"
    assert (await data_plane.get_pool("auto")).enable_auto_scale is True
    disabled = await mgmt.pool.disable_auto_scale(rg, "demo", "auto")
    assert disabled.scale_settings.fixed_scale is not None
    assert (await data_plane.get_pool("auto")).enable_auto_scale is False

    emu.clock.advance(SETTLE)
    resize = {"properties": {"scaleSettings": {"fixedScale": {"targetDedicatedNodes": 5}}}}
    resizing = await mgmt.pool.update(rg, "demo", "auto", resize)
    assert resizing.allocation_state == "Resizing"
    assert resizing.resize_operation_status.target_dedicated_nodes == 5
    with pytest.raises(HttpResponseError) as busy:
        await mgmt.pool.update(rg, "demo", "auto", resize)
    assert busy.value.status_code == 409
    stopped = await mgmt.pool.stop_resize(rg, "demo", "auto")
    assert stopped.allocation_state in ("Stopping", "Steady")


async def test_if_none_match_and_if_match_are_honoured(emu: Emulator, rg: str, mgmt: Any) -> None:
    created = await mgmt.pool.create(
        rg, "demo", "once", pool_body(emu), match_condition=MatchConditions.IfMissing
    )
    with pytest.raises(HttpResponseError) as exists:
        await mgmt.pool.create(rg, "demo", "once", pool_body(emu), match_condition=MatchConditions.IfMissing)
    assert exists.value.status_code == 412
    with pytest.raises(HttpResponseError) as stale:
        await mgmt.pool.update(
            rg,
            "demo",
            "once",
            {"properties": {}},
            etag='W/"0xSTALE"',
            match_condition=MatchConditions.IfNotModified,
        )
    assert stale.value.status_code == 412
    await mgmt.pool.update(
        rg,
        "demo",
        "once",
        {"properties": {}},
        etag=created.etag,
        match_condition=MatchConditions.IfNotModified,
    )


async def test_unknown_account_is_resource_not_found(rg: str, mgmt: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        await mgmt.pool.get(rg, "nosuchaccount", "p")
    assert missing.value.error is not None
    assert missing.value.error.code == "ResourceNotFound"


@pytest.mark.parametrize(
    "name",
    [
        "PoolCreate_MinimalVirtualMachineConfiguration.json",
        "PoolCreate_UserAssignedIdentities.json",
        "PoolCreate_VirtualMachineConfiguration.json",
    ],
)
async def test_create_examples_are_answered_with_the_same_fields(rg: str, mgmt: Any, name: str) -> None:
    spec = example(name)
    parameters = spec["parameters"]
    body = await mgmt.pool.create(rg, "demo", parameters["poolName"], copy.deepcopy(parameters["parameters"]))
    raw = body.as_dict()
    expected = spec["responses"]["200"]["body"]
    assert missing_fields(expected, raw) == []
    assert raw["properties"]["vmSize"].lower() == expected["properties"]["vmSize"].lower()
    assert (
        raw["properties"]["deploymentConfiguration"]["virtualMachineConfiguration"]["nodeAgentSkuId"]
        == (
            expected["properties"]["deploymentConfiguration"]["virtualMachineConfiguration"]["nodeAgentSkuId"]
        )
    )


@pytest.mark.parametrize("name", ["PoolUpdate_ResizePool.json", "PoolUpdate_EnableAutoScale.json"])
async def test_update_examples_are_answered_with_the_same_fields(
    emu: Emulator, rg: str, mgmt: Any, name: str
) -> None:
    spec = example(name)
    parameters = spec["parameters"]
    await mgmt.pool.create(rg, "demo", parameters["poolName"], pool_body(emu, dedicated=0))
    body = await mgmt.pool.update(rg, "demo", parameters["poolName"], copy.deepcopy(parameters["parameters"]))
    raw = body.as_dict()
    expected = dict(spec["responses"]["200"]["body"])
    expected["properties"] = {
        k: v for k, v in expected["properties"].items() if k not in ("autoScaleRun", "resizeOperationStatus")
    }
    assert missing_fields(expected, raw) == []
    wanted = parameters["parameters"]["properties"]["scaleSettings"]
    if "fixedScale" in wanted:
        assert raw["properties"]["scaleSettings"]["fixedScale"] == wanted["fixedScale"]
    else:
        assert raw["properties"]["scaleSettings"]["autoScale"]["formula"] == wanted["autoScale"]["formula"]


@pytest.mark.parametrize(
    "name", ["PoolGet.json", "PoolStopResize.json", "PoolDisableAutoScale.json", "PoolList.json"]
)
async def test_pools_made_from_example_answers_echo_every_given_field(rg: str, mgmt: Any, name: str) -> None:
    answer = example(name)["responses"]["200"]["body"]
    answer = answer["value"][0] if "value" in answer else answer
    given = {k: v for k, v in answer["properties"].items() if k not in ARM_READ_ONLY}
    pool_id = name.removesuffix(".json").lower()
    await mgmt.pool.create(rg, "demo", pool_id, {"properties": copy.deepcopy(given)})
    seen = (await mgmt.pool.get(rg, "demo", pool_id)).as_dict()
    assert {k: seen["properties"].get(k) for k in given} == given
    expected = copy.deepcopy(answer)
    expected["properties"].get("resizeOperationStatus", {}).pop("errors", None)  # a failed resize's history
    assert missing_fields(expected, seen) == []


async def test_pool_lists_page_with_next_link(emu: Emulator, rg: str, mgmt: Any, data_plane: Any) -> None:
    image = ImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server", version="latest")
    config = VirtualMachineConfiguration(image_reference=image, node_agent_sku_id="batch.node.ubuntu 24.04")
    names = [f"paged-{i}" for i in range(5)]
    for name in names:
        await data_plane.create_pool(
            BatchPoolCreateOptions(id=name, vm_size="standard_d2s_v3", virtual_machine_configuration=config)
        )
    emu.arm.set_page_size(2)

    assert [p.name async for p in mgmt.pool.list_by_batch_account(rg, "demo")] == names
    assert emu.counters.total(operation="arm.Pool_ListByBatchAccount", status=200) == 3
    assert [p.name async for p in mgmt.pool.list_by_batch_account(rg, "demo", maxresults=1)] == names
    assert emu.counters.total(operation="arm.Pool_ListByBatchAccount", status=200) == 3 + 5

    # A pool created behind the page already read neither repeats a pool nor hides one.
    pages = mgmt.pool.list_by_batch_account(rg, "demo").by_page()
    seen = [p.name async for p in await anext(pages)]
    await data_plane.create_pool(
        BatchPoolCreateOptions(id="paged-0a", vm_size="standard_d2s_v3", virtual_machine_configuration=config)
    )
    async for page in pages:
        seen += [p.name async for p in page]
    assert seen == names
