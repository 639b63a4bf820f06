"""The desired state of one Azure Batch pool.

Keys are the snake_case of the Batch REST API's pool properties (`BatchPoolCreateOptions`, API
2025-06-01.21.0), so `to_batch_json` is the create body verbatim. The pool id is not a field: it is the
key under `pools:`, checked by `validate_pool_id`.

Not modelled, because the API deprecates them or they only ever applied to Cloud Services pools:
`certificateReferences` (use the Key Vault VM extension instead). `imageReference.exactVersion` is
read-only. Added beyond the data plane: `identity` (user-assigned managed identities, which Azure
accepts only through the management plane) and the tool's own `account`, `refresh`, `suspend`,
`deletion_protection` and `adopt`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.base import Between, CaseInsensitive, ExclusiveKeys, NotBlank, SpecModel, one_each
from reconciler.spec.durations import Duration, describe
from reconciler.spec.pool_network import NetworkConfiguration
from reconciler.spec.pool_refresh import RefreshPolicy
from reconciler.spec.pool_settings import (
    MAX_APPLICATION_PACKAGES,
    ApplicationPackageReference,
    MetadataItem,
    MountConfiguration,
    TaskSchedulingPolicy,
    UpgradePolicy,
    UserAccount,
)
from reconciler.spec.pool_task import USER_IDENTITY_ALTERNATIVES, StartTask
from reconciler.spec.pool_types import (
    REVEAL_SECRETS,
    ApiModel,
    NodeCommunicationMode,
    UserAssignedIdentityId,
    require_unique,
)
from reconciler.spec.pool_vm import IMAGE_ALTERNATIVES, VirtualMachineConfiguration

_POOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_RESIZE_TIMEOUT = timedelta(minutes=5)
MIN_AUTOSCALE_INTERVAL = timedelta(minutes=5)
MAX_AUTOSCALE_INTERVAL = timedelta(hours=168)
MAX_DISPLAY_NAME = 1024

OWN_KEYS = frozenset({"account", "identity", "refresh", "suspend", "deletion_protection", "adopt"})
"""Pool keys that are not part of the data-plane create body."""

_NOT_AZURE_STATE = frozenset({"account", "refresh", "suspend", "deletion_protection", "adopt"})

FIXED_TARGETS = ("target_dedicated_nodes", "target_low_priority_nodes")
"""A fixed-size pool's targets: meaningless (and refused) with autoscale on."""

AUTOSCALE_SETTINGS = ("auto_scale_formula", "auto_scale_evaluation_interval")
"""An autoscale pool's formula and interval: meaningless (and refused) with autoscale off."""

SCALE_KEYS = (*FIXED_TARGETS, "enable_auto_scale", *AUTOSCALE_SETTINGS)
"""How big the pool is: fixed targets or autoscale, said whole in one place."""

EXCLUSIVE_KEYS: Final[ExclusiveKeys] = {
    (): one_each(*SCALE_KEYS),
    ("virtual_machine_configuration", "image_reference"): IMAGE_ALTERNATIVES,
    ("start_task", "user_identity"): USER_IDENTITY_ALTERNATIVES,
}
"""What a pool does not inherit from `defaults.pool` once it sets another alternative."""


def validate_pool_id(pool_id: str) -> str | None:
    """Why the Batch service would reject this pool id, or None when it would accept it."""
    if not _POOL_ID.fullmatch(pool_id):
        return f"a pool id is 1 to 64 letters, digits, '-' or '_' (got {pool_id!r})"
    return None


class PoolIdentity(SpecModel):
    """User-assigned managed identities of the pool's nodes (management plane only)."""

    type: Annotated[Literal["UserAssigned"], CaseInsensitive()] = "UserAssigned"
    user_assigned_identities: list[UserAssignedIdentityId]

    @field_validator("user_assigned_identities")
    @classmethod
    def _some_distinct(cls, ids: list[str]) -> list[str]:
        if not ids:
            raise PydanticCustomError("identity_empty", "must name at least one identity", {})
        require_unique("identities", (i.casefold() for i in ids))
        return ids


