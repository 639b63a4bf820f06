"""The refresh step function: every observed combination maps to exactly one next step."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from plan_env import CREATED, autoscale_spec, nodes, observed_from, spec, with_view

from reconciler.azure.snapshot import ObservedPool
from reconciler.plan.refresh import (
    PHASES,
    RefreshStep,
    built_from,
    effective_strategy,
    next_refresh_step,
    phase,
)
from reconciler.spec.pool import Pool
from reconciler.spec.pool_refresh import RefreshStrategy

OLD = spec(vm_size="standard_d2s_v3", target_dedicated_nodes=2)
NEW = spec(vm_size="standard_d4s_v3", target_dedicated_nodes=2)
NEW_AUTO = autoscale_spec(vm_size="standard_d4s_v3")
REQUESTED = CREATED + timedelta(hours=1)
AFTER = REQUESTED + timedelta(minutes=30)
PWE: RefreshStrategy = "patch-when-empty"


def drained(observed: ObservedPool) -> ObservedPool:
    """Steady at zero nodes, as a finished drain leaves a pool."""
    view = with_view(observed, target_dedicated_nodes=None)
    return replace(
        view,
        target_dedicated_nodes=0,
        current_dedicated_nodes=0,
        dedicated_nodes=nodes(),
        enable_auto_scale=False,
    )


def old_pool(**changes: Any) -> ObservedPool:
    return observed_from(OLD, **changes)


def new_pool(desired: Pool = NEW, **changes: Any) -> ObservedPool:
    return observed_from(desired, creation_time=AFTER, **changes)


Row = tuple[str, Callable[[], ObservedPool | None], Pool | None, str, RefreshStep]

TABLE: list[Row] = [
    # rebuild needed (spec differs): take the old pool down
    (
        "autoscale on",
        lambda: old_pool(enable_auto_scale=True),
        NEW,
        "recreate",
        RefreshStep.disable_autoscale,
    ),
    (
        "autoscale on while resizing",
        lambda: old_pool(enable_auto_scale=True, allocation_state="resizing"),
        NEW,
        "recreate",
        RefreshStep.disable_autoscale,
    ),
    (
        "someone else's resize running",
        lambda: old_pool(allocation_state="resizing", target_dedicated_nodes=5),
        NEW,
        "recreate",
        RefreshStep.wait_steady,
    ),
    (
        "stopping a resize",
        lambda: old_pool(allocation_state="stopping", target_dedicated_nodes=5),
        NEW,
        "recreate",
        RefreshStep.wait_steady,
    ),
    ("nodes up, steady", old_pool, NEW, "recreate", RefreshStep.drain),
    (
        "steady, target up but no nodes yet",
        lambda: old_pool(current_dedicated_nodes=0, dedicated_nodes=nodes()),
        NEW,
        "recreate",
        RefreshStep.drain,
    ),
    (
        "low-priority nodes up",
        lambda: replace(drained(old_pool()), current_low_priority_nodes=1, low_priority_nodes=nodes(idle=1)),
        NEW,
        "recreate",
        RefreshStep.drain,
    ),
    (
        "our drain running",
        lambda: replace(
            drained(old_pool()), allocation_state="resizing", dedicated_nodes=nodes(leavingPool=2)
        ),
        NEW,
        "recreate",
        RefreshStep.wait_drained,
    ),
    (
        "our drain being stopped",
        lambda: replace(drained(old_pool()), allocation_state="stopping"),
        NEW,
        "recreate",
        RefreshStep.wait_drained,
    ),
    ("steady at zero", lambda: drained(old_pool()), NEW, "recreate", RefreshStep.delete),
    ("steady at zero, patch-when-empty", lambda: drained(old_pool()), NEW, PWE, RefreshStep.patch_empty),
    ("deleting", lambda: old_pool(state="deleting"), NEW, "recreate", RefreshStep.wait_deleted),
    ("deleting, patch-when-empty", lambda: old_pool(state="deleting"), NEW, PWE, RefreshStep.wait_deleted),
    ("absent", lambda: None, NEW, "recreate", RefreshStep.create),
    ("absent, patch-when-empty", lambda: None, NEW, PWE, RefreshStep.create),
    # built from the spec: bring it up
    (
        "created, allocating",
        lambda: new_pool(allocation_state="resizing", current_dedicated_nodes=0, dedicated_nodes=nodes()),
        NEW,
        "recreate",
        RefreshStep.wait_allocated,
    ),
    ("created, steady at target", new_pool, NEW, "recreate", RefreshStep.done),
    (
        "created, steady short of target (quota)",
        lambda: new_pool(current_dedicated_nodes=1, dedicated_nodes=nodes(idle=1)),
        NEW,
        "recreate",
        RefreshStep.done,
    ),
    ("patched, still at zero", lambda: drained(new_pool()), NEW, PWE, RefreshStep.resize),
    (
        "patched, autoscale spec, autoscale off",
        lambda: drained(new_pool(NEW_AUTO)),
        NEW_AUTO,
        PWE,
        RefreshStep.enable_autoscale,
    ),
    (
        "autoscale spec, autoscale on",
        lambda: new_pool(NEW_AUTO, target_dedicated_nodes=7),
        NEW_AUTO,
        "recreate",
        RefreshStep.done,
    ),
    (
        "built, fixed spec, autoscale left on",
        lambda: new_pool(enable_auto_scale=True),
        NEW,
        "recreate",
        RefreshStep.disable_autoscale,
    ),
    # prune: desired None
    ("prune, nodes up", old_pool, None, "recreate", RefreshStep.drain),
    ("prune, steady at zero", lambda: drained(old_pool()), None, PWE, RefreshStep.delete),
    ("prune, gone", lambda: None, None, "recreate", RefreshStep.done),
]


@pytest.mark.parametrize(
    ("name", "observed", "desired", "strategy", "expected"), TABLE, ids=[r[0] for r in TABLE]
)
def test_step_from_what_is_observed(
    name: str,
    observed: Callable[[], ObservedPool | None],
    desired: Pool | None,
    strategy: str,
    expected: RefreshStep,
) -> None:
    step = next_refresh_step(observed(), desired, requested_at=None, strategy=cast(RefreshStrategy, strategy))
    assert step == expected


def test_request_pending_rebuilds_a_pool_that_matches() -> None:
    observed = observed_from(NEW, creation_time=CREATED)
    assert built_from(observed, NEW)
    assert next_refresh_step(observed, NEW, requested_at=REQUESTED) == RefreshStep.drain
    assert next_refresh_step(observed, NEW, requested_at=None) == RefreshStep.done
    assert next_refresh_step(drained(observed), NEW, requested_at=REQUESTED) == RefreshStep.delete


def test_request_is_done_once_the_pool_was_created_after_it() -> None:
    observed = observed_from(NEW, creation_time=AFTER)
    assert next_refresh_step(observed, NEW, requested_at=REQUESTED) == RefreshStep.done


def test_pool_created_exactly_at_the_request_is_still_old() -> None:
    observed = observed_from(NEW, creation_time=REQUESTED)
    assert next_refresh_step(observed, NEW, requested_at=REQUESTED) == RefreshStep.drain


def test_identity_change_cannot_patch_when_empty() -> None:
    identity = {
        "user_assigned_identities": [
            "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg"
            "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"
        ]
    }
    desired = spec(identity=identity, refresh={"strategy": PWE})
    observed = drained(observed_from(OLD))
    assert effective_strategy(observed, desired) == "recreate"
    assert next_refresh_step(observed, desired, requested_at=None, strategy=PWE) == RefreshStep.delete
    assert effective_strategy(observed, spec(vm_size="standard_d8s_v3", refresh={"strategy": PWE})) == PWE


def test_size_and_any_time_fields_do_not_make_a_rebuild() -> None:
    desired = spec(target_dedicated_nodes=2, start_task={"command_line": "new"})
    observed = observed_from(spec(target_dedicated_nodes=2, start_task={"command_line": "old"}))
    observed = replace(observed, spec_hash=observed_from(desired).spec_hash)
    assert built_from(observed, desired)
    assert not built_from(observed_from(OLD), NEW)


def test_a_killed_cycle_converges_from_any_observation() -> None:
    """Walk the whole cycle applying each step's effect: it ends in done, never loops, creates once."""
    strategies: tuple[RefreshStrategy, ...] = ("recreate", PWE)
    for strategy, start in itertools.product(strategies, (old_pool(enable_auto_scale=True), None)):
        observed: ObservedPool | None = start
        creates = 0
        for _ in range(20):
            step = next_refresh_step(observed, NEW, requested_at=None, strategy=strategy)
            if step == RefreshStep.done:
                break
            creates += step == RefreshStep.create
            observed = _effect(step, observed)
        else:
            pytest.fail(f"no convergence under {strategy} from {start}")
        assert creates <= 1
        assert observed is not None
        assert built_from(observed, NEW)


