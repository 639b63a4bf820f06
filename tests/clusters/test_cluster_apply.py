"""A declared cluster is created as declared, through the real SDK clients against the emulator's ARM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from cluster_env import RG, RecordedBodies, cluster_spec, config_of

from reconciler.azure.clusters import observe_clusters
from reconciler.emulator import Emulator
from reconciler.engine.clusters import ClusterEngine, figures
from reconciler.plan.clusters import ClusterState, CreateScheduler, CreateWorkers, plan_clusters


async def test_apply_creates_scheduler_and_workers_then_plan_is_in_sync(
    emu: Emulator,
    network: Any,
    compute: Any,
    subnet_id: str,
    recorder: RecordedBodies,
    engine_for: Callable[..., ClusterEngine],
) -> None:
    config = config_of(emu, {"analytics": cluster_spec()})
    engine = engine_for(config)

    first = await engine.reconcile(config)

    (plan,) = first.plans
    assert plan.state is ClusterState.missing
    assert [type(s) for s in plan.steps] == [CreateScheduler, CreateWorkers]
    assert first.ok, [o for r in first.results for o in r.outcomes if not o.ok]
    vms = {vm.name: vm async for vm in compute.virtual_machines.list(RG)}
    assert sorted(vms) == [
        "analytics-dask-scheduler",
        "analytics-dask-worker-0000",
        "analytics-dask-worker-0001",
        "analytics-dask-worker-0002",
    ]
    scheduler = vms["analytics-dask-scheduler"]
    assert scheduler.tags["reconciler.managed-by"] == "reconciler"
    assert scheduler.tags["reconciler.cluster"] == "analytics"
    assert scheduler.tags["reconciler.role"] == "scheduler"
    assert len(scheduler.tags["reconciler.spec-hash"]) == 64
    assert scheduler.hardware_profile.vm_size == "Standard_DS1_v2"
    assert scheduler.storage_profile.os_disk.disk_size_gb == 50
    nics = {nic.name: nic async for nic in network.network_interfaces.list(RG)}
    sched_nic = nics["analytics-dask-scheduler-nic"]
    scheduler_ip = sched_nic.ip_configurations[0].private_ip_address
    assert sched_nic.ip_configurations[0].subnet.id.lower() == subnet_id.lower()
    assert sched_nic.network_security_group.id.lower().endswith("/networksecuritygroups/dask-nsg")
    assert sched_nic.ip_configurations[0].public_ip_address.id.endswith("analytics-dask-scheduler-ip")
    pip = await network.public_ip_addresses.get(RG, "analytics-dask-scheduler-ip")
    assert pip.ip_address
    assert pip.tags["reconciler.cluster"] == "analytics"
    for index in range(3):
        name = f"analytics-dask-worker-{index:04d}"
        worker = vms[name]
        assert worker.tags["reconciler.role"] == "worker"
        assert worker.tags["reconciler.scheduler-ip"] == scheduler_ip
        nic = nics[f"{name}-nic"]
        assert nic.ip_configurations[0].public_ip_address is None
        assert nic.virtual_machine.id.lower() == worker.id.lower()
        disk = await compute.disks.get(RG, f"{name}-osdisk")
        assert disk.managed_by.lower() == worker.id.lower()
        assert disk.disk_size_gb == 50

        boot = yaml.safe_load(recorder.cloud_init(name))
        docker = boot["runcmd"][-2]
        assert docker[:3] == ["docker", "run", "--net=host"]
        assert docker[3:5] == ["-e", "EXTRA_PIP_PACKAGES=s3fs"]
        assert docker[docker.index("daskdev/dask:latest") + 1 :] == [
            "dask",
            "worker",
            f"tcp://{scheduler_ip}:8786",
            "--nthreads",
            "2",
        ]
        assert "apt-get install -y docker-ce docker-ce-cli containerd.io" in boot["runcmd"]
        assert boot["runcmd"][-1] == ["shutdown", "-h", "now"]
    boot = yaml.safe_load(recorder.cloud_init("analytics-dask-scheduler"))
    assert boot["runcmd"][-2][-2:] == ["dask", "scheduler"]
    assert "reconciler.target-workers" in scheduler.tags

    again = await engine.reconcile(config)
    (plan,) = again.plans
    assert plan.in_sync, plan.steps
    assert plan.state is ClusterState.in_sync
    shown = figures(plan)
    assert shown.workers["running"] == 3
    assert shown.target_workers == 3
    assert shown.scheduler_up is True
    assert again.results[0].outcomes == ()

    snapshot = await observe_clusters(engine.clients, config)
    assert plan_clusters(config, snapshot)[0].in_sync


async def test_observing_costs_the_same_calls_whatever_the_number_of_vms(
    emu: Emulator, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    async def observe_calls(workers: int) -> tuple[int, ClusterState]:
        config = config_of(emu, {"analytics": cluster_spec(n_workers=workers)})
        engine = engine_for(config)
        result = await engine.reconcile(config)
        assert result.ok
        before = emu.counters.total("arm.*", caller="cluster-test")
        snapshot = await observe_clusters(engine.clients, config)
        (plan,) = plan_clusters(config, snapshot)
        return emu.counters.total("arm.*", caller="cluster-test") - before, plan.state

    small, small_state = await observe_calls(1)
    large, large_state = await observe_calls(6)
    assert small_state is large_state is ClusterState.in_sync, "power states came from the status listing"
    assert small == large == 6, "a listing each of VMs, VM statuses, NICs, public IPs, disks; the vnet"
