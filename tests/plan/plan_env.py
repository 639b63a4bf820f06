"""Hand-built specs, observations and snapshots for the pure plan tests (no Azure, no emulator).

`observed_from(spec)` is the pool exactly as `observe` would list it after the engine created it from
that spec: the comparable view, our markers, steady at its target. Tests change one fact at a time
from there with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from pool_spec_env import pool_dict

from reconciler.azure.errors import AzureError, ErrorKind
from reconciler.azure.rest import comparable_pool
from reconciler.azure.snapshot import AccountSnapshot, NodeCounts, ObservedPool, ResizeError, Snapshot
from reconciler.plan.rules import desired_markers
from reconciler.spec.config import Config
from reconciler.spec.pool import Pool

ACCOUNT = "demo"
NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=1)

BASE: dict[str, Any] = pool_dict(ACCOUNT, target_dedicated_nodes=2)


def spec(**overrides: Any) -> Pool:
    data = {**BASE, **overrides}
    return Pool.model_validate({k: v for k, v in data.items() if v is not None})


def autoscale_spec(formula: str = "$TargetDedicatedNodes = 3;", **overrides: Any) -> Pool:
    return spec(target_dedicated_nodes=None, enable_auto_scale=True, auto_scale_formula=formula, **overrides)


def nodes(**states: int) -> NodeCounts:
    return NodeCounts(MappingProxyType(dict(states)), sum(states.values()))


def observed_from(desired: Pool, pool_id: str = "p1", **changes: Any) -> ObservedPool:
    targets = (desired.target_dedicated_nodes or 0, desired.target_low_priority_nodes or 0)
    if desired.enable_auto_scale:
        targets = (3, 0)
    pool = ObservedPool(
        account=desired.account,
        pool_id=pool_id,
        state="active",
        allocation_state="steady",
        creation_time=CREATED,
        last_modified=CREATED,
        etag="0x1",
        metadata=MappingProxyType(desired_markers(desired)),
        managed=True,
        spec_hash=desired_markers(desired)["reconciler.spec-hash"],
        refresh_requested_at=None,
        resize_errors=(),
        enable_auto_scale=desired.enable_auto_scale,
        target_dedicated_nodes=targets[0],
        target_low_priority_nodes=targets[1],
        current_dedicated_nodes=targets[0],
        current_low_priority_nodes=targets[1],
        dedicated_nodes=nodes(idle=targets[0]) if targets[0] else nodes(),
        low_priority_nodes=nodes(idle=targets[1]) if targets[1] else nodes(),
        desired_view=MappingProxyType(comparable_pool(desired)),
    )
    return replace(pool, **changes)


def with_view(observed: ObservedPool, **fields: Any) -> ObservedPool:
    """The observation with some comparable fields as a portal edit (or another spec) left them."""
    view = dict(observed.desired_view)
    for key, value in fields.items():
        if value is None:
            view.pop(key, None)
        else:
            view[key] = value
    return replace(observed, desired_view=MappingProxyType(view))


def unmanaged(observed: ObservedPool) -> ObservedPool:
    return replace(observed, metadata=MappingProxyType({}), managed=False, spec_hash=None)


def with_metadata(observed: ObservedPool, **items: str | None) -> ObservedPool:
    metadata = dict(observed.metadata)
    for key, value in items.items():
        name = key.replace("__", ".").replace("_", "-")
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value
    return replace(observed, metadata=MappingProxyType(metadata))


def quota_error(observed: ObservedPool, current: int = 0) -> ObservedPool:
    return replace(
        observed,
        resize_errors=(ResizeError("AccountCoreQuotaReached", "core quota reached"),),
        current_dedicated_nodes=current,
        dedicated_nodes=nodes(idle=current) if current else nodes(),
    )


def snapshot(*pools: ObservedPool, account: str = ACCOUNT, error: AzureError | None = None) -> Snapshot:
    accounts = {
        account: AccountSnapshot(
            account, NOW, MappingProxyType({} if error else {p.pool_id: p for p in pools}), error
        )
    }
    return Snapshot(MappingProxyType(accounts), NOW)


def unreachable_error() -> AzureError:
    return AzureError(ErrorKind.TRANSIENT, "connection refused", code="ServiceRequestError")


def config(pools: dict[str, Pool], **safety: Any) -> Config:
    return Config.model_validate(
        {
            "accounts": {ACCOUNT: {"batch_url": "https://demo.japaneast.batch.azure.com"}},
            "pools": dict(pools),
            "safety": safety,
        }
    )
