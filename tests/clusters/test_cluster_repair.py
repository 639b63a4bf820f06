"""Workers lost out of band, evicted or failed are replaced, and the replacements counted by reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from cluster_env import RG, cluster_spec, config_of

from reconciler.azure.clusters import nic_name, placement
from reconciler.emulator import Emulator
from reconciler.engine.clusters import ClusterEngine, ClustersPass, figures
from reconciler.plan.cluster_bodies import nic_body, vm_body
from reconciler.plan.clusters import ClusterState, Reason

W = "analytics-dask-worker-{:04d}"


async def worker_names(compute: Any) -> list[str]:
    return sorted([vm.name async for vm in compute.virtual_machines.list(RG) if "worker" in vm.name])


def failures(done: ClustersPass) -> list[Any]:
    return [o for r in done.results for o in r.outcomes if not o.ok]


async def test_lost_evicted_and_failed_workers_are_replaced_and_counted(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    spot = {"enabled": True, "eviction_policy": "Deallocate", "max_price": 0.05}
    config = config_of(emu, {"analytics": cluster_spec(spot=spot)})
    engine = engine_for(config)
    assert not failures(await engine.reconcile(config))
    worker = await compute.virtual_machines.get(RG, W.format(0))
    assert worker.priority == "Spot"
    assert worker.eviction_policy == "Deallocate"
    assert worker.billing_profile.max_price == 0.05
    scheduler = await compute.virtual_machines.get(RG, "analytics-dask-scheduler")
    assert scheduler.priority is None

    await (await compute.virtual_machines.begin_delete(RG, W.format(1))).result()
    emu.arm.evict(RG, W.format(2))
    emu.arm.fail_next_vm_create(name=W.format(1))

    repaired = await engine.reconcile(config)

    (plan,) = repaired.plans
    assert plan.state is ClusterState.degraded
    assert plan.workers == {"running": 1, "evicted": 1}
    assert plan.replacements == {Reason.missing: 1, Reason.evicted: 1}
    (result,) = repaired.results
    assert not failures(repaired)
    assert result.replacements == {"missing": 1, "evicted": 1}
    assert figures(plan, result).replacements == {"missing": 1, "evicted": 1}
    retried = next(o for o in result.outcomes if o.step == f"create worker {W.format(1)}")
    assert retried.attempts == 2
    assert await worker_names(compute) == [W.format(0), W.format(1), W.format(3)]
    assert (await emu.network_client().network_interfaces.get(RG, nic_name(W.format(1)))).virtual_machine

    # a worker whose create failed in an earlier run (a reconciler that crashed before retrying it)
    await (await compute.virtual_machines.begin_delete(RG, W.format(0))).result()
    await put_failed_worker(emu, compute, config, W.format(0), subnet_id)

    third = await engine.reconcile(config)

    (plan,) = third.plans
    assert plan.workers == {"running": 2, "failed": 1}
    assert third.results[0].replacements == {"failed": 1}
    assert not failures(third)
    assert await worker_names(compute) == [W.format(1), W.format(2), W.format(3)]
    final = await engine.reconcile(config)
    assert final.plans[0].in_sync
    assert final.plans[0].workers == {"running": 3}


async def put_failed_worker(emu: Emulator, compute: Any, config: Any, name: str, subnet_id: str) -> None:
    cluster = config.clusters["analytics"]
    where = placement(cluster, emu.ctx.subscription_id)
    network = emu.network_client(polling_interval=0)
    nic = await (
        await network.network_interfaces.begin_create_or_update(
            RG, nic_name(name), nic_body("analytics", cluster, "worker", where, subnet_id)
        )
    ).result()
    scheduler_nic = await network.network_interfaces.get(RG, nic_name("analytics-dask-scheduler"))
    ip = scheduler_nic.ip_configurations[0].private_ip_address
    body = vm_body("analytics", cluster, "worker", name, where, scheduler_ip=ip, admin_password="x-Y1!" * 3)
    emu.arm.fail_next_vm_create(name=name)
    with pytest.raises(HttpResponseError):
        await (await compute.virtual_machines.begin_create_or_update(RG, name, body)).result()
    assert (await compute.virtual_machines.get(RG, name)).provisioning_state == "Failed"
    assert nic.name == nic_name(name)


async def test_a_spot_worker_evicted_with_policy_delete_is_a_missing_worker(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=2, spot={"enabled": True})})
    engine = engine_for(config)
    assert not failures(await engine.reconcile(config))
    assert emu.arm.evict(RG, W.format(1)) is None

    repaired = await engine.reconcile(config)

    assert repaired.plans[0].replacements == {Reason.missing: 1}
    assert repaired.results[0].replacements == {"missing": 1}
    assert await worker_names(compute) == [W.format(0), W.format(1)]
    assert (await engine.reconcile(config)).plans[0].in_sync