class Pool(ApiModel):
    """One pool as the Batch service should hold it, plus how this tool keeps it so."""

    account: Annotated[str, NotBlank()]
    """The name of the Batch account (under `accounts:`) the pool lives in."""

    display_name: str | None = None
    vm_size: Annotated[str, NotBlank()]
    virtual_machine_configuration: VirtualMachineConfiguration
    resize_timeout: Duration | None = None
    resource_tags: dict[str, str] | None = None
    enable_auto_scale: bool = False
    target_low_priority_nodes: Annotated[int, Between(0)] | None = None
    target_dedicated_nodes: Annotated[int, Between(0)] | None = None
    auto_scale_formula: str | None = None
    auto_scale_evaluation_interval: Duration | None = None
    enable_inter_node_communication: bool | None = None
    network_configuration: NetworkConfiguration | None = None
    start_task: StartTask | None = None
    application_package_references: list[ApplicationPackageReference] | None = None
    task_slots_per_node: Annotated[int, Between(1, 256)] | None = None
    task_scheduling_policy: TaskSchedulingPolicy | None = None
    user_accounts: list[UserAccount] | None = None
    metadata: list[MetadataItem] | None = None
    mount_configuration: list[MountConfiguration] | None = None
    target_node_communication_mode: NodeCommunicationMode | None = None
    upgrade_policy: UpgradePolicy | None = None

    identity: PoolIdentity | None = None
    """User-assigned identities for the nodes; needs the account's ARM coordinates."""

    refresh: RefreshPolicy = Field(default_factory=RefreshPolicy)
    """When and how the pool is rebuilt."""

    suspend: bool = False
    """Leave the pool alone: observe it, but change nothing."""

    deletion_protection: bool = False
    """Never delete this pool, neither to refresh it nor when it leaves the config."""

    adopt: bool = False
    """Take over a pool of this id that exists without the reconciler's ownership marker (one made by
    hand or by another tool, as `reconciler export` writes them): only while every property the service
    returns matches this spec is the marker and spec hash written into its metadata (the user's metadata
    kept); a pool that differs is left untouched and the plan lists the differing fields. Without it
    such a pool is never changed. Secrets the service does not return cannot be compared: adopting
    declares that the pool's match the spec's references."""

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, name: str | None) -> str | None:
        if name is not None and len(name) > MAX_DISPLAY_NAME:
            raise PydanticCustomError(
                "display_name", "must be at most 1024 characters (got {got})", {"got": len(name)}
            )
        return name

    @field_validator("resize_timeout")
    @classmethod
    def _resize_timeout(cls, timeout: timedelta | None) -> timedelta | None:
        if timeout is not None and timeout < MIN_RESIZE_TIMEOUT:
            raise PydanticCustomError(
                "resize_timeout", "must be at least 5 minutes (got {got})", {"got": describe(timeout)}
            )
        return timeout

    @field_validator("target_low_priority_nodes", "target_dedicated_nodes")
    @classmethod
    def _fixed_size(cls, nodes: int | None, info: ValidationInfo) -> int | None:
        if "enable_auto_scale" not in info.data:
            return nodes
        if info.data["enable_auto_scale"] and nodes is not None:
            raise PydanticCustomError(
                "autoscale_conflict",
                "must not be set with enable_auto_scale: true (the auto_scale_formula sets the size)",
                {},
            )
        if (
            info.field_name == "target_dedicated_nodes"
            and not info.data["enable_auto_scale"]
            and nodes is None
            and "target_low_priority_nodes" in info.data
            and info.data["target_low_priority_nodes"] is None
        ):
            raise PydanticCustomError(
                "size_missing",
                "is required (or target_low_priority_nodes) unless enable_auto_scale is true",
                {},
            )
        return nodes

    @field_validator("auto_scale_formula")
    @classmethod
    def _formula(cls, formula: str | None, info: ValidationInfo) -> str | None:
        if "enable_auto_scale" not in info.data:
            return formula
        autoscale = info.data["enable_auto_scale"]
        if autoscale and (formula is None or not formula.strip()):
            raise PydanticCustomError("autoscale_formula", "is required with enable_auto_scale: true", {})
        if not autoscale and formula is not None:
            raise PydanticCustomError(
                "autoscale_conflict",
                "must not be set unless enable_auto_scale is true "
                "(or drop target_dedicated_nodes/target_low_priority_nodes and enable it)",
                {},
            )
        return formula

    @field_validator("auto_scale_evaluation_interval")
    @classmethod
    def _interval(cls, interval: timedelta | None, info: ValidationInfo) -> timedelta | None:
        if interval is None:
            return None
        if "enable_auto_scale" in info.data and not info.data["enable_auto_scale"]:
            raise PydanticCustomError(
                "autoscale_conflict", "must not be set unless enable_auto_scale is true", {}
            )
        if not MIN_AUTOSCALE_INTERVAL <= interval <= MAX_AUTOSCALE_INTERVAL:
            raise PydanticCustomError(
                "autoscale_interval",
                "must be between 5 minutes and 168 hours (got {got})",
                {"got": describe(interval)},
            )
        return interval

    @field_validator("application_package_references")
    @classmethod
    def _packages(
        cls, packages: list[ApplicationPackageReference] | None
    ) -> list[ApplicationPackageReference] | None:
        if packages is not None and len(packages) > MAX_APPLICATION_PACKAGES:
            raise PydanticCustomError(
                "too_many_packages",
                "at most 10 application packages per pool (got {got})",
                {"got": len(packages)},
            )
        require_unique("application packages", (p.application_id.casefold() for p in packages or []))
        return packages

    @field_validator("user_accounts")
    @classmethod
    def _user_names(cls, accounts: list[UserAccount] | None) -> list[UserAccount] | None:
        require_unique("user account names", (a.name for a in accounts or []))
        return accounts

    @field_validator("metadata")
    @classmethod
    def _metadata_names(cls, items: list[MetadataItem] | None) -> list[MetadataItem] | None:
        require_unique("metadata names", (i.name for i in items or []))
        return items

    @field_validator("mount_configuration")
    @classmethod
    def _mount_paths(cls, mounts: list[MountConfiguration] | None) -> list[MountConfiguration] | None:
        require_unique("relative mount paths", (m.relative_mount_path for m in mounts or []))
        return mounts

    def to_batch_json(self, pool_id: str) -> dict[str, Any]:
        """The body of a data-plane pool create (`POST /pools`), secrets revealed: for the SDK only."""
        problem = validate_pool_id(pool_id)
        if problem is not None:
            raise ValueError(problem)
        body = self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude=set(OWN_KEYS),
            context={REVEAL_SECRETS: True},
        )
        return {"id": pool_id, **body}

    def canonical(self) -> dict[str, Any]:
        """The Azure-facing desired state as plain JSON data with sorted keys and masked secrets.

        Two pools with the same canonical form would be created identically, so it is what the
        spec hash and the plan output are computed from. A secret shows as its reference or a mask.
        """
        data = self.model_dump(mode="json", exclude_none=True, exclude=set(_NOT_AZURE_STATE))
        result = _sorted(data)
        assert isinstance(result, dict)
        return result


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value
