"""Injected faults reach callers as the exceptions the SDK raises against Azure; counters see every call."""

from __future__ import annotations

import ssl
import time
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from emulator_env import new_pool

from reconciler.emulator import Emulator
from reconciler.emulator.counters import RESET_STATUS, caller_of
from reconciler.emulator.faults import FaultInjector, FaultRule


async def test_429_with_retry_after_is_honoured_then_succeeds(
    emulator: Emulator, batch_client: Any, openapi_policy: Any
) -> None:
    emulator.faults.add(operation="batch.Pools_ListPools", status=429, retry_after=0.3, count=2)
    started = time.monotonic()
    pools = [p async for p in batch_client.list_pools()]
    elapsed = time.monotonic() - started
    assert pools == []
    assert elapsed >= 0.6  # two Retry-After waits, as azure-core's RetryPolicy honours them
    assert emulator.counters.total(operation="batch.Pools_ListPools", status=429) == 2
    assert emulator.counters.total(operation="batch.Pools_ListPools", status=200) == 1
    assert openapi_policy.statuses["Pools_ListPools", 429] == 2  # injected errors match the service's schema


async def test_one_shot_409_pool_being_resized(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(new_pool("p1"))
    emulator.faults.add(
        operation="batch.Pools_DeletePool", status=409, code="PoolBeingResized", count=1, match={"pool": "p1"}
    )
    with pytest.raises(HttpResponseError) as raised:
        await (await batch_client.begin_delete_pool("p1")).result()
    assert raised.value.status_code == 409
    assert raised.value.error is not None
    assert raised.value.error.code == "PoolBeingResized"
    assert emulator.faults.rules() == []  # spent
    await batch_client.begin_delete_pool("p1")  # the next delete goes through


async def test_match_limits_a_fault_to_one_pool(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(new_pool("p1"))
    await batch_client.create_pool(new_pool("p2"))
    emulator.faults.add(operation="batch.Pools_GetPool", status=500, code="Boom", match={"pool": "p1"})
    assert (await batch_client.get_pool("p2")).id == "p2"
    with pytest.raises(HttpResponseError) as raised:
        await batch_client.get_pool("p1", retry_total=0)
    assert raised.value.status_code == 500
    assert raised.value.error is not None
    assert raised.value.error.code == "Boom"


@pytest.mark.parametrize("status", [500, 503])
async def test_transient_5xx_is_retried_by_the_sdk(
    emulator: Emulator, batch_client: Any, status: int
) -> None:
    emulator.faults.add(operation="batch.Pools_ListPools", status=status, retry_after=0, count=1)
    assert [p async for p in batch_client.list_pools()] == []
    assert emulator.counters.total(operation="batch.Pools_ListPools", status=status) == 1


@pytest.mark.parametrize("tls", [False, True])
async def test_reset_surfaces_as_a_connection_error(emulator: Emulator, tls: bool) -> None:
    emulator.faults.add(operation="batch.Pools_ListPools", kind="reset")
    async with emulator.batch_client(tls=tls, retry_total=0) as client:
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            [p async for p in client.list_pools()]
    assert emulator.counters.total(operation="batch.Pools_ListPools", status=RESET_STATUS) >= 1


async def test_one_reset_is_absorbed_by_the_sdk_retry(emulator: Emulator, batch_client: Any) -> None:
    emulator.faults.add(operation="batch.Pools_ListPools", kind="reset", count=1)
    assert [p async for p in batch_client.list_pools()] == []


async def test_latency_delays_the_answer(emulator: Emulator, batch_client: Any) -> None:
    emulator.faults.add(operation="batch.Pools_ListPools", kind="latency", latency_ms=250, jitter_ms=50)
    started = time.monotonic()
    assert [p async for p in batch_client.list_pools()] == []
    assert 0.25 <= time.monotonic() - started < 5


async def test_arm_faults_use_the_arm_error_format(emulator: Emulator) -> None:
    rule = emulator.faults.add(operation="arm.*", status=429, code="TooManyRequests", retry_after=7)
    assert rule.applies_to("arm.VirtualMachines_Get", {})
    headers = {"Authorization": "Bearer not-checked-before-the-fault"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{emulator.arm_url}/subscriptions/{emulator.ctx.subscription_id}/resourceGroups",
            headers=headers,
            ssl=ssl.create_default_context(cafile=str(emulator.ca_bundle)),
        ) as response,
    ):
        body = await response.json()
    if response.status == 404:
        pytest.fail("no ARM route serves resource groups; the fault could not be observed")
    assert response.status == 429
    assert response.headers["Retry-After"] == "7"
    assert body == {"error": {"code": "TooManyRequests", "message": body["error"]["message"]}}


async def test_admin_http_controls_faults(emulator: Emulator, batch_client: Any) -> None:
    async with aiohttp.ClientSession(base_url=emulator.http_url) as session:
        async with session.post(
            "/_emulator/faults",
            json={"operation": "batch.Pools_GetPool", "status": 404, "code": "PoolNotFound"},
        ) as created:
            assert created.status == 201
            rule = await created.json()
        async with session.get("/_emulator/faults") as listed:
            assert [r["id"] for r in await listed.json()] == [rule["id"]]
        with pytest.raises(HttpResponseError) as raised:
            await batch_client.get_pool("anything")
        assert raised.value.error is not None
        assert raised.value.error.code == "PoolNotFound"
        async with session.post("/_emulator/faults", json={"kind": "explode"}) as invalid:
            assert invalid.status == 400
            assert "kind" in (await invalid.json())["error"]["message"]
        async with session.delete(f"/_emulator/faults/{rule['id']}") as removed:
            assert removed.status == 204
    assert emulator.faults.rules() == []


async def test_counters_count_per_operation_and_caller(emulator: Emulator) -> None:
    async with (
        emulator.batch_client(headers={"x-ms-caller": "daemon-a"}) as daemon_a,
        emulator.batch_client(user_agent="reconciler-b/1.0") as daemon_b,
    ):
        for _ in range(3):
            [p async for p in daemon_a.list_pools()]
        await daemon_b.create_pool(new_pool("p1"))
        assert (await daemon_b.get_pool("p1")).id == "p1"
    counters = emulator.counters
    assert counters.total(operation="batch.Pools_ListPools", caller="daemon-a") == 3
    assert counters.total(operation="batch.Pools_ListPools", caller="reconciler-b/1.0") == 0
    assert counters.total(caller="reconciler-b/1.0") == 2
    assert counters.total(operation="batch.Pools_*") == 5
    async with aiohttp.ClientSession(base_url=emulator.http_url) as session:
        async with session.get("/_emulator/counters", params={"caller": "daemon-a"}) as response:
            assert (await response.json())["total"] == 3
        async with session.delete("/_emulator/counters") as reset:
            assert reset.status == 204
    assert counters.total(operation="batch.*") == 0


def test_caller_is_header_else_first_user_agent_token() -> None:
    assert caller_of({"x-ms-caller": "a", "User-Agent": "b/1 c/2"}) == "a"
    assert caller_of({"User-Agent": "b/1 c/2"}) == "b/1"
    assert caller_of({}) == "unknown"


def test_rate_count_and_validation() -> None:
    injector = FaultInjector(seed=7)
    injector.add(operation="batch.*", status=503, rate=0.25)
    fired = sum(injector.decide("batch.Pools_GetPool", {}) is not None for _ in range(2000))
    assert 350 < fired < 650
    assert injector.decide("emulator.Clock_Get", {}) is None  # admin stays reachable under "*"-ish rules
    injector.clear()
    injector.add(operation="*", status=500, count=2)
    assert [injector.decide("batch.Pools_GetPool", {}) is not None for _ in range(3)] == [True, True, False]
    for bad in (
        {"kind": "boom"},
        {"rate": 2},
        {"count": 0},
        {"status": 200},
        {"colour": "red"},
        {"match": "p1"},
    ):
        with pytest.raises(ValueError):
            FaultRule.from_json(bad)


async def test_counters_count_per_account() -> None:
    async with Emulator({"east": None, "west": None}) as emu:
        async with emu.batch_client("east") as east, emu.batch_client("west") as west:
            [p async for p in east.list_pools()]
            await west.create_pool(new_pool("w1"))
            [p async for p in west.list_pools()]
        assert emu.counters.total(account="east") == 1
        assert emu.counters.total(operation="batch.Pools_*", account="west") == 2
        assert emu.counters.total(account="north") == 0
