"""The rest of a pool's Batch settings: packages, scheduling, users, metadata, mounts, upgrades."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.base import Between, NotBlank
from reconciler.spec.durations import Duration
from reconciler.spec.pool_types import (
    ApiModel,
    ApiSecret,
    ElevationLevel,
    JobDefaultOrder,
    LoginMode,
    NodeFillType,
    UpgradeMode,
    require_one_of,
)
from reconciler.spec.pool_vm import IdentityReference

RESERVED_METADATA_PREFIX = "reconciler."
"""Metadata names the reconciler writes itself (ownership marker, spec hash, refresh request)."""

MAX_APPLICATION_PACKAGES = 10
_MAX_USER_NAME = 20


class ApplicationPackageReference(ApiModel):
    application_id: Annotated[str, NotBlank()]
    version: str | None = None


class TaskSchedulingPolicy(ApiModel):
    job_default_order: JobDefaultOrder | None = None
    node_fill_type: NodeFillType


class LinuxUserConfiguration(ApiModel):
    uid: int | None = None
    gid: int | None = None
    ssh_private_key: ApiSecret | None = None

    @model_validator(mode="after")
    def _uid_with_gid(self) -> Self:
        if (self.uid is None) != (self.gid is None):
            raise PydanticCustomError("uid_gid", "uid and gid must be given together or not at all", {})
        return self


class WindowsUserConfiguration(ApiModel):
    login_mode: LoginMode | None = None


class UserAccount(ApiModel):
    name: Annotated[str, NotBlank()]
    password: ApiSecret
    elevation_level: ElevationLevel | None = None
    linux_user_configuration: LinuxUserConfiguration | None = None
    windows_user_configuration: WindowsUserConfiguration | None = None

    @field_validator("name")
    @classmethod
    def _short_name(cls, name: str) -> str:
        if len(name) > _MAX_USER_NAME:
            raise PydanticCustomError(
                "user_name", "must be at most 20 characters (got {got})", {"got": repr(name)}
            )
        return name


class MetadataItem(ApiModel):
    name: Annotated[str, NotBlank()]
    value: str

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.casefold().startswith(RESERVED_METADATA_PREFIX):
            raise PydanticCustomError(
                "reserved_metadata",
                "names starting with 'reconciler.' are reserved for the tool's own metadata (got {got})",
                {"got": repr(name)},
            )
        return name


class AzureBlobFileSystemConfiguration(ApiModel):
    account_name: Annotated[str, NotBlank()]
    container_name: Annotated[str, NotBlank()]
    account_key: ApiSecret | None = None
    sas_key: ApiSecret | None = None
    blobfuse_options: str | None = None
    relative_mount_path: Annotated[str, NotBlank()]
    identity_reference: IdentityReference | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        require_one_of("blob_credentials", self, ("account_key", "sas_key", "identity_reference"))
        return self


class NfsMountConfiguration(ApiModel):
    source: Annotated[str, NotBlank()]
    relative_mount_path: Annotated[str, NotBlank()]
    mount_options: str | None = None


class CifsMountConfiguration(ApiModel):
    username: Annotated[str, NotBlank()]
    source: Annotated[str, NotBlank()]
    relative_mount_path: Annotated[str, NotBlank()]
    mount_options: str | None = None
    password: ApiSecret


class AzureFileShareConfiguration(ApiModel):
    account_name: Annotated[str, NotBlank()]
    account_key: ApiSecret
    azure_file_url: Annotated[str, NotBlank()]
    relative_mount_path: Annotated[str, NotBlank()]
    mount_options: str | None = None


class MountConfiguration(ApiModel):
    """One file system to mount: exactly one of the four kinds."""

    azure_blob_file_system_configuration: AzureBlobFileSystemConfiguration | None = None
    nfs_mount_configuration: NfsMountConfiguration | None = None
    cifs_mount_configuration: CifsMountConfiguration | None = None
    azure_file_share_configuration: AzureFileShareConfiguration | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        require_one_of("mount_kind", self, list(type(self).model_fields))
        return self

    @property
    def relative_mount_path(self) -> str:
        kind = (
            self.azure_blob_file_system_configuration
            or self.nfs_mount_configuration
            or self.cifs_mount_configuration
            or self.azure_file_share_configuration
        )
        assert kind is not None
        return kind.relative_mount_path


class AutomaticOsUpgradePolicy(ApiModel):
    disable_automatic_rollback: bool | None = None
    enable_automatic_os_upgrade: bool | None = Field(
        default=None, serialization_alias="enableAutomaticOSUpgrade"
    )
    use_rolling_upgrade_policy: bool | None = None
    os_rolling_upgrade_deferral: bool | None = None


class RollingUpgradePolicy(ApiModel):
    enable_cross_zone_upgrade: bool | None = None
    max_batch_instance_percent: Annotated[int, Between(5, 100)] | None = None
    max_unhealthy_instance_percent: Annotated[int, Between(5, 100)] | None = None
    max_unhealthy_upgraded_instance_percent: Annotated[int, Between(0, 100)] | None = None
    pause_time_between_batches: Duration | None = None
    prioritize_unhealthy_instances: bool | None = None
    rollback_failed_instances_on_policy_breach: bool | None = None

    @field_validator("max_unhealthy_instance_percent")
    @classmethod
    def _batch_within_unhealthy(cls, unhealthy: int | None, info: ValidationInfo) -> int | None:
        batch = info.data.get("max_batch_instance_percent")
        if unhealthy is not None and batch is not None and batch > unhealthy:
            raise PydanticCustomError(
                "rolling_upgrade_percent",
                "must not be below max_batch_instance_percent ({batch}) (got {got})",
                {"batch": batch, "got": unhealthy},
            )
        return unhealthy


class UpgradePolicy(ApiModel):
    mode: UpgradeMode
    automatic_os_upgrade_policy: AutomaticOsUpgradePolicy | None = Field(
        default=None, serialization_alias="automaticOSUpgradePolicy"
    )
    rolling_upgrade_policy: RollingUpgradePolicy | None = None
