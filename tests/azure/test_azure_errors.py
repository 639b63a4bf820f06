"""Classification of the exceptions the real SDK raises for what the emulator answers (or injects)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.batch import models
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import AzureError, ErrorKind, classify, retry_after_seconds
from reconciler.emulator import Emulator

POOL: dict[str, Any] = {
    "id": "p1",
    "vmSize": "standard_d2s_v3",
    "virtualMachineConfiguration": {
        "imageReference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
    },
    "targetDedicatedNodes": 0,
}


async def failure(call: Any) -> AzureError:
    with pytest.raises(Exception) as caught:
        await call
    return classify(caught.value)


async def test_429_is_throttled_with_the_wait_the_service_asked_for(
    emu: Emulator, clients: AzureClients
) -> None:
    emu.faults.add(operation="batch.Pools_GetPool", status=429, retry_after=7, count=1)
    error = await failure(clients.batch("alpha").get_pool("p1"))
    assert error.kind is ErrorKind.THROTTLED
    assert error.retry_after == 7
    assert error.status == 429
    assert error.code == "TooManyRequests"


async def test_503_with_retry_after_is_throttled_without_it_transient(
    emu: Emulator, clients: AzureClients
) -> None:
    emu.faults.add(operation="batch.Pools_GetPool", status=503, retry_after=2.5, count=1)
    throttled = await failure(clients.batch("alpha").get_pool("p1"))
    emu.faults.add(operation="batch.Pools_GetPool", status=503, count=1)
    busy = await failure(clients.batch("alpha").get_pool("p1"))
    emu.faults.add(operation="batch.Pools_GetPool", status=500, count=1)
    broken = await failure(clients.batch("alpha").get_pool("p1"))
    assert (throttled.kind, throttled.retry_after) == (ErrorKind.THROTTLED, 2.5)
    assert (busy.kind, busy.retry_after, busy.code) == (ErrorKind.TRANSIENT, None, "ServerBusy")
    assert (broken.kind, broken.status) == (ErrorKind.TRANSIENT, 500)


async def test_deleting_a_pool_being_deleted_is_a_state(emu: Emulator, clients: AzureClients) -> None:
    client = clients.batch("alpha")
    await client.create_pool(models.BatchPoolCreateOptions(POOL))
    await client.begin_delete_pool("p1")
    error = await failure(client.begin_delete_pool("p1"))
    assert error.kind is ErrorKind.STATE
    assert error.code == "PoolBeingDeleted"
    assert error.status == 409
    assert "\n" not in error.describe()
    assert error.describe().startswith("PoolBeingDeleted: ")
    assert "RequestId" not in error.describe()


async def test_injected_409_pool_being_resized_is_a_state(emu: Emulator, clients: AzureClients) -> None:
    emu.faults.add(operation="batch.Pools_ResizePool", status=409, code="PoolBeingResized", count=1)
    client = clients.batch("alpha")
    await client.create_pool(models.BatchPoolCreateOptions(POOL))
    resize = models.BatchPoolResizeOptions({"targetDedicatedNodes": 1})
    error = await failure(client.begin_resize_pool("p1", resize))
    assert (error.kind, error.code) == (ErrorKind.STATE, "PoolBeingResized")


async def test_connection_reset_is_transient(emu: Emulator, clients: AzureClients) -> None:
    # aiohttp itself retries an idempotent request once on a dropped connection: drop both attempts.
    emu.faults.add(operation="batch.Pools_GetPool", kind="reset", count=2)
    with pytest.raises((ServiceRequestError, ServiceResponseError)) as caught:
        await clients.batch("alpha").get_pool("p1")
    error = classify(caught.value)
    assert error.kind is ErrorKind.TRANSIENT
    assert error.status is None
    assert error.describe().startswith(f"{type(caught.value).__name__}: connection failed")


async def test_service_answers_are_classified(emu: Emulator, clients: AzureClients) -> None:
    client = clients.batch("alpha")
    missing = await failure(client.get_pool("nope"))
    too_short = await failure(
        client.create_pool(models.BatchPoolCreateOptions({**POOL, "resizeTimeout": "PT1M"}))
    )
    await client.create_pool(models.BatchPoolCreateOptions(POOL))
    stale = await failure(
        client.update_pool(
            "p1",
            models.BatchPoolUpdateOptions({"metadata": [{"name": "a", "value": "b"}]}),
            etag='"0x8D0000000000000"',
            match_condition=MatchConditions.IfNotModified,
        )
    )
    exists = await failure(client.create_pool(models.BatchPoolCreateOptions(POOL)))
    assert (missing.kind, missing.status) == (ErrorKind.NOT_FOUND, 404)
    assert (too_short.kind, too_short.status) == (ErrorKind.INVALID, 400)
    assert too_short.message
    assert (stale.kind, stale.status) == (ErrorKind.PRECONDITION, 412)
    assert (exists.kind, exists.code) == (ErrorKind.STATE, "PoolExists")


async def test_quota_codes_are_quota(emu: Emulator, clients: AzureClients) -> None:
    emu.faults.add(operation="batch.Pools_CreatePool", status=409, code="PoolQuotaReached", count=1)
    error = await failure(clients.batch("alpha").create_pool(models.BatchPoolCreateOptions(POOL)))
    assert (error.kind, error.code) == (ErrorKind.QUOTA, "PoolQuotaReached")


async def test_a_wrong_key_is_auth_and_its_description_holds_no_secret(
    emu: Emulator, make_config: Any
) -> None:
    wrong_key = "d3Jvbmcta2V5LXRoYXQtbXVzdC1ub3QtbGVhaw=="
    config = make_config(alpha={"method": "shared_key", "key": wrong_key})
    async with AzureClients(config, client_options={"retry_total": 0}) as clients:
        with pytest.raises(HttpResponseError) as caught:
            await clients.batch("alpha").get_pool("p1")
    error = classify(caught.value)
    assert (error.kind, error.status) == (ErrorKind.AUTH, 403)
    assert wrong_key not in repr(error)
    assert "SharedKey" not in error.describe()


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after_seconds({"x-ms-retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": "12"}) == 12
    dated = {"Retry-After": "Sun, 22 Nov 2026 00:00:30 GMT", "Date": "Sun, 22 Nov 2026 00:00:00 GMT"}
    assert retry_after_seconds(dated) == 30
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_anything_else_is_other_and_named_by_type() -> None:
    error = classify(KeyError("secret-value"))
    assert error.kind is ErrorKind.OTHER
    assert "secret-value" not in error.describe()


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "AuthenticationFailed", ErrorKind.AUTH),
        (403, "InsufficientAccountPermissions", ErrorKind.AUTH),
        (404, "PoolNotFound", ErrorKind.NOT_FOUND),
        (409, "AccountCoreQuotaReached", ErrorKind.QUOTA),
        (409, "SomethingNew", ErrorKind.OTHER),
        (412, "ConditionNotMet", ErrorKind.PRECONDITION),
        (400, "InvalidPropertyValue", ErrorKind.INVALID),
        (502, "BadGateway", ErrorKind.TRANSIENT),
    ],
)
async def test_injected_answers_are_classified_by_status_and_code(
    emu: Emulator, clients: AzureClients, status: int, code: str, kind: ErrorKind
) -> None:
    emu.faults.add(operation="batch.Pools_ListPools", status=status, code=code, message="Told so.", count=1)
    error = await failure(clients.batch("alpha").list_pools().__anext__())
    assert (error.kind, error.status, error.code) == (kind, status, code)
    assert error.describe() == f"{code}: Told so."
