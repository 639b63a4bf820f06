"""The refresh cycle against the emulator through the real SDK: drains, recreates, timeouts, quota."""

from __future__ import annotations

import asyncio
import contextlib
import io

from engine_env import ACCOUNT, IMAGE, SCALE, World, pool_spec

from reconciler.azure import markers, operations
from reconciler.commands.apply import command_logging
from reconciler.engine.cycle import Outcome
from reconciler.plan.hashing import spec_hash
from reconciler.plan.rules import desired_markers
from reconciler.spec.secrets import Secret


async def create(world: World, pool_id: str) -> None:
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, pool_id, world.config().pools[pool_id]).run()
    assert result.outcome is Outcome.DONE, result.detail


async def request(world: World, pool_id: str) -> None:
    async with world.clients() as clients:
        await operations.request_refresh(clients, ACCOUNT, pool_id, world.emu.clock.now())


async def test_create_builds_the_pool_with_markers_and_waits_for_its_nodes(world: World) -> None:
    world.pools["fresh"] = pool_spec()
    await create(world, "fresh")
    pool = world.sim_pool("fresh")
    assert pool.allocation_state == "steady"
    assert len(pool.nodes) == 2
    metadata = {m["name"]: m["value"] for m in pool.spec["metadata"]}
    assert metadata["team"] == "research"
    assert metadata[markers.SPEC_HASH] == spec_hash(world.config().pools["fresh"])
    assert metadata[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE


async def test_refresh_under_taskcompletion_waits_for_tasks_then_recreates(world: World) -> None:
    world.pools["work"] = pool_spec()
    await create(world, "work")
    job = await world.occupy("work", tasks=2, seconds=1800)
    await request(world, "work")
    requested = world.emu.clock.now()
    world.pools["work"] = pool_spec(vm_size="standard_d4s_v3")
    drained_at: list[float] = []

    def on_event(event: object) -> None:
        if getattr(event, "kind", "") == "phase" and getattr(event, "phase", "") == "deleting":
            drained_at.append(world.emu.clock.monotonic())

    async with world.clients() as clients:
        engine = world.engine(clients)
        engine.observers = [*engine.observers, on_event]
        result = await engine.runner(ACCOUNT, "work", world.config().pools["work"]).run()

    assert result.outcome is Outcome.DONE, result.detail
    tasks = world.tasks(job)
    assert all(t.state == "completed" and t.result == "success" and t.requeue_count == 0 for t in tasks)
    assert drained_at
    assert drained_at[0] >= max(t.end_time for t in tasks)
    pool = world.sim_pool("work")
    assert pool.vm_size == "standard_d4s_v3"
    assert world.emu.clock.at(pool.created) > requested
    names = [p.name for p in result.phases]
    assert names[0] == "draining"
    assert "deleting" in names
    assert names[-1] == "allocating"
    assert result.gets <= 20, result.phases


async def test_refresh_under_requeue_requeues_the_running_tasks(world: World) -> None:
    world.pools["rq"] = pool_spec(refresh={"node_deallocation_option": "requeue"})
    await create(world, "rq")
    job = await world.occupy("rq", tasks=2, seconds=36000)
    await request(world, "rq")
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, "rq", world.config().pools["rq"]).run()
    assert result.outcome is Outcome.DONE, result.detail
    tasks = world.tasks(job)
    assert all(t.requeue_count >= 1 for t in tasks)
    assert all(t.result != "failure" for t in tasks)


async def test_drain_timeout_policies(world: World) -> None:
    for name, policy in (("w", "wait"), ("a", "abort"), ("r", "requeue")):
        world.pools[name] = pool_spec(refresh={"drain_timeout": "30m", "on_drain_timeout": policy})
        await create(world, name)
        await world.occupy(name, tasks=2, seconds=36000)
        await request(world, name)
    created = {name: world.sim_pool(name).created for name in "war"}
    async with world.clients() as clients:
        engine = world.engine(clients)
        pools = world.config().pools
        runs = await asyncio.gather(*(engine.runner(ACCOUNT, name, pools[name]).run() for name in "war"))
    results = dict(zip("war", runs, strict=True))

    assert results["w"].outcome is Outcome.WAITING
    assert "on_drain_timeout: wait" in results["w"].detail
    assert world.sim_pool("w").created == created["w"]
    assert len(world.sim_pool("w").nodes) == 2
    assert results["a"].outcome is Outcome.ABORTED
    assert world.sim_pool("a").created == created["a"]
    assert world.sim_pool("a").allocation_state == "steady"
    assert results["r"].outcome is Outcome.DONE, results["r"].detail
    assert world.sim_pool("r").created > created["r"]


