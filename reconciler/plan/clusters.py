"""What a Dask cluster needs next, chosen from what ARM shows now: `plan_cluster` is pure.

Level-triggered like the pool cycle: nothing is remembered between passes but what Azure holds (VM states,
our tags, the scheduler NIC's address), so a reconciler killed anywhere picks the right next steps from a
fresh snapshot. Every VM is in one of a few states, each with one answer:

- absent or gone below `n_workers` → create; more than `n_workers` → remove the newest first;
- failed provisioning, evicted, deallocated or stopped → delete and replace (the reason is counted);
- built for another scheduler address → replace; built from another spec → rolling replacement of
  `rollout.max_unavailable` workers at a time, the scheduler last;
- NIC, public IP or disk of ours without its VM → delete (after a crash mid-create, say);
- an OS disk of a VM of ours without our tags (a crash between the VM's create and the disk's tagging)
  → tag it; a disk with one of our names but neither our tags nor a VM of ours → reported, never deleted.

Steps come in the order the engine runs them: VM deletions, orphan deletions, disk tags, scheduler,
workers, dask-cloudprovider leftovers, the target tag.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from reconciler.azure.clusters import (
    ClusterSnapshot,
    ObservedCluster,
    ObservedVm,
    ResourceKind,
    disk_name,
    nic_name,
    placement,
    public_ip_name,
    scheduler_name,
    vm_of_disk,
    vm_of_nic,
    worker_index,
    worker_name,
)
from reconciler.plan.cloud_init import CustomDataTooLarge
from reconciler.plan.cluster_bodies import ClusterBodyError, role_spec_hash, vm_body
from reconciler.spec.cluster import Cluster
from reconciler.spec.config import Config

_DOWN: Final = {"deallocated": "deallocated", "deallocating": "deallocated", "stopped": "stopped"}
_DOWN_STOPPING: Final = {"stopping": "stopped"}
_PLACEHOLDER_IP: Final = "255.255.255.255"
_NO_PASSWORD: Final = "-"  # noqa: S105 - a stand-in; such bodies are never sent
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Reason(StrEnum):
    """Why a VM is replaced; the `reason` label of `reconciler_cluster_replacements_total`."""

    failed = "failed"
    evicted = "evicted"
    deallocated = "deallocated"
    stopped = "stopped"
    missing = "missing"
    """Gone without us: deleted out of band, or a spot VM evicted with policy Delete."""
    scheduler_changed = "scheduler_changed"
    spec_changed = "spec_changed"


class WorkerState(StrEnum):
    """The `state` label of `reconciler_cluster_workers`."""

    running = "running"
    pending = "pending"
    outdated = "outdated"
    failed = "failed"
    evicted = "evicted"
    deallocated = "deallocated"
    stopped = "stopped"
    stale = "stale"
    """Built for another scheduler address."""
    deleting = "deleting"


class ClusterState(StrEnum):
    in_sync = "in_sync"
    converging = "converging"
    missing = "missing"
    degraded = "degraded"
    suspended = "suspended"
    undeclared = "undeclared"
    """Resources of a cluster the config no longer declares, kept because `safety.prune` is off."""
    pruning = "pruning"
    error = "error"


@dataclass(frozen=True)
class DeleteVm:
    name: str
    resource_group: str
    role: str
    why: str
    """A `Reason` for a replacement; `scale_down`, `moved` or `prune` otherwise."""
    leftovers: tuple[tuple[ResourceKind, str], ...] = ()
    """NICs and disk to delete once the VM is gone, if Azure did not delete them with it."""


@dataclass(frozen=True)
class DeleteResource:
    kind: ResourceKind
    name: str
    resource_group: str
    why: str
    """`orphan`, `prune` or `dask_cloudprovider`."""
    foreign: bool = False


@dataclass(frozen=True)
class TagDisk:
    """Tag the OS disk of a VM of ours: only a tagged disk is ever deleted on its own."""

    name: str
    resource_group: str
    role: str


@dataclass(frozen=True)
class CreateScheduler:
    why: str


@dataclass(frozen=True)
class CreateWorkers:
    names: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class SetTargetWorkers:
    count: int


ClusterStep = DeleteVm | DeleteResource | TagDisk | CreateScheduler | CreateWorkers | SetTargetWorkers


@dataclass(frozen=True)
class ClusterPlan:
    """The steps for one cluster and the figures `status` and the metrics show."""

    name: str
    state: ClusterState
    observed: ObservedCluster
    desired: Cluster | None = None
    steps: tuple[ClusterStep, ...] = ()
    held: tuple[str, ...] = ()
    """What would be done but is withheld (prune off), one line each."""
    problem: str | None = None
    """Why the cluster cannot be planned (observation failed, the spec cannot make a VM)."""
    scheduler: str = "missing"
    """running, pending, missing, failed, deallocated, stopped, deleting."""
    scheduler_ip: str | None = None
    scheduler_reachable: bool | None = None
    target_workers: int = 0
    workers: Mapping[WorkerState, int] = field(default_factory=dict)
    replacements: Mapping[Reason, int] = field(default_factory=dict)
    """Replacements this plan starts, by reason."""
    orphans: Mapping[ResourceKind, int] = field(default_factory=dict)
    """Orphans of ours this plan deletes, by kind."""
    unowned: tuple[str, ...] = ()
    """Disks with one of the cluster's names but not our tags: reported, left alone."""

    @property
    def dask_cloudprovider_kept(self) -> tuple[str, ...]:
        """Leftovers of dask-cloudprovider this plan reports but leaves: not ours until adopted."""
        if self.desired is not None and self.desired.adopt_dask_cloudprovider_orphans:
            return ()
        return tuple(
            f"{r.kind} {r.name} (resource group {r.resource_group})" for r in self.observed.dask_cloudprovider
        )

    @property
    def in_sync(self) -> bool:
        """Nothing to do and nothing to wait for (a suspended cluster counts: it is as declared)."""
        return self.state in (ClusterState.in_sync, ClusterState.suspended)

    @property
    def scheduler_up(self) -> bool:
        return self.scheduler == "running" and self.scheduler_reachable is not False

    @property
    def healthy_workers(self) -> int:
        return self.workers.get(WorkerState.running, 0) + self.workers.get(WorkerState.outdated, 0)


