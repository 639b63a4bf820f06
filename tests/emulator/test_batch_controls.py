"""Bearer tokens over HTTPS, conditional reads, node removal, and the `/_emulator/batch` admin routes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from azure.batch import models as m
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError

from reconciler.emulator import Emulator

SETTLE = 600.0


def code_of(error: HttpResponseError) -> str:
    assert error.error is not None
    return str(error.error.code)


async def test_bearer_token_over_https(emulator: Emulator) -> None:
    async with emulator.batch_client(tls=True, auth="token") as client:
        await client.create_pool(m.BatchPoolCreateOptions(id="token-pool", vm_size="standard_d2s_v3"))
        assert (await client.get_pool("token-pool")).state == m.BatchPoolState.ACTIVE
    url = f"{emulator.batch_url(tls=True)}/pools?api-version=2025-06-01"
    async with aiohttp.ClientSession() as session:
        bad = {"Authorization": "Bearer not-a-token"}
        async with session.get(url, headers=bad, ssl=_ssl(emulator)) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "AuthenticationFailed"


def _ssl(emulator: Emulator) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(emulator.ca_bundle))


async def test_conditional_reads(emulator: Emulator) -> None:
    # A GET whose If-None-Match matches is a bodiless 304, which BatchService.json only covers as `default`,
    # so this client goes without the response-body validation policy.
    batch_client = emulator.batch_client()
    await batch_client.create_pool(m.BatchPoolCreateOptions(id="cond", vm_size="standard_d2s_v3"))
    pool = await batch_client.get_pool("cond")
    with pytest.raises(HttpResponseError) as unchanged:
        await batch_client.get_pool("cond", etag=pool.etag, match_condition=MatchConditions.IfModified)
    assert unchanged.value.status_code == 304
    assert await batch_client.pool_exists(
        "cond", etag=pool.etag, match_condition=MatchConditions.IfNotModified
    )
    with pytest.raises(ResourceModifiedError) as stale:
        await batch_client.update_pool(
            "cond",
            m.BatchPoolUpdateOptions(display_name="x"),
            etag="0x8DNOTTHEONE",
            match_condition=MatchConditions.IfNotModified,
        )
    assert code_of(stale.value) == "ConditionNotMet"
    emulator.clock.advance(5)
    with pytest.raises(HttpResponseError) as modified:
        await batch_client.begin_delete_pool(
            "cond", if_unmodified_since=pool.last_modified.replace(year=2000)
        )
    assert modified.value.status_code == 412


async def test_remove_nodes_shrinks_target(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(
        m.BatchPoolCreateOptions(id="trim", vm_size="standard_d2s_v3", target_dedicated_nodes=3)
    )
    emulator.clock.advance(SETTLE)
    victim, *_ = [n.id async for n in batch_client.list_nodes("trim")]
    await batch_client.begin_remove_nodes("trim", m.BatchNodeRemoveOptions(node_ids=[victim]))
    pool = await batch_client.get_pool("trim")
    assert (pool.allocation_state, pool.target_dedicated_nodes) == (m.AllocationState.RESIZING, 2)
    assert (await batch_client.get_node("trim", victim)).state == m.BatchNodeState.LEAVING_POOL
    emulator.clock.advance(SETTLE)
    assert victim not in {n.id async for n in batch_client.list_nodes("trim")}
    assert (await batch_client.get_pool("trim")).current_dedicated_nodes == 2


async def test_admin_routes(emulator: Emulator, batch_client: Any) -> None:
    admin = f"{emulator.admin_url}/batch"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{admin}/demo/quotas", json={"dedicatedCores": 4}) as response:
            assert (await response.json())["dedicatedCores"] == 4
        async with session.post(f"{admin}/demo/pools/adm/fail-start-tasks", json={"count": 1}) as response:
            assert response.status == 200
        await batch_client.create_pool(
            m.BatchPoolCreateOptions(
                id="adm",
                vm_size="standard_d2s_v3",
                target_dedicated_nodes=3,
                start_task=m.BatchStartTask(command_line="/bin/true", wait_for_success=True),
            )
        )
        emulator.clock.advance(SETTLE)
        pool = await batch_client.get_pool("adm")
        assert pool.current_dedicated_nodes == 2
        assert pool.resize_errors[0].code == "AccountCoreQuotaReached"
        assert sorted([str(n.state.value) async for n in batch_client.list_nodes("adm")]) == [
            "idle",
            "starttaskfailed",
        ]
        async with session.post(
            f"{admin}/demo/pools/adm/occupy", json={"tasks": 2, "seconds": 60}
        ) as response:
            job_id = (await response.json())["jobId"]
        assert (await batch_client.get_job_task_counts(job_id)).task_counts.running == 1
        async with session.post(f"{admin}/timings", json={"creating": 5}) as response:
            assert (await response.json())["creating"] == 5
        async with session.post(f"{admin}/timings", json={"nonsense": 5}) as response:
            assert response.status == 400
        async with session.get(f"{admin}/state") as response:
            state = await response.json()
        [adm] = state["accounts"]["demo"]["pools"]
        assert adm["id"] == "adm"
        assert len(adm["nodes"]) == 2
        assert state["accounts"]["demo"]["quotas"]["dedicatedCores"] == 4
