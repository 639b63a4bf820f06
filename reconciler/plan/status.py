"""How each pool stands, derived from the same facts the plan acts on, so status and plan never disagree.

One pool has one state, the most pressing that applies: a pool being rebuilt is `refreshing` even if
it also drifted, a pool whose last resize failed is `degraded` even if its spec changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.azure.snapshot import ObservedPool
from reconciler.plan.actions import ActionKind, HeldAction, PoolAction, PoolState, PoolStatus
from reconciler.plan.refresh import effective_strategy, next_refresh_step, phase
from reconciler.spec.pool import Pool


def degraded(observed: ObservedPool) -> bool:
    """The last resize stopped short (quota, allocation failure): the service keeps the errors until
    the next resize, and reports them only once the pool is steady."""
    return bool(observed.resize_errors) and observed.state == "active"


def refresh_phase(observed: ObservedPool | None, desired: Pool | None) -> str:
    requested = observed.refresh_requested_at if observed is not None else None
    step = next_refresh_step(
        observed, desired, requested_at=requested, strategy=effective_strategy(observed, desired)
    )
    return phase(step)


def managed_status(
    pool_id: str,
    desired: Pool,
    observed: ObservedPool,
    actions: Sequence[PoolAction],
    held: Sequence[HeldAction],
) -> PoolStatus:
    """The state of a declared pool that carries our marker, given what the plan decided for it.

    Only a refresh that will run makes a pool `refreshing`; a withheld one leaves it `drifted`, with
    the rule that holds it in the detail.
    """
    account = desired.account
    if desired.suspend:
        detail = "suspend: true; observed only" + (f", {len(held)} action(s) held" if held else "")
        return PoolStatus(account, pool_id, PoolState.suspended, None, detail, observed)
    refresh = next((a for a in actions if a.kind == ActionKind.refresh), None)
    if refresh is not None:
        return PoolStatus(
            account, pool_id, PoolState.refreshing, refresh_phase(observed, desired), refresh.reason, observed
        )
    if degraded(observed):
        codes = ", ".join(sorted({e.code for e in observed.resize_errors}))
        return PoolStatus(account, pool_id, PoolState.degraded, None, f"resize errors: {codes}", observed)
    if actions or held:
        reasons = [a.reason for a in actions] + [f"{h.action.reason} (held: {h.reason})" for h in held]
        return PoolStatus(account, pool_id, PoolState.drifted, None, "; ".join(reasons), observed)
    return PoolStatus(account, pool_id, PoolState.in_sync, None, "matches the spec", observed)
