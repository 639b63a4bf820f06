"""Scaling, rolling spec changes, a lost scheduler, deadlines, orphans, pruning and the health probe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cluster_env import LOCATION, RG, cluster_spec, config_of

from reconciler.emulator import Emulator
from reconciler.engine.clusters import ClusterEngine, ClustersPass, figures
from reconciler.plan.clusters import (
    ClusterState,
    CreateScheduler,
    CreateWorkers,
    DeleteVm,
    Reason,
    describe,
    status_line,
)

W = "analytics-dask-worker-{:04d}"
SCHEDULER = "analytics-dask-scheduler"
SLOW = 300.0
"""A clock slow enough that an HTTP round trip is well under the simulated deadlines."""


async def vm_names(compute: Any) -> list[str]:
    return sorted([str(vm.name) async for vm in compute.virtual_machines.list(RG)])


async def tags_of(compute: Any) -> dict[str, dict[str, str]]:
    return {str(vm.name): dict(vm.tags) async for vm in compute.virtual_machines.list(RG)}


def failed(done: ClustersPass) -> list[Any]:
    return [o for r in done.results for o in r.outcomes if not o.ok]


async def test_scale_up_is_not_a_replacement_and_scale_down_removes_the_newest(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=2)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))

    bigger = config_of(emu, {"analytics": cluster_spec(n_workers=4)})
    grown = await engine.reconcile(bigger)
    assert grown.plans[0].replacements == {}
    assert grown.results[0].replacements == {}
    assert grown.results[0].created == (W.format(2), W.format(3))
    assert (await tags_of(compute))[SCHEDULER]["reconciler.target-workers"] == "4"
    assert (await engine.reconcile(bigger)).plans[0].in_sync

    smaller = config_of(emu, {"analytics": cluster_spec(n_workers=1)})
    shrunk = await engine.reconcile(smaller)
    removed = [s.name for s in shrunk.plans[0].steps if isinstance(s, DeleteVm)]
    assert set(removed[:2]) == {W.format(2), W.format(3)}
    assert removed[2] in (W.format(0), W.format(1))
    assert len(await vm_names(compute)) == 2
    assert shrunk.results[0].replacements == {}
    done = await engine.reconcile(smaller)
    assert done.plans[0].in_sync
    assert figures(done.plans[0]).target_workers == 1


async def test_a_spec_change_rolls_the_workers_then_the_scheduler(
    emu: Emulator, compute: Any, network: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    spec = cluster_spec(n_workers=3, rollout={"max_unavailable": 2})
    config = config_of(emu, {"analytics": spec})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))
    old = await tags_of(compute)

    changed = config_of(emu, {"analytics": {**spec, "vm_size": "Standard_D4s_v3"}})
    passes = []
    for _ in range(5):
        done = await engine.reconcile(changed)
        assert not failed(done)
        passes.append(done.plans[0])
        if done.plans[0].in_sync:
            break

    first, second, third, fourth = passes
    workers = {W.format(0), W.format(1), W.format(2)}
    rolled_first = {s.name for s in first.steps if isinstance(s, DeleteVm)}
    assert len(rolled_first) == 2
    assert rolled_first < workers
    assert first.replacements == {Reason.spec_changed: 2}
    assert not any(isinstance(s, CreateScheduler) for s in first.steps)
    assert {s.name for s in second.steps if isinstance(s, DeleteVm)} == workers - rolled_first
    assert not any(isinstance(s, CreateScheduler) for s in second.steps)
    assert [type(s) for s in third.steps][:2] == [DeleteVm, CreateScheduler]
    assert third.replacements == {Reason.spec_changed: 1}
    assert fourth.in_sync
    new = await tags_of(compute)
    assert all(new[n]["reconciler.spec-hash"] != old[SCHEDULER]["reconciler.spec-hash"] for n in new)
    scheduler = await compute.virtual_machines.get(RG, SCHEDULER)
    assert scheduler.hardware_profile.vm_size == "Standard_D4s_v3"
    assert sorted(new) == sorted([SCHEDULER, min(rolled_first), W.format(3), W.format(4)])


async def test_a_lost_scheduler_keeps_its_address_and_a_new_address_replaces_the_workers(
    emu: Emulator, compute: Any, network: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=2)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))
    nic = await network.network_interfaces.get(RG, f"{SCHEDULER}-nic")
    old_ip = nic.ip_configurations[0].private_ip_address

    await (await compute.virtual_machines.begin_delete(RG, SCHEDULER)).result()
    back = await engine.reconcile(config)
    assert back.plans[0].scheduler == "missing"
    assert back.results[0].replacements == {"missing": 1}
    assert not any(isinstance(s, DeleteVm) for s in back.plans[0].steps)
    assert (await engine.reconcile(config)).plans[0].in_sync

    await (await compute.virtual_machines.begin_delete(RG, SCHEDULER)).result()
    await (await network.network_interfaces.begin_delete(RG, f"{SCHEDULER}-nic")).result()
    squatter = {
        "location": LOCATION,
        "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}]},
    }
    taken = await (await network.network_interfaces.begin_create_or_update(RG, "squatter", squatter)).result()
    assert taken.ip_configurations[0].private_ip_address == old_ip

    recreated = await engine.reconcile(config)
    assert not failed(recreated)
    new_ip = (
        (await network.network_interfaces.get(RG, f"{SCHEDULER}-nic")).ip_configurations[0].private_ip_address
    )
    assert new_ip != old_ip
    moved = await engine.reconcile(config)
    assert moved.plans[0].workers == {"stale": 2}
    assert moved.results[0].replacements == {"scheduler_changed": 2}
    tags = await tags_of(compute)
    assert {tags[n]["reconciler.scheduler-ip"] for n in tags if n != SCHEDULER} == {new_ip}
    assert (await engine.reconcile(config)).plans[0].in_sync


async def test_a_create_past_its_deadline_is_reported_retried_and_finished_later(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    emu.clock.time_scale = SLOW
    config = config_of(emu, {"analytics": cluster_spec(n_workers=2)})
    hasty = engine_for(config, time_scale=SLOW, create_vm=timedelta(seconds=30), attempts=2)

    done = await asyncio.wait_for(hasty.reconcile(config), 60)

    (result,) = done.results
    assert not result.ok
    assert result.timeouts == 1
    scheduler = next(o for o in result.outcomes if o.step.startswith("create scheduler"))
    assert scheduler.timed_out
    assert "not provisioned within 30s" in scheduler.detail
    assert "gave up after 2 attempts" in scheduler.detail
    assert any(o.detail == "skipped: the scheduler was not created" for o in result.outcomes)
    assert await vm_names(compute) == []

    patient = engine_for(config, time_scale=SLOW)
    assert not failed(await patient.reconcile(config))
    assert await vm_names(compute) == [SCHEDULER, W.format(0), W.format(1)]


async def test_orphans_of_ours_are_deleted_and_counted_by_kind(
    emu: Emulator, compute: Any, network: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))
    ours = {"reconciler.managed-by": "reconciler", "reconciler.cluster": "analytics"}
    await (
        await network.public_ip_addresses.begin_create_or_update(
            RG, "analytics-dask-old-ip", {"location": LOCATION, "tags": ours}
        )
    ).result()
    nic = await (
        await network.network_interfaces.begin_create_or_update(
            RG,
            "lonely-nic",
            {
                "location": LOCATION,
                "properties": {
                    "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}]
                },
            },
        )
    ).result()
    vm = {
        "location": LOCATION,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_DS1_v2"},
            "storageProfile": {"osDisk": {"name": f"{W.format(7)}-osdisk", "createOption": "FromImage"}},
            "osProfile": {"computerName": "x", "adminUsername": "dask", "adminPassword": "x-Y1!x-Y1!"},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        },
    }
    await (await compute.virtual_machines.begin_create_or_update(RG, "someone-else", vm)).result()
    await (await compute.virtual_machines.begin_delete(RG, "someone-else")).result()
    assert (await compute.disks.get(RG, f"{W.format(7)}-osdisk")).managed_by is None

    stray = f"{W.format(7)}-osdisk"

    done = await engine.reconcile(config)

    assert done.results[0].orphans_deleted == {"public_ip": 1}
    assert done.plans[0].unowned == (
        f"disk {stray} (resource group {RG}): our name but not our tags, left alone",
    )
    assert "1 untagged disk(s) with our names, left alone" in status_line(done.plans[0])
    assert stray in [d.name async for d in compute.disks.list_by_resource_group(RG)]
    kept = await engine.reconcile(config)
    assert kept.plans[0].in_sync
    assert kept.plans[0].unowned
    assert stray in [d.name async for d in compute.disks.list_by_resource_group(RG)]

    await (await compute.disks.begin_update(RG, stray, {"tags": ours})).result()
    done = await engine.reconcile(config)

    assert done.results[0].orphans_deleted == {"disk": 1}
    assert figures(done.plans[0], done.results[0]).orphans_deleted == {"disk": 1}
    assert [d.name async for d in compute.disks.list_by_resource_group(RG)] == [
        f"{SCHEDULER}-osdisk",
        f"{W.format(0)}-osdisk",
    ]
    assert "lonely-nic" in [n.name async for n in network.network_interfaces.list(RG)]
    assert (await engine.reconcile(config)).plans[0].in_sync


async def test_os_disks_are_tagged_and_a_disk_left_untagged_by_a_crash_is_tagged_next_pass(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))
    disks = {d.name: d.tags async for d in compute.disks.list_by_resource_group(RG)}
    assert disks[f"{SCHEDULER}-osdisk"]["reconciler.role"] == "scheduler"
    assert disks[f"{W.format(0)}-osdisk"] == {
        "reconciler.managed-by": "reconciler",
        "reconciler.cluster": "analytics",
        "reconciler.role": "worker",
    }
    untagged = f"{W.format(0)}-osdisk"
    await (await compute.disks.begin_update(RG, untagged, {"tags": {}})).result()

    done = await engine.reconcile(config)

    assert [describe(s) for s in done.plans[0].steps] == [f"tag disk {untagged} as ours (worker)"]
    assert done.plans[0].unowned == ()
    assert not failed(done)
    assert (await compute.disks.get(RG, untagged)).tags["reconciler.cluster"] == "analytics"
    assert await vm_names(compute) == [SCHEDULER, W.format(0)]
    assert (await engine.reconcile(config)).plans[0].in_sync


async def test_a_cluster_dropped_from_the_config_is_deleted_only_with_prune(
    emu: Emulator, compute: Any, network: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=2)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))

    kept = await engine.reconcile(config_of(emu, {}))
    (plan,) = kept.plans
    assert plan.state is ClusterState.undeclared
    assert plan.steps == ()
    assert "safety.prune is off" in plan.held[0]
    assert len(await vm_names(compute)) == 3

    pruning = config_of(emu, {}, safety={"prune": True})
    pruned = await engine.reconcile(pruning)
    (plan,) = pruned.plans
    assert plan.state is ClusterState.pruning
    assert [s.name for s in plan.steps if isinstance(s, DeleteVm)] == [W.format(0), W.format(1), SCHEDULER]
    assert pruned.ok
    assert await vm_names(compute) == []
    assert [n async for n in network.network_interfaces.list(RG)] == []
    assert [p async for p in network.public_ip_addresses.list(RG)] == []
    assert [d async for d in compute.disks.list_by_resource_group(RG)] == []
    assert (await engine.reconcile(pruning)).plans == ()


async def test_the_health_probe_reports_the_scheduler_and_replaces_nothing(
    emu: Emulator, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = {"address": "127.0.0.1", "port": port, "timeout": "2s"}
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1, health_probe=probe)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))

    up = (await engine.reconcile(config)).plans[0]
    assert up.scheduler_reachable is True
    assert figures(up).scheduler_up is True
    server.close()
    await server.wait_closed()
    down = (await engine.reconcile(config)).plans[0]
    assert down.scheduler_reachable is False
    assert figures(down).scheduler_up is False
    assert down.steps == ()


async def test_a_suspended_cluster_is_left_alone(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1, suspend=True)})
    done = await engine_for(config).reconcile(config)
    assert done.plans[0].state is ClusterState.suspended
    assert not any(isinstance(s, CreateWorkers) for s in done.plans[0].steps)
    assert await vm_names(compute) == []


async def test_pruning_stops_at_max_deletions_per_run(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    both = config_of(emu, {"alpha": cluster_spec(n_workers=0), "beta": cluster_spec(n_workers=0)})
    engine = engine_for(both)
    assert not failed(await engine.reconcile(both))
    pruning = config_of(emu, {}, safety={"prune": True, "max_deletions_per_run": 1})

    first = await engine.reconcile(pruning)

    assert [p.state for p in first.plans] == [ClusterState.pruning, ClusterState.pruning]
    held = first.results[1]
    assert [o.detail for o in held.outcomes] == ["held: safety.max_deletions_per_run reached"]
    assert await vm_names(compute) == ["beta-dask-scheduler"]
    second = await engine.reconcile(pruning)
    assert second.ok
    assert await vm_names(compute) == []


async def test_a_vnet_that_cannot_be_read_stops_the_cluster_with_one_clear_problem(
    emu: Emulator, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(vnet="no-such-vnet")})

    done = await engine_for(config).reconcile(config)

    (plan,) = done.plans
    assert plan.state is ClusterState.error
    assert plan.problem is not None
    assert plan.problem.startswith("not observed: ResourceNotFound")
    assert plan.steps == ()
    assert not done.ok
    assert await vm_names(compute) == []


async def test_public_ingress_switched_off_deletes_the_scheduler_ip_as_an_orphan(
    emu: Emulator, network: Any, compute: Any, subnet_id: str, engine_for: Callable[..., ClusterEngine]
) -> None:
    config = config_of(emu, {"analytics": cluster_spec(n_workers=1)})
    engine = engine_for(config)
    assert not failed(await engine.reconcile(config))
    assert [p.name async for p in network.public_ip_addresses.list(RG)] == ["analytics-dask-scheduler-ip"]

    private = config_of(emu, {"analytics": cluster_spec(n_workers=1, public_ingress=False)})
    deleted: dict[str, int] = {}
    for _ in range(4):
        done = await engine.reconcile(private)
        assert not failed(done)
        for kind, count in done.results[0].orphans_deleted.items():
            deleted[kind] = deleted.get(kind, 0) + count
        if done.plans[0].in_sync:
            break
    assert done.plans[0].in_sync
    assert deleted == {"public_ip": 1}
    assert [p.name async for p in network.public_ip_addresses.list(RG)] == []
    nic = await network.network_interfaces.get(RG, f"{SCHEDULER}-nic")
    assert nic.ip_configurations[0].public_ip_address is None