def plan_cluster(
    name: str, desired: Cluster | None, observed: ObservedCluster, *, prune: bool
) -> ClusterPlan:
    """The next steps for cluster `name`; `desired` None means the config no longer declares it."""
    if observed.error is not None:
        return ClusterPlan(
            name, ClusterState.error, observed, desired, problem=f"not observed: {observed.error.describe()}"
        )
    if desired is None:
        return _plan_undeclared(name, observed, prune=prune)
    if desired.suspend:
        return ClusterPlan(name, ClusterState.suspended, observed, desired, target_workers=desired.n_workers)
    problem = body_problem(name, desired)
    if problem is not None:
        return ClusterPlan(name, ClusterState.error, observed, desired, problem=problem)
    return _Planner(name, desired, observed).plan()


def plan_clusters(config: Config, snapshot: ClusterSnapshot) -> tuple[ClusterPlan, ...]:
    """A plan for every declared cluster and every undeclared one that still owns resources."""
    names = sorted(set(config.clusters) | set(snapshot.clusters))
    return tuple(
        plan_cluster(
            name,
            config.clusters.get(name),
            snapshot.clusters.get(name) or ObservedCluster(name=name),
            prune=config.safety.prune,
        )
        for name in names
    )


def body_problem(name: str, desired: Cluster) -> str | None:
    """A config error only a rendered body shows (cloud-init too large, clashing extra_vm_options)."""
    where = placement(desired, "00000000-0000-0000-0000-000000000000")
    try:
        vm_body(
            name,
            desired,
            "scheduler",
            scheduler_name(name),
            where,
            scheduler_ip=None,
            admin_password=_NO_PASSWORD,
        )
        vm_body(
            name,
            desired,
            "worker",
            worker_name(name, 0),
            where,
            scheduler_ip=_PLACEHOLDER_IP,
            admin_password=_NO_PASSWORD,
        )
    except (CustomDataTooLarge, ClusterBodyError) as exc:
        return str(exc)
    return None


