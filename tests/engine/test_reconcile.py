"""Whole passes (observe → plan → act) against the emulator: isolation, backoff, faults, pruning, pacing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine_env import ACCOUNT, SCALE, World, pool_spec

from reconciler.azure import markers, operations
from reconciler.azure.observe import observe
from reconciler.engine.backoff import RequeueBackoff
from reconciler.engine.cycle import CycleEvent, Outcome
from reconciler.engine.reconcile import observe_and_plan, reconcile_once
from reconciler.plan.actions import ActionKind
from reconciler.plan.diff import make_plan
from reconciler.plan.rules import desired_markers


async def test_a_failing_action_is_reported_and_the_others_finish(world: World) -> None:
    world.pools = {name: pool_spec(target_dedicated_nodes=1) for name in ("p1", "p2", "p3")}
    world.emu.batch.set_quotas(ACCOUNT, pools=2)
    async with world.clients() as clients:
        result = await reconcile_once(world.config(), clients, engine=world.engine(clients))
    outcomes = sorted(r.outcome.value for r in result.results)
    assert outcomes == ["degraded", "done", "done"]
    (failed,) = result.failures
    assert "PoolQuotaReached" in failed.detail
    assert not result.ok


async def test_quota_degrades_backs_off_and_never_recreates(world: World) -> None:
    world.pools = {"q": pool_spec(target_dedicated_nodes=4)}
    world.emu.batch.set_quotas(ACCOUNT, dedicated_cores=4)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    async with world.clients() as clients:
        engine = world.engine(clients)
        engine.now = lambda: clock[0]
        first = await reconcile_once(world.config(), clients, engine=engine, now=now)
        created = world.sim_pool("q").created
        assert [r.outcome for r in first.results] == [Outcome.DEGRADED]
        assert engine.backoff.get(ACCOUNT, "q") is not None

        world.emu.counters.reset()
        held = await reconcile_once(world.config(), clients, engine=engine, now=now + timedelta(seconds=30))
        assert held.results == ()
        assert [h.action.kind for h in held.plan.held] == [ActionKind.resize]
        assert "backing off" in held.plan.held[0].reason
        assert world.emu.counters.total("batch.*") == 2

        later = clock[0] = now + timedelta(hours=2)
        retried = await reconcile_once(world.config(), clients, engine=engine, now=later)
        assert [r.action.kind for r in retried.results] == [ActionKind.resize]
        assert retried.results[0].outcome is Outcome.DEGRADED
        assert engine.backoff.get(ACCOUNT, "q").failures == 2  # type: ignore[union-attr]
    assert world.sim_pool("q").created == created
    assert world.emu.counters.total("batch.Pools_DeletePool") == 0


async def test_a_create_refused_on_pool_quota_is_held_until_its_backoff_ends_then_clears(
    world: World,
) -> None:
    world.pools = {"late": pool_spec(target_dedicated_nodes=1)}
    world.emu.batch.set_quotas(ACCOUNT, pools=0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    async with world.clients() as clients:
        engine = world.engine(clients)
        engine.now = lambda: clock[0]
        first = await reconcile_once(world.config(), clients, engine=engine, now=now)
        assert [(r.action.kind, r.outcome) for r in first.results] == [(ActionKind.create, Outcome.DEGRADED)]
        pause = engine.backoff.get(ACCOUNT, "late")
        assert pause is not None

        world.emu.counters.reset()
        held = await reconcile_once(world.config(), clients, engine=engine, now=now + timedelta(seconds=30))
        assert held.results == ()
        ((action, reason),) = [(h.action.kind, h.reason) for h in held.plan.held]
        assert action is ActionKind.create
        assert "PoolQuotaReached" in reason
        assert pause.until.isoformat() in reason
        assert world.emu.counters.total("batch.Pools_CreatePool") == 0

        world.emu.batch.set_quotas(ACCOUNT, pools=10)
        later = clock[0] = pause.until + timedelta(seconds=1)
        retried = await reconcile_once(world.config(), clients, engine=engine, now=later)
        assert [(r.action.kind, r.outcome) for r in retried.results] == [(ActionKind.create, Outcome.DONE)]
        assert engine.backoff.get(ACCOUNT, "late") is None
    assert world.sim_pool("late") is not None


async def test_observe_and_plan_reads_azure_once_holds_backed_off_pools_and_changes_nothing(
    world: World,
) -> None:
    world.pools = {name: pool_spec(target_dedicated_nodes=1) for name in ("new", "paused")}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    backoff = RequeueBackoff()
    backoff.failed(ACCOUNT, "paused", now, "PoolQuotaReached")
    world.emu.counters.reset()
    async with world.clients() as clients:
        result = await observe_and_plan(world.config(), clients, backoff=backoff, now=now)
    assert [(a.kind, a.pool_id) for a in result.plan.actions] == [(ActionKind.create, "new")]
    assert [(h.action.kind, h.action.pool_id) for h in result.plan.held] == [(ActionKind.create, "paused")]
    assert result.results == ()
    assert world.emu.counters.total("batch.*") == 2
    assert world.emu.batch.account(ACCOUNT).pools == {}


async def test_a_refused_patch_backs_off_like_any_failed_action(world: World) -> None:
    world.pools = {"pp": pool_spec(target_dedicated_nodes=1)}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with world.clients() as clients:
        engine = world.engine(clients)
        engine.now = lambda: now
        await reconcile_once(world.config(), clients, engine=engine, now=now)
        world.pools["pp"] = pool_spec(target_dedicated_nodes=1, start_task={"command_line": "echo new"})
        world.emu.faults.add(
            operation="batch.Pools_UpdatePool", status=400, code="InvalidPropertyValue", count=1
        )
        failed = await reconcile_once(world.config(), clients, engine=engine, now=now)
        assert [(r.action.kind, r.outcome) for r in failed.results] == [(ActionKind.patch, Outcome.FAILED)]
        pause = engine.backoff.get(ACCOUNT, "pp")
        assert pause is not None

        held = await reconcile_once(world.config(), clients, engine=engine, now=now + timedelta(seconds=5))
        assert held.results == ()
        assert [h.action.kind for h in held.plan.held] == [ActionKind.patch]

        retried = await reconcile_once(world.config(), clients, engine=engine, now=pause.until)
        assert [(r.action.kind, r.outcome) for r in retried.results] == [(ActionKind.patch, Outcome.DONE)]
        assert engine.backoff.get(ACCOUNT, "pp") is None
    assert world.sim_pool("pp").spec["startTask"]["commandLine"] == "echo new"


async def test_injected_throttling_and_server_errors_converge(world: World) -> None:
    world.pools = {name: pool_spec(target_dedicated_nodes=1) for name in ("f1", "f2")}
    for status in (429, 500, 503):
        world.emu.faults.add(operation="batch.Pools_*", status=status, rate=0.15, retry_after=0.02)
    async with world.clients() as clients:
        engine = world.engine(clients)
        for _ in range(12):
            result = await reconcile_once(world.config(), clients, engine=engine)
            if result.plan.in_sync and not result.snapshot.errors:
                break
        else:
            raise AssertionError("never converged")
    fired = sum(rule.fired for rule in world.emu.faults.rules())
    assert fired > 0
    for name in ("f1", "f2"):
        assert len(world.sim_pool(name).nodes) == 1


async def test_prune_drains_and_deletes_a_pool_the_config_dropped(world: World) -> None:
    world.pools = {"keep": pool_spec(target_dedicated_nodes=1), "gone": pool_spec(target_dedicated_nodes=1)}
    world.safety = {"prune": True}
    async with world.clients() as clients:
        engine = world.engine(clients)
        await reconcile_once(world.config(), clients, engine=engine)
        del world.pools["gone"]
        result = await reconcile_once(world.config(), clients, engine=engine)
    assert [(r.action.kind, r.outcome) for r in result.results] == [(ActionKind.delete, Outcome.DONE)]
    assert world.sim_pool("gone") is None
    assert world.sim_pool("keep") is not None


async def test_phase_transitions_are_noticed_within_a_tenth_of_the_deadline_in_few_gets(world: World) -> None:
    """The figures behind the pacing: per phase, how late the engine noticed its end, and the GETs."""
    world.pools = {"lag": pool_spec()}
    async with world.clients() as clients:
        engine = world.engine(clients)
        await reconcile_once(world.config(), clients, engine=engine)
        await world.occupy("lag", 2, 1800)
        await operations.request_refresh(clients, ACCOUNT, "lag", world.emu.clock.now())
        marks: list[tuple[str, float, float | None]] = []

        def note(event: CycleEvent) -> None:
            if event.kind == "phase":
                pool = world.sim_pool("lag")
                ended = pool.allocation_time if pool is not None else None
                marks.append((event.phase, world.emu.clock.monotonic(), ended))

        engine.observers = [*engine.observers, note]
        result = await reconcile_once(world.config(), clients, engine=engine)
    (action,) = result.results
    assert action.outcome is Outcome.DONE, action.detail
    assert action.cycle is not None
    assert action.cycle.gets <= 20, (action.cycle.phases, marks)
    started = {name: at for name, at, _ in marks}
    noticed_drain = started["deleting"]
    drain_end = next(ended for name, _, ended in marks if name == "deleting")
    noticed_allocation = started["done"]
    allocation_end = next(ended for name, _, ended in marks if name == "done")
    assert drain_end is not None
    assert allocation_end is not None
    drain_lag = noticed_drain - drain_end
    allocation_lag = noticed_allocation - allocation_end
    overhead = 0.25 * SCALE  # a quarter of a wall second for the calls themselves, in simulated seconds
    assert 0 <= drain_lag <= 0.1 * timedelta(hours=2).total_seconds() + overhead, marks
    assert 0 <= allocation_lag <= 0.1 * timedelta(minutes=30).total_seconds() + overhead, marks
    print(
        f"gets={action.cycle.gets} phases={[(p.name, p.gets) for p in action.cycle.phases]} "
        f"drain={drain_end - started['draining']:.0f}s lag={drain_lag:.0f}s "
        f"allocation={allocation_end - started['creating']:.0f}s lag={allocation_lag:.0f}s"
    )


async def test_switching_between_fixed_size_and_autoscale_needs_no_recreate(world: World) -> None:
    world.pools = {"s": pool_spec(target_dedicated_nodes=1)}
    auto = pool_spec(enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes = 2;")
    del auto["target_dedicated_nodes"]
    async with world.clients() as clients:
        engine = world.engine(clients)
        await reconcile_once(world.config(), clients, engine=engine)
        created = world.sim_pool("s").created
        world.pools["s"] = auto
        on = await reconcile_once(world.config(), clients, engine=engine)
        assert [(r.action.kind, r.outcome) for r in on.results] == [
            (ActionKind.patch, Outcome.DONE),
            (ActionKind.enable_autoscale, Outcome.DONE),
        ]
        assert world.sim_pool("s").autoscale
        world.pools["s"] = pool_spec(target_dedicated_nodes=3)
        off = await reconcile_once(world.config(), clients, engine=engine)
        kinds = [(r.action.kind, r.outcome) for r in off.results]
        assert kinds == [
            (ActionKind.patch, Outcome.DONE),
            (ActionKind.disable_autoscale, Outcome.DONE),
            (ActionKind.resize, Outcome.DONE),
        ]
        again = await reconcile_once(world.config(), clients, engine=engine)
    pool = world.sim_pool("s")
    assert not pool.autoscale
    assert pool.target_dedicated == 3
    assert pool.created == created
    assert again.plan.in_sync


async def test_a_pool_with_our_hash_but_no_marker_is_adopted_not_recreated(world: World) -> None:
    world.pools = {"orphan": pool_spec(target_dedicated_nodes=1)}
    desired = world.config().pools["orphan"]
    body = desired.to_batch_json("orphan")
    ours = desired_markers(desired)
    body["metadata"] = [*body["metadata"], {"name": markers.SPEC_HASH, "value": ours[markers.SPEC_HASH]}]
    await world.emu.batch_client(ACCOUNT).create_pool(body)
    created = world.sim_pool("orphan").created
    async with world.clients() as clients:
        engine = world.engine(clients)
        result = await reconcile_once(world.config(), clients, engine=engine)
        again = await reconcile_once(world.config(), clients, engine=engine)
    assert [(r.action.kind, r.outcome) for r in result.results] == [(ActionKind.adopt, Outcome.DONE)]
    metadata = {m["name"]: m["value"] for m in world.sim_pool("orphan").spec["metadata"]}
    assert metadata[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE
    assert metadata["team"] == "research"
    assert world.sim_pool("orphan").created == created
    assert again.plan.in_sync


async def test_adopt_is_conditional_on_the_etag_of_the_pool_it_compared(world: World) -> None:
    world.pools = {"found": pool_spec(target_dedicated_nodes=1, adopt=True)}
    desired = world.config().pools["found"]
    await world.emu.batch_client(ACCOUNT).create_pool(desired.to_batch_json("found"))
    async with world.clients() as clients:
        engine = world.engine(clients)
        plan = make_plan(world.config(), await observe(clients), now=datetime.now(UTC))
        assert [a.kind for a in plan.actions] == [ActionKind.adopt]
        changed = {"startTask": {"commandLine": "echo changed by hand"}}
        await world.emu.batch_client(ACCOUNT).update_pool("found", changed)
        (result,) = await engine.execute(plan)
        assert result.outcome is Outcome.FAILED
        assert "adopt found" in result.detail
        metadata = {m["name"]: m["value"] for m in world.sim_pool("found").spec["metadata"]}
        assert markers.MANAGED_BY not in metadata
        again = await reconcile_once(world.config(), clients, engine=engine)
    assert again.results == ()
    ((held, reason),) = [(h.action.kind, h.reason) for h in again.plan.held]
    assert held is ActionKind.adopt
    assert reason == "not adopted: differs from the spec in start_task"
    assert world.sim_pool("found").spec["startTask"]["commandLine"] == "echo changed by hand"


async def test_an_unexpected_error_in_one_action_leaves_the_others_running(world: World) -> None:
    world.pools = {"ok": pool_spec(target_dedicated_nodes=1), "bad": pool_spec(target_dedicated_nodes=1)}
    async with world.clients() as clients:
        engine = world.engine(clients)
        runner = engine.runner

        def broken(account: str, pool_id: str, desired: Any) -> Any:
            if pool_id == "bad":
                raise RuntimeError("a bug")
            return runner(account, pool_id, desired)

        engine.runner = broken  # type: ignore[method-assign]
        result = await reconcile_once(world.config(), clients, engine=engine)
    outcomes = {r.action.pool_id: (r.outcome, r.detail) for r in result.results}
    assert outcomes["bad"][0] is Outcome.FAILED
    assert outcomes["bad"][1].startswith("internal error (RuntimeError); next attempt after ")
    assert engine.backoff.get(ACCOUNT, "bad") is not None
    assert outcomes["ok"][0] is Outcome.DONE
