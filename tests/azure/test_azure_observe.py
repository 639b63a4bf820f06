"""Observing accounts: what a snapshot holds, what it costs in calls, and how failures are reported."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.batch import models
from azure_env import CALLER, NO_RETRIES, MakeConfig, shared_key

from reconciler.azure import markers
from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import ErrorKind
from reconciler.azure.observe import observe, observe_account
from reconciler.emulator import Emulator

REQUESTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def pool_body(pool_id: str, nodes: int = 0, **metadata: str) -> dict[str, Any]:
    return {
        "id": pool_id,
        "vmSize": "standard_d2s_v3",
        "virtualMachineConfiguration": {
            "imageReference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
            "nodeAgentSKUId": "batch.node.ubuntu 22.04",
        },
        "targetDedicatedNodes": nodes,
        "metadata": [{"name": name, "value": value} for name, value in metadata.items()],
    }


def managed(pool_id: str, nodes: int = 0, extra: dict[str, str] | None = None) -> dict[str, Any]:
    marks = {
        markers.MANAGED_BY: markers.MANAGED_BY_VALUE,
        markers.SPEC_HASH: f"hash-{pool_id}",
        **(extra or {}),
    }
    return pool_body(pool_id, nodes, **marks)


async def add(emu: Emulator, account: str, body: dict[str, Any]) -> None:
    await emu.batch_client(account).create_pool(models.BatchPoolCreateOptions(body))


async def test_two_accounts_with_managed_and_unmanaged_pools(emu: Emulator, clients: AzureClients) -> None:
    await add(emu, "alpha", managed("m1", extra={markers.REFRESH_REQUESTED_AT: REQUESTED.isoformat()}))
    await add(emu, "alpha", pool_body("legacy", owner="someone"))
    await add(emu, "beta", managed("m2", nodes=1))
    before = emu.clock.now()
    snapshot = await observe(clients, clock=emu.clock.now)

    assert set(snapshot.accounts) == {"alpha", "beta"}
    assert snapshot.errors == {}
    alpha, beta = snapshot.accounts["alpha"], snapshot.accounts["beta"]
    assert set(alpha.managed) == {"m1"}
    assert set(alpha.unmanaged) == {"legacy"}
    assert set(beta.pools) == {"m2"}
    m1 = alpha.pools["m1"]
    assert (m1.account, m1.pool_id, m1.state, m1.allocation_state) == ("alpha", "m1", "active", "steady")
    assert m1.managed
    assert m1.spec_hash == "hash-m1"
    assert m1.refresh_requested_at == REQUESTED
    assert m1.creation_time is not None
    assert m1.creation_time > REQUESTED
    assert not m1.refresh_pending, "created after the request: the refresh is done"
    assert m1.etag
    legacy = alpha.pools["legacy"]
    assert not legacy.managed
    assert legacy.metadata == {"owner": "someone"}
    assert legacy.spec_hash is None
    m2 = snapshot.pool("beta", "M2")
    assert m2 is not None
    assert (m2.target_dedicated_nodes, m2.current_dedicated_nodes) == (1, 1)
    assert m2.dedicated_nodes.total == 1
    assert before <= alpha.observed_at <= snapshot.observed_at <= emu.clock.now()


async def test_one_pool_listing_and_one_node_count_listing_per_account(
    emu: Emulator, clients: AzureClients
) -> None:
    for index in range(25):
        await add(emu, "alpha", managed(f"p{index}"))
    await add(emu, "beta", managed("q"))
    emu.counters.reset()

    await observe(clients)
    assert emu.counters.total(caller=CALLER) == 4
    assert emu.counters.total("batch.Pools_ListPools", CALLER) == 2
    assert emu.counters.total("batch.Pools_ListPoolNodeCounts", CALLER) == 2

    emu.counters.reset()
    snapshot = await observe(clients, ["alpha"])
    assert len(snapshot.accounts["alpha"].pools) == 25
    assert emu.counters.total(caller=CALLER) == 2
    assert emu.counters.total("batch.Pools_ListPools", CALLER, 200) == 1
    assert emu.counters.total("batch.Pools_ListPoolNodeCounts", CALLER, 200) == 1


async def test_a_wrong_key_fails_that_account_only(emu: Emulator, make_config: MakeConfig) -> None:
    await add(emu, "alpha", managed("m1"))
    wrong = base64.b64encode(b"not the key of beta").decode()
    config = make_config(beta={"method": "shared_key", "key": wrong})
    async with AzureClients(config, caller=CALLER, client_options=NO_RETRIES) as clients:
        snapshot = await observe(clients)
    assert snapshot.accounts["alpha"].error is None
    assert set(snapshot.accounts["alpha"].pools) == {"m1"}
    beta = snapshot.accounts["beta"]
    assert beta.error is not None
    assert beta.error.kind is ErrorKind.AUTH
    assert beta.pools == {}
    assert set(snapshot.errors) == {"beta"}


async def test_throttled_and_unreachable_accounts_are_reported(
    emu: Emulator, make_config: MakeConfig
) -> None:
    emu.faults.add(operation="batch.Pools_ListPools", status=429, retry_after=30, match={"account": "beta"})
    gamma = {"batch_url": "http://127.0.0.1:9/gamma", "auth": shared_key(emu, "alpha")}
    config = make_config(extra={"gamma": gamma})
    async with AzureClients(config, caller=CALLER, client_options=NO_RETRIES) as clients:
        snapshot = await observe(clients)
    assert snapshot.accounts["alpha"].error is None
    throttled = snapshot.accounts["beta"].error
    assert throttled is not None
    assert (throttled.kind, throttled.retry_after) == (ErrorKind.THROTTLED, 30)
    unreachable = snapshot.accounts["gamma"].error
    assert unreachable is not None
    assert unreachable.kind is ErrorKind.TRANSIENT


async def test_a_slow_account_is_cut_off_by_its_timeout(emu: Emulator, clients: AzureClients) -> None:
    emu.faults.add(
        operation="batch.Pools_ListPools", kind="latency", latency_ms=5000, match={"account": "beta"}
    )
    snapshot = await observe(clients, account_timeout=0.2)
    assert snapshot.accounts["alpha"].error is None
    slow = snapshot.accounts["beta"].error
    assert slow is not None
    assert (slow.kind, slow.code) == (ErrorKind.TRANSIENT, "Timeout")


async def test_node_counts_by_state_and_resize_errors(emu: Emulator, clients: AzureClients) -> None:
    emu.batch.set_quotas("alpha", dedicated_cores=4)
    await add(emu, "alpha", managed("small", nodes=2))
    await add(emu, "alpha", managed("big", nodes=10))
    starting = await observe_account(clients, "alpha")
    assert starting.pools["small"].dedicated_nodes["creating"] == 2
    emu.clock.advance(3600)
    snapshot = await observe_account(clients, "alpha")
    small, big = snapshot.pools["small"], snapshot.pools["big"]
    assert small.steady
    assert small.dedicated_nodes["idle"] == 2
    assert small.dedicated_nodes.total == 2
    assert small.low_priority_nodes.total == 0
    assert small.resize_errors == ()
    assert big.steady
    assert big.current_dedicated_nodes < big.target_dedicated_nodes == 10
    assert [e.code for e in big.resize_errors] == ["AccountCoreQuotaReached"]


async def test_a_pending_refresh_is_seen_until_the_pool_is_recreated(
    emu: Emulator, clients: AzureClients
) -> None:
    later = emu.clock.now() + timedelta(hours=1)
    await add(emu, "alpha", managed("m1", extra={markers.REFRESH_REQUESTED_AT: later.isoformat()}))
    await add(emu, "alpha", managed("m2", extra={markers.REFRESH_REQUESTED_AT: "not a time"}))
    pools = (await observe_account(clients, "alpha")).pools
    assert pools["m1"].refresh_pending
    assert pools["m2"].refresh_requested_at is None
    assert not pools["m2"].refresh_pending


async def test_snapshots_are_immutable(emu: Emulator, clients: AzureClients) -> None:
    await add(emu, "alpha", managed("m1"))
    snapshot = await observe(clients)
    pool = snapshot.accounts["alpha"].pools["m1"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pool.state = "deleting"  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.accounts["alpha"].pools["x"] = pool  # type: ignore[index]
    with pytest.raises(TypeError):
        pool.metadata["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        pool.desired_view["vm_size"] = "other"  # type: ignore[index]