def _newest_first(vms: Iterable[ObservedVm], cluster: str) -> list[ObservedVm]:
    return sorted(
        vms,
        key=lambda vm: (vm.created_at or _EPOCH, worker_index(cluster, vm.name) or 0),
        reverse=True,
    )


class _Planner:
    def __init__(self, name: str, desired: Cluster, observed: ObservedCluster) -> None:
        self.name = name
        self.desired = desired
        self.observed = observed
        self.group = desired.resource_group.lower()
        self.deletions: list[DeleteVm] = []
        self.replacements: Counter[Reason] = Counter()
        self.workers: Counter[WorkerState] = Counter()
        self.disk_tags: list[TagDisk] = []
        self.unowned: list[str] = []

    def _here(self, resource_group: str) -> bool:
        return resource_group.lower() == self.group

    def plan(self) -> ClusterPlan:
        name, desired, observed = self.name, self.desired, self.observed
        sched = scheduler_name(name)
        sched_nic = next(
            (n for n in observed.nics if n.name == nic_name(sched) and self._here(n.resource_group)), None
        )
        scheduler_ip = sched_nic.private_ip if sched_nic is not None else None
        for vm in observed.vms:
            if not self._here(vm.resource_group) and vm.provisioning_state != "Deleting":
                self.deletions.append(DeleteVm(vm.name, vm.resource_group, vm.role or "worker", "moved"))
        scheduler_vm = next(
            (v for v in observed.vms if v.name == sched and self._here(v.resource_group)), None
        )
        worker_vms = [
            v
            for v in observed.vms
            if self._here(v.resource_group) and v.name != sched and worker_index(name, v.name) is not None
        ]
        scheduler_state, scheduler_reason = self._scheduler_state(scheduler_vm, worker_vms)
        running, pending, outdated = self._classify_workers(worker_vms, scheduler_ip)
        live = [*running, *pending, *outdated]
        target = desired.n_workers
        recorded = scheduler_vm.target_workers if scheduler_vm is not None else None
        creating_scheduler = scheduler_reason is not None
        if recorded is not None and not creating_scheduler:
            lost = max(0, min(recorded, target) - (len(live) + sum(self.replacements.values())))
            if lost:
                self.replacements[Reason.missing] += lost
        surplus = len(live) - target
        if surplus > 0:
            for vm in (
                _newest_first(outdated, name) + _newest_first(pending, name) + _newest_first(running, name)
            )[:surplus]:
                self.deletions.append(
                    DeleteVm(vm.name, vm.resource_group, "worker", "scale_down", _worker_leftovers(vm.name))
                )
                for group in (outdated, pending, running):
                    if vm in group:
                        group.remove(vm)
        shortfall = max(0, target - (len(running) + len(pending) + len(outdated)))
        scheduler_serving = scheduler_state in ("running", "pending") and not creating_scheduler
        if outdated and scheduler_serving:
            budget = desired.rollout.max_unavailable - len(pending) - shortfall
            for vm in sorted(outdated, key=lambda v: (v.created_at or _EPOCH, v.name))[: max(0, budget)]:
                self._replace(vm, Reason.spec_changed)
                shortfall += 1
        scheduler_outdated = (
            scheduler_vm is not None
            and scheduler_state == "running"
            and scheduler_vm.spec_hash != role_spec_hash(desired, "scheduler")
        )
        if (
            scheduler_outdated
            and not outdated
            and not pending
            and shortfall == 0
            and scheduler_vm is not None
        ):
            self.deletions.append(
                DeleteVm(sched, scheduler_vm.resource_group, "scheduler", Reason.spec_changed)
            )
            self.replacements[Reason.spec_changed] += 1
            scheduler_reason = Reason.spec_changed.value
            scheduler_state = "replacing"
        steps: list[ClusterStep] = [*self.deletions]
        orphans = self._orphans({d.name for d in self.deletions})
        steps.extend(orphans)
        steps.extend(self.disk_tags)
        if scheduler_reason is not None:
            steps.append(CreateScheduler(scheduler_reason))
        if shortfall:
            steps.append(
                CreateWorkers(self._new_names(shortfall, orphans), self._create_why(scheduler_reason))
            )
        if desired.adopt_dask_cloudprovider_orphans:
            steps.extend(
                DeleteResource(r.kind, r.name, r.resource_group, "dask_cloudprovider", foreign=True)
                for r in observed.dask_cloudprovider
            )
        if scheduler_vm is not None and not creating_scheduler and recorded != target:
            steps.append(SetTargetWorkers(target))
        state = self._state(steps, scheduler_state, scheduler_vm is None and not worker_vms)
        return ClusterPlan(
            name=name,
            state=state,
            observed=observed,
            desired=desired,
            steps=tuple(steps),
            scheduler=scheduler_state,
            scheduler_ip=scheduler_ip,
            scheduler_reachable=observed.scheduler_reachable,
            target_workers=target,
            workers=dict(self.workers),
            replacements=dict(self.replacements),
            orphans=dict(Counter(o.kind for o in orphans)),
            unowned=tuple(self.unowned),
        )

    def _replace(self, vm: ObservedVm, reason: Reason) -> None:
        self.deletions.append(
            DeleteVm(
                vm.name,
                vm.resource_group,
                vm.role or "worker",
                reason.value,
                _worker_leftovers(vm.name),
            )
        )
        self.replacements[reason] += 1

    def _scheduler_state(self, vm: ObservedVm | None, workers: list[ObservedVm]) -> tuple[str, str | None]:
        """The scheduler's state, and why it is (re)created in this plan (None: it is not)."""
        if vm is None:
            if workers:
                self.replacements[Reason.missing] += 1
                return "missing", Reason.missing.value
            return "missing", "initial"
        if vm.provisioning_state == "Deleting":
            return "deleting", None
        reason = _down_reason(vm, stopping_counts=True)
        if reason is not None:
            self.replacements[reason] += 1
            self.deletions.append(DeleteVm(vm.name, vm.resource_group, "scheduler", reason.value))
            return reason.value, reason.value
        if vm.provisioning_state == "Creating" or vm.power_state in (None, "starting"):
            return "pending", None
        return "running", None

    def _classify_workers(
        self, workers: list[ObservedVm], scheduler_ip: str | None
    ) -> tuple[list[ObservedVm], list[ObservedVm], list[ObservedVm]]:
        worker_hash = role_spec_hash(self.desired, "worker")
        running: list[ObservedVm] = []
        pending: list[ObservedVm] = []
        outdated: list[ObservedVm] = []
        for vm in workers:
            if vm.provisioning_state == "Deleting":
                self.workers[WorkerState.deleting] += 1
                continue
            reason = _down_reason(vm, stopping_counts=False)
            if reason is None and scheduler_ip is not None and vm.scheduler_ip != scheduler_ip:
                reason = Reason.scheduler_changed
            if reason is not None:
                self.workers[
                    WorkerState.stale if reason is Reason.scheduler_changed else WorkerState(reason)
                ] += 1
                self._replace(vm, reason)
            elif vm.spec_hash != worker_hash:
                self.workers[WorkerState.outdated] += 1
                outdated.append(vm)
            elif vm.provisioning_state == "Creating" or vm.power_state in (None, "starting"):
                self.workers[WorkerState.pending] += 1
                pending.append(vm)
            else:
                self.workers[WorkerState.running] += 1
                running.append(vm)
        return running, pending, outdated

    def _orphans(self, deleting: set[str]) -> list[DeleteResource]:
        """Our NICs, public IPs and disks that no VM uses and the desired cluster does not need."""
        name, observed = self.name, self.observed
        keep_nic = nic_name(scheduler_name(name))
        keep_ip = public_ip_name(name) if self.desired.public_ingress else None
        found: list[DeleteResource] = []
        for nic in observed.nics:
            needed = nic.name == keep_nic and self._here(nic.resource_group)
            if nic.vm_id is None and not needed and vm_of_nic(name, nic.name) not in deleting:
                found.append(DeleteResource("nic", nic.name, nic.resource_group, "orphan"))
        for pip in observed.public_ips:
            if pip.attached_to is None and not (pip.name == keep_ip and self._here(pip.resource_group)):
                found.append(DeleteResource("public_ip", pip.name, pip.resource_group, "orphan"))
        vms = {vm.id.lower(): vm for vm in observed.vms}
        for disk in observed.disks:
            owner = vms.get((disk.managed_by or "").lower())
            if owner is not None and (owner.name in deleting or owner.provisioning_state == "Deleting"):
                continue
            if not disk.owned and owner is not None:
                self.disk_tags.append(TagDisk(disk.name, disk.resource_group, owner.role or "worker"))
            elif not disk.owned and not (disk.managed_by is None and vm_of_disk(name, disk.name) in deleting):
                self.unowned.append(_unowned(disk.name, disk.resource_group))
            elif disk.managed_by is None and vm_of_disk(name, disk.name) not in deleting:
                found.append(DeleteResource("disk", disk.name, disk.resource_group, "orphan"))
        return found

    def _new_names(self, count: int, orphans: list[DeleteResource]) -> tuple[str, ...]:
        """The lowest worker indices that no VM, NIC or disk of the cluster uses, orphans included."""
        name, observed = self.name, self.observed
        used = {worker_index(name, v.name) for v in observed.vms}
        used |= {worker_index(name, vm) for vm in (vm_of_nic(name, n.name) for n in observed.nics) if vm}
        used |= {worker_index(name, vm) for vm in (vm_of_disk(name, d.name) for d in observed.disks) if vm}
        used |= {worker_index(name, vm_of_nic(name, o.name) or "") for o in orphans}
        names: list[str] = []
        index = 0
        while len(names) < count:
            if index not in used:
                names.append(worker_name(name, index))
            index += 1
        return tuple(names)

    def _create_why(self, scheduler_reason: str | None) -> str:
        if scheduler_reason == "initial":
            return "initial"
        if self.replacements:
            return "replace"
        return "scale_up"

    def _state(self, steps: list[ClusterStep], scheduler_state: str, nothing: bool) -> ClusterState:
        if nothing:
            return ClusterState.missing
        if not steps and scheduler_state == "running" and not self.workers.get(WorkerState.pending):
            return ClusterState.in_sync
        broken = set(self.replacements) - {Reason.spec_changed}
        if broken or scheduler_state not in ("running", "pending", "replacing"):
            return ClusterState.degraded
        return ClusterState.converging


