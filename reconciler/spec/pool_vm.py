"""What each compute node of a pool is: image, node agent, disks, containers, extensions, security.

Not modelled: `imageReference.exactVersion`, which the service reports but never accepts.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.base import Between, one_each
from reconciler.spec.pool_types import (
    ApiModel,
    ApiSecret,
    CachingType,
    ContainerType,
    DiffDiskPlacement,
    DiskEncryptionSetId,
    DiskEncryptionTarget,
    HostEndpointMode,
    InVmAccessControlProfileId,
    NodePlacementPolicy,
    SecurityEncryptionType,
    SecurityType,
    ServiceArtifactId,
    StorageAccountType,
    UserAssignedIdentityId,
    VirtualMachineImageId,
    require_unique,
)

MARKETPLACE_IMAGE_KEYS = ("publisher", "offer", "sku")
IMAGE_ID_KEYS = ("virtual_machine_image_id", "shared_gallery_image_id", "community_gallery_image_id")
IMAGE_ALTERNATIVES = (frozenset({*MARKETPLACE_IMAGE_KEYS, "version"}), *one_each(*IMAGE_ID_KEYS))
"""A Marketplace image or one image id: the ways `image_reference` names an image."""


class ImageReference(ApiModel):
    """A Marketplace image (publisher/offer/sku/version) or exactly one gallery image id."""

    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None
    virtual_machine_image_id: VirtualMachineImageId | None = None
    shared_gallery_image_id: str | None = None
    community_gallery_image_id: str | None = None

    @model_validator(mode="after")
    def _one_image(self) -> Self:
        marketplace = [k for k in MARKETPLACE_IMAGE_KEYS if getattr(self, k) is not None]
        ids = [k for k in IMAGE_ID_KEYS if getattr(self, k) is not None]
        if len(ids) > 1 or (ids and (marketplace or self.version is not None)):
            raise PydanticCustomError(
                "image_conflict",
                "{keys} are mutually exclusive: name one image",
                {"keys": ", ".join(marketplace + (["version"] if self.version else []) + ids)},
            )
        if not ids and len(marketplace) != 3:
            raise PydanticCustomError(
                "image_missing",
                "needs publisher, offer and sku (a Marketplace image) or one of virtual_machine_image_id, "
                "shared_gallery_image_id, community_gallery_image_id",
                {},
            )
        return self


class WindowsConfiguration(ApiModel):
    enable_automatic_updates: bool | None = None


class DiskEncryptionSet(ApiModel):
    id: DiskEncryptionSetId


class DiskSecurityProfile(ApiModel):
    security_encryption_type: SecurityEncryptionType | None = None


class ManagedDisk(ApiModel):
    disk_encryption_set: DiskEncryptionSet | None = None
    storage_account_type: StorageAccountType | None = None
    security_profile: DiskSecurityProfile | None = None


class DataDisk(ApiModel):
    lun: Annotated[int, Between(0, 63)]
    caching: CachingType | None = None
    disk_size_gb: Annotated[int, Between(1)] = Field(serialization_alias="diskSizeGB")
    managed_disk: ManagedDisk | None = None
    storage_account_type: StorageAccountType | None = None


class IdentityReference(ApiModel):
    """Which of the pool's user-assigned identities a node uses for this access."""

    resource_id: UserAssignedIdentityId


class ContainerRegistry(ApiModel):
    username: str | None = None
    password: ApiSecret | None = None
    registry_server: str | None = None
    identity_reference: IdentityReference | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if self.identity_reference is not None and (self.username or self.password):
            raise PydanticCustomError(
                "registry_credentials",
                "username/password and identity_reference are mutually exclusive",
                {},
            )
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise PydanticCustomError(
                "registry_credentials",
                "{missing} is required with username/password login",
                {"missing": missing},
            )
        return self


class ContainerConfiguration(ApiModel):
    type: ContainerType
    container_image_names: list[str] | None = None
    container_registries: list[ContainerRegistry] | None = None


class CustomerManagedKey(ApiModel):
    identity_reference: IdentityReference | None = None
    key_url: str | None = None
    rotation_to_latest_key_version_enabled: bool | None = None


class DiskEncryptionConfiguration(ApiModel):
    customer_managed_key: CustomerManagedKey | None = None
    targets: list[DiskEncryptionTarget] | None = None


class NodePlacementConfiguration(ApiModel):
    policy: NodePlacementPolicy | None = None


class VmExtension(ApiModel):
    name: str
    publisher: str
    type: str
    type_handler_version: str | None = None
    auto_upgrade_minor_version: bool | None = None
    enable_automatic_upgrade: bool | None = None
    settings: dict[str, str] | None = None
    protected_settings: dict[str, ApiSecret] | None = None
    provision_after_extensions: list[str] | None = None


class EphemeralOsDiskSettings(ApiModel):
    placement: DiffDiskPlacement | None = None


class OsDisk(ApiModel):
    ephemeral_os_disk_settings: EphemeralOsDiskSettings | None = Field(
        default=None, serialization_alias="ephemeralOSDiskSettings"
    )
    caching: CachingType | None = None
    disk_size_gb: Annotated[int, Between(1)] | None = Field(default=None, serialization_alias="diskSizeGB")
    managed_disk: ManagedDisk | None = None
    write_accelerator_enabled: bool | None = None


class HostEndpointSettings(ApiModel):
    in_vm_access_control_profile_reference_id: InVmAccessControlProfileId | None = Field(
        default=None, serialization_alias="inVMAccessControlProfileReferenceId"
    )
    mode: HostEndpointMode | None = None


class ProxyAgentSettings(ApiModel):
    enabled: bool | None = None
    imds: HostEndpointSettings | None = None
    wire_server: HostEndpointSettings | None = None


class UefiSettings(ApiModel):
    secure_boot_enabled: bool | None = None
    v_tpm_enabled: bool | None = None


class SecurityProfile(ApiModel):
    encryption_at_host: bool | None = None
    proxy_agent_settings: ProxyAgentSettings | None = None
    security_type: SecurityType | None = None
    uefi_settings: UefiSettings | None = None


class ServiceArtifactReference(ApiModel):
    id: ServiceArtifactId


class VirtualMachineConfiguration(ApiModel):
    image_reference: ImageReference
    node_agent_sku_id: str = Field(serialization_alias="nodeAgentSKUId")
    windows_configuration: WindowsConfiguration | None = None
    data_disks: list[DataDisk] | None = None
    license_type: str | None = None
    container_configuration: ContainerConfiguration | None = None
    disk_encryption_configuration: DiskEncryptionConfiguration | None = None
    node_placement_configuration: NodePlacementConfiguration | None = None
    extensions: list[VmExtension] | None = None
    os_disk: OsDisk | None = None
    security_profile: SecurityProfile | None = None
    service_artifact_reference: ServiceArtifactReference | None = None

    @field_validator("data_disks")
    @classmethod
    def _distinct_luns(cls, disks: list[DataDisk] | None) -> list[DataDisk] | None:
        require_unique("data disk luns", (d.lun for d in disks or []))
        return disks

    @field_validator("extensions")
    @classmethod
    def _distinct_extensions(cls, extensions: list[VmExtension] | None) -> list[VmExtension] | None:
        require_unique("extension names", (e.name for e in extensions or []))
        return extensions
