"""The ARM request bodies of a cluster's VMs, NICs and public IP, and the names and tags they carry.

Pure: the same spec always gives the same bodies and spec hashes, in any process. The names and tags
themselves are defined with the observation that reads them back (`reconciler.azure.clusters`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final

from reconciler.azure.clusters import (
    CLUSTER_TAG,
    ROLE_TAG,
    SCHEDULER_IP_TAG,
    TARGET_WORKERS_TAG,
    Placement,
    disk_name,
)
from reconciler.azure.markers import MANAGED_BY, MANAGED_BY_VALUE, SPEC_HASH
from reconciler.plan.cloud_init import Role, custom_data
from reconciler.spec.cluster import Cluster

ADMIN_USERNAME: Final = "dask"
OS_DISK_TYPE: Final = "Standard_LRS"
PUBLIC_IP_SKU: Final = "Standard"

_COMMON_FIELDS: Final = (
    "location",
    "resource_group",
    "subscription_id",
    "vnet",
    "subnet",
    "security_group",
    "disk_size",
    "vm_image",
    "bootstrap",
    "auto_shutdown",
    "docker_image",
    "docker_args",
    "marketplace_plan",
    "extra_vm_options",
    "env_vars",
    "extra_bootstrap",
)
_ROLE_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "scheduler": ("public_ingress", "scheduler_options"),
    "worker": ("vm_size", "worker_class", "worker_options", "spot"),
}
_VM_TOP_LEVEL: Final = frozenset({"identity", "zones", "plan", "extendedLocation", "placement"})
"""Keys of the VM resource itself; any other `extra_vm_options` key belongs under `properties`."""
_SNAKE: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_OPAQUE_KEYS: Final = frozenset({"userAssignedIdentities", "tags"})
"""Maps whose keys are data (resource ids, tag names), never converted."""


class ClusterBodyError(ValueError):
    """The spec cannot make a VM body (a clashing `extra_vm_options` key); a config error, not Azure's."""


# --- spec hash and tags --------------------------------------------------------------------------------


def role_spec_hash(cluster: Cluster, role: Role) -> str:
    """The hex sha256 of what shapes one role's VMs: a change rebuilds that role, and only that role.

    `n_workers`, `rollout`, `health_probe`, `suspend` and the adoption switch are left out: they change
    how many VMs there are or how they are watched, not what a VM is.
    """
    data = cluster.model_dump(mode="json", include=set(_COMMON_FIELDS) | set(_ROLE_FIELDS[role]))
    if role == "scheduler":
        data["vm_size"] = cluster.effective_scheduler_vm_size
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tags(cluster_name: str, role: Role, spec_hash: str, **extra: str) -> dict[str, str]:
    return {
        MANAGED_BY: MANAGED_BY_VALUE,
        CLUSTER_TAG: cluster_name,
        ROLE_TAG: role,
        SPEC_HASH: spec_hash,
        **extra,
    }


def disk_tags(cluster_name: str, role: str) -> dict[str, str]:
    """What makes an OS disk ours: set after its VM is created, since Azure tags no implicit OS disk."""
    return {MANAGED_BY: MANAGED_BY_VALUE, CLUSTER_TAG: cluster_name, ROLE_TAG: role}


# --- bodies --------------------------------------------------------------------------------------------


def public_ip_body(cluster_name: str, cluster: Cluster) -> dict[str, Any]:
    return {
        "location": cluster.location,
        "tags": tags(cluster_name, "scheduler", role_spec_hash(cluster, "scheduler")),
        "sku": {"name": PUBLIC_IP_SKU},
        "properties": {"publicIPAllocationMethod": "Static"},
    }


def nic_body(
    cluster_name: str,
    cluster: Cluster,
    role: Role,
    where: Placement,
    subnet_id: str,
    *,
    with_public_ip: bool = False,
) -> dict[str, Any]:
    config: dict[str, Any] = {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic"}
    if with_public_ip:
        config["publicIPAddress"] = {"id": where.public_ip_id(cluster_name)}
    return {
        "location": cluster.location,
        "tags": tags(cluster_name, role, role_spec_hash(cluster, role)),
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": config}],
            "networkSecurityGroup": {"id": where.nsg_id},
        },
    }