def _unowned(disk: str, resource_group: str) -> str:
    return f"disk {disk} (resource group {resource_group}): our name but not our tags, left alone"


def _worker_leftovers(vm: str) -> tuple[tuple[ResourceKind, str], ...]:
    return (("nic", nic_name(vm)), ("disk", disk_name(vm)))


def _down_reason(vm: ObservedVm, *, stopping_counts: bool) -> Reason | None:
    if vm.provisioning_state == "Failed":
        return Reason.failed
    power = vm.power_state or ""
    if vm.evicted or (vm.priority == "Spot" and power in ("deallocated", "deallocating")):
        return Reason.evicted
    down = _DOWN.get(power) or (_DOWN_STOPPING.get(power) if stopping_counts else None)
    return Reason(down) if down else None


def _plan_undeclared(name: str, observed: ObservedCluster, *, prune: bool) -> ClusterPlan:
    """A cluster the config dropped: removed with `safety.prune`, VMs first; otherwise only reported."""
    if observed.empty:
        return ClusterPlan(name, ClusterState.in_sync, observed)
    steps: list[ClusterStep] = []
    workers_first = sorted(observed.vms, key=lambda v: (v.name == scheduler_name(name), v.name))
    for vm in workers_first:
        if vm.provisioning_state != "Deleting":
            steps.append(DeleteVm(vm.name, vm.resource_group, vm.role or "worker", "prune"))
    steps.extend(DeleteResource("nic", n.name, n.resource_group, "prune") for n in observed.nics)
    steps.extend(DeleteResource("public_ip", p.name, p.resource_group, "prune") for p in observed.public_ips)
    deleted_vms = {vm.id.lower() for vm in observed.vms}
    disks = [d for d in observed.disks if d.owned or (d.managed_by or "").lower() in deleted_vms]
    unowned = tuple(_unowned(d.name, d.resource_group) for d in observed.disks if d not in disks)
    steps.extend(DeleteResource("disk", d.name, d.resource_group, "prune") for d in disks)
    if not steps and not observed.vms:
        return ClusterPlan(name, ClusterState.in_sync, observed, unowned=unowned)
    if prune:
        return ClusterPlan(name, ClusterState.pruning, observed, steps=tuple(steps), unowned=unowned)
    counts = Counter(
        ["vm"] * len(observed.vms)
        + ["nic"] * len(observed.nics)
        + ["public IP"] * len(observed.public_ips)
        + ["disk"] * len(disks)
    )
    shown = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    return ClusterPlan(
        name,
        ClusterState.undeclared,
        observed,
        held=(f"not declared any more; its {shown} are kept because safety.prune is off",),
        unowned=unowned,
    )


