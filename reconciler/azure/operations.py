"""The calls that change a pool, and the single-pool GET the refresh cycle polls with.

Every failure leaves here as an `OperationFailed` carrying the classified error, so the engine decides on
kinds (`state`, `quota`, `throttled`) and never on status codes. The service's 409s that only describe a
state are settled here where the answer is obvious: deleting a pool that is already being deleted or gone
is done, stopping a resize that is not running is done, and a create that meets a pool we built
ourselves (same spec hash, after a crash between the call and its answer) adopts it.

Our metadata lives beside the user's in one list that a PATCH replaces whole, so every write of metadata
goes through `merged_metadata`: the user's items from the spec (or, when the spec says nothing, from the
pool) plus our `reconciler.*` markers.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import AzureError as SdkError

from reconciler.azure import markers
from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import AzureError, ErrorKind, classify
from reconciler.azure.observe import observed_pool
from reconciler.azure.rest import POOL_SELECT
from reconciler.azure.snapshot import ObservedPool
from reconciler.spec.durations import to_iso8601
from reconciler.spec.pool import Pool
from reconciler.spec.pool_settings import RESERVED_METADATA_PREFIX

_FAILURES = (SdkError, OSError, TimeoutError)
_PATCH_ATTEMPTS: Final = 3
DEFAULT_RESIZE_TIMEOUT: Final = timedelta(minutes=15)


class OperationFailed(Exception):
    """A call Azure refused or that could not reach it; `str()` is safe to log (no secret, no body)."""

    def __init__(self, operation: str, pool_id: str, error: AzureError) -> None:
        super().__init__(f"{operation} {pool_id}: {error.describe()}")
        self.operation = operation
        self.pool_id = pool_id
        self.error = error

    @property
    def kind(self) -> ErrorKind:
        return self.error.kind

    @property
    def code(self) -> str | None:
        return self.error.code


@contextlib.contextmanager
def _failing_as(
    operation: str, pool_id: str, *, done: Callable[[AzureError], bool] | None = None
) -> Iterator[None]:
    """Turn what Azure refused into `OperationFailed`; an error `done` accepts means the call's goal holds."""
    try:
        yield
    except _FAILURES as exc:
        error = classify(exc)
        if done is not None and done(error):
            return
        raise OperationFailed(operation, pool_id, error) from None


class CreateOutcome(enum.StrEnum):
    CREATED = "created"
    ADOPTED = "adopted"
    """The pool already existed with our spec hash: an earlier create succeeded before we crashed."""


