"""Dask clusters as Azure has them: one snapshot of the VMs, NICs, public IPs and disks, and the calls.

A cluster is found by its tags, not by a list we keep: a subscription-wide listing of each kind (four
paged calls per subscription, whatever the number of clusters) finds every resource tagged ours, those of
clusters since removed from the config included, and the `creator: dask-cloudprovider` leftovers.
Names derive from the cluster name alone (`<cluster>-dask-scheduler`, `<cluster>-dask-worker-0003`), so
a restarted reconciler recognises what it made; tags carry what names cannot (ownership, role, spec hash,
the scheduler address a worker was built for). Azure does not tag a VM's implicit OS disk, so the engine
tags it once the VM exists; a disk that only has one of our names is observed (its index stays taken,
`status` reports it) but is never deleted on the name alone.

Every call leaves as `ClusterCallFailed` carrying the classified error. Creates and deletes return once
ARM accepted them; the engine polls `get_vm`, `get_nic` and `exists` to the end, within its deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Final, Literal, TypeVar

from azure.core.exceptions import AzureError as SdkError
from azure.core.exceptions import ResourceNotFoundError

from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import AzureError, ErrorKind, classify
from reconciler.azure.markers import MANAGED_BY, SPEC_HASH
from reconciler.spec.cluster import Cluster, parse_arm_id
from reconciler.spec.config import Config

T = TypeVar("T")
ResourceKind = Literal["vm", "nic", "public_ip", "disk"]
KINDS: Final[tuple[ResourceKind, ...]] = ("vm", "nic", "public_ip", "disk")
"""Also the order in which a cluster's resources are deleted: a NIC is free only once its VM is gone."""

_FAILURES: Final = (SdkError, OSError, TimeoutError)
INDEX_DIGITS: Final = 4

CLUSTER_TAG: Final = "reconciler.cluster"
ROLE_TAG: Final = "reconciler.role"
SCHEDULER_IP_TAG: Final = "reconciler.scheduler-ip"
"""On a worker: the scheduler address its cloud-init points at."""
TARGET_WORKERS_TAG: Final = "reconciler.target-workers"
"""On the scheduler: the `n_workers` last reconciled, so a shortfall below it reads as lost workers."""
DASK_CLOUDPROVIDER_TAG: Final = "creator"
DASK_CLOUDPROVIDER_VALUE: Final = "dask-cloudprovider"


# --- names and tags that make a resource part of a cluster -----------------------------------------


def scheduler_name(cluster: str) -> str:
    return f"{cluster}-dask-scheduler"


def worker_name(cluster: str, index: int) -> str:
    return f"{cluster}-dask-worker-{index:0{INDEX_DIGITS}d}"


def nic_name(vm: str) -> str:
    return f"{vm}-nic"


def disk_name(vm: str) -> str:
    return f"{vm}-osdisk"


def public_ip_name(cluster: str) -> str:
    return f"{cluster}-dask-scheduler-ip"


def worker_index(cluster: str, vm: str) -> int | None:
    """The index in a worker's name, or None when the name is not one of this cluster's workers."""
    match = re.fullmatch(rf"{re.escape(cluster)}-dask-worker-(\d{{{INDEX_DIGITS},}})", vm)
    return int(match[1]) if match else None


def vm_of_disk(cluster: str, disk: str) -> str | None:
    """The VM whose OS disk has this name, when the name is one we give; Azure does not tag OS disks."""
    if not disk.endswith("-osdisk"):
        return None
    vm = disk[: -len("-osdisk")]
    return vm if vm == scheduler_name(cluster) or worker_index(cluster, vm) is not None else None


def vm_of_nic(cluster: str, nic: str) -> str | None:
    if not nic.endswith("-nic"):
        return None
    vm = nic[: -len("-nic")]
    return vm if vm == scheduler_name(cluster) or worker_index(cluster, vm) is not None else None


