"""Desired x observed → the smallest safe set of actions, what safety withheld, and every pool's status.

Decisions, per declared pool (ids compared case-insensitively, as Batch does):
- account unreachable → `unreachable`, nothing planned: an unobserved pool must not look missing.
- absent → `create`; present without our `reconciler.managed-by` marker → `unmanaged`, never touched
  (its differences are shown as held), except a pool carrying exactly this spec's hash, which only a
  create of ours can have written, and, with `adopt: true`, a pool whose every observed property
  matches the spec: those are `adopt`ed (marker and hash written, nothing else changed). An `adopt: true`
  pool that differs is held with the differing fields: it is changed only once it is ours, and it
  becomes ours only as it is.
- being deleted, or a refresh requested and not yet done → `refresh` alone: the cycle converges every
  field, so no patch or scale runs beside it.
- a difference that needs an empty pool (including a changed secret in such a field) → `refresh`.
- otherwise any-time fields and markers → one `patch`, then the size: `disable_autoscale`,
  `enable_autoscale` (also to update formula/interval), `resize` (also the correction of an out-of-band
  resize, and the retry of a resize that stopped short on quota or allocation errors — never a recreate).
Order matters to the engine: a pool's actions run in the order given, the patch first, so the new spec
hash lands only together with the fields it stands for.

Held, with the reason: everything for `suspend: true`; a refresh that would delete a pool with
`deletion_protection`; every action on a pool whose last action failed (a create refused on quota, a
refresh whose drain was aborted, a resize short of its target, ...) until
`backoff_until[(account, pool_id)]`, which the engine records and clears: without it the same failure
would be planned and tried again on every tick. Managed pools the config no longer declares are
`orphaned`: deleted only with `safety.prune`, at most `safety.max_deletions_per_run` per plan (by
account then id), and never when their metadata carries `reconciler.deletion-protection: true` — the
pool's own metadata is the only place protection can be read once the spec is gone, so the engine
mirrors the spec's flag there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from reconciler.azure import markers
from reconciler.azure.snapshot import AccountSnapshot, ObservedPool, Snapshot
from reconciler.plan.actions import (
    ActionKind,
    Backoff,
    ChangeRule,
    FieldChange,
    HeldAction,
    Plan,
    PoolAction,
    PoolState,
    PoolStatus,
)
from reconciler.plan.hashing import secret_references, spec_hash
from reconciler.plan.refresh import PATCH_WHEN_EMPTY, effective_strategy
from reconciler.plan.rules import (
    changed_secret_fields,
    compare,
    creation_changes,
    desired_markers,
    protected,
    rule_for,
    top_field,
)
from reconciler.plan.status import degraded, managed_status
from reconciler.spec.config import Config
from reconciler.spec.pool import Pool

NOT_RETURNED = "(not returned by the service)"
_AUTOSCALE_SETTINGS = ("auto_scale_formula", "auto_scale_evaluation_interval")
BackoffUntil = Mapping[tuple[str, str], datetime | Backoff]
"""(account, pool id as the config spells it) → until when, and after which failure, to leave it alone."""
_NO_BACKOFF: BackoffUntil = MappingProxyType({})


@dataclass
class _Collected:
    actions: list[PoolAction] = field(default_factory=list)
    held: list[HeldAction] = field(default_factory=list)
    statuses: list[PoolStatus] = field(default_factory=list)


def make_plan(
    config: Config,
    snapshot: Snapshot,
    *,
    now: datetime,
    backoff_until: BackoffUntil = _NO_BACKOFF,
) -> Plan:
    """The plan for one pass; pure, so the same inputs always give the same plan."""
    out = _Collected()
    declared: dict[str, set[str]] = {}
    for pool_id in sorted(config.pools):
        desired = config.pools[pool_id]
        declared.setdefault(desired.account, set()).add(pool_id.casefold())
        _plan_declared(out, pool_id, desired, snapshot.accounts.get(desired.account), now, backoff_until)
    deletions = 0
    for account in sorted(snapshot.accounts):
        observed_account = snapshot.accounts[account]
        if observed_account.error is not None:
            continue
        ids = declared.get(account, set())
        for key in sorted(observed_account.pools):
            observed = observed_account.pools[key]
            if observed.pool_id.casefold() in ids:
                continue
            deletions += _plan_undeclared(out, config, observed, deletions, now, backoff_until)
    return Plan(tuple(out.actions), tuple(out.statuses), tuple(out.held))


def _plan_declared(
    out: _Collected,
    pool_id: str,
    desired: Pool,
    account: AccountSnapshot | None,
    now: datetime,
    backoff_until: BackoffUntil,
) -> None:
    name = desired.account
    if account is None or account.error is not None:
        why = account.error.describe() if account is not None and account.error else "not observed"
        detail = f"account {name!r} unreachable: {why}"
        out.statuses.append(PoolStatus(name, pool_id, PoolState.unreachable, None, detail))
        return
    observed = account.find(pool_id)
    if observed is None:
        create = PoolAction(
            ActionKind.create, name, pool_id, "declared but absent", creation_changes(desired), desired
        )
        if desired.suspend:
            out.held.append(HeldAction(create, "suspend: true"))
            detail = "absent; suspend: true"
            out.statuses.append(PoolStatus(name, pool_id, PoolState.suspended, None, detail))
        elif (pause := _backing_off(create, None, now, backoff_until)) is not None:
            out.held.append(pause)
            detail = f"declared but absent; create held: {pause.reason}"
            out.statuses.append(PoolStatus(name, pool_id, PoolState.missing, None, detail))
        else:
            out.actions.append(create)
            out.statuses.append(PoolStatus(name, pool_id, PoolState.missing, None, "declared but absent"))
        return
    if not observed.managed:
        _plan_unmanaged(out, pool_id, desired, observed, now, backoff_until)
        return
    actions = _managed_actions(pool_id, desired, observed)
    held: list[HeldAction] = []
    if desired.suspend:
        held = [HeldAction(a, "suspend: true") for a in actions]
        actions = []
    else:
        held = [h for h in (_guard(a, desired, observed, now, backoff_until) for a in actions) if h]
        withheld = {id(h.action) for h in held}
        actions = [a for a in actions if id(a) not in withheld]
    out.actions.extend(actions)
    out.held.extend(held)
    out.statuses.append(managed_status(pool_id, desired, observed, actions, held))


def _plan_unmanaged(
    out: _Collected,
    pool_id: str,
    desired: Pool,
    observed: ObservedPool,
    now: datetime,
    backoff_until: BackoffUntil,
) -> None:
    name = desired.account
    changes = compare(desired, observed)
    ours = observed.spec_hash == spec_hash(desired)
    if ours or (desired.adopt and not changes and observed.state == "active"):
        reason = (
            "carries this spec's hash but not the ownership marker"
            if ours
            else "adopt: true and the pool matches the spec"
        )
        adopt = PoolAction(ActionKind.adopt, name, pool_id, reason, desired=desired, observed=observed)
        if desired.suspend:
            out.held.append(HeldAction(adopt, "suspend: true"))
        elif (pause := _backing_off(adopt, observed, now, backoff_until)) is not None:
            out.held.append(pause)
        else:
            out.actions.append(adopt)
        out.statuses.append(PoolStatus(name, pool_id, PoolState.drifted, None, reason, observed))
        return
    detail = "declared, but the pool exists without reconciler.managed-by: never touched"
    if desired.adopt:
        if changes:
            why = f"differs from the spec in {', '.join(dict.fromkeys(top_field(c.path) for c in changes))}"
        else:
            why = f"the pool is {observed.state}"
        reason = f"adopt: true, but {why}"
        adopt = PoolAction(ActionKind.adopt, name, pool_id, reason, changes, desired, observed)
        out.held.append(HeldAction(adopt, f"not adopted: {why}"))
        detail = f"adopt: true, but not adopted: {why}"
    elif changes:
        worst = _kind_for(changes)
        action = PoolAction(worst, name, pool_id, "differs from the spec", changes, desired, observed)
        out.held.append(HeldAction(action, "unmanaged pool (no reconciler.managed-by marker)"))
        detail += f"; {len(changes)} field(s) differ"
    else:
        detail += "; matches the spec"
    out.statuses.append(PoolStatus(name, pool_id, PoolState.unmanaged, None, detail, observed))


def _kind_for(changes: tuple[FieldChange, ...]) -> ActionKind:
    rules = {c.rule for c in changes}
    if ChangeRule.recreate in rules:
        return ActionKind.refresh
    if ChangeRule.patch in rules:
        return ActionKind.patch
    return ActionKind.resize


def _managed_actions(pool_id: str, desired: Pool, observed: ObservedPool) -> list[PoolAction]:
    name = desired.account

    def action(kind: ActionKind, reason: str, changes: tuple[FieldChange, ...] = ()) -> PoolAction:
        return PoolAction(kind, name, pool_id, reason, changes, desired, observed)

    changes = compare(desired, observed)
    secrets = changed_secret_fields(desired, observed, visible_changes=bool(changes))
    secret_changes = tuple(
        FieldChange(
            f,
            NOT_RETURNED,
            f"({', '.join(secret_references(desired, f)) or 'removed'})",
            rule_for(f, autoscale=desired.enable_auto_scale),
        )
        for f in sorted(secrets)
    )
    everything = changes + secret_changes
    if observed.state == "deleting":
        return [action(ActionKind.refresh, "being deleted; recreated once gone", everything)]
    if observed.refresh_pending:
        assert observed.refresh_requested_at is not None
        when = observed.refresh_requested_at.isoformat()
        return [action(ActionKind.refresh, f"refresh requested at {when}", everything)]
    rebuild = [c for c in everything if c.rule == ChangeRule.recreate]
    if rebuild:
        fields = ", ".join(dict.fromkeys(top_field(c.path) for c in rebuild))
        how = "drain and patch" if effective_strategy(observed, desired) == PATCH_WHEN_EMPTY else "recreate"
        return [action(ActionKind.refresh, f"{fields} changeable only on an empty pool: {how}", everything)]
    planned: list[PoolAction] = []
    patch = tuple(c for c in everything if c.rule == ChangeRule.patch) + _marker_changes(desired, observed)
    if patch:
        planned.append(action(ActionKind.patch, _patch_reason(patch), patch))
    planned.extend(_scale_actions(desired, observed, changes, action))
    return planned


def _patch_reason(changes: tuple[FieldChange, ...]) -> str:
    fields = dict.fromkeys(top_field(c.path) for c in changes)
    if set(fields) <= {"metadata"} and all(c.path.startswith("metadata.reconciler.") for c in changes):
        return "markers out of date"
    return f"{', '.join(fields)} changed"


def _marker_changes(desired: Pool, observed: ObservedPool) -> tuple[FieldChange, ...]:
    """Our own metadata, shown and patched like a field so a stale hash or protection flag is fixed."""
    want: dict[str, str | None] = dict(desired_markers(desired))
    for key in (markers.DELETION_PROTECTION, markers.SECRET_DIGESTS):
        want.setdefault(key, None)
    if markers.MANAGED_BY in observed.metadata:
        del want[markers.MANAGED_BY]
    found: list[FieldChange] = []
    for key in sorted(want):
        old = observed.metadata.get(key)
        if old != want[key]:
            found.append(FieldChange(f"metadata.{key}", old, want[key], ChangeRule.patch))
    return tuple(found)


class _ActionMaker(Protocol):
    def __call__(
        self, kind: ActionKind, reason: str, changes: tuple[FieldChange, ...] = ()
    ) -> PoolAction: ...


def _scale_actions(
    desired: Pool,
    observed: ObservedPool,
    changes: tuple[FieldChange, ...],
    action: _ActionMaker,
) -> list[PoolAction]:
    scale = tuple(c for c in changes if c.rule == ChangeRule.scale)
    if desired.enable_auto_scale:
        if not observed.enable_auto_scale:
            return [action(ActionKind.enable_autoscale, "autoscale is off; the spec turns it on", scale)]
        settings = tuple(c for c in scale if c.path in _AUTOSCALE_SETTINGS)
        if settings:
            return [action(ActionKind.enable_autoscale, "autoscale settings changed", settings)]
        return []
    planned: list[PoolAction] = []
    if observed.enable_auto_scale:
        planned.append(action(ActionKind.disable_autoscale, "autoscale is on; the spec sets a size", scale))
    want = (desired.target_dedicated_nodes or 0, desired.target_low_priority_nodes or 0)
    have = (observed.target_dedicated_nodes, observed.target_low_priority_nodes)
    sizing = tuple(
        FieldChange(path, old, new, ChangeRule.scale)
        for path, old, new in (
            ("target_dedicated_nodes", have[0], want[0]),
            ("target_low_priority_nodes", have[1], want[1]),
        )
        if old != new
    ) + tuple(c for c in scale if c.path == "resize_timeout")
    if sizing:
        planned.append(action(ActionKind.resize, "size differs from the spec", sizing))
    elif degraded(observed) and _below_target(observed):
        codes = ", ".join(sorted({e.code for e in observed.resize_errors}))
        planned.append(action(ActionKind.resize, f"retry the resize that stopped short ({codes})"))
    return planned


def _below_target(observed: ObservedPool) -> bool:
    return (
        observed.current_dedicated_nodes < observed.target_dedicated_nodes
        or observed.current_low_priority_nodes < observed.target_low_priority_nodes
    )


def _guard(
    action: PoolAction,
    desired: Pool,
    observed: ObservedPool,
    now: datetime,
    backoff_until: BackoffUntil,
) -> HeldAction | None:
    """The safety rule that withholds this action of a declared managed pool, if one does."""
    if (
        action.kind == ActionKind.refresh
        and desired.deletion_protection
        and observed.state != "deleting"
        and effective_strategy(observed, desired) != PATCH_WHEN_EMPTY
    ):
        return HeldAction(action, "deletion_protection: a refresh would delete the pool")
    return _backing_off(action, observed, now, backoff_until)


def _backing_off(
    action: PoolAction, observed: ObservedPool | None, now: datetime, backoff_until: BackoffUntil
) -> HeldAction | None:
    """Held while the pool's requeue backoff lasts, naming the failure and when it is tried again."""
    entry = backoff_until.get((action.account, action.pool_id))
    if entry is None:
        return None
    pause = entry if isinstance(entry, Backoff) else Backoff(entry)
    if now >= pause.until:
        return None
    reason = f"backing off until {pause.until.isoformat()}"
    if pause.reason:
        reason += f" after: {pause.reason}"
    if observed is not None and degraded(observed):
        reason = f"degraded: {reason}"
    return HeldAction(action, reason)