def iso_utc(when: datetime) -> str:
    """The instant as our metadata spells it: ISO 8601, UTC, `Z`."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def merged_metadata(
    spec_items: list[Mapping[str, str]] | None,
    current: Mapping[str, str],
    ours: Mapping[str, str | None],
) -> list[dict[str, str]]:
    """The full metadata list to write: the user's items (spec, else current) and our markers.

    A marker given as None is removed; markers not named in `ours` are kept as they are.
    """
    if spec_items is None:
        user = [
            {"name": name, "value": value}
            for name, value in current.items()
            if not name.casefold().startswith(RESERVED_METADATA_PREFIX)
        ]
    else:
        user = [
            {"name": str(item["name"]), "value": str(item.get("value", ""))}
            for item in spec_items
            if not str(item["name"]).casefold().startswith(RESERVED_METADATA_PREFIX)
        ]
    kept = {
        name: value
        for name, value in current.items()
        if name.casefold().startswith(RESERVED_METADATA_PREFIX) and name not in ours
    }
    marks = {**kept, **ours}
    return [*user, *({"name": n, "value": v} for n, v in marks.items() if v is not None)]


def create_body(pool_id: str, pool: Pool, ours: Mapping[str, str]) -> dict[str, Any]:
    """The data-plane create body: the spec's own body, its metadata plus our markers.

    `ours` must carry the ownership marker and the spec hash; anything else of ours may join them.
    """
    if markers.MANAGED_BY not in ours or markers.SPEC_HASH not in ours:
        raise ValueError("a created pool carries the ownership marker and the spec hash")
    body = pool.to_batch_json(pool_id)
    body["metadata"] = merged_metadata(body.get("metadata") or [], {}, ours)
    return body


async def get_pool(clients: AzureClients, account: str, pool_id: str) -> ObservedPool | None:
    """One GET of one pool, as the listing would show it (without node counts); None when absent."""
    client = clients.batch(account)
    try:
        pool = await client.get_pool(pool_id, select=list(POOL_SELECT))
    except _FAILURES as exc:
        error = classify(exc)
        if error.kind is ErrorKind.NOT_FOUND:
            return None
        raise OperationFailed("get", pool_id, error) from None
    return observed_pool(account, pool.as_dict(), None)


async def create_pool(
    clients: AzureClients, account: str, pool_id: str, pool: Pool, ours: Mapping[str, str]
) -> CreateOutcome:
    """Create the pool (through ARM when it has managed identities); adopt our own pool on `PoolExists`."""
    body = create_body(pool_id, pool, ours)
    try:
        if pool.identity is not None:
            await _create_through_arm(clients, account, pool_id, body, pool)
        else:
            await clients.batch(account).create_pool(body)
    except _FAILURES as exc:
        error = classify(exc)
        # The data plane says PoolExists; ARM answers our If-None-Match with 412.
        if error.code != "PoolExists" and error.kind is not ErrorKind.PRECONDITION:
            raise OperationFailed("create", pool_id, error) from None
        existing = await get_pool(clients, account, pool_id)
        if (
            existing is not None
            and existing.state == "active"
            and existing.spec_hash == ours[markers.SPEC_HASH]
        ):
            return CreateOutcome.ADOPTED
        raise OperationFailed("create", pool_id, error) from None
    return CreateOutcome.CREATED


async def patch_pool(
    clients: AzureClients,
    account: str,
    pool_id: str,
    properties: Mapping[str, Any] | None = None,
    *,
    ours: Mapping[str, str | None] | None = None,
    observed: ObservedPool | None = None,
) -> None:
    """PATCH `properties` (REST names) and our markers, keeping whatever metadata neither of them names.

    With `ours` the pool's current metadata must be known: `observed` when the caller has it, else a GET.
    The write is conditional on the ETag it was merged from; a concurrent change is re-read and merged
    again rather than overwritten.
    """
    body = dict(properties or {})
    if ours is None and "metadata" not in body:
        await _update(clients, account, pool_id, body, None)
        return
    for attempt in range(_PATCH_ATTEMPTS):
        current = observed if attempt == 0 and observed is not None else None
        if current is None:
            current = await get_pool(clients, account, pool_id)
            if current is None:
                raise OperationFailed(
                    "patch", pool_id, AzureError(ErrorKind.NOT_FOUND, "the pool does not exist")
                )
        spec_items = body.get("metadata")
        merged = merged_metadata(spec_items, current.metadata, ours or {})
        try:
            await _update(clients, account, pool_id, {**body, "metadata": merged}, current.etag)
            return
        except OperationFailed as failed:
            if failed.kind is not ErrorKind.PRECONDITION or attempt == _PATCH_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def adopt_pool(
    clients: AzureClients,
    account: str,
    pool_id: str,
    observed: ObservedPool,
    ours: Mapping[str, str | None],
) -> None:
    """Write our markers onto a pool found without them, only if it is still the pool that was compared.

    Unlike `patch_pool`, a concurrent change is not re-read and merged: the decision to adopt rested on
    this observation matching the spec, so the PATCH is conditional on its ETag and a pool changed since
    is refused (a precondition failure), to be compared again on the next pass. The user's metadata is
    kept as observed.
    """
    if not observed.etag:
        error = AzureError(ErrorKind.PRECONDITION, "the pool was observed without an ETag; not adopted")
        raise OperationFailed("adopt", pool_id, error)
    merged = merged_metadata(None, observed.metadata, ours)
    try:
        await _update(clients, account, pool_id, {"metadata": merged}, observed.etag)
    except OperationFailed as failed:
        raise OperationFailed("adopt", pool_id, failed.error) from None


async def replace_properties(
    clients: AzureClients,
    account: str,
    pool_id: str,
    properties: Mapping[str, Any],
    *,
    ours: Mapping[str, str | None],
    observed: ObservedPool | None = None,
) -> None:
    """updateproperties: start task, packages, metadata and communication mode replaced whole.

    The one way to remove a start task; whatever `properties` leaves out is cleared (the metadata keeps
    our markers, merged like a PATCH's).
    """
    current = observed or await get_pool(clients, account, pool_id)
    if current is None:
        raise OperationFailed("replace", pool_id, AzureError(ErrorKind.NOT_FOUND, "the pool does not exist"))
    body: dict[str, Any] = {
        "applicationPackageReferences": list(properties.get("applicationPackageReferences") or []),
        "metadata": merged_metadata(list(properties.get("metadata") or []), current.metadata, ours),
        "targetNodeCommunicationMode": properties.get("targetNodeCommunicationMode") or "default",
    }
    if properties.get("startTask"):
        body["startTask"] = properties["startTask"]
    with _failing_as("replace", pool_id):
        await clients.batch(account).replace_pool_properties(pool_id, body)


async def _update(
    clients: AzureClients, account: str, pool_id: str, body: Mapping[str, Any], etag: str | None
) -> None:
    client = clients.batch(account)
    condition: dict[str, Any] = {}
    if etag:
        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    with _failing_as("patch", pool_id):
        await client.update_pool(pool_id, dict(body), **condition)


def request_time(observed: ObservedPool, now: datetime) -> datetime:
    """The instant to record a refresh request at: now, but never before the pool's own last change.

    The refresh is done once the pool's creation time (the service's clock) is later than the request;
    a local clock running behind the service must not write a request the pool already satisfies.
    """
    floor = max(t for t in (observed.last_modified, observed.creation_time, now) if t is not None)
    return floor + timedelta(milliseconds=1) if floor > now else now


async def request_refresh(
    clients: AzureClients, account: str, pool_id: str, at: datetime, *, observed: ObservedPool | None = None
) -> None:
    """Write the refresh request into the pool, where it survives any restart and anyone can see it."""
    await patch_pool(
        clients, account, pool_id, ours={markers.REFRESH_REQUESTED_AT: iso_utc(at)}, observed=observed
    )


async def resize_pool(
    clients: AzureClients,
    account: str,
    pool_id: str,
    *,
    target_dedicated_nodes: int,
    target_low_priority_nodes: int,
    node_deallocation_option: str | None = None,
    resize_timeout: timedelta | None = None,
) -> None:
    """Start a resize; the pool's allocation state says when it is over (no LRO polling here)."""
    options: dict[str, Any] = {
        "targetDedicatedNodes": target_dedicated_nodes,
        "targetLowPriorityNodes": target_low_priority_nodes,
    }
    if node_deallocation_option is not None:
        options["nodeDeallocationOption"] = node_deallocation_option
    if resize_timeout is not None:
        options["resizeTimeout"] = to_iso8601(max(resize_timeout, timedelta(minutes=5)))
    with _failing_as("resize", pool_id):
        await clients.batch(account).begin_resize_pool(pool_id, options)