class ClusterCallFailed(Exception):
    """An Azure call about a cluster resource failed; `str()` is safe to log (no body, no secret)."""

    def __init__(self, operation: str, name: str, error: AzureError) -> None:
        super().__init__(f"{operation} {name}: {error.describe()}")
        self.operation = operation
        self.name = name
        self.error = error


# --- network references -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a cluster's resources go and what they reference, as ARM ids."""

    subscription_id: str
    resource_group: str
    location: str
    vnet_id: str
    nsg_id: str
    subnet_id: str | None
    """None when the spec names no subnet: observation reads the vnet's first one."""

    def resource_id(self, provider_type: str, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{provider_type}/{name}"
        )

    def nic_id(self, vm: str) -> str:
        return self.resource_id("Microsoft.Network/networkInterfaces", nic_name(vm))

    def public_ip_id(self, cluster: str) -> str:
        return self.resource_id("Microsoft.Network/publicIPAddresses", public_ip_name(cluster))


def placement(cluster: Cluster, default_subscription: str) -> Placement:
    subscription = cluster.subscription_id or default_subscription

    def in_group(provider_type: str, value: str) -> str:
        if value.startswith("/"):
            return value
        group = f"/subscriptions/{subscription}/resourceGroups/{cluster.resource_group}"
        return f"{group}/providers/{provider_type}/{value}"

    vnet_id = in_group("Microsoft.Network/virtualNetworks", cluster.vnet)
    subnet_id: str | None = None
    if cluster.subnet is not None:
        subnet_id = (
            cluster.subnet if cluster.subnet.startswith("/") else f"{vnet_id}/subnets/{cluster.subnet}"
        )
    return Placement(
        subscription_id=subscription,
        resource_group=cluster.resource_group,
        location=cluster.location,
        vnet_id=vnet_id,
        nsg_id=in_group("Microsoft.Network/networkSecurityGroups", cluster.security_group),
        subnet_id=subnet_id,
    )


# --- snapshot types ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedVm:
    name: str
    id: str
    resource_group: str
    tags: Mapping[str, str]
    provisioning_state: str
    """Creating, Updating, Succeeded, Failed, Deleting."""
    power_state: str | None
    """running, starting, stopping, stopped, deallocating, deallocated; None when unknown."""
    evicted: bool = False
    priority: str | None = None
    created_at: datetime | None = None
    nic_ids: tuple[str, ...] = ()
    os_disk: str | None = None
    error: str | None = None
    """Why provisioning failed, as ARM put it."""

    @property
    def role(self) -> str | None:
        return self.tags.get(ROLE_TAG)

    @property
    def spec_hash(self) -> str | None:
        return self.tags.get(SPEC_HASH)

    @property
    def scheduler_ip(self) -> str | None:
        return self.tags.get(SCHEDULER_IP_TAG)

    @property
    def target_workers(self) -> int | None:
        raw = self.tags.get(TARGET_WORKERS_TAG)
        return int(raw) if raw is not None and raw.isdigit() else None


@dataclass(frozen=True)
class ObservedNic:
    name: str
    id: str
    resource_group: str
    tags: Mapping[str, str]
    private_ip: str | None
    vm_id: str | None
    public_ip_id: str | None = None
    provisioning_state: str | None = None


@dataclass(frozen=True)
class ObservedPublicIp:
    name: str
    id: str
    resource_group: str
    tags: Mapping[str, str]
    ip_address: str | None
    attached_to: str | None


@dataclass(frozen=True)
class ObservedDisk:
    name: str
    id: str
    resource_group: str
    tags: Mapping[str, str]
    managed_by: str | None

    @property
    def owned(self) -> bool:
        """Tagged ours; a disk that merely has one of our names is not, until it is tagged."""
        return _is_ours(self.tags)


@dataclass(frozen=True)
class ForeignResource:
    """A resource another tool made (dask-cloudprovider); only reported, or removed when asked."""

    kind: ResourceKind
    name: str
    id: str
    resource_group: str
    attached_to: str | None = None


