"""Draining pools with running tasks under each node deallocation option, through the aio SDK.

Every task must end `completed` or return to `active`: a drain that loses work is the bug these catch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.batch import models as m

from reconciler.emulator import Emulator

SETTLE = 600.0
IMAGE = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server"),
    node_agent_sku_id="batch.node.ubuntu 24.04",
)


async def busy_pool(
    emulator: Emulator, client: Any, pool_id: str, *, retention: timedelta | None = None
) -> None:
    """Two steady nodes, one slot each, two `sleep 1200` tasks running and two waiting."""
    await client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=2,
        )
    )
    emulator.clock.advance(SETTLE)
    await client.create_job(
        m.BatchJobCreateOptions(id=f"{pool_id}-job", pool_info=m.BatchPoolInfo(pool_id=pool_id))
    )
    constraints = m.BatchTaskConstraints(retention_time=retention) if retention else None
    tasks = [
        m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/sh -c 'sleep 1200'", constraints=constraints)
        for i in range(4)
    ]
    result = await client.create_tasks(f"{pool_id}-job", tasks)
    assert {r.status for r in result.result_values} == {m.BatchTaskAddStatus.SUCCESS}
    assert sorted((await states(client, f"{pool_id}-job")).values()) == [
        "active",
        "active",
        "running",
        "running",
    ]


async def running_ids(client: Any, job_id: str) -> set[str]:
    return {k for k, v in (await states(client, job_id)).items() if v == "running"}


async def states(client: Any, job_id: str) -> dict[str, str]:
    return {t.id: str(t.state.value) async for t in client.list_tasks(job_id)}


async def shrink(client: Any, pool_id: str, option: m.BatchNodeDeallocationOption) -> None:
    await client.begin_resize_pool(
        pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=0, node_deallocation_option=option)
    )


async def test_requeue_returns_running_tasks_and_nodes_leave_at_once(
    emulator: Emulator, batch_client: Any
) -> None:
    await busy_pool(emulator, batch_client, "rq")
    running = await running_ids(batch_client, "rq-job")
    await shrink(batch_client, "rq", m.BatchNodeDeallocationOption.REQUEUE)
    assert await states(batch_client, "rq-job") == dict.fromkeys(("t0", "t1", "t2", "t3"), "active")
    for task_id in running:
        requeued = await batch_client.get_task("rq-job", task_id)
        assert requeued.execution_info.requeue_count == 1
    assert {n.state async for n in batch_client.list_nodes("rq")} == {m.BatchNodeState.LEAVING_POOL}
    emulator.clock.advance(60)
    pool = await batch_client.get_pool("rq")
    assert (pool.current_dedicated_nodes, pool.allocation_state) == (0, m.AllocationState.STEADY)
    counts = await batch_client.get_job_task_counts("rq-job")
    assert counts.task_counts.active == 4


async def test_terminate_completes_running_tasks_as_failed(emulator: Emulator, batch_client: Any) -> None:
    await busy_pool(emulator, batch_client, "tm")
    running = await running_ids(batch_client, "tm-job")
    await shrink(batch_client, "tm", m.BatchNodeDeallocationOption.TERMINATE)
    after = await states(batch_client, "tm-job")
    assert {k for k, v in after.items() if v == "completed"} == running
    assert sorted(after.values()) == ["active", "active", "completed", "completed"]
    ended = await batch_client.get_task("tm-job", min(running))
    assert ended.execution_info.result == m.BatchTaskExecutionResult.FAILURE
    assert ended.execution_info.failure_info.code == "TaskEnded"
    emulator.clock.advance(60)
    assert (await batch_client.get_pool("tm")).current_dedicated_nodes == 0
    counts = await batch_client.get_job_task_counts("tm-job")
    assert (counts.task_counts.failed, counts.task_counts.active) == (2, 2)


async def test_taskcompletion_waits_for_running_tasks(emulator: Emulator, batch_client: Any) -> None:
    await busy_pool(emulator, batch_client, "tc")
    running = await running_ids(batch_client, "tc-job")
    await shrink(batch_client, "tc", m.BatchNodeDeallocationOption.TASK_COMPLETION)
    emulator.clock.advance(800)
    pool = await batch_client.get_pool("tc")
    assert pool.allocation_state == m.AllocationState.RESIZING
    assert pool.current_dedicated_nodes == 2
    assert {n.state async for n in batch_client.list_nodes("tc")} == {m.BatchNodeState.RUNNING}
    assert await running_ids(batch_client, "tc-job") == running

    emulator.clock.advance(500)
    after = await states(batch_client, "tc-job")
    assert {k for k, v in after.items() if v == "completed"} == running
    assert sorted(after.values()) == ["active", "active", "completed", "completed"]
    emulator.clock.advance(60)
    pool = await batch_client.get_pool("tc")
    assert pool.current_dedicated_nodes == 0
    assert pool.allocation_state == m.AllocationState.STEADY
    completed = await batch_client.get_task("tc-job", min(running))
    assert completed.execution_info.result == m.BatchTaskExecutionResult.SUCCESS


async def test_taskcompletion_beyond_resize_timeout_reports_resize_timed_out(
    emulator: Emulator, batch_client: Any
) -> None:
    await busy_pool(emulator, batch_client, "slow")
    await batch_client.begin_resize_pool(
        "slow",
        m.BatchPoolResizeOptions(
            target_dedicated_nodes=0,
            resize_timeout=timedelta(minutes=5),
            node_deallocation_option=m.BatchNodeDeallocationOption.TASK_COMPLETION,
        ),
    )
    emulator.clock.advance(301)
    pool = await batch_client.get_pool("slow")
    assert pool.allocation_state == m.AllocationState.STEADY
    assert pool.resize_errors[0].code == "ResizeTimedOut"
    emulator.clock.advance(1200)
    assert (await batch_client.get_pool("slow")).current_dedicated_nodes == 0


async def test_retaineddata_also_waits_for_retention(emulator: Emulator, batch_client: Any) -> None:
    await busy_pool(emulator, batch_client, "rd", retention=timedelta(minutes=30))
    running = await running_ids(batch_client, "rd-job")
    await shrink(batch_client, "rd", m.BatchNodeDeallocationOption.RETAINED_DATA)
    emulator.clock.advance(1300)
    assert (await batch_client.get_task("rd-job", min(running))).state == m.BatchTaskState.COMPLETED
    assert (await batch_client.get_pool("rd")).current_dedicated_nodes == 2
    emulator.clock.advance(1800)
    pool = await batch_client.get_pool("rd")
    assert pool.current_dedicated_nodes == 0
    after = await states(batch_client, "rd-job")
    assert {k for k, v in after.items() if v == "completed"} == running
    assert sorted(after.values()) == ["active", "active", "completed", "completed"]


async def test_tasks_run_for_their_sleep_and_slots_are_respected(
    emulator: Emulator, batch_client: Any
) -> None:
    await batch_client.create_pool(
        m.BatchPoolCreateOptions(
            id="slots",
            vm_size="standard_d4s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=1,
            task_slots_per_node=2,
        )
    )
    emulator.clock.advance(SETTLE)
    job_id = emulator.batch.occupy_nodes("demo", "slots", tasks=3, seconds=120)
    [node] = [n async for n in batch_client.list_nodes("slots")]
    assert (node.state, node.running_tasks_count) == (m.BatchNodeState.RUNNING, 2)
    emulator.clock.advance(119)
    assert (await batch_client.get_job_task_counts(job_id)).task_counts.running == 2
    emulator.clock.advance(2)
    counts = (await batch_client.get_job_task_counts(job_id)).task_counts
    assert (counts.completed, counts.running) == (2, 1)
    emulator.clock.advance(120)
    counts = (await batch_client.get_job_task_counts(job_id)).task_counts
    assert (counts.succeeded, counts.running) == (3, 0)
    node = await batch_client.get_node("slots", node.id)
    assert (node.state, node.total_tasks_run) == (m.BatchNodeState.IDLE, 3)


@pytest.mark.parametrize("wait_for_success", [True, False])
async def test_failed_start_task(emulator: Emulator, batch_client: Any, wait_for_success: bool) -> None:
    emulator.batch.fail_start_tasks("demo", "boot", 1)
    await batch_client.create_pool(
        m.BatchPoolCreateOptions(
            id="boot",
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=2,
            start_task=m.BatchStartTask(command_line="/bin/false", wait_for_success=wait_for_success),
        )
    )
    seen = set()
    for _ in range(30):
        emulator.clock.advance(10)
        seen |= {n.state async for n in batch_client.list_nodes("boot")}
    nodes = [n async for n in batch_client.list_nodes("boot")]
    final = sorted(str(n.state.value) for n in nodes)
    if wait_for_success:
        assert m.BatchNodeState.WAITING_FOR_START_TASK in seen
        assert final == ["idle", "starttaskfailed"]
        failed = next(n for n in nodes if n.state == m.BatchNodeState.START_TASK_FAILED)
        assert failed.start_task_info.result == m.BatchTaskExecutionResult.FAILURE
    else:
        assert final == ["idle", "idle"]
    assert {m.BatchNodeState.CREATING, m.BatchNodeState.STARTING} <= seen
