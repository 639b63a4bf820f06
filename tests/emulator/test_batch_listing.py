"""Listing through the aio SDK: `maxresults` paging by `odata.nextLink`, `$filter`, `$select`, counts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError

from reconciler.emulator import Emulator

IMAGE = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher="canonical", offer="ubuntu-24_04-lts", sku="server"),
    node_agent_sku_id="batch.node.ubuntu 24.04",
)


def new_pool(pool_id: str, dedicated: int = 0) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=IMAGE,
        target_dedicated_nodes=dedicated,
    )


def code_of(error: HttpResponseError) -> str:
    assert error.error is not None
    return str(error.error.code)


async def test_paging_follows_next_link(emulator: Emulator, batch_client: Any) -> None:
    ids = [f"page-{i:02d}" for i in range(25)]
    for pool_id in reversed(ids):
        await batch_client.create_pool(new_pool(pool_id))
    emulator.counters.reset()
    seen = [p.id async for p in batch_client.list_pools(max_results=10)]
    assert seen == ids
    assert emulator.counters.total(operation="batch.Pools_ListPools", status=200) == 3


async def test_filter_and_select(emulator: Emulator, batch_client: Any) -> None:
    for pool_id in ("alpha-1", "alpha-2", "beta-1", "beta-2"):
        await batch_client.create_pool(new_pool(pool_id, 1 if pool_id.endswith("1") else 0))
    await batch_client.begin_delete_pool("beta-2")

    async def ids(flt: str, **kw: Any) -> list[str]:
        return [p.id async for p in batch_client.list_pools(filter=flt, **kw)]

    assert await ids("startswith(id,'alpha')") == ["alpha-1", "alpha-2"]
    assert await ids("id eq 'beta-1'") == ["beta-1"]
    assert await ids("state eq 'deleting'") == ["beta-2"]
    assert await ids("startswith(id,'beta') and state eq 'active'") == ["beta-1"]
    assert await ids("id eq 'alpha-2' or (allocationState eq 'resizing' and startswith(id,'b'))") == [
        "alpha-2",
        "beta-1",
    ]
    assert await ids("startswith(id,'alpha')", max_results=1) == ["alpha-1", "alpha-2"]

    selected = [p async for p in batch_client.list_pools(filter="id eq 'alpha-1'", select=["id", "state"])]
    assert selected[0].id == "alpha-1"
    assert selected[0].state == m.BatchPoolState.ACTIVE
    assert selected[0].vm_size is None
    one = await batch_client.get_pool("alpha-1", select=["id", "targetDedicatedNodes"])
    assert (one.target_dedicated_nodes, one.allocation_state) == (1, None)

    with pytest.raises(HttpResponseError) as bad:
        await ids("id like 'a%'")
    assert (bad.value.status_code, code_of(bad.value)) == (400, "InvalidQueryParameterValue")


async def test_node_counts_and_node_filter(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(new_pool("counted", 3))
    emulator.clock.advance(100)
    counts = [c async for c in batch_client.list_pool_node_counts()]
    assert [c.pool_id for c in counts] == ["counted"]
    assert counts[0].dedicated.starting == 3
    assert counts[0].dedicated.total == 3
    assert counts[0].low_priority.total == 0
    emulator.clock.advance(600)
    counts = [c async for c in batch_client.list_pool_node_counts()]
    assert counts[0].dedicated.idle == 3

    emulator.batch.occupy_nodes("demo", "counted", tasks=1, seconds=600)
    running = [n.id async for n in batch_client.list_nodes("counted", filter="state eq 'running'")]
    assert len(running) == 1
    node = await batch_client.get_node("counted", running[0])
    assert node.recent_tasks[0].task_state == m.BatchTaskState.RUNNING


async def test_list_stays_fast_with_many_pools(emulator: Emulator, batch_client: Any) -> None:
    for i in range(3000):
        emulator.batch.create_pool("demo", {"id": f"bulk-{i:05d}", "vmSize": "standard_d2s_v3"})
    started = time.perf_counter()
    seen = [p.id async for p in batch_client.list_pools(select=["id"])]
    elapsed = time.perf_counter() - started
    assert len(seen) == 3000
    assert seen == sorted(seen)
    assert elapsed < 10.0