async def test_quota_error_degrades_without_a_recreate_loop(world: World) -> None:
    world.pools["big"] = pool_spec(target_dedicated_nodes=2)
    await create(world, "big")
    await request(world, "big")
    world.pools["big"] = pool_spec(target_dedicated_nodes=2, vm_size="standard_d16s_v3")
    world.emu.batch.set_quotas(ACCOUNT, dedicated_cores=16)
    async with world.clients() as clients:
        engine = world.engine(clients)
        first = await engine.runner(ACCOUNT, "big", world.config().pools["big"]).run()
        created = world.sim_pool("big").created
        again = await engine.runner(ACCOUNT, "big", world.config().pools["big"]).run()
    assert first.outcome is Outcome.DEGRADED
    assert "AccountCoreQuotaReached" in first.detail
    assert again.outcome is Outcome.DEGRADED
    assert world.sim_pool("big").created == created
    assert again.gets == 1


async def test_autoscale_pool_is_refreshed_and_autoscale_restored(world: World) -> None:
    formula = "$TargetDedicatedNodes = 1;"
    spec = pool_spec(
        enable_auto_scale=True, auto_scale_formula=formula, auto_scale_evaluation_interval="PT5M"
    )
    del spec["target_dedicated_nodes"]
    world.pools["auto"] = spec
    await create(world, "auto")
    await request(world, "auto")
    created = world.sim_pool("auto").created
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, "auto", world.config().pools["auto"]).run()
    assert result.outcome is Outcome.DONE, result.detail
    pool = world.sim_pool("auto")
    assert pool.created > created
    assert pool.autoscale
    assert next(p.name for p in result.phases) == "disabling_autoscale"


async def test_patch_when_empty_drains_and_patches_instead_of_deleting(world: World) -> None:
    world.pools["pe"] = pool_spec(refresh={"strategy": "patch-when-empty"})
    await create(world, "pe")
    created = world.sim_pool("pe").created
    world.pools["pe"] = pool_spec(refresh={"strategy": "patch-when-empty"}, vm_size="standard_d4s_v3")
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, "pe", world.config().pools["pe"]).run()
    assert result.outcome is Outcome.DONE, result.detail
    pool = world.sim_pool("pe")
    assert pool.created == created
    assert pool.vm_size == "standard_d4s_v3"
    assert len(pool.nodes) == 2
    metadata = {m["name"]: m["value"] for m in pool.spec["metadata"]}
    assert metadata[markers.SPEC_HASH] == spec_hash(world.config().pools["pe"])


async def test_pool_exists_is_adopted_only_with_our_spec_hash(world: World) -> None:
    world.pools["mine"] = pool_spec()
    desired = world.config().pools["mine"]
    async with world.clients() as clients:
        ours = desired_markers(desired)
        first = await operations.create_pool(clients, ACCOUNT, "mine", desired, ours)
        again = await operations.create_pool(clients, ACCOUNT, "mine", desired, ours)
        other = {**ours, markers.SPEC_HASH: "0" * 64}
        try:
            await operations.create_pool(clients, ACCOUNT, "mine", desired, other)
        except operations.OperationFailed as failed:
            refused = failed
    assert first is operations.CreateOutcome.CREATED
    assert again is operations.CreateOutcome.ADOPTED
    assert refused.code == "PoolExists"


async def test_phase_deadline_of_allocation_is_reported(world: World) -> None:
    world.pools["slow"] = pool_spec(refresh={"allocation_timeout": "1m"})
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, "slow", world.config().pools["slow"]).run()
    assert result.outcome is Outcome.TIMED_OUT
    assert "allocating" in result.detail


async def test_a_refresh_under_injected_throttling_and_server_errors_still_finishes(world: World) -> None:
    world.pools["flaky"] = pool_spec()
    await create(world, "flaky")
    await request(world, "flaky")
    created = world.sim_pool("flaky").created
    rules = [
        world.emu.faults.add(operation=operation, status=status, rate=rate, count=count, retry_after=0.01)
        for status in (429, 500, 503)
        for operation, rate, count in (("batch.Pools_*", 0.1, None), ("batch.Pools_GetPool", 1.0, 1))
    ]
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, "flaky", world.config().pools["flaky"]).run()
    assert result.outcome is Outcome.DONE, result.detail
    assert sum(rule.fired for rule in rules) >= 3
    assert world.sim_pool("flaky").created > created


def registry_pool(password: Secret) -> dict[str, object]:
    machine = {
        **IMAGE,
        "container_configuration": {
            "type": "dockerCompatible",
            "container_registries": [
                {"registry_server": "r.azurecr.io", "username": "puller", "password": password}
            ],
        },
    }
    return pool_spec(refresh={"strategy": "patch-when-empty"}, virtual_machine_configuration=machine)


