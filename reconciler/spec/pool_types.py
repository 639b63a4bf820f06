"""Building blocks shared by the pool models: the REST-naming base, secrets, enums and ARM ids.

Enum values are the spellings of BatchService.json (API 2025-06-01.21.0); input is matched in any case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Annotated, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, PlainSerializer, SerializationInfo
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from reconciler.spec.base import ArmId, CaseInsensitive, SpecModel
from reconciler.spec.secrets import Secret

REVEAL_SECRETS = "reveal_secrets"
"""Serialization context key under which secret fields dump their real value (for the Batch API only)."""


class ApiModel(SpecModel):
    """A model whose fields dump under the Batch REST API's camelCase names.

    Names the generator gets wrong (`nodeAgentSKUId`, `diskSizeGB`, ...) carry an explicit
    `serialization_alias`.
    """

    model_config = ConfigDict(alias_generator=AliasGenerator(serialization_alias=to_camel))


def _dump_secret(value: Secret, info: SerializationInfo) -> str:
    context = info.context
    if isinstance(context, dict) and context.get(REVEAL_SECRETS) is True:
        return value.reveal()
    return value.display()


ApiSecret = Annotated[Secret, PlainSerializer(_dump_secret, return_type=str, when_used="always")]
"""A secret field: masked in every dump except one made with the `reveal_secrets` context."""

CachingType = Annotated[Literal["none", "readonly", "readwrite"], CaseInsensitive()]
StorageAccountType = Annotated[Literal["standard_lrs", "premium_lrs", "standardssd_lrs"], CaseInsensitive()]
SecurityEncryptionType = Annotated[
    Literal["DiskWithVMGuestState", "NonPersistedTPM", "VMGuestStateOnly"], CaseInsensitive()
]
ContainerType = Annotated[Literal["dockerCompatible", "criCompatible"], CaseInsensitive()]
DiskEncryptionTarget = Annotated[Literal["osdisk", "temporarydisk"], CaseInsensitive()]
NodePlacementPolicy = Annotated[Literal["regional", "zonal"], CaseInsensitive()]
DiffDiskPlacement = Annotated[Literal["cachedisk"], CaseInsensitive()]
HostEndpointMode = Annotated[Literal["automatic", "manual"], CaseInsensitive()]
SecurityType = Annotated[Literal["trustedLaunch", "confidentialVM"], CaseInsensitive()]
DynamicVNetAssignmentScope = Annotated[Literal["none", "job"], CaseInsensitive()]
InboundEndpointProtocol = Annotated[Literal["tcp", "udp"], CaseInsensitive()]
NetworkSecurityGroupRuleAccess = Annotated[Literal["allow", "deny"], CaseInsensitive()]
IpAddressProvisioningType = Annotated[
    Literal["batchmanaged", "usermanaged", "nopublicipaddresses"], CaseInsensitive()
]
IPFamily = Annotated[Literal["IPv4", "IPv6"], CaseInsensitive()]
ContainerWorkingDirectory = Annotated[
    Literal["taskWorkingDirectory", "containerImageDefault"], CaseInsensitive()
]
ContainerHostDataPath = Annotated[
    Literal["Shared", "Startup", "VfsMounts", "Task", "JobPrep", "Applications"], CaseInsensitive()
]
AutoUserScope = Annotated[Literal["task", "pool"], CaseInsensitive()]
ElevationLevel = Annotated[Literal["nonadmin", "admin"], CaseInsensitive()]
JobDefaultOrder = Annotated[Literal["none", "creationTime"], CaseInsensitive()]
NodeFillType = Annotated[Literal["spread", "pack"], CaseInsensitive()]
LoginMode = Annotated[Literal["batch", "interactive"], CaseInsensitive()]
NodeCommunicationMode = Annotated[Literal["default", "classic", "simplified"], CaseInsensitive()]
UpgradeMode = Annotated[Literal["automatic", "manual", "rolling"], CaseInsensitive()]
NodeDeallocationOption = Annotated[
    Literal["requeue", "terminate", "taskcompletion", "retaineddata"], CaseInsensitive()
]

_RG = "/subscriptions/<subscription>/resourceGroups/<resource-group>/providers"

SubnetId = Annotated[
    str,
    ArmId("a subnet", _RG + "/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>"),
]
PublicIpAddressId = Annotated[
    str, ArmId("a public IP address", _RG + "/Microsoft.Network/publicIPAddresses/<ip>")
]
UserAssignedIdentityId = Annotated[
    str,
    ArmId(
        "a user-assigned managed identity",
        _RG + "/Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
    ),
]
VirtualMachineImageId = Annotated[
    str,
    ArmId(
        "a compute gallery image",
        _RG + "/Microsoft.Compute/galleries/<gallery>/images/<image>",
        _RG + "/Microsoft.Compute/galleries/<gallery>/images/<image>/versions/<version>",
        _RG + "/Microsoft.Compute/images/<image>",
    ),
]
DiskEncryptionSetId = Annotated[
    str, ArmId("a disk encryption set", _RG + "/Microsoft.Compute/diskEncryptionSets/<name>")
]
ServiceArtifactId = Annotated[
    str,
    ArmId(
        "a service artifact profile",
        _RG
        + "/Microsoft.Compute/galleries/<gallery>/serviceArtifacts/<artifact>/vmArtifactsProfiles/<profile>",
    ),
]
InVmAccessControlProfileId = Annotated[
    str,
    ArmId(
        "an in-VM access control profile version",
        _RG + "/Microsoft.Compute/galleries/<gallery>/inVMAccessControlProfiles/<profile>/versions/<version>",
    ),
]


def require_one_of(kind: str, model: BaseModel, names: Sequence[str]) -> None:
    """Raise a user-facing error unless exactly one of `names` is set on `model`."""
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        raise PydanticCustomError(
            kind,
            "needs exactly one of {names} (got {got})",
            {"names": ", ".join(names), "got": ", ".join(given) or "none"},
        )


def require_unique(what: str, values: Iterable[Hashable]) -> None:
    """Raise a user-facing error naming every value that occurs more than once."""
    counts = Counter(values)
    repeated = [str(v) for v, n in counts.items() if n > 1]
    if repeated:
        raise PydanticCustomError(
            "duplicate",
            "{what} must be unique (repeated: {repeated})",
            {"what": what, "repeated": ", ".join(repeated)},
        )