async def stop_resize(clients: AzureClients, account: str, pool_id: str) -> None:
    with _failing_as("stop_resize", pool_id, done=lambda error: error.code == "PoolNotResizing"):
        await clients.batch(account).begin_stop_pool_resize(pool_id)


async def enable_autoscale(
    clients: AzureClients, account: str, pool_id: str, formula: str, interval: timedelta | None
) -> None:
    options: dict[str, Any] = {"autoScaleFormula": formula}
    if interval is not None:
        options["autoScaleEvaluationInterval"] = to_iso8601(interval)
    with _failing_as("enable_autoscale", pool_id):
        await clients.batch(account).enable_pool_auto_scale(pool_id, options)


async def disable_autoscale(clients: AzureClients, account: str, pool_id: str) -> None:
    with _failing_as("disable_autoscale", pool_id):
        await clients.batch(account).disable_pool_auto_scale(pool_id)


def _gone_or_going(error: AzureError) -> bool:
    return error.kind is ErrorKind.NOT_FOUND or error.code == "PoolBeingDeleted"


async def delete_pool(clients: AzureClients, account: str, pool_id: str) -> None:
    """Start the deletion; a pool already deleting or already gone counts as deleted."""
    with _failing_as("delete", pool_id, done=_gone_or_going):
        await clients.batch(account).begin_delete_pool(pool_id)


