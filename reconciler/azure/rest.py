"""Observed REST JSON of a pool → the canonical form `Pool.canonical()` gives, to diff like with like.

The mapping is not written per field: it walks the `Pool` model, reading each field under the REST name
its serialization alias gives and normalising each value through the field's own type (durations to
ISO 8601, case-insensitive enums to the model's spelling), exactly as the spec's values are. A property
the model does not know (`url`, `exactVersion`, `certificateReferences`) is not part of the view.

Three differences between what we send and what the service returns are settled here, on both sides:
- **Secrets are write-only.** The service omits passwords and keys, and what it does return (a SAS URL)
  must not land in a snapshot that gets logged. Every `Secret`-typed value is left out of the observed
  view and removed from the desired one by `comparable_pool`; a changed secret is therefore not a field
  diff: the plan sees it through the markers written at create (`reconciler.spec-hash`, which covers the
  secret's reference, and `reconciler.secret-digests`).
- **Service defaults equal absence.** Azure fills in what a create left out (`resizeTimeout: PT15M`,
  `taskSlotsPerNode: 1`, ...); `SERVICE_DEFAULTS` lists the documented defaults of BatchService.json, and a
  value equal to its default is dropped from both sides, as is any empty object or list.
- **The tool's own metadata** (`reconciler.*`) is state, not spec: it is kept on `ObservedPool.metadata`
  and left out of the view. Under autoscale the targets are the formula's output, and without it the
  formula is gone, so neither belongs to the view either.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from reconciler.spec.pool import AUTOSCALE_SETTINGS, FIXED_TARGETS, OWN_KEYS, Pool
from reconciler.spec.pool_settings import RESERVED_METADATA_PREFIX
from reconciler.spec.secrets import Secret

_AZURE_FACING: Final = frozenset(Pool.model_fields) - (OWN_KEYS - {"identity"})
"""Pool fields in `Pool.canonical()`: everything but the tool's own keys (identity is Azure state)."""

STATE_PROPERTIES: Final = (
    "id",
    "state",
    "allocationState",
    "metadata",
    "creationTime",
    "lastModified",
    "stateTransitionTime",
    "allocationStateTransitionTime",
    "eTag",
    "resizeErrors",
    "enableAutoScale",
    "autoScaleFormula",
    "autoScaleEvaluationInterval",
    "currentDedicatedNodes",
    "currentLowPriorityNodes",
    "targetDedicatedNodes",
    "targetLowPriorityNodes",
)
"""What the engine reads besides the compared fields: identity, lifecycle, scale and markers."""

SERVICE_DEFAULTS: Final[Mapping[tuple[str, ...], Any]] = {
    ("resize_timeout",): "PT15M",
    ("enable_auto_scale",): False,
    ("auto_scale_evaluation_interval",): "PT15M",
    ("target_dedicated_nodes",): 0,
    ("target_low_priority_nodes",): 0,
    ("enable_inter_node_communication",): False,
    ("task_slots_per_node",): 1,
    ("task_scheduling_policy", "node_fill_type"): "spread",
    ("task_scheduling_policy", "job_default_order"): "none",
    ("target_node_communication_mode",): "default",
    ("start_task", "max_task_retry_count"): 0,
    ("start_task", "wait_for_success"): True,
    ("start_task", "user_identity", "auto_user", "scope"): "pool",
    ("start_task", "user_identity", "auto_user", "elevation_level"): "nonadmin",
    ("user_accounts", "elevation_level"): "nonadmin",
}
"""Documented defaults of BatchService.json by canonical path; a path runs through lists element-wise."""


class _Dropped:
    """Marks a value that never enters a view (a secret)."""


_DROP: Final = _Dropped()


def rest_name(name: str, field: FieldInfo) -> str:
    """The REST property a model field is sent as: its serialization alias, else the camelCase name."""
    return field.serialization_alias or to_camel(name)


def compared_properties() -> tuple[str, ...]:
    """REST names of the pool properties the plan compares, in model order."""
    return tuple(rest_name(n, f) for n, f in Pool.model_fields.items() if n in _AZURE_FACING)


POOL_SELECT: Final = tuple(dict.fromkeys((*STATE_PROPERTIES, *compared_properties())))
"""The `$select` of the one pool listing per account and tick."""