@dataclass(frozen=True)
class ObservedCluster:
    """One cluster as ARM shows it now: everything tagged with its name, and what surrounds it."""

    name: str
    vms: tuple[ObservedVm, ...] = ()
    nics: tuple[ObservedNic, ...] = ()
    public_ips: tuple[ObservedPublicIp, ...] = ()
    disks: tuple[ObservedDisk, ...] = ()
    dask_cloudprovider: tuple[ForeignResource, ...] = ()
    """Leftovers tagged `creator: dask-cloudprovider` in the cluster's resource group."""
    subnet_id: str | None = None
    """The subnet NICs go in: the spec's, else the vnet's first; None when it could not be read."""
    scheduler_reachable: bool | None = None
    """The health probe's answer; None without a probe or without an address to probe."""
    error: AzureError | None = None
    """Why the cluster could not be observed: a plan from this snapshot must change nothing."""

    @property
    def empty(self) -> bool:
        return not (self.vms or self.nics or self.public_ips or self.disks)


@dataclass(frozen=True)
class ClusterSnapshot:
    clusters: Mapping[str, ObservedCluster] = field(default_factory=dict)
    """Declared clusters, and undeclared ones that still own resources."""
    errors: Mapping[str, AzureError] = field(default_factory=dict)
    """Subscriptions that could not be listed."""


# --- reading SDK models --------------------------------------------------------------------------------


def _tags(resource: Any) -> dict[str, str]:
    return dict(getattr(resource, "tags", None) or {})


def _group(resource_id: str) -> str:
    parsed = parse_arm_id(resource_id)
    return parsed.resource_group if parsed else ""


def _is_ours(tags: Mapping[str, str]) -> bool:
    return MANAGED_BY in tags and CLUSTER_TAG in tags


def _is_dask_cloudprovider(tags: Mapping[str, str]) -> bool:
    return tags.get(DASK_CLOUDPROVIDER_TAG) == DASK_CLOUDPROVIDER_VALUE


def _vm(model: Any, view: Any) -> ObservedVm:
    power: str | None = None
    evicted = False
    error: str | None = None
    for status in getattr(view, "statuses", None) or []:
        code = status.code or ""
        if code.startswith("PowerState/"):
            power = code.removeprefix("PowerState/")
        elif code == "EvictionState/evicted":
            evicted = True
        elif code.startswith("ProvisioningState/failed"):
            error = f"{code.removeprefix('ProvisioningState/failed/')}: {status.message or ''}".strip(": ")
    nics = tuple(ref.id for ref in (model.network_profile.network_interfaces or []) if ref.id)
    os_disk = model.storage_profile.os_disk.name if model.storage_profile.os_disk else None
    return ObservedVm(
        name=model.name,
        id=model.id,
        resource_group=_group(model.id),
        tags=_tags(model),
        provisioning_state=model.provisioning_state or "Succeeded",
        power_state=power,
        evicted=evicted,
        priority=model.priority,
        created_at=model.time_created,
        nic_ids=nics,
        os_disk=os_disk,
        error=error,
    )


def _nic(model: Any) -> ObservedNic:
    configs = model.ip_configurations or []
    primary = next((c for c in configs if c.primary), configs[0] if configs else None)
    pip = primary.public_ip_address.id if primary is not None and primary.public_ip_address else None
    return ObservedNic(
        name=model.name,
        id=model.id,
        resource_group=_group(model.id),
        tags=_tags(model),
        private_ip=primary.private_ip_address if primary is not None else None,
        vm_id=model.virtual_machine.id if model.virtual_machine else None,
        public_ip_id=pip,
        provisioning_state=model.provisioning_state,
    )


def _public_ip(model: Any) -> ObservedPublicIp:
    return ObservedPublicIp(
        name=model.name,
        id=model.id,
        resource_group=_group(model.id),
        tags=_tags(model),
        ip_address=model.ip_address,
        attached_to=model.ip_configuration.id if model.ip_configuration else None,
    )


def _disk(model: Any) -> ObservedDisk:
    return ObservedDisk(
        name=model.name,
        id=model.id,
        resource_group=_group(model.id),
        tags=_tags(model),
        managed_by=model.managed_by,
    )