# --- the management plane, for pools with user-assigned identities ------------------------------------

_ARM_RENAMES: Final = {
    "nodeAgentSKUId": "nodeAgentSkuId",
    "dynamicVNetAssignmentScope": "dynamicVnetAssignmentScope",
}


@dataclass(frozen=True)
class _ArmAccount:
    subscription_id: str
    resource_group: str
    account_name: str


def _arm_account(clients: AzureClients, account: str) -> _ArmAccount:
    settings = clients.config.accounts[account]
    subscription = settings.subscription_id
    group = settings.resource_group
    name = settings.account_name
    if not (subscription and group and name):
        raise OperationFailed(
            "create",
            "",
            AzureError(
                ErrorKind.INVALID, f"account {account} needs subscription_id, resource_group and account_name"
            ),
        )
    return _ArmAccount(str(subscription), str(group), str(name))


def arm_pool_body(body: Mapping[str, Any], pool: Pool, where: _ArmAccount) -> dict[str, Any]:
    """A data-plane create body in ARM's `batchAccounts/pools` shape (nested, renamed, identity by id)."""
    props: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("id", "targetDedicatedNodes", "targetLowPriorityNodes", "resizeTimeout"):
            continue
        if key in ("enableAutoScale", "autoScaleFormula", "autoScaleEvaluationInterval", "resourceTags"):
            continue
        if key == "virtualMachineConfiguration":
            props["deploymentConfiguration"] = {"virtualMachineConfiguration": _renamed(value)}
        elif key == "enableInterNodeCommunication":
            props["interNodeCommunication"] = "Enabled" if value else "Disabled"
        elif key == "applicationPackageReferences":
            prefix = (
                f"/subscriptions/{where.subscription_id}/resourceGroups/{where.resource_group}"
                f"/providers/Microsoft.Batch/batchAccounts/{where.account_name}/applications/"
            )
            props["applicationPackages"] = [
                {
                    "id": prefix + str(ref["applicationId"]),
                    **({"version": ref["version"]} if ref.get("version") else {}),
                }
                for ref in value
            ]
        else:
            props[key] = _renamed(value)
    if body.get("enableAutoScale"):
        auto: dict[str, Any] = {"formula": body.get("autoScaleFormula", "")}
        if body.get("autoScaleEvaluationInterval"):
            auto["evaluationInterval"] = body["autoScaleEvaluationInterval"]
        props["scaleSettings"] = {"autoScale": auto}
    else:
        fixed: dict[str, Any] = {
            "targetDedicatedNodes": int(body.get("targetDedicatedNodes") or 0),
            "targetLowPriorityNodes": int(body.get("targetLowPriorityNodes") or 0),
        }
        if body.get("resizeTimeout"):
            fixed["resizeTimeout"] = body["resizeTimeout"]
        props["scaleSettings"] = {"fixedScale": fixed}
    result: dict[str, Any] = {"properties": props}
    if pool.identity is not None:
        result["identity"] = {
            "type": "UserAssigned",
            "userAssignedIdentities": {rid: {} for rid in pool.identity.user_assigned_identities},
        }
    return result


def _renamed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_ARM_RENAMES.get(str(k), str(k)): _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


async def _create_through_arm(
    clients: AzureClients, account: str, pool_id: str, body: Mapping[str, Any], pool: Pool
) -> None:
    where = _arm_account(clients, account)
    mgmt = clients.batch_mgmt(where.subscription_id)
    await mgmt.pool.create(
        where.resource_group,
        where.account_name,
        pool_id,
        arm_pool_body(body, pool, where),
        etag="*",
        match_condition=MatchConditions.IfMissing,
    )
