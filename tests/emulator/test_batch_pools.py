"""Pool lifecycle and the service's error answers, driven through the real aio Batch client."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from azure.batch import models as m
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError

from reconciler.emulator import Emulator

SETTLE = 600.0
IMAGE = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server"),
    node_agent_sku_id="batch.node.ubuntu 24.04",
)


def new_pool(pool_id: str, dedicated: int | None = 0, **extra: Any) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="Standard_D2s_v3",
        virtual_machine_configuration=IMAGE,
        target_dedicated_nodes=dedicated,
        **extra,
    )


def code_of(error: HttpResponseError) -> str:
    assert error.error is not None
    return str(error.error.code)


async def error_code(call: Any) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as caught:
        await call
    return caught.value.status_code or 0, code_of(caught.value)


async def test_create_allocate_resize_stop_and_delete(emulator: Emulator, batch_client: Any) -> None:
    metadata = [m.BatchMetadataItem(name="reconciler.managed-by", value="reconciler")]
    await batch_client.create_pool(new_pool("life", 2, metadata=metadata))
    pool = await batch_client.get_pool("life")
    assert pool.state == m.BatchPoolState.ACTIVE
    assert pool.allocation_state == m.AllocationState.RESIZING
    assert pool.resize_timeout.total_seconds() == 900
    assert pool.metadata[0].value == "reconciler"
    assert pool.url.endswith("/pools/life")

    emulator.clock.advance(SETTLE)
    pool = await batch_client.get_pool("life")
    assert pool.allocation_state == m.AllocationState.STEADY
    assert (pool.current_dedicated_nodes, pool.target_dedicated_nodes) == (2, 2)
    assert not pool.resize_errors
    assert {n.state async for n in batch_client.list_nodes("life")} == {m.BatchNodeState.IDLE}

    await batch_client.begin_resize_pool("life", m.BatchPoolResizeOptions(target_dedicated_nodes=5))
    assert (await batch_client.get_pool("life")).allocation_state == m.AllocationState.RESIZING
    status, code = await error_code(
        batch_client.begin_resize_pool("life", m.BatchPoolResizeOptions(target_dedicated_nodes=1))
    )
    assert (status, code) == (409, "PoolBeingResized")

    poller = await batch_client.begin_stop_pool_resize("life", polling_interval=0)
    stopping = await batch_client.get_pool("life")
    assert stopping.allocation_state == m.AllocationState.STOPPING
    emulator.clock.advance(SETTLE)
    await poller.result()
    stopped = await batch_client.get_pool("life")
    assert stopped.allocation_state == m.AllocationState.STEADY
    assert stopped.current_dedicated_nodes == 2
    assert stopped.target_dedicated_nodes == 5

    poller = await batch_client.begin_delete_pool("life", polling_interval=0)
    deleting = await batch_client.get_pool("life")
    assert deleting.state == m.BatchPoolState.DELETING
    status, code = await error_code(batch_client.create_pool(new_pool("LIFE")))
    assert (status, code) == (409, "PoolBeingDeleted")
    status, code = await error_code(batch_client.begin_delete_pool("life"))
    assert (status, code) == (409, "PoolBeingDeleted")
    status, code = await error_code(
        batch_client.begin_resize_pool("life", m.BatchPoolResizeOptions(target_dedicated_nodes=0))
    )
    assert (status, code) == (409, "PoolBeingDeleted")

    waiting = asyncio.ensure_future(poller.result())
    await asyncio.sleep(0)
    assert not waiting.done()
    emulator.clock.advance(SETTLE)
    await asyncio.wait_for(waiting, 10)
    with pytest.raises(ResourceNotFoundError) as gone:
        await batch_client.get_pool("life")
    assert code_of(gone.value) == "PoolNotFound"


async def test_add_validation_and_conflicts(batch_client: Any) -> None:
    await batch_client.create_pool(new_pool("dup"))
    assert await error_code(batch_client.create_pool(new_pool("dup"))) == (409, "PoolExists")
    short = new_pool("short", resize_timeout="PT4M")
    assert await error_code(batch_client.create_pool(short)) == (400, "InvalidPropertyValue")
    both = new_pool("both", 1, enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes=1;")
    assert await error_code(batch_client.create_pool(both)) == (400, "InvalidAutoScalingSettings")
    formula_only = new_pool("formula", None, auto_scale_formula="$TargetDedicatedNodes=1;")
    assert await error_code(batch_client.create_pool(formula_only)) == (400, "InvalidAutoScalingSettings")
    interval = new_pool(
        "interval",
        None,
        enable_auto_scale=True,
        auto_scale_formula="$TargetDedicatedNodes=1;",
        auto_scale_evaluation_interval="PT1M",
    )
    assert await error_code(batch_client.create_pool(interval)) == (400, "InvalidPropertyValue")
    status, code = await error_code(batch_client.get_pool("never"))
    assert (status, code) == (404, "PoolNotFound")


async def test_pool_quota_and_core_quota(emulator: Emulator, batch_client: Any) -> None:
    emulator.batch.set_quotas("demo", dedicated_cores=10, pools=2)
    await batch_client.create_pool(new_pool("q1", 3))
    await batch_client.create_pool(new_pool("q2", 4))
    assert await error_code(batch_client.create_pool(new_pool("q3"))) == (409, "PoolQuotaReached")

    emulator.clock.advance(SETTLE)
    capped = await batch_client.get_pool("q2")
    assert capped.allocation_state == m.AllocationState.STEADY
    assert (capped.current_dedicated_nodes, capped.target_dedicated_nodes) == (2, 4)
    assert capped.resize_errors[0].code == "AccountCoreQuotaReached"
    assert not (await batch_client.get_pool("q1")).resize_errors


async def test_autoscale_enable_evaluate_disable(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(new_pool("auto"))
    emulator.clock.advance(SETTLE)
    formula = "$TargetDedicatedNodes = max(0, 3 - 1); $NodeDeallocationOption = taskcompletion;"
    options = m.BatchPoolEnableAutoScaleOptions(
        auto_scale_formula=formula, auto_scale_evaluation_interval=timedelta(minutes=5)
    )
    await batch_client.enable_pool_auto_scale("auto", options)
    pool = await batch_client.get_pool("auto")
    assert pool.enable_auto_scale
    assert pool.auto_scale_run.results.startswith("$TargetDedicatedNodes=2;")
    assert pool.target_dedicated_nodes == 2
    assert pool.allocation_state == m.AllocationState.RESIZING

    with pytest.raises(HttpResponseError) as too_soon:
        await batch_client.enable_pool_auto_scale("auto", options, retry_total=0)
    assert (too_soon.value.status_code, code_of(too_soon.value)) == (503, "TooManyEnableAutoScaleRequests")
    response: Any = too_soon.value.response
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    resize = m.BatchPoolResizeOptions(target_dedicated_nodes=1)
    status, _ = await error_code(batch_client.begin_resize_pool("auto", resize))
    assert status == 409

    run = await batch_client.evaluate_pool_auto_scale(
        "auto", m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = 7;")
    )
    assert run.results.startswith("$TargetDedicatedNodes=7;")
    bad = m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = 2 ** 3;")
    status, code = await error_code(batch_client.evaluate_pool_auto_scale("auto", bad))
    assert status == 400
    assert code

    emulator.clock.advance(SETTLE)
    pool = await batch_client.get_pool("auto")
    assert (pool.current_dedicated_nodes, pool.allocation_state) == (2, m.AllocationState.STEADY)

    await batch_client.disable_pool_auto_scale("auto")
    pool = await batch_client.get_pool("auto")
    assert not pool.enable_auto_scale
    assert pool.auto_scale_formula is None
    await batch_client.begin_resize_pool("auto", m.BatchPoolResizeOptions(target_dedicated_nodes=0))
    emulator.clock.advance(SETTLE)
    assert (await batch_client.get_pool("auto")).current_dedicated_nodes == 0


async def test_periodic_autoscale_follows_pending_tasks(emulator: Emulator, batch_client: Any) -> None:
    formula = "$TargetDedicatedNodes = min(4, $PendingTasks.GetSample(1));"
    await batch_client.create_pool(
        new_pool(
            "elastic",
            None,
            enable_auto_scale=True,
            auto_scale_formula=formula,
            auto_scale_evaluation_interval="PT5M",
        )
    )
    assert (await batch_client.get_pool("elastic")).target_dedicated_nodes == 0
    emulator.batch.occupy_nodes("demo", "elastic", tasks=3, seconds=3600)
    emulator.clock.advance(301)
    pool = await batch_client.get_pool("elastic")
    assert pool.target_dedicated_nodes == 3
    assert pool.auto_scale_run.results.startswith("$TargetDedicatedNodes=3;")


async def test_etag_changes_and_if_match_is_honoured(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(new_pool("tagged"))
    first = await batch_client.get_pool("tagged")
    await batch_client.update_pool("tagged", m.BatchPoolUpdateOptions(display_name="renamed"))
    second = await batch_client.get_pool("tagged")
    assert second.etag != first.etag
    assert second.display_name == "renamed"
    assert second.last_modified >= first.last_modified

    resize = m.BatchPoolResizeOptions(target_dedicated_nodes=1)
    with pytest.raises(ResourceModifiedError) as stale:
        await batch_client.begin_resize_pool(
            "tagged", resize, etag=first.etag, match_condition=MatchConditions.IfNotModified
        )
    assert stale.value.status_code == 412
    assert code_of(stale.value) == "ConditionNotMet"
    await batch_client.begin_resize_pool(
        "tagged", resize, etag=second.etag, match_condition=MatchConditions.IfNotModified
    )
    assert (await batch_client.get_pool("tagged")).target_dedicated_nodes == 1


async def test_replace_properties_and_start_task_echo(batch_client: Any) -> None:
    start = m.BatchStartTask(command_line="/bin/sh -c 'echo hi'")
    await batch_client.create_pool(new_pool("props", start_task=start))
    pool = await batch_client.get_pool("props")
    assert pool.start_task.command_line == "/bin/sh -c 'echo hi'"
    assert pool.start_task.wait_for_success is True
    assert pool.task_scheduling_policy.node_fill_type == m.BatchNodeFillType.SPREAD

    replace = m.BatchPoolReplaceOptions(
        application_package_references=[],
        metadata=[m.BatchMetadataItem(name="k", value="v")],
    )
    await batch_client.replace_pool_properties("props", replace)
    pool = await batch_client.get_pool("props")
    assert pool.start_task is None
    assert [(i.name, i.value) for i in pool.metadata] == [("k", "v")]


async def test_replace_properties_with_the_sdk_model_that_has_no_certificate_references(
    batch_client: Any,
) -> None:
    # azure-batch 15.1 dropped the field the document still requires; the service reads it as empty.
    replace = m.BatchPoolReplaceOptions(
        application_package_references=[], metadata=[m.BatchMetadataItem(name="k", value="v")]
    )
    assert "certificateReferences" not in replace.as_dict()
    await batch_client.create_pool(new_pool("nocerts"))
    await batch_client.replace_pool_properties("nocerts", replace)
    pool = await batch_client.get_pool("nocerts")
    assert [(i.name, i.value) for i in pool.metadata] == [("k", "v")]
    assert not pool.as_dict().get("certificateReferences")

    for required, other in (
        ("metadata", "applicationPackageReferences"),
        ("applicationPackageReferences", "metadata"),
    ):
        with pytest.raises(HttpResponseError) as caught:
            await batch_client.replace_pool_properties("nocerts", m.BatchPoolReplaceOptions({other: []}))
        assert (caught.value.status_code, code_of(caught.value)) == (400, "MissingRequiredProperty")
        assert caught.value.response is not None
        assert caught.value.response.json()["values"] == [{"key": "PropertyName", "value": required}]


async def test_slow_allocation_times_out_and_low_priority_nodes(
    emulator: Emulator, batch_client: Any
) -> None:
    emulator.batch.set_timings(creating=900)
    await batch_client.create_pool(
        new_pool("slowgrow", 1, target_low_priority_nodes=2, resize_timeout="PT5M")
    )
    emulator.clock.advance(299)
    assert (await batch_client.get_pool("slowgrow")).allocation_state == m.AllocationState.RESIZING
    emulator.clock.advance(2)
    pool = await batch_client.get_pool("slowgrow")
    assert pool.allocation_state == m.AllocationState.STEADY
    assert [e.code for e in pool.resize_errors] == ["ResizeTimedOut"]
    emulator.clock.advance(SETTLE + 900)
    pool = await batch_client.get_pool("slowgrow")
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 2)
    dedicated = sorted([n.is_dedicated async for n in batch_client.list_nodes("slowgrow")])
    assert dedicated == [False, False, True]


async def test_current_node_communication_mode_appears_with_the_first_nodes(
    emulator: Emulator, batch_client: Any
) -> None:
    # azure-batch 15.1's models have no field for either mode; their mapping interface carries both.
    await batch_client.create_pool(new_pool("comm-default"))
    simple = new_pool("comm-simple", 1).as_dict() | {"targetNodeCommunicationMode": "simplified"}
    await batch_client.create_pool(m.BatchPoolCreateOptions(simple))
    assert "currentNodeCommunicationMode" not in await batch_client.get_pool("comm-default")
    emulator.clock.advance(SETTLE)
    assert (await batch_client.get_pool("comm-simple"))["currentNodeCommunicationMode"] == "simplified"

    await batch_client.begin_resize_pool("comm-default", m.BatchPoolResizeOptions(target_dedicated_nodes=1))
    emulator.clock.advance(SETTLE)
    pool = await batch_client.get_pool("comm-default")
    assert pool["currentNodeCommunicationMode"] == "classic"
    assert pool.get("targetNodeCommunicationMode", "default") == "default"
