"""A Dask cluster on Azure VMs, declared with the options of dask-cloudprovider's `AzureVMCluster`.

Keys, meanings and defaults are dask-cloudprovider's, so an existing `AzureVMCluster(...)` call or
`cloudprovider.azure` dask config carries over unchanged. The loader lays the user's dask config under
each cluster before validation; the model therefore keeps dask-cloudprovider's defaults but never
invents what it leaves unset (location, resource group, vnet, security group), and reports those as
required where either place could supply them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.account import Guid, ResourceGroupName
from reconciler.spec.base import Between, CaseInsensitive, ExclusiveKeys, SpecModel, error_at
from reconciler.spec.durations import Duration, describe

_CLUSTER_NAME: Final = re.compile(r"[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?")
_LOCATION: Final = re.compile(r"[a-z][a-z0-9]*")
_VM_SIZE: Final = re.compile(r"(?:standard|basic)_[a-z0-9_-]+", re.IGNORECASE)
_NETWORK_NAME: Final = re.compile(r"[A-Za-z0-9](?:[\w.-]{0,78}\w)?")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_VERSION: Final = re.compile(r"latest|\d+\.\d+\.\d+", re.IGNORECASE)
_ARM_ID: Final = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/(?P<namespace>[^/]+)(?P<rest>(?:/[^/]+/[^/]+)+)/?",
    re.IGNORECASE,
)

MAX_DISK_SIZE_GB: Final = 1023

_SET_BY_US: Final = frozenset(
    {"location", "osprofile", "hardwareprofile", "storageprofile", "networkprofile", "tags"}
)
_SET_BY_SPOT: Final = frozenset({"priority", "evictionpolicy", "billingprofile"})


def validate_cluster_name(name: str) -> str | None:
    """Why a cluster name cannot be used, or None; it becomes part of every Azure resource name."""
    if not _CLUSTER_NAME.fullmatch(name):
        return (
            "a cluster name is used in Azure resource names: 1 to 40 lowercase letters, digits or '-', "
            "starting with a letter and not ending with '-'"
        )
    return None


@dataclass(frozen=True)
class ArmResourceId:
    """The parts of an ARM resource id that matter when matching resources to each other."""

    subscription_id: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.names[-1]

    def is_a(self, namespace: str, *types: str) -> bool:
        """Case-insensitive, as ARM compares ids."""
        return self.namespace.lower() == namespace.lower() and tuple(t.lower() for t in self.types) == tuple(
            t.lower() for t in types
        )


def parse_arm_id(value: str) -> ArmResourceId | None:
    """The parts of `/subscriptions/…/resourceGroups/…/providers/NS/type/name[/type/name…]`, or None."""
    match = _ARM_ID.fullmatch(value)
    if match is None:
        return None
    segments = match["rest"].strip("/").split("/")
    return ArmResourceId(
        subscription_id=match["subscription"],
        resource_group=match["group"],
        namespace=match["namespace"],
        types=tuple(segments[0::2]),
        names=tuple(segments[1::2]),
    )


def _required(dask_key: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("missing", f"required (set it here or in dask config {dask_key})")
        return value

    return BeforeValidator(check)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _required_field(description: str) -> Any:
    """A field that the model needs but that the merged dask config may supply: no default of its own."""
    return Field(
        default=None, validate_default=True, description=description, json_schema_extra=_drop_default
    )


def _network_ref(what: str, namespace: str, *types: str) -> BeforeValidator:
    """A plain name (in the cluster's resource group) or the ARM id of a resource elsewhere."""
    form = f"/subscriptions/<id>/resourceGroups/<group>/providers/{namespace}/" + "/".join(
        f"{t}/<name>" for t in types
    )

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.startswith("/"):
            parsed = parse_arm_id(value)
            if parsed is None or not parsed.is_a(namespace, *types):
                raise PydanticCustomError(
                    "network_ref", f"must be a {what} name or an ARM id of the form {form}"
                )
            return value
        if not _NETWORK_NAME.fullmatch(value):
            raise PydanticCustomError(
                "network_ref",
                f"must be a {what} name (letters, digits, '_', '.', '-'; at most 80) or an ARM id",
            )
        return value

    return BeforeValidator(check)


def _vm_size(value: Any) -> Any:
    if isinstance(value, str) and not _VM_SIZE.fullmatch(value):
        raise PydanticCustomError("vm_size", "must be an Azure VM size like Standard_D4s_v3")
    return value


VmSize = Annotated[str, BeforeValidator(_vm_size)]


_MARKETPLACE_IMAGE: Final = ("publisher", "offer", "sku", "version")

EXCLUSIVE_KEYS: Final[ExclusiveKeys] = {("vm_image",): (frozenset(_MARKETPLACE_IMAGE), frozenset({"id"}))}
"""What a cluster does not inherit from the dask config once it sets another alternative."""


class VmImage(SpecModel):
    """The OS image: a marketplace reference (keys not given keep dask-cloudprovider's) or an image id."""

    publisher: str | None = "Canonical"
    offer: str | None = "UbuntuServer"
    sku: str | None = "18.04-LTS"
    version: str | None = "latest"
    id: str | None = None
    """ARM id of a managed image or a gallery image (version); names the image by itself."""

    @model_validator(mode="before")
    @classmethod
    def _id_alone(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("id") is not None:
            for key in _MARKETPLACE_IMAGE:
                if data.get(key) is not None:
                    raise error_at(
                        (key,),
                        "vm_image_id_exclusive",
                        "not with id: an image id names the image by itself",
                    )
            return {**data, **dict.fromkeys(_MARKETPLACE_IMAGE)}
        return data

    @field_validator("id")
    @classmethod
    def _image_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = parse_arm_id(value)
        if parsed is None or parsed.namespace.lower() != "microsoft.compute":
            raise PydanticCustomError(
                "vm_image_id",
                "must be the ARM id of an image: /subscriptions/<id>/resourceGroups/<group>/providers/"
                "Microsoft.Compute/images/<name> or …/galleries/<gallery>/images/<image>[/versions/<v>]",
            )
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_VERSION.fullmatch(value):
            raise PydanticCustomError("vm_image_version", "must be 'latest' or Major.Minor.Build like 1.2.3")
        return value

    @field_validator("publisher", "offer", "sku")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise PydanticCustomError("blank", "must not be empty")
        return value


class MarketplacePlan(SpecModel):
    """The purchase plan of a marketplace image that has one; it also selects the image, as in
    dask-cloudprovider (sku=name, offer=product, version latest)."""

    publisher: str
    name: str
    product: str

    @field_validator("publisher", "name", "product")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "must not be empty")
        return value


class Spot(SpecModel):
    """Spot pricing for the workers (never the scheduler: losing it loses the cluster)."""

    enabled: bool = False
    eviction_policy: Annotated[Literal["Delete", "Deallocate"], CaseInsensitive] = "Delete"
    max_price: float = -1
    """USD per hour; -1 pays up to the on-demand price and is never evicted for price."""

    @field_validator("max_price")
    @classmethod
    def _price(cls, value: float) -> float:
        if value != -1 and value <= 0:
            raise PydanticCustomError(
                "spot_max_price",
                "must be -1 (pay up to the on-demand price) or a price above 0 (got {got})",
                {"got": value},
            )
        return value


class Rollout(SpecModel):
    """How a spec change replaces running workers."""

    max_unavailable: Annotated[int, Between(1)] = 1
    """Workers replaced at once."""


class HealthProbe(SpecModel):
    """A TCP connect to the scheduler, for status and metrics; a failed probe alone replaces nothing."""

    address: str | None = None
    """Host or IP to probe; the scheduler's private IP when left out."""
    port: Annotated[int, Between(1, 65535)] = 8786
    timeout: Duration = timedelta(seconds=5)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("timeout", "must be above zero (got {got})", {"got": describe(value)})
        return value


class Cluster(SpecModel):
    """One Dask cluster: a scheduler VM and `n_workers` worker VMs, kept as declared."""

    location: Annotated[str, _required("cloudprovider.azure.location")] = _required_field(
        "Azure region, e.g. japaneast."
    )
    resource_group: Annotated[ResourceGroupName, _required("cloudprovider.azure.resource_group")] = (
        _required_field("Resource group the VMs, NICs, public IPs and disks are created in.")
    )
    subscription_id: Guid | None = None
    """Leave out to use azure.subscription_id."""
    vnet: Annotated[
        str,
        _required("cloudprovider.azure.azurevm.vnet"),
        _network_ref("virtual network", "Microsoft.Network", "virtualNetworks"),
    ] = _required_field("Virtual network name (in resource_group) or ARM id.")
    subnet: Annotated[
        str | None, _network_ref("subnet", "Microsoft.Network", "virtualNetworks", "subnets")
    ] = None
    """Subnet name in vnet or ARM id; the vnet's first subnet when left out."""
    security_group: Annotated[
        str,
        _required("cloudprovider.azure.azurevm.security_group"),
        _network_ref("network security group", "Microsoft.Network", "networkSecurityGroups"),
    ] = _required_field("Network security group (name or ARM id); must allow 8786-8787.")
    public_ingress: bool = True
    """Give the scheduler a public IP."""
    vm_size: VmSize = "Standard_DS1_v2"
    scheduler_vm_size: VmSize | None = None
    """vm_size when left out."""
    disk_size: Annotated[int, Between(1, MAX_DISK_SIZE_GB)] = 50
    """OS disk size in GB; Azure's limit for it is 1023."""
    vm_image: VmImage = VmImage()
    bootstrap: bool = True
    """Install Docker at boot; false for an image that has it."""
    auto_shutdown: bool = True
    """Shut the VM down when its Dask process exits."""
    docker_image: str = "daskdev/dask:latest"
    docker_args: str = ""
    """Extra arguments to `docker run`."""
    marketplace_plan: MarketplacePlan | None = None
    extra_vm_options: dict[str, Any] = {}
    """Merged into the VM create body (e.g. identity); keys the reconciler sets are refused."""
    n_workers: Annotated[int, Between(0)] = 0
    worker_class: str = "dask.distributed.Nanny"
    worker_options: dict[str, Any] = {}
    scheduler_options: dict[str, Any] = {}
    env_vars: dict[str, str] = {}
    extra_bootstrap: list[str] = []
    """Shell commands run at boot, after Docker is installed."""
    spot: Spot = Spot()
    adopt_dask_cloudprovider_orphans: bool = False
    """Delete leftovers tagged creator: dask-cloudprovider in this resource group."""
    rollout: Rollout = Rollout()
    health_probe: HealthProbe | None = None
    suspend: bool = False
    """Leave the cluster's resources as they are: neither created, repaired nor deleted."""

    @field_validator("location", mode="before")
    @classmethod
    def _location(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.lower()
            if not _LOCATION.fullmatch(value):
                raise PydanticCustomError(
                    "location", "must be an Azure region name like japaneast (az account list-locations)"
                )
        return value

    @field_validator("docker_image", "worker_class")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise PydanticCustomError("one_word", "must be one word without spaces")
        return value

    @field_validator("env_vars")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise error_at(
                    (name,),
                    "env_var_name",
                    "an environment variable name is letters, digits and '_', not starting with a digit",
                    name,
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Cluster:
        self._check_subnet_in_vnet()
        self._check_extra_vm_options()
        return self

    def _check_subnet_in_vnet(self) -> None:
        subnet = parse_arm_id(self.subnet) if self.subnet else None
        if subnet is None:
            return
        vnet = parse_arm_id(self.vnet)
        vnet_name = vnet.name if vnet else self.vnet
        if subnet.names[0].lower() != vnet_name.lower() or (
            vnet is not None
            and (
                subnet.subscription_id.lower() != vnet.subscription_id.lower()
                or subnet.resource_group.lower() != vnet.resource_group.lower()
            )
        ):
            raise error_at(
                ("subnet",),
                "subnet_not_in_vnet",
                f"is a subnet of virtual network '{subnet.names[0]}', not of vnet '{vnet_name}'",
            )

    def _check_extra_vm_options(self) -> None:
        for key in self.extra_vm_options:
            folded = key.replace("_", "").lower()
            if folded in _SET_BY_US or (folded == "plan" and self.marketplace_plan is not None):
                raise error_at(
                    ("extra_vm_options", key),
                    "extra_vm_options_clash",
                    "is set by the reconciler from the cluster's own keys; it cannot be given here",
                )
            if folded in _SET_BY_SPOT:
                raise error_at(
                    ("extra_vm_options", key),
                    "extra_vm_options_clash",
                    "is set from spot (enabled, eviction_policy, max_price); declare it there",
                )

    @property
    def effective_scheduler_vm_size(self) -> str:
        return self.scheduler_vm_size or self.vm_size
