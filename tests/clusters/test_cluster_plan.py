"""`plan_cluster` on hand-made snapshots: the state table, budgets and what a plan reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cluster_env import RG, cluster_spec

from reconciler.azure.clusters import ObservedCluster, ObservedDisk, ObservedNic, ObservedVm
from reconciler.azure.errors import AzureError, ErrorKind
from reconciler.plan.cluster_bodies import role_spec_hash
from reconciler.plan.clusters import (
    ClusterState,
    CreateScheduler,
    CreateWorkers,
    DeleteResource,
    DeleteVm,
    Reason,
    SetTargetWorkers,
    TagDisk,
    WorkerState,
    describe,
    plan_cluster,
    status_line,
    summary,
)
from reconciler.spec.cluster import Cluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)
IP = "10.5.1.4"
SUB = "/subscriptions/s/resourceGroups/rg-dask/providers"


def desired(**overrides: Any) -> Cluster:
    return Cluster.model_validate(cluster_spec(**overrides))


def vm(
    name: str,
    role: str,
    spec: Cluster,
    *,
    state: str = "Succeeded",
    power: str | None = "running",
    age: int = 0,
    **tags: str,
) -> ObservedVm:
    all_tags = {
        "reconciler.managed-by": "reconciler",
        "reconciler.cluster": "c1",
        "reconciler.role": role,
        "reconciler.spec-hash": role_spec_hash(spec, role),  # type: ignore[arg-type]
        **(
            {"reconciler.scheduler-ip": IP}
            if role == "worker"
            else {"reconciler.target-workers": str(spec.n_workers)}
        ),
    }
    all_tags.update(tags)
    return ObservedVm(
        name=name,
        id=f"{SUB}/Microsoft.Compute/virtualMachines/{name}",
        resource_group=RG,
        tags=all_tags,
        provisioning_state=state,
        power_state=power,
        created_at=T0 + timedelta(minutes=age),
    )


def nic(name: str, attached: bool = True, ip: str = IP) -> ObservedNic:
    vm_name = name.removesuffix("-nic")
    return ObservedNic(
        name=name,
        id=f"{SUB}/Microsoft.Network/networkInterfaces/{name}",
        resource_group=RG,
        tags={"reconciler.managed-by": "reconciler", "reconciler.cluster": "c1"},
        private_ip=ip,
        vm_id=f"{SUB}/Microsoft.Compute/virtualMachines/{vm_name}" if attached else None,
    )


def cluster(
    spec: Cluster,
    *workers: ObservedVm,
    scheduler: ObservedVm | None = None,
    nics: tuple[ObservedNic, ...] = (),
) -> ObservedCluster:
    sched = scheduler if scheduler is not None else vm("c1-dask-scheduler", "scheduler", spec)
    return ObservedCluster(
        name="c1",
        vms=(sched, *workers),
        nics=(nic("c1-dask-scheduler-nic"), *nics),
        subnet_id=f"{SUB}/Microsoft.Network/virtualNetworks/v/subnets/s",
    )


def workers(spec: Cluster, count: int, **kwargs: Any) -> list[ObservedVm]:
    return [vm(f"c1-dask-worker-{i:04d}", "worker", spec, age=i, **kwargs) for i in range(count)]


def test_a_complete_cluster_is_in_sync() -> None:
    spec = desired(n_workers=2)
    plan = plan_cluster("c1", spec, cluster(spec, *workers(spec, 2)), prune=False)
    assert plan.in_sync
    assert plan.state is ClusterState.in_sync
    assert plan.workers == {WorkerState.running: 2}
    assert plan.scheduler_up


def test_a_stopped_scheduler_is_replaced_under_its_name_and_its_nic_kept() -> None:
    spec = desired(n_workers=1)
    plan = plan_cluster(
        "c1",
        spec,
        cluster(
            spec, *workers(spec, 1), scheduler=vm("c1-dask-scheduler", "scheduler", spec, power="stopped")
        ),
        prune=False,
    )
    assert plan.steps == (
        DeleteVm("c1-dask-scheduler", RG, "scheduler", "stopped"),
        CreateScheduler("stopped"),
    )
    assert plan.replacements == {Reason.stopped: 1}
    assert plan.state is ClusterState.degraded
    assert not plan.scheduler_up


def test_a_scheduler_being_deleted_is_waited_for() -> None:
    spec = desired(n_workers=1)
    plan = plan_cluster(
        "c1",
        spec,
        cluster(
            spec, *workers(spec, 1), scheduler=vm("c1-dask-scheduler", "scheduler", spec, state="Deleting")
        ),
        prune=False,
    )
    assert plan.steps == ()
    assert plan.scheduler == "deleting"
    assert not plan.in_sync
    assert plan.state is ClusterState.degraded


def test_rolling_budget_counts_workers_still_creating() -> None:
    old = desired(n_workers=4, rollout={"max_unavailable": 2})
    new = desired(n_workers=4, rollout={"max_unavailable": 2}, vm_size="Standard_D4s_v3")
    fleet = [
        *workers(old, 3),
        vm("c1-dask-worker-0003", "worker", new, state="Creating", power="starting", age=9),
    ]
    plan = plan_cluster("c1", new, cluster(new, *fleet), prune=False)
    rolled = [s for s in plan.steps if isinstance(s, DeleteVm)]
    assert [s.name for s in rolled] == ["c1-dask-worker-0000"]
    assert rolled[0].leftovers == (("nic", "c1-dask-worker-0000-nic"), ("disk", "c1-dask-worker-0000-osdisk"))
    assert plan.state is ClusterState.converging
    assert CreateWorkers(("c1-dask-worker-0004",), "replace") in plan.steps


def test_lost_workers_are_counted_against_the_recorded_target_only() -> None:
    spec = desired(n_workers=3)
    lost = plan_cluster("c1", spec, cluster(spec, *workers(spec, 2)), prune=False)
    assert lost.replacements == {Reason.missing: 1}
    assert lost.steps == (CreateWorkers(("c1-dask-worker-0002",), "replace"),)
    grown = desired(n_workers=5)
    scaled = plan_cluster("c1", grown, cluster(spec, *workers(spec, 3)), prune=False)
    assert scaled.replacements == {}
    assert SetTargetWorkers(5) in scaled.steps


def test_a_worker_nic_without_its_vm_is_an_orphan_and_its_index_is_not_reused() -> None:
    spec = desired(n_workers=2)
    observed = cluster(
        spec, *workers(spec, 1), nics=(nic("c1-dask-worker-0001-nic", attached=False, ip="10.5.1.9"),)
    )
    plan = plan_cluster("c1", spec, observed, prune=False)
    assert DeleteResource("nic", "c1-dask-worker-0001-nic", RG, "orphan") in plan.steps
    assert CreateWorkers(("c1-dask-worker-0002",), "replace") in plan.steps
    assert plan.orphans == {"nic": 1}
    assert "delete nic c1-dask-worker-0001-nic (orphan)" in summary(plan)["steps"]


def test_an_unobserved_cluster_changes_nothing() -> None:
    failed = ObservedCluster(name="c1", error=AzureError(ErrorKind.AUTH, "no token"))
    plan = plan_cluster("c1", desired(), failed, prune=True)
    assert plan.state is ClusterState.error
    assert plan.steps == ()
    assert plan.problem == "not observed: auth: no token"


def test_summary_and_describe() -> None:
    spec = desired(n_workers=1)
    plan = plan_cluster("c1", spec, ObservedCluster(name="c1", subnet_id="x"), prune=False)
    shown = summary(plan)
    assert shown["state"] == "missing"
    assert shown["steps"] == [
        "create scheduler (initial)",
        "create 1 worker(s) c1-dask-worker-0000 (initial)",
    ]
    assert shown["workers"] == {"target": 1, "healthy": 0, "by_state": {}}
    assert describe(SetTargetWorkers(3)) == "tag scheduler with target workers 3"


def test_status_line_names_scheduler_workers_and_evictions() -> None:
    spec = desired(n_workers=2, spot={"enabled": True, "eviction_policy": "Deallocate"})
    evicted = replace(vm("c1-dask-worker-0001", "worker", spec, power="deallocated", age=1), priority="Spot")
    plan = plan_cluster("c1", spec, cluster(spec, workers(spec, 1)[0], evicted), prune=False)
    assert status_line(plan) == ("c1: degraded: scheduler running 10.5.1.4; workers 1/2 healthy; 1 evicted")


def disk(name: str, *, owned: bool, attached_to: str | None = None) -> ObservedDisk:
    ours = {"reconciler.managed-by": "reconciler", "reconciler.cluster": "c1"}
    return ObservedDisk(
        name=name,
        id=f"{SUB}/Microsoft.Compute/disks/{name}",
        resource_group=RG,
        tags=ours if owned else {},
        managed_by=f"{SUB}/Microsoft.Compute/virtualMachines/{attached_to}" if attached_to else None,
    )


def test_disks_are_deleted_only_when_tagged_or_going_with_a_vm_of_ours() -> None:
    spec = desired(n_workers=1)
    (worker,) = workers(spec, 1)
    observed = replace(
        cluster(spec, worker),
        disks=(
            disk("c1-dask-scheduler-osdisk", owned=True, attached_to="c1-dask-scheduler"),
            disk("c1-dask-worker-0000-osdisk", owned=False, attached_to="c1-dask-worker-0000"),
            disk("c1-dask-worker-0004-osdisk", owned=False),
            disk("c1-dask-worker-0005-osdisk", owned=True),
        ),
    )

    plan = plan_cluster("c1", spec, observed, prune=False)

    assert TagDisk("c1-dask-worker-0000-osdisk", RG, "worker") in plan.steps
    assert [s.name for s in plan.steps if isinstance(s, DeleteResource)] == ["c1-dask-worker-0005-osdisk"]
    assert plan.unowned == (
        f"disk c1-dask-worker-0004-osdisk (resource group {RG}): our name but not our tags, left alone",
    )
    assert summary(plan)["unowned_disks"] == list(plan.unowned)

    pruned = plan_cluster("c1", None, observed, prune=True)
    deleted = [s.name for s in pruned.steps if isinstance(s, DeleteResource) and s.kind == "disk"]
    assert deleted == ["c1-dask-scheduler-osdisk", "c1-dask-worker-0000-osdisk", "c1-dask-worker-0005-osdisk"]
    assert pruned.unowned == plan.unowned

    only_untagged = plan_cluster(
        "c1", None, replace(observed, vms=(), nics=(), disks=observed.disks[2:3]), prune=True
    )
    assert (only_untagged.state, only_untagged.steps) == (ClusterState.in_sync, ())
    assert only_untagged.unowned == plan.unowned