def _plan_undeclared(
    out: _Collected,
    config: Config,
    observed: ObservedPool,
    deletions: int,
    now: datetime,
    backoff_until: BackoffUntil,
) -> int:
    """Report a pool the config does not declare; plan its deletion if it is ours. Returns deletions."""
    name, pool_id = observed.account, observed.pool_id
    if not observed.managed:
        detail = "not declared and not managed by the reconciler"
        out.statuses.append(PoolStatus(name, pool_id, PoolState.unmanaged, None, detail, observed))
        return 0
    if observed.state == "deleting":
        detail = "no longer declared; being deleted"
        out.statuses.append(PoolStatus(name, pool_id, PoolState.orphaned, "deleting", detail, observed))
        return 0
    delete = PoolAction(ActionKind.delete, name, pool_id, "no longer declared", observed=observed)
    safety = config.safety
    hold: str | None = None
    if protected(observed):
        hold = "deletion protection (pool metadata reconciler.deletion-protection)"
    elif not safety.prune:
        hold = "safety.prune is off"
    elif deletions >= safety.max_deletions_per_run:
        hold = f"safety.max_deletions_per_run ({safety.max_deletions_per_run}) reached"
    elif (pause := _backing_off(delete, observed, now, backoff_until)) is not None:
        hold = pause.reason
    detail = "no longer declared" + (f"; deletion held: {hold}" if hold else "; to be deleted")
    out.statuses.append(PoolStatus(name, pool_id, PoolState.orphaned, None, detail, observed))
    if hold is not None:
        out.held.append(HeldAction(delete, hold))
        return 0
    out.actions.append(delete)
    return 1