async def test_patch_when_empty_carries_a_change_seen_only_through_a_secret_digest(world: World) -> None:
    world.pools["reg"] = registry_pool(Secret("first-password", reference="${env:ACR_PW_OLD}"))
    await create(world, "reg")
    created = world.sim_pool("reg").created
    world.pools["reg"] = registry_pool(Secret("second-password", reference="${env:ACR_PW_NEW}"))
    async with world.clients() as clients:
        result = await world.engine(clients).runner(ACCOUNT, "reg", world.config().pools["reg"]).run()
    assert result.outcome is Outcome.DONE, result.detail
    pool = world.sim_pool("reg")
    assert pool.created == created
    machine = pool.spec["virtualMachineConfiguration"]
    assert machine["containerConfiguration"]["containerRegistries"][0]["password"] == "second-password"
    metadata = {m["name"]: m["value"] for m in pool.spec["metadata"]}
    assert metadata[markers.SPEC_HASH] == spec_hash(world.config().pools["reg"])


async def test_a_restarted_cycle_times_the_drain_out_when_the_first_one_would_have(world: World) -> None:
    world.pools["long"] = pool_spec(refresh={"drain_timeout": "1h", "on_drain_timeout": "wait"})
    await create(world, "long")
    await world.occupy("long", tasks=2, seconds=36000)
    await request(world, "long")
    clock = world.emu.clock
    async with world.clients() as clients:
        first = world.engine(clients)
        first.now = clock.now
        draining = asyncio.Event()
        first.observers = [lambda event: draining.set() if event.step == "drain" else None]
        killed = asyncio.create_task(first.runner(ACCOUNT, "long", world.config().pools["long"]).run())
        await draining.wait()
        await clock.sleep(2400)
        killed.cancel()
        await asyncio.gather(killed, return_exceptions=True)
        drain_began = world.sim_pool("long").allocation_time
        restarted_at = clock.monotonic()

        second = world.engine(clients)
        second.now = clock.now
        result = await second.runner(ACCOUNT, "long", world.config().pools["long"]).run()
        ended_at = clock.monotonic()

    assert result.outcome is Outcome.WAITING, result.detail
    assert restarted_at - drain_began >= 2300
    assert drain_began + 3600 <= ended_at <= drain_began + 3600 + 0.25 * SCALE, (drain_began, ended_at)
    waited = float(result.detail.split("after ")[1].split("s")[0])
    assert 3600 <= waited <= 3600 + 0.25 * SCALE


async def test_a_runner_made_during_a_command_still_logs_after_that_commands_stderr_closed(
    world: World,
) -> None:
    world.pools["late"] = pool_spec(refresh={"allocation_timeout": "1m"})
    captured = io.StringIO()
    async with world.clients() as clients:
        with contextlib.redirect_stderr(captured), command_logging():
            runner = world.engine(clients).runner(ACCOUNT, "late", world.config().pools["late"])
        captured.close()
        later = io.StringIO()
        with contextlib.redirect_stderr(later):
            result = await runner.run()
    assert result.outcome is Outcome.TIMED_OUT
    assert "pool.refresh.timed_out" in later.getvalue()


async def test_a_restarted_cycle_times_the_deletion_from_when_it_began(world: World) -> None:
    world.pools["slowdel"] = pool_spec(target_dedicated_nodes=0, refresh={"delete_timeout": "30m"})
    await create(world, "slowdel")
    await request(world, "slowdel")
    world.emu.batch.set_timings(delete_empty=3600)
    clock = world.emu.clock
    async with world.clients() as clients:
        first = world.engine(clients)
        first.now = clock.now
        deleting = asyncio.Event()
        first.observers = [lambda event: deleting.set() if event.step == "delete" else None]
        killed = asyncio.create_task(first.runner(ACCOUNT, "slowdel", world.config().pools["slowdel"]).run())
        await deleting.wait()
        await clock.sleep(1200)
        killed.cancel()
        await asyncio.gather(killed, return_exceptions=True)
        began = world.sim_pool("slowdel").state_time

        second = world.engine(clients)
        second.now = clock.now
        result = await second.runner(ACCOUNT, "slowdel", world.config().pools["slowdel"]).run()
        ended_at = clock.monotonic()

    assert result.outcome is Outcome.TIMED_OUT, result.detail
    assert "deleting" in result.detail
    assert began + 1800 <= ended_at <= began + 1800 + 0.25 * SCALE, (began, ended_at)
