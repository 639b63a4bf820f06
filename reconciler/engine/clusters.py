"""Carries a `ClusterPlan` out: deletions, orphans, the scheduler, then the workers in parallel.

Every wait has a deadline (`wait_until`), so a VM that never leaves `Creating` costs one deadline, is
deleted and tried again after a backoff, and after the last attempt is reported as timed out: a pass
always ends. Nothing here is remembered for the next pass; what a pass leaves half done (a NIC without
its VM, a worker still creating) is what the next snapshot shows and the next plan answers.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, TypeVar

import structlog

from reconciler.azure.clients import AzureClients
from reconciler.azure.clusters import (
    KINDS,
    TARGET_WORKERS_TAG,
    ClusterCallFailed,
    ClusterOps,
    ClusterSnapshot,
    ForeignResource,
    ObservedVm,
    Placement,
    ResourceKind,
    disk_name,
    nic_name,
    observe_clusters,
    placement,
    public_ip_name,
    scheduler_name,
)
from reconciler.azure.errors import ErrorKind
from reconciler.engine.wait import Clock, DeadlineExceeded, Pacing, Sleep, wait_until
from reconciler.plan.cloud_init import Role
from reconciler.plan.cluster_bodies import disk_tags, nic_body, public_ip_body, vm_body
from reconciler.plan.clusters import (
    ClusterPlan,
    ClusterState,
    CreateScheduler,
    CreateWorkers,
    DeleteResource,
    DeleteVm,
    Reason,
    SetTargetWorkers,
    TagDisk,
    WorkerState,
    plan_clusters,
)
from reconciler.spec.cluster import Cluster, parse_arm_id
from reconciler.spec.config import Config

log = structlog.get_logger("reconciler.engine.clusters")

T = TypeVar("T")
_SETTLED: Final = frozenset({"Succeeded", "Failed"})
_FINAL: Final = frozenset({ErrorKind.INVALID, ErrorKind.AUTH, ErrorKind.QUOTA})
"""Errors another attempt in the same pass cannot fix."""


@dataclass(frozen=True)
class ClusterLimits:
    """Deadlines (simulated time when `Pacing.time_scale` > 1), attempts and parallelism."""

    create_vm: timedelta = timedelta(minutes=20)
    network: timedelta = timedelta(minutes=5)
    delete: timedelta = timedelta(minutes=15)
    attempts: int = 3
    """Tries per VM create in one pass; each failed or timed-out try is deleted before the next."""
    backoff: timedelta = timedelta(seconds=30)
    """The pause before a second try, doubled for each further one (±20 % jitter)."""
    parallel: int = 10
    """VM creates and deletions in flight at once, per cluster."""


@dataclass(frozen=True)
class StepOutcome:
    step: str
    """`create worker`, `delete vm`, … and the resource name: safe to log and to show."""
    ok: bool
    detail: str = ""
    timed_out: bool = False
    attempts: int = 1


@dataclass(frozen=True)
class ClusterResult:
    """What one pass did to one cluster; with the plan, the numbers behind the cluster metrics."""

    plan: ClusterPlan
    outcomes: tuple[StepOutcome, ...] = ()
    created: tuple[str, ...] = ()
    """VMs created and provisioned in this pass."""
    replacements: Mapping[str, int] = field(default_factory=dict)
    """Replacements started in this pass, by reason (a VM deleted for one, or a lost one recreated)."""
    orphans_deleted: Mapping[ResourceKind, int] = field(default_factory=dict)
    dask_cloudprovider_deleted: Mapping[ResourceKind, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def timeouts(self) -> int:
        return sum(1 for o in self.outcomes if o.timed_out)


@dataclass(frozen=True)
class ClusterFigures:
    """One cluster's gauges and counter increments, for the daemon's metric objects.

    `workers` → `reconciler_cluster_workers{cluster,state}`, `target_workers` →
    `reconciler_cluster_target_workers`, `scheduler_up` → `reconciler_cluster_scheduler_up`;
    `replacements` and `orphans_deleted` are increments of the `_total` counters.
    """

    cluster: str
    workers: Mapping[str, int]
    target_workers: int
    scheduler_up: bool
    replacements: Mapping[str, int]
    orphans_deleted: Mapping[str, int]


def figures(plan: ClusterPlan, result: ClusterResult | None = None) -> ClusterFigures:
    """Gauges from the plan (what ARM showed), counters from the result (what was done)."""
    workers = {state.value: plan.workers.get(state, 0) for state in WorkerState}
    return ClusterFigures(
        cluster=plan.name,
        workers=workers,
        target_workers=plan.target_workers,
        scheduler_up=plan.scheduler_up,
        replacements=dict(result.replacements) if result is not None else {},
        orphans_deleted={str(k): n for k, n in result.orphans_deleted.items()} if result is not None else {},
    )


@dataclass(frozen=True)
class ClustersPass:
    snapshot: ClusterSnapshot
    plans: tuple[ClusterPlan, ...]
    results: tuple[ClusterResult, ...] = ()

    @property
    def ok(self) -> bool:
        """Everything observed, every plan valid, every step done."""
        return (
            not self.snapshot.errors
            and all(p.problem is None for p in self.plans)
            and all(r.ok for r in self.results)
        )


def throwaway_password() -> str:
    """A password Azure accepts and nobody keeps: the VMs need no login, Linux VMs need a credential."""
    return secrets.token_urlsafe(24) + "aA1!"


class _Failed(Exception):
    def __init__(self, detail: str, *, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.timed_out = timed_out


class ClusterEngine:
    def __init__(
        self,
        clients: AzureClients,
        *,
        pacing: Pacing | None = None,
        limits: ClusterLimits | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.clients = clients
        self.pacing = pacing or Pacing.from_env()
        self.limits = limits or ClusterLimits()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self._ops: dict[str, ClusterOps] = {}

    def ops(self, subscription: str) -> ClusterOps:
        if subscription not in self._ops:
            self._ops[subscription] = ClusterOps(self.clients, subscription)
        return self._ops[subscription]

    async def _wait(
        self, phase: str, observe: Callable[[], Awaitable[T]], done: Callable[[T], bool], deadline: timedelta
    ) -> T:
        seconds = self.pacing.seconds(deadline)
        return await wait_until(
            observe,
            done,
            phase=phase,
            deadline=seconds,
            min_interval=self.pacing.floor,
            max_interval=self.pacing.cap(seconds),
            sleep=self.sleep,
            clock=self.clock,
            rng=self.rng,
        )

    async def delete(self, ops: ClusterOps, kind: ResourceKind, group: str, name: str) -> None:
        """Delete one resource and wait, within the delete deadline, until ARM no longer has it."""
        await ops.delete(kind, group, name)
        await self._wait(
            f"delete {kind} {name}",
            lambda: ops.exists(kind, group, name),
            lambda exists: not exists,
            self.limits.delete,
        )

    async def delete_foreign(
        self, subscription: str, resources: Iterable[ForeignResource]
    ) -> tuple[StepOutcome, ...]:
        """Delete resources another tool left (`gc --dask-cloudprovider`): VMs, then NICs, IPs, disks."""
        ops = self.ops(subscription)
        limit = asyncio.Semaphore(self.limits.parallel)
        pending = list(resources)

        async def one(resource: ForeignResource) -> StepOutcome:
            label = f"delete {resource.kind} {resource.name}"
            async with limit:
                try:
                    await self.delete(ops, resource.kind, resource.resource_group, resource.name)
                except (ClusterCallFailed, DeadlineExceeded) as exc:
                    log.warning("cluster.gc.failed", step=label, detail=str(exc))
                    return StepOutcome(label, False, str(exc), timed_out=isinstance(exc, DeadlineExceeded))
            log.info("cluster.gc.deleted", step=label, resource_group=resource.resource_group)
            return StepOutcome(label, True)

        outcomes: list[StepOutcome] = []
        for kind in KINDS:
            outcomes.extend(await asyncio.gather(*(one(r) for r in pending if r.kind == kind)))
        return tuple(outcomes)

    async def apply(self, plan: ClusterPlan) -> ClusterResult:
        """Run the plan's steps in their phases; a failed step is reported, and the rest still run."""
        subscription = _subscription_of(plan, self.clients.config)
        if subscription is None or not plan.steps:
            return ClusterResult(plan)
        run = _Run(self, plan, self.ops(subscription), subscription)
        await run.execute()
        return run.result()

    async def plan(self, config: Config) -> ClustersPass:
        """Observe every cluster once and plan each; nothing is changed."""
        snapshot = await observe_clusters(self.clients, config)
        return ClustersPass(snapshot, plan_clusters(config, snapshot))

    async def reconcile(self, config: Config) -> ClustersPass:
        """Observe every cluster once, plan each, and carry the plans out (clusters in parallel)."""
        planned = await self.plan(config)
        return ClustersPass(planned.snapshot, planned.plans, await self.carry_out(planned.plans, config))

    async def carry_out(self, plans: Iterable[ClusterPlan], config: Config) -> tuple[ClusterResult, ...]:
        """Apply plans in parallel, pruning no more clusters than `safety.max_deletions_per_run` allows."""
        plans = tuple(plans)
        allowed = prunable(plans, config.safety.max_deletions_per_run)
        results = await asyncio.gather(*(self._apply_or_hold(plan, allowed) for plan in plans))
        return tuple(results)

    async def _apply_or_hold(self, plan: ClusterPlan, allowed: frozenset[str]) -> ClusterResult:
        if plan.state is ClusterState.pruning and plan.name not in allowed:
            return held(plan)
        return await self.apply(plan)


