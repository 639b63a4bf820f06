"""Metric families from passes, cycle events and SDK requests; bounded labels."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from reconciler.azure.clients import AzureClients
from reconciler.daemon.metrics import IDLE_PHASE, NODE_STATES, Metrics, classify_request
from reconciler.emulator import Emulator
from reconciler.engine.cycle import CycleEvent
from reconciler.engine.executor import Engine
from reconciler.engine.reconcile import reconcile_once
from reconciler.engine.wait import Pacing
from reconciler.plan.actions import PoolState
from reconciler.spec.config import Config

ACCOUNT = "demo"
SCALE = 600.0
IMAGE = {
    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator({ACCOUNT: None}, time_scale=SCALE) as emulator:
        yield emulator


def make_config(emu: Emulator, pools: dict[str, int]) -> Config:
    return Config.model_validate(
        {
            "accounts": {
                ACCOUNT: {
                    "batch_url": emu.batch_url(ACCOUNT),
                    "auth": {"method": "shared_key", "key": emu.account_key(ACCOUNT)},
                }
            },
            "pools": {
                pool_id: {
                    "account": ACCOUNT,
                    "vm_size": "standard_d2s_v3",
                    "virtual_machine_configuration": copy.deepcopy(IMAGE),
                    "target_dedicated_nodes": nodes,
                }
                for pool_id, nodes in pools.items()
            },
        }
    )


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "https://acct.westeurope.batch.azure.com/pools?api-version=x", ("batch", "GET pools")),
        ("GET", "http://127.0.0.1:8777/demo/pools/p-1", ("batch", "GET pools/{id}")),
        ("POST", "http://127.0.0.1:8777/demo/pools/p-1/resize", ("batch", "POST pools/{id}/resize")),
        ("GET", "http://127.0.0.1:8777/demo/nodecounts", ("batch", "GET nodecounts")),
        (
            "PUT",
            "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.Batch"
            "/batchAccounts/acct/pools/p1?api-version=2024-07-01",
            ("batch_management", "PUT batchAccounts/pools"),
        ),
        (
            "GET",
            "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute"
            "/virtualMachines/vm-7",
            ("compute", "GET virtualMachines"),
        ),
        ("GET", "https://login.example/tenant/oauth2/v2.0/token", ("other", "GET")),
    ],
)
def test_requests_are_named_without_ids(method: str, url: str, expected: tuple[str, str]) -> None:
    assert classify_request(method, url) == expected


def test_cycle_events_drive_the_phase_gauge_and_phase_durations() -> None:
    metrics = Metrics()

    def phase(name: str, previous: str | None, seconds: float) -> CycleEvent:
        return CycleEvent("phase", ACCOUNT, "p1", name, previous=previous, seconds=seconds)

    metrics.observe_cycle(phase("draining", None, 0.0))
    assert value(metrics, "reconciler_pool_refresh_phase", pool="p1", phase="draining") == 1
    metrics.observe_cycle(phase("deleting", "draining", 42.0))
    assert value(metrics, "reconciler_pool_refresh_phase", pool="p1", phase="draining") is None
    assert value(metrics, "reconciler_pool_refresh_phase", pool="p1", phase="deleting") == 1
    assert value(metrics, "reconciler_refresh_duration_seconds_sum", phase="draining") == 42.0
    metrics.observe_cycle(phase("done", "deleting", 7.0))
    assert value(metrics, "reconciler_pool_refresh_phase", pool="p1", phase=IDLE_PHASE) == 1
    assert value(metrics, "reconciler_refresh_duration_seconds_count", phase="deleting") == 1
    metrics.observe_cycle(CycleEvent("outcome", ACCOUNT, "p1", "done", seconds=49.0))
    assert metrics.phases() == {"p1": IDLE_PHASE}


async def test_a_pass_sets_pool_gauges_from_the_snapshot_and_drops_gone_pools(emu: Emulator) -> None:
    metrics = Metrics()
    config = make_config(emu, {"p1": 2, "p2": 1})
    options = {"retry_total": 0, "per_retry_policies": [metrics.policy()]}
    async with AzureClients(config, caller="metrics-test", client_options=options) as clients:
        engine = Engine(
            clients, pacing=Pacing(min_interval=10.0, time_scale=SCALE), observers=[metrics.observe_cycle]
        )
        first = await reconcile_once(config, clients, engine=engine)
        metrics.record_pass(first, 1.5, datetime.now(UTC))
        assert value(metrics, "reconciler_actions_total", action="create", result="done") == 2
        assert value(metrics, "reconciler_pools", status="missing") == 2

        second = await reconcile_once(config, clients, engine=engine)
        metrics.record_pass(second, 0.1, datetime.now(UTC))
        assert value(metrics, "reconciler_pools", status="in_sync") == 2
        assert value(metrics, "reconciler_pools", status="missing") == 0
        for status in PoolState:
            assert value(metrics, "reconciler_pools", status=status.value) is not None
        for pool_id, target in (("p1", 2), ("p2", 1)):
            sim = emu.batch.account(ACCOUNT).pools[pool_id]
            for state in NODE_STATES:
                expected = sum(1 for n in sim.nodes.values() if n.state.casefold() == state.casefold())
                assert (
                    value(metrics, "reconciler_pool_nodes", pool=pool_id, account=ACCOUNT, state=state)
                    == expected
                )
            labels = {"pool": pool_id, "account": ACCOUNT}
            assert value(metrics, "reconciler_pool_target_nodes", **labels, priority="dedicated") == target
            assert value(metrics, "reconciler_pool_target_nodes", **labels, priority="low_priority") == 0
            assert value(metrics, "reconciler_pool_refresh_phase", pool=pool_id, phase=IDLE_PHASE) == 1
            created = second.snapshot.pool(ACCOUNT, pool_id)
            assert created is not None
            assert created.creation_time is not None
            stamp = value(metrics, "reconciler_pool_last_refresh_timestamp_seconds", pool=pool_id)
            assert stamp == created.creation_time.timestamp()
        assert value(metrics, "reconciler_reconcile_runs_total", result="success") == 2
        assert value(metrics, "reconciler_reconcile_duration_seconds_count") == 2

        await clients.batch(ACCOUNT).begin_delete_pool("p2")
        emu.clock.advance(3600)
        smaller = make_config(emu, {"p1": 2})
        third = await reconcile_once(smaller, clients, engine=engine)
        metrics.record_pass(third, 0.1, datetime.now(UTC))
        assert (
            value(metrics, "reconciler_pool_target_nodes", pool="p2", account=ACCOUNT, priority="dedicated")
            is None
        )
        assert value(metrics, "reconciler_pool_refresh_phase", pool="p2", phase=IDLE_PHASE) is None
        assert value(metrics, "reconciler_pools", status="in_sync") == 1

        listed = value(
            metrics, "reconciler_azure_requests_total", service="batch", operation="GET pools", status="200"
        )
        assert listed == 3
        emu.faults.add(
            operation="batch.Pools_ListPools", status=429, code="TooManyRequests", retry_after=0, count=1
        )
        failed = await reconcile_once(smaller, clients, engine=engine)
        assert failed.snapshot.errors
        metrics.record_pass(failed, 0.1, datetime.now(UTC))
    assert value(metrics, "reconciler_azure_throttled_total") == 1
    assert (
        value(
            metrics, "reconciler_azure_requests_total", service="batch", operation="GET pools", status="429"
        )
        == 1
    )
    assert value(metrics, "reconciler_reconcile_runs_total", result="failure") == 1
    assert (value(metrics, "reconciler_azure_request_duration_seconds_count", service="batch") or 0) >= 6


def test_the_build_and_reload_families_exist_before_anything_happens() -> None:
    metrics = Metrics(version="9.9.9")
    assert value(metrics, "reconciler_build_info", version="9.9.9") == 1
    assert value(metrics, "reconciler_config_reloads_total", result="failure") == 0
    metrics.config_reload(applied=False)
    assert value(metrics, "reconciler_config_last_reload_success") == 0
    metrics.config_reload(applied=True)
    assert value(metrics, "reconciler_config_last_reload_success") == 1
    metrics.job_event("reconcile", "missed")
    assert value(metrics, "reconciler_scheduler_job_events_total", job="reconcile", event="missed") == 1