def _image(cluster: Cluster) -> dict[str, Any]:
    if cluster.marketplace_plan is not None:
        plan = cluster.marketplace_plan
        return {"publisher": plan.publisher, "offer": plan.product, "sku": plan.name, "version": "latest"}
    image = cluster.vm_image
    if image.id is not None:
        return {"id": image.id}
    return {"publisher": image.publisher, "offer": image.offer, "sku": image.sku, "version": image.version}


def vm_body(
    cluster_name: str,
    cluster: Cluster,
    role: Role,
    vm: str,
    where: Placement,
    *,
    scheduler_ip: str | None,
    admin_password: str,
    target_workers: int | None = None,
) -> dict[str, Any]:
    """The VM create body; the scheduler's NIC outlives its VM (its address stays), a worker's does not.

    `admin_password` is a throwaway the caller generates and forgets: Azure requires a credential, the
    cluster needs none.
    """
    extra: dict[str, str] = {}
    if role == "worker" and scheduler_ip:
        extra[SCHEDULER_IP_TAG] = scheduler_ip
    if role == "scheduler" and target_workers is not None:
        extra[TARGET_WORKERS_TAG] = str(target_workers)
    size = cluster.effective_scheduler_vm_size if role == "scheduler" else cluster.vm_size
    properties: dict[str, Any] = {
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {
            "imageReference": _image(cluster),
            "osDisk": {
                "name": disk_name(vm),
                "createOption": "FromImage",
                "diskSizeGB": cluster.disk_size,
                "managedDisk": {"storageAccountType": OS_DISK_TYPE},
                "deleteOption": "Delete",
            },
        },
        "osProfile": {
            "computerName": vm,
            "adminUsername": ADMIN_USERNAME,
            "adminPassword": admin_password,
            "customData": custom_data(cluster, role, scheduler_ip, name=cluster_name),
            "linuxConfiguration": {"disablePasswordAuthentication": False},
        },
        "networkProfile": {
            "networkInterfaces": [
                {
                    "id": where.nic_id(vm),
                    "properties": {
                        "primary": True,
                        "deleteOption": "Detach" if role == "scheduler" else "Delete",
                    },
                }
            ]
        },
    }
    if role == "worker" and cluster.spot.enabled:
        properties["priority"] = "Spot"
        properties["evictionPolicy"] = cluster.spot.eviction_policy
        properties["billingProfile"] = {"maxPrice": cluster.spot.max_price}
    body: dict[str, Any] = {
        "location": cluster.location,
        "tags": tags(cluster_name, role, role_spec_hash(cluster, role), **extra),
        "properties": properties,
    }
    if cluster.marketplace_plan is not None:
        plan = cluster.marketplace_plan
        body["plan"] = {"name": plan.name, "publisher": plan.publisher, "product": plan.product}
    return merge_extra_vm_options(body, cluster.extra_vm_options)


def rest_key(key: str) -> str:
    """`user_assigned_identities` → `userAssignedIdentities`: dask-cloudprovider users write SDK names."""
    if not _SNAKE.fullmatch(key):
        return key
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def rest_form(value: Any) -> Any:
    if isinstance(value, list):
        return [rest_form(item) for item in value]
    if not isinstance(value, dict):
        return value
    converted: dict[Any, Any] = {}
    for key, item in value.items():
        name = rest_key(key) if isinstance(key, str) else key
        if name in _OPAQUE_KEYS and isinstance(item, dict):
            converted[name] = {inner: rest_form(v) for inner, v in item.items()}
        else:
            converted[name] = rest_form(item)
    return converted


def merge_extra_vm_options(body: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`body` with `extra_vm_options` added: VM-level keys at the top, the rest under `properties`.

    A key the reconciler already sets (at the top or under `properties`) is a `ClusterBodyError`: a
    silent override would let the options break naming, networking or ownership tags.
    """
    merged = {**body, "properties": dict(body["properties"])}
    for key, value in rest_form(options).items():
        if key == "properties" and isinstance(value, dict):
            for inner, inner_value in value.items():
                _put(merged["properties"], inner, inner_value, f"properties.{inner}")
            continue
        if key in _VM_TOP_LEVEL or key in body:
            _put(merged, key, value, key)
        else:
            _put(merged["properties"], key, value, key)
    return merged


def _put(target: dict[str, Any], key: str, value: Any, shown: str) -> None:
    if key in target:
        raise ClusterBodyError(
            f"extra_vm_options.{shown} is set by the reconciler from the cluster's own keys; "
            "it cannot be given here"
        )
    target[key] = value
