"""The vocabulary a plan is written in, shared by the planner, the engine and the commands.

A plan is a value: frozen dataclasses only, so the engine can log, compare and re-derive it, and a
command can render it, without either of them reaching back into the planner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from reconciler.azure.snapshot import ObservedPool
from reconciler.spec.pool import Pool


class ChangeRule(StrEnum):
    """When the Batch service lets a property change, which decides the action that changes it."""

    patch = "patch"
    """Any time, on a live pool (data-plane PATCH / updateproperties)."""
    scale = "scale"
    """Through resize or the autoscale operations."""
    recreate = "recreate"
    """Only on an empty pool or not at all: the refresh cycle."""


@dataclass(frozen=True)
class FieldChange:
    """One property that differs; `old` and `new` are display values with secrets already masked."""

    path: str
    old: Any
    new: Any
    rule: ChangeRule


class ActionKind(StrEnum):
    create = "create"
    patch = "patch"
    """Data-plane PATCH of the patchable fields, including the tool's metadata markers."""
    resize = "resize"
    enable_autoscale = "enable_autoscale"
    """Enable autoscale, or update the formula/interval of a pool that already has it on."""
    disable_autoscale = "disable_autoscale"
    refresh = "refresh"
    """The level-triggered recreate cycle (or drain-then-PATCH under `patch-when-empty`)."""
    delete = "delete"
    """Prune a managed pool the config no longer declares."""
    adopt = "adopt"
    """Write the ownership marker onto a pool found without it: one carrying our spec hash (a create of
    ours whose answer was lost), or, with `adopt: true`, one that matches the spec as it is."""


@dataclass(frozen=True)
class PoolAction:
    """One thing to do to one pool, with the why, the field diff and both sides it was derived from."""

    kind: ActionKind
    account: str
    pool_id: str
    reason: str
    changes: tuple[FieldChange, ...] = ()
    desired: Pool | None = None
    observed: ObservedPool | None = None


@dataclass(frozen=True)
class HeldAction:
    """An action a safety rule withheld, and which rule (prune off, deletion protection, suspend, ...)."""

    action: PoolAction
    reason: str


@dataclass(frozen=True)
class Backoff:
    """A pool whose last action failed, left alone until `until`; `reason` is that failure, shown on hold."""

    until: datetime
    reason: str = ""


class PoolState(StrEnum):
    in_sync = "in_sync"
    drifted = "drifted"
    missing = "missing"
    refreshing = "refreshing"
    degraded = "degraded"
    suspended = "suspended"
    unmanaged = "unmanaged"
    orphaned = "orphaned"
    """Carries our marker but the config no longer declares it."""
    unreachable = "unreachable"
    """Its account could not be observed."""


@dataclass(frozen=True)
class PoolStatus:
    """How one pool stands, for `status`, metrics and logs; `phase` is set while refreshing."""

    account: str
    pool_id: str
    state: PoolState
    phase: str | None
    detail: str
    observed: ObservedPool | None = None


@dataclass(frozen=True)
class Plan:
    """Everything one pass decided: what to do, how each pool stands, and what was withheld."""

    actions: tuple[PoolAction, ...] = ()
    statuses: tuple[PoolStatus, ...] = ()
    held: tuple[HeldAction, ...] = ()

    @property
    def in_sync(self) -> bool:
        """Azure already matches the config: nothing to do and nothing withheld."""
        return not self.actions and not self.held