def prunable(plans: Iterable[ClusterPlan], limit: int) -> frozenset[str]:
    """The clusters a pass may prune: `safety.max_deletions_per_run` of them, by name."""
    return frozenset(sorted(p.name for p in plans if p.state is ClusterState.pruning)[: max(limit, 0)])


def held(plan: ClusterPlan) -> ClusterResult:
    """The result of a prune that waits because this pass may prune no more clusters."""
    outcome = StepOutcome(f"prune cluster {plan.name}", False, "held: safety.max_deletions_per_run reached")
    return ClusterResult(plan, (outcome,))


def _subscription_of(plan: ClusterPlan, config: Config) -> str | None:
    if plan.desired is not None:
        return plan.desired.subscription_id or config.azure.subscription_id
    observed = plan.observed
    ids = [
        *(r.id for r in observed.vms),
        *(r.id for r in observed.nics),
        *(r.id for r in observed.public_ips),
        *(r.id for r in observed.disks),
    ]
    for resource_id in ids:
        parsed = parse_arm_id(resource_id)
        if parsed is not None:
            return parsed.subscription_id
    return None


class _Run:
    """One plan being carried out: its outcomes and counts."""

    def __init__(self, engine: ClusterEngine, plan: ClusterPlan, ops: ClusterOps, subscription: str) -> None:
        self.engine = engine
        self.plan = plan
        self.ops = ops
        self.where: Placement | None = (
            placement(plan.desired, subscription) if plan.desired is not None else None
        )
        self.limit = asyncio.Semaphore(engine.limits.parallel)
        self.outcomes: list[StepOutcome] = []
        self.created: list[str] = []
        self.replacements: Counter[str] = Counter()
        self.orphans: Counter[ResourceKind] = Counter()
        self.foreign: Counter[ResourceKind] = Counter()
        self.scheduler_ip = plan.scheduler_ip
        self.scheduler_failed = False
        self.log = log.bind(cluster=plan.name)

    def result(self) -> ClusterResult:
        return ClusterResult(
            plan=self.plan,
            outcomes=tuple(self.outcomes),
            created=tuple(sorted(self.created)),
            replacements=dict(self.replacements),
            orphans_deleted=dict(self.orphans),
            dask_cloudprovider_deleted=dict(self.foreign),
        )

    def _steps(self, kind: type[T]) -> list[T]:
        return [s for s in self.plan.steps if isinstance(s, kind)]

    async def execute(self) -> None:
        lost = self.plan.replacements.get(Reason.missing, 0)
        deletions = self._steps(DeleteVm)
        deleted = await asyncio.gather(
            *(self._step(f"delete vm {s.name}", self._delete_vm(s)) for s in deletions)
        )
        undeleted = {s.name for s, ok in zip(deletions, deleted, strict=True) if not ok}
        await self._delete_resources([s for s in self._steps(DeleteResource) if not s.foreign])
        await asyncio.gather(
            *(self._step(f"tag disk {s.name}", self._tag_disk(s)) for s in self._steps(TagDisk))
        )
        for create in self._steps(CreateScheduler):
            label = f"create scheduler {scheduler_name(self.plan.name)}"
            if scheduler_name(self.plan.name) in undeleted:
                self.outcomes.append(
                    StepOutcome(label, False, "skipped: the old scheduler is not deleted yet")
                )
                self.scheduler_failed = True
                continue
            self.scheduler_failed = not await self._step(label, self._create_scheduler())
            if create.why == Reason.missing.value:
                lost -= 1
                if not self.scheduler_failed:
                    self.replacements[Reason.missing.value] += 1
        for workers in self._steps(CreateWorkers):
            if self.scheduler_failed:
                self.outcomes.append(
                    StepOutcome("create workers", False, "skipped: the scheduler was not created")
                )
                continue
            done = await asyncio.gather(
                *(self._step(f"create worker {name}", self._create_worker(name)) for name in workers.names)
            )
            if lost > 0 and any(done):
                self.replacements[Reason.missing.value] += min(lost, sum(done))
        await self._delete_resources([s for s in self._steps(DeleteResource) if s.foreign])
        for target in self._steps(SetTargetWorkers):
            await self._step("tag scheduler", self._set_target(target.count))

    async def _step(self, label: str, action: Awaitable[int]) -> bool:
        """Run one step; its outcome is recorded and logged, its failure never stops the others."""
        try:
            attempts = await action
        except _Failed as exc:
            self.outcomes.append(StepOutcome(label, False, str(exc), timed_out=exc.timed_out))
            self.log.warning("cluster.step.failed", step=label, detail=str(exc), timed_out=exc.timed_out)
            return False
        except ClusterCallFailed as exc:
            self.outcomes.append(StepOutcome(label, False, str(exc)))
            self.log.warning("cluster.step.failed", step=label, detail=str(exc))
            return False
        except DeadlineExceeded as exc:
            self.outcomes.append(StepOutcome(label, False, str(exc), timed_out=True))
            self.log.warning("cluster.step.failed", step=label, detail=str(exc), timed_out=True)
            return False
        self.outcomes.append(StepOutcome(label, True, attempts=attempts))
        self.log.info("cluster.step.done", step=label, attempts=attempts)
        return True

    # --- deletions -------------------------------------------------------------------------------------

    async def _gone(self, kind: ResourceKind, group: str, name: str) -> None:
        await self.engine.delete(self.ops, kind, group, name)

    async def _delete_vm(self, step: DeleteVm) -> int:
        async with self.limit:
            await self._gone("vm", step.resource_group, step.name)
            for kind, name in step.leftovers:
                if await self.ops.exists(kind, step.resource_group, name):
                    await self._gone(kind, step.resource_group, name)
        if step.why in {r.value for r in Reason}:
            self.replacements[step.why] += 1
        return 1

    async def _delete_resources(self, steps: list[DeleteResource]) -> None:
        """In the order that frees each resource before its own deletion: VMs, NICs, public IPs, disks."""
        for kind in KINDS:
            batch = [s for s in steps if s.kind == kind]
            done = await asyncio.gather(
                *(self._step(f"delete {s.kind} {s.name}", self._delete_resource(s)) for s in batch)
            )
            for step, ok in zip(batch, done, strict=True):
                if ok and step.why == "orphan":
                    self.orphans[step.kind] += 1
                elif ok and step.foreign:
                    self.foreign[step.kind] += 1

    async def _delete_resource(self, step: DeleteResource) -> int:
        async with self.limit:
            await self._gone(step.kind, step.resource_group, step.name)
        return 1

    # --- creates ---------------------------------------------------------------------------------------

    def _desired(self) -> tuple[Cluster, Placement]:
        desired, where = self.plan.desired, self.where
        if desired is None or where is None:
            raise _Failed("the cluster is not declared")
        return desired, where

    def _subnet(self) -> str:
        subnet = self.plan.observed.subnet_id
        if subnet is None:
            raise _Failed("no subnet to place the NIC in (the vnet could not be read)")
        return subnet

    async def _settled_network(self, kind: ResourceKind, group: str, name: str) -> None:
        getter = self.ops.get_nic if kind == "nic" else None
        if getter is None:
            return
        await self.engine._wait(
            f"provision {kind} {name}",
            lambda: getter(group, name),
            lambda nic: nic is None or (nic.provisioning_state or "Succeeded") in _SETTLED,
            self.engine.limits.network,
        )

    async def _create_scheduler(self) -> int:
        desired, where = self._desired()
        name = scheduler_name(self.plan.name)
        group = where.resource_group
        if desired.public_ingress:
            await self.ops.put_public_ip(
                group, public_ip_name(self.plan.name), public_ip_body(self.plan.name, desired)
            )
        nic = await self.ops.put_nic(
            group,
            nic_name(name),
            nic_body(
                self.plan.name,
                desired,
                "scheduler",
                where,
                self._subnet(),
                with_public_ip=desired.public_ingress,
            ),
        )
        await self._settled_network("nic", group, nic.name)
        self.scheduler_ip = nic.private_ip
        return await self._create_vm("scheduler", name, None)

    async def _create_worker(self, name: str) -> int:
        self._desired()
        ip = self.scheduler_ip or await self._scheduler_ip()
        async with self.limit:
            return await self._create_vm("worker", name, ip)

    async def _scheduler_ip(self) -> str:
        _, where = self._desired()
        nic = await self.ops.get_nic(where.resource_group, nic_name(scheduler_name(self.plan.name)))
        if nic is None or nic.private_ip is None:
            raise _Failed("the scheduler has no NIC, so workers have no address to join")
        self.scheduler_ip = nic.private_ip
        return nic.private_ip

    async def _create_vm(self, role: Role, name: str, scheduler_ip: str | None) -> int:
        """Create one VM (a worker with its NIC first), with a deadline; retried after a backoff."""
        desired, where = self._desired()
        limits = self.engine.limits
        group = where.resource_group
        last = ""
        for attempt in range(1, limits.attempts + 1):
            if attempt > 1:
                pause = (
                    limits.backoff.total_seconds() * 2 ** (attempt - 2) * self.engine.rng.uniform(0.8, 1.0)
                )
                await self.engine.sleep(self.engine.pacing.seconds(pause))
            try:
                if role == "worker":
                    nic = await self.ops.put_nic(
                        group,
                        nic_name(name),
                        nic_body(self.plan.name, desired, "worker", where, self._subnet()),
                    )
                    await self._settled_network("nic", group, nic.name)
                body = vm_body(
                    self.plan.name,
                    desired,
                    role,
                    name,
                    where,
                    scheduler_ip=scheduler_ip,
                    admin_password=throwaway_password(),
                    target_workers=desired.n_workers if role == "scheduler" else None,
                )
                await self.ops.put_vm(group, name, body)
                vm = await self.engine._wait(
                    f"create {role} {name}",
                    lambda: self.ops.get_vm(group, name),
                    lambda vm: vm is None or vm.provisioning_state in _SETTLED,
                    limits.create_vm,
                )
            except DeadlineExceeded as exc:
                last = f"not provisioned within {_describe(limits.create_vm)} ({exc.waited:.0f}s waited)"
                self.log.warning("cluster.create.attempt_failed", vm=name, attempt=attempt, detail=last)
                await self._discard(role, group, name)
                if attempt == limits.attempts:
                    raise _Failed(f"{last}; gave up after {attempt} attempts", timed_out=True) from None
                continue
            except ClusterCallFailed as exc:
                last = str(exc)
                self.log.warning("cluster.create.attempt_failed", vm=name, attempt=attempt, detail=last)
                if exc.error.kind in _FINAL or attempt == limits.attempts:
                    raise _Failed(f"{last} (attempt {attempt})") from None
                continue
            if vm is not None and vm.provisioning_state == "Succeeded":
                self.created.append(name)
                await self.ops.set_disk_tags(
                    group, vm.os_disk or disk_name(name), disk_tags(self.plan.name, role)
                )
                return attempt
            last = _failure(vm)
            self.log.warning("cluster.create.attempt_failed", vm=name, attempt=attempt, detail=last)
            await self._discard(role, group, name)
        raise _Failed(f"{last}; gave up after {limits.attempts} attempts")

    async def _discard(self, role: Role, group: str, name: str) -> None:
        """Delete a VM that failed or hung, so the next attempt starts clean under the same name."""
        try:
            await self._gone("vm", group, name)
            if role == "worker" and await self.ops.exists("nic", group, nic_name(name)):
                await self._gone("nic", group, nic_name(name))
        except (ClusterCallFailed, DeadlineExceeded) as exc:
            raise _Failed(f"could not remove the failed VM {name}: {exc}") from None

    async def _tag_disk(self, step: TagDisk) -> int:
        """Tag the OS disk of a VM of ours that a crash left untagged between the VM's create and this."""
        await self.ops.set_disk_tags(step.resource_group, step.name, disk_tags(self.plan.name, step.role))
        return 1

    async def _set_target(self, count: int) -> int:
        _, where = self._desired()
        name = scheduler_name(self.plan.name)
        current = next((vm for vm in self.plan.observed.vms if vm.name == name), None)
        tags = dict(current.tags) if current is not None else {}
        tags[TARGET_WORKERS_TAG] = str(count)
        await self.ops.set_vm_tags(where.resource_group, name, tags)
        return 1


def _failure(vm: ObservedVm | None) -> str:
    if vm is None:
        return "the VM disappeared while it was being created"
    return f"provisioning failed ({vm.error or 'no reason given'})"


def _describe(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