def _failed(operation: str, name: str, exc: BaseException) -> ClusterCallFailed:
    return ClusterCallFailed(operation, name, classify(exc))


def _json(body: Mapping[str, Any]) -> IO[bytes]:
    """The body exactly as built, whatever shape the SDK's models would give it."""
    return io.BytesIO(json.dumps(body).encode("utf-8"))


async def _collect(pages: Any) -> list[Any]:
    return [item async for item in pages]


# --- observe -------------------------------------------------------------------------------------------


@dataclass
class _Listing:
    vms: list[Any] = field(default_factory=list)
    nics: list[Any] = field(default_factory=list)
    public_ips: list[Any] = field(default_factory=list)
    disks: list[Any] = field(default_factory=list)
    views: dict[str, Any] = field(default_factory=dict)
    """Instance views by VM id, from one `statusOnly` listing rather than a GET per VM."""


async def _list_subscription(clients: AzureClients, subscription: str) -> _Listing:
    """Five listings per subscription, whatever the number of VMs: the calls of a pass stay constant."""
    compute, network = clients.compute(subscription), clients.network(subscription)
    try:
        vms, statuses, nics, pips, disks = await asyncio.gather(
            _collect(compute.virtual_machines.list_all()),
            _collect(compute.virtual_machines.list_all(status_only="true")),
            _collect(network.network_interfaces.list_all()),
            _collect(network.public_ip_addresses.list_all()),
            _collect(compute.disks.list()),
        )
    except _FAILURES as exc:
        raise _failed("list", f"subscription {subscription}", exc) from exc
    views = {vm.id: vm.instance_view for vm in statuses if vm.instance_view is not None}
    return _Listing(vms, nics, pips, disks, views)


def _subscriptions(config: Config) -> set[str]:
    found = {c.subscription_id or config.azure.subscription_id for c in config.clusters.values()}
    if config.azure.subscription_id:
        found.add(config.azure.subscription_id)
    return {s for s in found if s}


async def observe_clusters(clients: AzureClients, config: Config) -> ClusterSnapshot:
    """One snapshot of every declared cluster, and of every undeclared one that still owns resources."""
    clusters: dict[str, ObservedCluster] = {}
    errors: dict[str, AzureError] = {}
    for subscription in sorted(_subscriptions(config)):
        declared = {
            name: cluster
            for name, cluster in config.clusters.items()
            if (cluster.subscription_id or config.azure.subscription_id) == subscription
        }
        try:
            found = await observe_subscription(clients, subscription, declared)
        except ClusterCallFailed as exc:
            errors[subscription] = exc.error
            for name in declared:
                clusters[name] = ObservedCluster(name=name, error=exc.error)
            continue
        clusters.update(found)
    return ClusterSnapshot(clusters=clusters, errors=errors)