def _effect(step: RefreshStep, observed: ObservedPool | None) -> ObservedPool | None:
    """What Azure would show after the engine took this step (and the wait it implies ended)."""
    assert step is not RefreshStep.done
    if step == RefreshStep.create or step == RefreshStep.patch_empty:
        return new_pool(allocation_state="resizing", current_dedicated_nodes=0, dedicated_nodes=nodes())
    assert observed is not None
    effects: dict[RefreshStep, Callable[[], ObservedPool | None]] = {
        RefreshStep.disable_autoscale: lambda: replace(observed, enable_auto_scale=False),
        RefreshStep.wait_steady: lambda: replace(observed, allocation_state="steady"),
        RefreshStep.drain: lambda: replace(drained(observed), allocation_state="resizing"),
        RefreshStep.wait_drained: lambda: replace(observed, allocation_state="steady"),
        RefreshStep.delete: lambda: replace(observed, state="deleting"),
        RefreshStep.wait_deleted: lambda: None,
        RefreshStep.wait_allocated: lambda: new_pool(),
        RefreshStep.resize: lambda: new_pool(),
        RefreshStep.enable_autoscale: lambda: replace(observed, enable_auto_scale=True),
    }
    return effects[step]()


def test_every_step_has_a_phase() -> None:
    assert set(PHASES) == set(RefreshStep)
    assert phase(RefreshStep.drain) == phase(RefreshStep.wait_drained) == "draining"
    assert phase(RefreshStep.create) == "creating"
    assert phase(RefreshStep.wait_allocated) == "allocating"
    assert phase(RefreshStep.wait_deleted) == "deleting"


