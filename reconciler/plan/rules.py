"""Which properties the Batch service lets change when, and the field-by-field comparison that uses it.

The classes follow BatchService.json (2025-06-01): `BatchPoolReplaceOptions` (updateproperties) and the
any-time part of `BatchPoolUpdateOptions` (PATCH) are `patch`; the size is `scale` (resize and the
autoscale operations); everything else is `recreate`. Most `recreate` fields are accepted by PATCH
"only when the pool is empty" (`WHEN_EMPTY`), which is what the `patch-when-empty` refresh strategy uses;
`identity` is not (management plane only), so a change to it always recreates.

The comparison runs on `comparable_pool(spec)` against the observed `desired_view`: both sides are
secret-free and defaults-free (`reconciler.azure.rest`), so a difference here is a real one and every
value shown is safe to print. What the service never returns (secrets) is compared through the markers
only: the spec hash and the per-field secret digests written into the pool's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from reconciler.azure import markers
from reconciler.azure.rest import comparable_pool
from reconciler.azure.snapshot import ObservedPool
from reconciler.plan.actions import ChangeRule, FieldChange
from reconciler.plan.hashing import decode_digests, encode_digests, secret_digests, spec_hash
from reconciler.spec.pool import SCALE_KEYS, Pool

PATCH_ANY_TIME: Final = frozenset(
    {"start_task", "application_package_references", "metadata", "target_node_communication_mode"}
)
SCALE: Final = frozenset({*SCALE_KEYS, "resize_timeout"})
WHEN_EMPTY: Final = frozenset(
    {
        "display_name",
        "vm_size",
        "enable_inter_node_communication",
        "virtual_machine_configuration",
        "task_slots_per_node",
        "task_scheduling_policy",
        "network_configuration",
        "resource_tags",
        "user_accounts",
        "mount_configuration",
        "upgrade_policy",
    }
)
"""Recreate-class fields that `BatchPoolUpdateOptions` accepts on a pool without nodes."""


def rule_for(field: str, *, autoscale: bool = False) -> ChangeRule:
    """The class of a top-level pool field; unknown fields recreate, the safe default.

    `resize_timeout` is sent with a resize, which an autoscale pool does not take: there it recreates.
    """
    if field in PATCH_ANY_TIME:
        return ChangeRule.patch
    if field == "resize_timeout" and autoscale:
        return ChangeRule.recreate
    if field in SCALE:
        return ChangeRule.scale
    return ChangeRule.recreate


def top_field(path: str) -> str:
    """The top-level pool field of a change path (`start_task.command_line` → `start_task`)."""
    return path.split(".", 1)[0].split("[", 1)[0]


def compare(desired: Pool, observed: ObservedPool) -> tuple[FieldChange, ...]:
    """Every leaf where the observed pool differs from the spec, classified; none when they agree."""
    want = comparable_pool(desired)
    have = dict(observed.desired_view)
    autoscale = desired.enable_auto_scale
    changes: list[FieldChange] = []
    for key in sorted(set(want) | set(have)):
        for path, old, new in _leaves(key, have.get(key), want.get(key)):
            changes.append(FieldChange(path, old, new, rule_for(key, autoscale=autoscale)))
    return tuple(changes)


def creation_changes(desired: Pool) -> tuple[FieldChange, ...]:
    """Every value a create sets, for display; secrets appear as their references (`canonical()`)."""
    want = desired.canonical()
    autoscale = desired.enable_auto_scale
    return tuple(
        FieldChange(path, None, new, rule_for(key, autoscale=autoscale))
        for key in sorted(want)
        for path, _, new in _leaves(key, None, want[key], expand=True)
    )


def _leaves(path: str, old: Any, new: Any, *, expand: bool = False) -> Iterator[tuple[str, Any, Any]]:
    """Differences down to the smallest differing part, so a long start task shows one line changed.

    `expand` also walks into a mapping that is new as a whole, for a create's listing.
    """
    if old == new:
        return
    if expand and old is None and isinstance(new, Mapping):
        for key in sorted(new):
            yield from _leaves(f"{path}.{key}", None, new[key], expand=True)
    elif expand and old is None and isinstance(new, list) and new:
        for index, item in enumerate(new):
            yield from _leaves(f"{path}[{index}]", None, item, expand=True)
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            yield from _leaves(f"{path}.{key}", old.get(key), new.get(key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _leaves(f"{path}[{index}]", a, b)
    else:
        yield path, old, new


def protected(observed: ObservedPool) -> bool:
    return observed.metadata.get(markers.DELETION_PROTECTION, "").strip().casefold() == "true"


def desired_markers(pool: Pool) -> dict[str, str]:
    """The `reconciler.*` metadata a pool built or patched from this spec carries.

    The engine writes these (beside the spec's own metadata) at create and in every metadata PATCH;
    a pending `reconciler.refresh-requested-at` is kept unless the PATCH completes that refresh.
    """
    found = {markers.MANAGED_BY: markers.MANAGED_BY_VALUE, markers.SPEC_HASH: spec_hash(pool)}
    digests = secret_digests(pool)
    if digests:
        found[markers.SECRET_DIGESTS] = encode_digests(digests)
    if pool.deletion_protection:
        found[markers.DELETION_PROTECTION] = "true"
    return found


def changed_secret_fields(desired: Pool, observed: ObservedPool, *, visible_changes: bool) -> frozenset[str]:
    """Top-level fields whose secrets changed since the pool was built or patched.

    From the digests marker when the pool has one; without it (a pool built elsewhere) a spec hash that
    differs while no compared field does can only be a secret, in any of the fields holding one.
    """
    want = secret_digests(desired)
    have = decode_digests(observed.metadata.get(markers.SECRET_DIGESTS))
    if have is None:
        if visible_changes or observed.spec_hash == spec_hash(desired):
            return frozenset()
        return frozenset(want)
    return frozenset(name for name in set(want) | set(have) if want.get(name) != have.get(name))


def patch_fields(desired: Pool, observed: ObservedPool) -> frozenset[str]:
    """Top-level fields a PATCH must carry to bring the pool to `desired`: every field that differs,
    visibly or only through its secrets, except the size (resize and autoscale set that)."""
    changes = compare(desired, observed)
    visible = {top_field(c.path) for c in changes if c.rule != ChangeRule.scale}
    return frozenset(visible | changed_secret_fields(desired, observed, visible_changes=bool(changes)))