def describe(step: ClusterStep) -> str:
    """One line for `plan` output and logs: what is done to which resource, and why."""
    if isinstance(step, DeleteVm):
        return f"delete vm {step.name} ({step.role}, {step.why})"
    if isinstance(step, DeleteResource):
        owner = "dask-cloudprovider " if step.foreign else ""
        return f"delete {owner}{step.kind} {step.name} ({step.why})"
    if isinstance(step, TagDisk):
        return f"tag disk {step.name} as ours ({step.role})"
    if isinstance(step, CreateScheduler):
        return f"create scheduler ({step.why})"
    if isinstance(step, CreateWorkers):
        return f"create {len(step.names)} worker(s) {', '.join(step.names)} ({step.why})"
    return f"tag scheduler with target workers {step.count}"


def summary(plan: ClusterPlan) -> dict[str, Any]:
    """The plan as JSON-ready data for `plan --output json` and `status`; names and counts only."""
    return {
        "cluster": plan.name,
        "state": plan.state.value,
        "in_sync": plan.in_sync,
        "problem": plan.problem,
        "scheduler": {
            "state": plan.scheduler,
            "ip": plan.scheduler_ip,
            "reachable": plan.scheduler_reachable,
        },
        "workers": {
            "target": plan.target_workers,
            "healthy": plan.healthy_workers,
            "by_state": {state.value: count for state, count in sorted(plan.workers.items())},
        },
        "replacements": {reason.value: count for reason, count in sorted(plan.replacements.items())},
        "orphans": dict(sorted(plan.orphans.items())),
        "steps": [describe(step) for step in plan.steps],
        "held": list(plan.held),
        "dask_cloudprovider_leftovers": list(plan.dask_cloudprovider_kept),
        "unowned_disks": list(plan.unowned),
    }


def status_line(plan: ClusterPlan) -> str:
    """One line per cluster for `status`: scheduler, workers healthy of target, evictions, leftovers."""
    if plan.problem is not None:
        return f"{plan.name}: {plan.state.value}: {plan.problem}"
    reach = {True: ", reachable", False: ", NOT reachable", None: ""}[plan.scheduler_reachable]
    address = f" {plan.scheduler_ip}" if plan.scheduler_ip else ""
    parts = [
        f"scheduler {plan.scheduler}{address}{reach}",
        f"workers {plan.healthy_workers}/{plan.target_workers} healthy",
    ]
    unwell = {
        s.value: n
        for s, n in sorted(plan.workers.items())
        if s not in (WorkerState.running, WorkerState.outdated)
    }
    if unwell:
        parts.append(", ".join(f"{n} {state}" for state, n in unwell.items()))
    if plan.dask_cloudprovider_kept:
        parts.append(f"{len(plan.dask_cloudprovider_kept)} dask-cloudprovider leftover(s)")
    if plan.unowned:
        parts.append(f"{len(plan.unowned)} untagged disk(s) with our names, left alone")
    return f"{plan.name}: {plan.state.value}: " + "; ".join(parts)
