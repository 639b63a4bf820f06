"""Reading Azure into a `Snapshot`: per account one pool listing and one node-count listing, concurrently.

No per-pool GET: the listing's `$select` carries every compared property plus state and metadata, so the
calls per tick grow with accounts, not pools (paging is part of the one listing). An account whose calls
fail is reported with its classified error rather than raised, so one broken account never stops the
others from reconciling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from azure.core.exceptions import AzureError as SdkError

from reconciler.azure import markers
from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import AzureError, ConfigurationError, ErrorKind, classify
from reconciler.azure.rest import POOL_SELECT, canonical_from_rest, comparable_view
from reconciler.azure.snapshot import AccountSnapshot, NodeCounts, ObservedPool, ResizeError, Snapshot

Clock = Callable[[], datetime]
_A = TypeVar("_A")
_B = TypeVar("_B")
_FAILURES = (SdkError, OSError, TimeoutError, ConfigurationError)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def observe(
    clients: AzureClients,
    accounts: Iterable[str] | None = None,
    *,
    clock: Clock = utc_now,
    account_timeout: float | None = None,
) -> Snapshot:
    """Observe the given declared accounts (default: all), each bounded by `account_timeout` seconds."""
    names = list(accounts) if accounts is not None else list(clients.config.accounts)
    results = await asyncio.gather(
        *(observe_account(clients, name, clock=clock, account_timeout=account_timeout) for name in names)
    )
    return Snapshot(MappingProxyType({r.account: r for r in results}), clock())


async def observe_account(
    clients: AzureClients, account: str, *, clock: Clock = utc_now, account_timeout: float | None = None
) -> AccountSnapshot:
    observed_at = clock()
    try:
        client = clients.batch(account)
        async with asyncio.timeout(account_timeout):
            pools, counts = await _both(_list_pools(client), _list_node_counts(client))
    except _FAILURES as exc:
        if isinstance(exc, TimeoutError) and account_timeout is not None:
            error = AzureError(ErrorKind.TRANSIENT, f"no answer within {account_timeout:g}s", code="Timeout")
        else:
            error = classify(exc)
        return AccountSnapshot(account, observed_at, error=error)
    observed = {
        str(body["id"]): observed_pool(account, body, counts.get(str(body["id"]).casefold()))
        for body in pools
    }
    return AccountSnapshot(account, observed_at, MappingProxyType(observed))


async def _both(first: Awaitable[_A], second: Awaitable[_B]) -> tuple[_A, _B]:
    """Both results, or the first failure once neither call is still running (none left unawaited)."""
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    for outcome in (one, two):
        if isinstance(outcome, BaseException):
            raise outcome
    return one, two  # type: ignore[return-value]


async def _list_pools(client: Any) -> list[dict[str, Any]]:
    return [pool.as_dict() async for pool in client.list_pools(select=list(POOL_SELECT))]


async def _list_node_counts(client: Any) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    async for item in client.list_pool_node_counts():
        body = item.as_dict()
        counts[str(body.get("poolId", "")).casefold()] = body
    return counts


def observed_pool(account: str, body: Mapping[str, Any], counts: Mapping[str, Any] | None) -> ObservedPool:
    """One listed pool (REST JSON) and its node counts as an `ObservedPool`."""
    metadata = {
        str(item["name"]): str(item.get("value", ""))
        for item in body.get("metadata") or []
        if isinstance(item, Mapping) and "name" in item
    }
    counts = counts or {}
    return ObservedPool(
        account=account,
        pool_id=str(body["id"]),
        state=str(body.get("state", "")),
        allocation_state=str(body.get("allocationState", "")),
        creation_time=parse_time(body.get("creationTime")),
        last_modified=parse_time(body.get("lastModified")),
        etag=body.get("eTag"),
        metadata=MappingProxyType(metadata),
        managed=markers.MANAGED_BY in metadata,
        spec_hash=metadata.get(markers.SPEC_HASH),
        refresh_requested_at=parse_time(metadata.get(markers.REFRESH_REQUESTED_AT)),
        resize_errors=tuple(
            ResizeError(str(e.get("code", "")), str(e.get("message", "")))
            for e in body.get("resizeErrors") or []
            if isinstance(e, Mapping)
        ),
        enable_auto_scale=bool(body.get("enableAutoScale", False)),
        target_dedicated_nodes=int(body.get("targetDedicatedNodes") or 0),
        target_low_priority_nodes=int(body.get("targetLowPriorityNodes") or 0),
        current_dedicated_nodes=int(body.get("currentDedicatedNodes") or 0),
        current_low_priority_nodes=int(body.get("currentLowPriorityNodes") or 0),
        dedicated_nodes=_node_counts(counts.get("dedicated")),
        low_priority_nodes=_node_counts(counts.get("lowPriority")),
        desired_view=MappingProxyType(comparable_view(canonical_from_rest(body))),
        state_transition_time=parse_time(body.get("stateTransitionTime")),
        allocation_state_transition_time=parse_time(body.get("allocationStateTransitionTime")),
    )


def _node_counts(raw: Any) -> NodeCounts:
    if not isinstance(raw, Mapping):
        return NodeCounts()
    states = {str(k): int(v) for k, v in raw.items() if k != "total" and isinstance(v, int) and v}
    return NodeCounts(MappingProxyType(states), int(raw.get("total") or sum(states.values())))


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 instant as the service (or our metadata) writes it; naive times are taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        text = value.strip()
        if "." in text:
            head, _, tail = text.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