async def observe_subscription(
    clients: AzureClients, subscription: str, declared: Mapping[str, Cluster]
) -> dict[str, ObservedCluster]:
    listing = await _list_subscription(clients, subscription)
    ours_vms = [vm for vm in listing.vms if _is_ours(_tags(vm))]
    views = {
        vm.id: None if vm.provisioning_state == "Deleting" else listing.views.get(vm.id) for vm in ours_vms
    }
    names = set(declared) | {
        _tags(r)[CLUSTER_TAG]
        for r in [*listing.vms, *listing.nics, *listing.public_ips, *listing.disks]
        if _is_ours(_tags(r))
    }
    by_cluster: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for vm in ours_vms:
        by_cluster[_tags(vm)[CLUSTER_TAG]]["vms"].append(_vm(vm, views.get(vm.id)))
    for nic in listing.nics:
        if _is_ours(_tags(nic)):
            by_cluster[_tags(nic)[CLUSTER_TAG]]["nics"].append(_nic(nic))
    for pip in listing.public_ips:
        if _is_ours(_tags(pip)):
            by_cluster[_tags(pip)[CLUSTER_TAG]]["public_ips"].append(_public_ip(pip))
    for disk in listing.disks:
        owner = _tags(disk).get(CLUSTER_TAG) if _is_ours(_tags(disk)) else None
        owner = owner or next((n for n in sorted(names) if vm_of_disk(n, disk.name) is not None), None)
        if owner is not None:
            by_cluster[owner]["disks"].append(_disk(disk))
    foreign = _dask_cloudprovider(listing)
    result: dict[str, ObservedCluster] = {}
    for name in sorted(names):
        parts = by_cluster.get(name, {})
        cluster = declared.get(name)
        subnet_id: str | None = None
        error: AzureError | None = None
        reachable: bool | None = None
        leftovers: tuple[ForeignResource, ...] = ()
        if cluster is not None:
            group = cluster.resource_group.lower()
            leftovers = tuple(r for r in foreign if r.resource_group.lower() == group)
            try:
                subnet_id = await resolve_subnet(clients, cluster, subscription)
            except ClusterCallFailed as exc:
                error = exc.error
            reachable = await probe_scheduler(cluster, parts.get("nics", []), name)
        result[name] = ObservedCluster(
            name=name,
            vms=tuple(sorted(parts.get("vms", []), key=lambda v: v.name)),
            nics=tuple(sorted(parts.get("nics", []), key=lambda n: n.name)),
            public_ips=tuple(sorted(parts.get("public_ips", []), key=lambda p: p.name)),
            disks=tuple(sorted(parts.get("disks", []), key=lambda d: d.name)),
            dask_cloudprovider=leftovers,
            subnet_id=subnet_id,
            scheduler_reachable=reachable,
            error=error,
        )
    return result


def _dask_cloudprovider(listing: _Listing) -> list[ForeignResource]:
    found: list[ForeignResource] = []
    groups: tuple[tuple[ResourceKind, list[Any]], ...] = (
        ("vm", listing.vms),
        ("nic", listing.nics),
        ("public_ip", listing.public_ips),
        ("disk", listing.disks),
    )
    for kind, items in groups:
        for item in items:
            if not _is_dask_cloudprovider(_tags(item)):
                continue
            attached: str | None = None
            if kind == "nic" and item.virtual_machine:
                attached = item.virtual_machine.id
            elif kind == "public_ip" and item.ip_configuration:
                attached = item.ip_configuration.id
            elif kind == "disk":
                attached = item.managed_by
            found.append(ForeignResource(kind, item.name, item.id, _group(item.id), attached))
    return found


async def resolve_subnet(clients: AzureClients, cluster: Cluster, subscription: str) -> str:
    """The spec's subnet as an id; without one, the vnet's first subnet (dask-cloudprovider's choice)."""
    where = placement(cluster, subscription)
    if where.subnet_id is not None:
        return where.subnet_id
    vnet = parse_arm_id(where.vnet_id)
    assert vnet is not None
    network = clients.network(vnet.subscription_id)
    try:
        model = await network.virtual_networks.get(vnet.resource_group, vnet.name)
    except _FAILURES as exc:
        raise _failed("get vnet", vnet.name, exc) from exc
    subnets = [s for s in (model.subnets or []) if s.id]
    if not subnets:
        raise ClusterCallFailed(
            "get vnet", vnet.name, AzureError(ErrorKind.INVALID, "the virtual network has no subnet")
        )
    return str(subnets[0].id)


