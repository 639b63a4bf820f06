"""The refresh cycle as a step function: the next step is chosen from what Azure shows now, nothing else.

The engine loops `observe → next_refresh_step → act` until `done`. Because no step depends on memory, a
process killed between any two steps and started again picks up exactly where the pool is: a pool half
drained is drained further, a deleted pool is created, a pool created after the request only waits.

A pool *needs rebuilding* while a refresh request is pending (no creation after `requested_at`, which is
the observed `reconciler.refresh-requested-at`) or while it was not built from its spec (`built_from`).
Under `patch-when-empty` the drained pool is PATCHed instead of deleted, when every differing field is
one PATCH accepts on an empty pool; that PATCH writes the new spec hash and clears the request marker,
which is how this variant becomes "done".
`desired=None` is a delete cycle (pruning): it ends once the pool is gone.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

from reconciler.azure.snapshot import ObservedPool
from reconciler.plan.actions import ChangeRule
from reconciler.plan.hashing import spec_hash
from reconciler.plan.rules import WHEN_EMPTY, compare, top_field
from reconciler.spec.pool import Pool
from reconciler.spec.pool_refresh import RefreshStrategy

RECREATE: Final = "recreate"
PATCH_WHEN_EMPTY: Final = "patch-when-empty"


class RefreshStep(StrEnum):
    disable_autoscale = "disable_autoscale"
    wait_steady = "wait_steady"
    """A resize not of our making (the autoscaler's, a portal's) is running: let it settle."""
    drain = "drain"
    """Resize to 0 with the spec's node_deallocation_option."""
    wait_drained = "wait_drained"
    delete = "delete"
    wait_deleted = "wait_deleted"
    create = "create"
    wait_allocated = "wait_allocated"
    resize = "resize"
    """Back to the spec's fixed size after `patch_empty` (a create sets the size itself)."""
    enable_autoscale = "enable_autoscale"
    patch_empty = "patch_empty"
    done = "done"


PHASES: Final[dict[RefreshStep, str]] = {
    RefreshStep.disable_autoscale: "disabling_autoscale",
    RefreshStep.wait_steady: "waiting_steady",
    RefreshStep.drain: "draining",
    RefreshStep.wait_drained: "draining",
    RefreshStep.delete: "deleting",
    RefreshStep.wait_deleted: "deleting",
    RefreshStep.create: "creating",
    RefreshStep.wait_allocated: "allocating",
    RefreshStep.resize: "allocating",
    RefreshStep.enable_autoscale: "enabling_autoscale",
    RefreshStep.patch_empty: "patching",
    RefreshStep.done: "done",
}
"""Phase names for status, logs and the `phase` metric label: several steps share one phase."""


def phase(step: RefreshStep) -> str:
    return PHASES[step]


def built_from(observed: ObservedPool, desired: Pool) -> bool:
    """The pool carries this spec's hash and no field that needs an empty pool has drifted since.

    Scale and any-time fields are left out: a drained pool differs in size by design, and those
    fields are fixed on the live pool, never by rebuilding it.
    """
    if observed.spec_hash != spec_hash(desired):
        return False
    return not any(c.rule == ChangeRule.recreate for c in compare(desired, observed))


def request_pending(observed: ObservedPool, requested_at: datetime | None) -> bool:
    """A refresh was requested and the pool has not been created since."""
    if requested_at is None:
        return False
    return observed.creation_time is None or observed.creation_time <= requested_at


def can_patch_when_empty(observed: ObservedPool, desired: Pool) -> bool:
    """Every compared difference is one a PATCH takes on an empty pool (`identity` never is)."""
    return all(
        top_field(c.path) in WHEN_EMPTY or c.rule != ChangeRule.recreate for c in compare(desired, observed)
    )


def effective_strategy(observed: ObservedPool | None, desired: Pool | None) -> RefreshStrategy:
    """The spec's strategy, falling back to recreate when a PATCH could not carry the change."""
    if desired is None or desired.refresh.strategy != PATCH_WHEN_EMPTY:
        return RECREATE
    if observed is not None and not can_patch_when_empty(observed, desired):
        return RECREATE
    return PATCH_WHEN_EMPTY


def _nodes(observed: ObservedPool) -> int:
    counted = observed.dedicated_nodes.total + observed.low_priority_nodes.total
    return max(counted, observed.current_dedicated_nodes + observed.current_low_priority_nodes)


def _targets_zero(observed: ObservedPool) -> bool:
    return observed.target_dedicated_nodes == 0 and observed.target_low_priority_nodes == 0


def _fixed_size_differs(observed: ObservedPool, desired: Pool) -> bool:
    if desired.enable_auto_scale:
        return False
    return (observed.target_dedicated_nodes, observed.target_low_priority_nodes) != (
        desired.target_dedicated_nodes or 0,
        desired.target_low_priority_nodes or 0,
    )


def next_refresh_step(
    observed: ObservedPool | None,
    desired: Pool | None,
    *,
    requested_at: datetime | None,
    strategy: RefreshStrategy = RECREATE,
) -> RefreshStep:
    """The one step to take now.

    `requested_at` is the pool's observed `reconciler.refresh-requested-at`, never a remembered time;
    `strategy` is the spec's `refresh.strategy`, used only when a PATCH can carry the change.
    """
    if observed is None:
        return RefreshStep.done if desired is None else RefreshStep.create
    if observed.state == "deleting":
        return RefreshStep.wait_deleted
    rebuild = desired is None or request_pending(observed, requested_at) or not built_from(observed, desired)
    if not rebuild:
        assert desired is not None
        if observed.allocation_state != "steady":
            return RefreshStep.wait_allocated
        if desired.enable_auto_scale and not observed.enable_auto_scale:
            return RefreshStep.enable_autoscale
        if observed.enable_auto_scale and not desired.enable_auto_scale:
            return RefreshStep.disable_autoscale
        if _fixed_size_differs(observed, desired):
            return RefreshStep.resize
        return RefreshStep.done
    if observed.enable_auto_scale:
        return RefreshStep.disable_autoscale
    if observed.allocation_state != "steady":
        return RefreshStep.wait_drained if _targets_zero(observed) else RefreshStep.wait_steady
    if _nodes(observed) > 0 or not _targets_zero(observed):
        return RefreshStep.drain
    if desired is not None and strategy == PATCH_WHEN_EMPTY and can_patch_when_empty(observed, desired):
        return RefreshStep.patch_empty
    return RefreshStep.delete