def canonical_from_rest(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pool as the service returned it (camelCase JSON) in the shape of `Pool.canonical()`."""
    data = dict(body)
    identity = data.get("identity")
    if isinstance(identity, Mapping):
        data["identity"] = {**identity, "userAssignedIdentities": _identity_ids(identity)}
    view = _convert_model(Pool, data, only=_AZURE_FACING)
    metadata = [
        item
        for item in view.get("metadata", [])
        if not str(item.get("name", "")).casefold().startswith(RESERVED_METADATA_PREFIX)
    ]
    if metadata:
        view["metadata"] = metadata
    else:
        view.pop("metadata", None)
    for name in FIXED_TARGETS if view.get("enable_auto_scale") else AUTOSCALE_SETTINGS:
        view.pop(name, None)
    result = _sorted(view)
    assert isinstance(result, dict)
    return result


def comparable_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical pool dict without secrets, service defaults and empty values: what the plan diffs."""
    stripped = _strip_secrets(Pool, view)
    for path, default in SERVICE_DEFAULTS.items():
        stripped = _drop_default(stripped, path, default)
    result = _prune_empty(stripped)
    return result if isinstance(result, dict) else {}


def comparable_pool(pool: Pool) -> dict[str, Any]:
    """The desired side of the plan's field-by-field diff: `comparable_view(pool.canonical())`."""
    return comparable_view(pool.canonical())


def _identity_ids(identity: Mapping[str, Any]) -> list[str]:
    """The data plane lists identities as `{resourceId, clientId, principalId}`, ARM keys them by id."""
    raw = identity.get("userAssignedIdentities") or []
    if isinstance(raw, Mapping):
        return [str(key) for key in raw]
    ids: list[str] = []
    for item in raw:
        if isinstance(item, Mapping) and "resourceId" in item:
            ids.append(str(item["resourceId"]))
        elif isinstance(item, str):
            ids.append(item)
    return ids


def _field_annotation(field: FieldInfo) -> Any:
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def _convert_model(
    model: type[BaseModel], data: Mapping[str, Any], only: frozenset[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if only is not None and name not in only:
            continue
        annotation = _field_annotation(field)
        key = rest_name(name, field)
        if data.get(key) is not None:
            value = _convert(annotation, data[key])
        elif not field.is_required() and not _has_secret(annotation):
            default = field.get_default(call_default_factory=True)
            value = _leaf(annotation, default, dump_only=True) if default is not None else None
        else:
            value = None
        if value is not None and value is not _DROP:
            out[name] = value
    return out


def _convert(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    if _has_secret(annotation):
        return _DROP
    base = unwrap(annotation)
    if isinstance(base, type) and issubclass(base, BaseModel):
        return _convert_model(base, value) if isinstance(value, Mapping) else value
    origin = get_origin(base)
    if origin is list and isinstance(value, list):
        (item,) = get_args(base) or (Any,)
        return [v for v in (_convert(item, x) for x in value) if v is not None and v is not _DROP]
    if origin is dict and isinstance(value, Mapping):
        _, item = get_args(base) or (Any, Any)
        converted = {str(k): _convert(item, v) for k, v in value.items()}
        return {k: v for k, v in converted.items() if v is not None and v is not _DROP}
    return _leaf(annotation, value)


def unwrap(annotation: Any) -> Any:
    """The type under Annotated and Optional; a union of several types stays a union (a leaf)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _has_secret(annotation: Any) -> bool:
    base = unwrap(annotation)
    if base is Secret:
        return True
    origin = get_origin(base)
    if origin in (list, dict):
        return any(_has_secret(arg) for arg in get_args(base)[-1:])
    return False


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _leaf(annotation: Any, value: Any, *, dump_only: bool = False) -> Any:
    """Normalise a value as the spec would hold it; a value the spec would reject is kept as observed."""
    try:
        adapter = _adapter(annotation)
        parsed = value if dump_only else adapter.validate_python(value)
        return adapter.dump_python(parsed, mode="json", exclude_none=True)
    except (ValidationError, TypeError, ValueError):
        return value


def _strip_secrets(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            out[key] = value
            continue
        annotation = _field_annotation(field)
        if not _has_secret(annotation):
            out[key] = _strip_nested(annotation, value)
    return out


def _strip_nested(annotation: Any, value: Any) -> Any:
    base = unwrap(annotation)
    if isinstance(base, type) and issubclass(base, BaseModel) and isinstance(value, Mapping):
        return _strip_secrets(base, value)
    if get_origin(base) is list and isinstance(value, list):
        (item,) = get_args(base) or (Any,)
        return [_strip_nested(item, v) for v in value]
    return value


def _drop_default(data: Any, path: tuple[str, ...], default: Any) -> Any:
    if isinstance(data, list):
        return [_drop_default(item, path, default) for item in data]
    if not isinstance(data, Mapping) or path[0] not in data:
        return data
    out = dict(data)
    if len(path) == 1:
        if out[path[0]] == default:
            del out[path[0]]
    else:
        out[path[0]] = _drop_default(out[path[0]], path[1:], default)
    return out


def _prune_empty(value: Any) -> Any:
    if isinstance(value, Mapping):
        pruned = {k: _prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_prune_empty(v) for v in value]
    return value


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value
