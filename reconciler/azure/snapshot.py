"""What Azure held at one instant: one immutable snapshot per tick, the plan's only view of the world.

Everything the engine decides on is here, read from one pool listing and one node-count listing per
account, so a tick costs a number of calls that grows with accounts, not pools. An account that could not
be read carries its classified error instead of pools: it is reported, and the other accounts reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from reconciler.azure.errors import AzureError

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ResizeError:
    """A reason the last resize stopped short (`AccountCoreQuotaReached`, `AllocationFailed`, ...)."""

    code: str
    message: str


@dataclass(frozen=True)
class NodeCounts:
    """Nodes of one priority (dedicated or low-priority/spot) by state, REST spellings (`leavingPool`)."""

    states: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    total: int = 0

    def __getitem__(self, state: str) -> int:
        return self.states.get(state, 0)


@dataclass(frozen=True)
class ObservedPool:
    """One pool as listed, with the reconciler's metadata decoded.

    `desired_view` is the pool's Azure-facing properties in the comparable canonical form
    (`reconciler.azure.rest.comparable_view`): diff it against `comparable_pool(spec)`.
    """

    account: str
    pool_id: str
    state: str
    """`active` or `deleting`."""
    allocation_state: str
    """`steady`, `resizing` or `stopping`."""
    creation_time: datetime | None
    last_modified: datetime | None
    etag: str | None
    metadata: Mapping[str, str]
    managed: bool
    """Carries the ownership marker: only such pools are ever changed or deleted."""
    spec_hash: str | None
    refresh_requested_at: datetime | None
    resize_errors: tuple[ResizeError, ...]
    enable_auto_scale: bool
    target_dedicated_nodes: int
    target_low_priority_nodes: int
    current_dedicated_nodes: int
    current_low_priority_nodes: int
    dedicated_nodes: NodeCounts
    low_priority_nodes: NodeCounts
    desired_view: Mapping[str, Any]
    state_transition_time: datetime | None = None
    """When `state` last changed: the start of a deletion, as the service counts it."""
    allocation_state_transition_time: datetime | None = None
    """When `allocation_state` last changed: the start of a drain or an allocation."""

    @property
    def steady(self) -> bool:
        return self.state == "active" and self.allocation_state == "steady"

    @property
    def refresh_pending(self) -> bool:
        """A refresh was requested and the pool has not been recreated since."""
        if self.refresh_requested_at is None:
            return False
        return self.creation_time is None or self.creation_time <= self.refresh_requested_at


@dataclass(frozen=True)
class AccountSnapshot:
    account: str
    observed_at: datetime
    pools: Mapping[str, ObservedPool] = field(default_factory=lambda: _EMPTY)
    error: AzureError | None = None
    """Why this account could not be observed; `pools` is then empty and means nothing."""

    def find(self, pool_id: str) -> ObservedPool | None:
        """The pool with this id; Batch pool ids are case-insensitive."""
        found = self.pools.get(pool_id)
        if found is not None:
            return found
        folded = pool_id.casefold()
        return next((p for key, p in self.pools.items() if key.casefold() == folded), None)

    @property
    def managed(self) -> Mapping[str, ObservedPool]:
        return MappingProxyType({key: p for key, p in self.pools.items() if p.managed})

    @property
    def unmanaged(self) -> Mapping[str, ObservedPool]:
        return MappingProxyType({key: p for key, p in self.pools.items() if not p.managed})


@dataclass(frozen=True)
class Snapshot:
    accounts: Mapping[str, AccountSnapshot]
    observed_at: datetime

    def pool(self, account: str, pool_id: str) -> ObservedPool | None:
        observed = self.accounts.get(account)
        return observed.find(pool_id) if observed is not None else None

    @property
    def errors(self) -> Mapping[str, AzureError]:
        return MappingProxyType({n: a.error for n, a in self.accounts.items() if a.error is not None})