GRID = list(
    itertools.product(
        ("active", "deleting"),
        ("steady", "resizing", "stopping"),
        (False, True),  # autoscale on
        (0, 2),  # nodes present
        (0, 2),  # dedicated target
        (False, True),  # built from NEW (else OLD)
        (None, REQUESTED),  # refresh requested
        ("recreate", PWE),
    )
)


@pytest.mark.parametrize(
    ("state", "allocation", "autoscale", "count", "target", "built", "requested", "strategy"), GRID
)
def test_no_step_is_unsafe_in_any_observed_combination(
    state: str,
    allocation: str,
    autoscale: bool,
    count: int,
    target: int,
    built: bool,
    requested: object,
    strategy: RefreshStrategy,
) -> None:
    base = new_pool() if built else old_pool()
    view = with_view(base, target_dedicated_nodes=target or None)
    observed = replace(
        view,
        state=state,
        allocation_state=allocation,
        enable_auto_scale=autoscale,
        target_dedicated_nodes=target,
        current_dedicated_nodes=count,
        dedicated_nodes=nodes(idle=count) if count else nodes(),
    )
    requested_at = cast("datetime | None", requested)
    step = next_refresh_step(observed, NEW, requested_at=requested_at, strategy=strategy)
    assert step != RefreshStep.create
    if state == "deleting":
        assert step == RefreshStep.wait_deleted
        return
    if step in (RefreshStep.delete, RefreshStep.patch_empty):
        assert (allocation, autoscale, count, target) == ("steady", False, 0, 0)
    if step == RefreshStep.delete:
        assert strategy == "recreate"
    if step == RefreshStep.drain:
        assert allocation == "steady"
        assert not autoscale
    if step in (RefreshStep.resize, RefreshStep.enable_autoscale):
        assert allocation == "steady"
    if step == RefreshStep.done:
        assert built
        assert allocation == "steady"
        assert not autoscale
        assert target == 2
        assert requested_at is None or observed.creation_time > requested_at  # type: ignore[operator]