async def probe_scheduler(cluster: Cluster, nics: Iterable[ObservedNic], name: str) -> bool | None:
    """TCP connect to the scheduler (the probe's address, else its private IP); None without a probe."""
    probe = cluster.health_probe
    if probe is None:
        return None
    address = probe.address or next(
        (n.private_ip for n in nics if n.name == nic_name(scheduler_name(name)) and n.private_ip), None
    )
    if address is None:
        return False
    try:
        async with asyncio.timeout(probe.timeout.total_seconds()):
            _, writer = await asyncio.open_connection(address, probe.port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


# --- changes -------------------------------------------------------------------------------------------


class ClusterOps:
    """The create, get and delete calls the cluster engine makes, for one subscription."""

    def __init__(self, clients: AzureClients, subscription: str) -> None:
        self.compute = clients.compute(subscription)
        self.network = clients.network(subscription)
        self.subscription = subscription

    async def _call(self, operation: str, name: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except _FAILURES as exc:
            raise _failed(operation, name, exc) from exc

    async def _begin(self, operation: str, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Send a long-running request and return ARM's first answer; the caller polls to the end."""
        poller = await self._call(operation, name, call)
        return await self._call(operation, name, poller.result)

    async def put_public_ip(self, group: str, name: str, body: Mapping[str, Any]) -> ObservedPublicIp:
        model = await self._begin(
            "create public IP",
            name,
            lambda: self.network.public_ip_addresses.begin_create_or_update(
                group, name, _json(body), polling=False
            ),
        )
        return _public_ip(model)

    async def put_nic(self, group: str, name: str, body: Mapping[str, Any]) -> ObservedNic:
        model = await self._begin(
            "create NIC",
            name,
            lambda: self.network.network_interfaces.begin_create_or_update(
                group, name, _json(body), polling=False
            ),
        )
        return _nic(model)

    async def put_vm(self, group: str, name: str, body: Mapping[str, Any]) -> None:
        await self._begin(
            "create VM",
            name,
            lambda: self.compute.virtual_machines.begin_create_or_update(
                group, name, _json(body), polling=False
            ),
        )

    async def set_vm_tags(self, group: str, name: str, tags: Mapping[str, str]) -> None:
        await self._begin(
            "tag VM",
            name,
            lambda: self.compute.virtual_machines.begin_update(
                group, name, _json({"tags": dict(tags)}), polling=False
            ),
        )

    async def set_disk_tags(self, group: str, name: str, tags: Mapping[str, str]) -> None:
        await self._begin(
            "tag disk",
            name,
            lambda: self.compute.disks.begin_update(group, name, _json({"tags": dict(tags)}), polling=False),
        )

    async def get_vm(self, group: str, name: str) -> ObservedVm | None:
        try:
            model = await self.compute.virtual_machines.get(group, name, expand="instanceView")
        except ResourceNotFoundError:
            return None
        except _FAILURES as exc:
            raise _failed("get VM", name, exc) from exc
        return _vm(model, model.instance_view)

    async def get_nic(self, group: str, name: str) -> ObservedNic | None:
        try:
            return _nic(await self.network.network_interfaces.get(group, name))
        except ResourceNotFoundError:
            return None
        except _FAILURES as exc:
            raise _failed("get NIC", name, exc) from exc

    async def delete(self, kind: ResourceKind, group: str, name: str) -> None:
        """Ask ARM to delete; gone-already is done. Poll `exists` to see the end."""
        operations: dict[ResourceKind, Callable[[], Awaitable[Any]]] = {
            "vm": lambda: self.compute.virtual_machines.begin_delete(group, name, polling=False),
            "nic": lambda: self.network.network_interfaces.begin_delete(group, name, polling=False),
            "public_ip": lambda: self.network.public_ip_addresses.begin_delete(group, name, polling=False),
            "disk": lambda: self.compute.disks.begin_delete(group, name, polling=False),
        }
        try:
            await self._begin(f"delete {kind}", name, operations[kind])
        except ClusterCallFailed as exc:
            if exc.error.kind is not ErrorKind.NOT_FOUND:
                raise

    async def exists(self, kind: ResourceKind, group: str, name: str) -> bool:
        getters: dict[ResourceKind, Callable[[], Awaitable[Any]]] = {
            "vm": lambda: self.compute.virtual_machines.get(group, name),
            "nic": lambda: self.network.network_interfaces.get(group, name),
            "public_ip": lambda: self.network.public_ip_addresses.get(group, name),
            "disk": lambda: self.compute.disks.get(group, name),
        }
        try:
            await getters[kind]()
        except ResourceNotFoundError:
            return False
        except _FAILURES as exc:
            raise _failed(f"get {kind}", name, exc) from exc
        return True
