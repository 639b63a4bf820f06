"""Dask clusters in `plan`, `status` and `apply`, next to the pools.

The commands plan clusters with the same `plan_clusters` the daemon acts on, so what `plan` shows is what
the next pass does. Finding clusters costs four subscription-wide listings per subscription, so a config
that declares no cluster and does not prune makes no ARM call at all: there is nothing it could change.
Everything shown is names, states and counts — never a tag value or a VM body.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.azure.clients import AzureClients
from reconciler.azure.clusters import ClusterSnapshot, observe_clusters
from reconciler.commands.common import CLI_CALLER
from reconciler.engine.clusters import ClusterEngine, ClusterResult
from reconciler.engine.wait import Pacing
from reconciler.plan.clusters import ClusterPlan, WorkerState, describe, plan_clusters, summary
from reconciler.plan.render import safe
from reconciler.spec.config import Config

COLUMNS: Final = ("CLUSTER", "STATE", "SCHEDULER", "ADDRESS", "WORKERS", "EVICTED", "ORPHANS", "LEFTOVERS")


def wanted(config: Config) -> bool:
    """Whether clusters need observing: declared ones, or undeclared ones that `safety.prune` removes."""
    return bool(config.clusters) or config.safety.prune


@dataclass(frozen=True)
class ClusterView:
    """The clusters as one snapshot shows them, and their plans; empty when they were not observed."""

    snapshot: ClusterSnapshot = field(default_factory=ClusterSnapshot)
    plans: tuple[ClusterPlan, ...] = ()

    @property
    def in_sync(self) -> bool:
        return all(p.in_sync for p in self.plans)

    @property
    def pending(self) -> bool:
        """Some plan has a step to carry out."""
        return any(p.steps for p in self.plans)

    def problems(self) -> list[str]:
        """One line per unreachable subscription and per cluster that cannot be planned."""
        errors = self.snapshot.errors
        lines = [f"subscription {s}: unreachable: {e.describe()}" for s, e in sorted(errors.items())]
        for plan in self.plans:
            if plan.problem is None:
                continue
            if any(plan.observed.error is e for e in errors.values()):
                continue
            named = plan.problem.startswith(f"cluster {plan.name}:")
            lines.append(safe(plan.problem) if named else f"cluster {plan.name}: {safe(plan.problem)}")
        return lines

    def report(self) -> bool:
        """Print each problem on stderr; True when there was one (the command then exits 1)."""
        lines = self.problems()
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        return bool(lines)

    def plan_text(self) -> str:
        """The steps of each cluster, what is held and left, and a closing count; empty without clusters."""
        if not self.plans and not self.snapshot.errors:
            return ""
        lines = ["Clusters:"]
        for plan in self.plans:
            lines.append(f"  {plan.name}: {plan.state.value}")
            lines.extend(f"    {describe(step)}" for step in plan.steps)
            lines.extend(f"    held: {held}" for held in plan.held)
            if plan.problem is not None:
                lines.append(f"    error: {safe(plan.problem)}")
            lines.extend(
                f"    note: dask-cloudprovider leftover {r}, kept" for r in plan.dask_cloudprovider_kept
            )
            lines.extend(f"    note: {disk}" for disk in plan.unowned)
        for subscription, error in sorted(self.snapshot.errors.items()):
            lines.append(f"  note subscription {subscription}: unreachable: {error.describe()}")
        in_sync = sum(p.in_sync for p in self.plans)
        if self.in_sync and not self.snapshot.errors:
            lines.append(f"No cluster changes: {len(self.plans)} cluster(s) observed, {in_sync} in sync.")
        else:
            steps = sum(len(p.steps) for p in self.plans)
            lines.append(f"Clusters: {steps} step(s), {in_sync} of {len(self.plans)} cluster(s) in sync.")
        return "\n".join(lines) + "\n"

    def plan_json(self) -> dict[str, Any]:
        return {
            "clusters": [summary(plan) for plan in self.plans],
            "cluster_errors": {s: e.describe() for s, e in sorted(self.snapshot.errors.items())},
        }

    def status_json(self) -> dict[str, Any]:
        return {
            "clusters": [status_row(plan) for plan in self.plans],
            "cluster_errors": {s: e.describe() for s, e in sorted(self.snapshot.errors.items())},
        }

    def status_text(self) -> str:
        """A table, one row per cluster, then a line for each problem, held step or unreachable scheduler."""
        if not self.plans:
            return ""
        rows = [COLUMNS, *(_status_cells(status_row(plan)) for plan in self.plans)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        for plan in self.plans:
            if plan.problem is not None:
                lines.append(f"{plan.name}: {safe(plan.problem)}")
            lines.extend(f"{plan.name}: {held}" for held in plan.held)
            if plan.scheduler_reachable is False:
                lines.append(f"{plan.name}: the scheduler does not answer the health probe")
            lines.extend(
                f"{plan.name}: dask-cloudprovider leftover {r}" for r in plan.dask_cloudprovider_kept
            )
            lines.extend(f"{plan.name}: {disk}" for disk in plan.unowned)
        return "\n" + "\n".join(lines) + "\n"


def status_row(plan: ClusterPlan) -> dict[str, Any]:
    """What `status` says of one cluster: scheduler, workers healthy of target, evictions, what is left."""
    evicted = plan.workers.get(WorkerState.evicted, 0) + (plan.scheduler == "evicted")
    return {
        "cluster": plan.name,
        "state": plan.state.value,
        "problem": safe(plan.problem) if plan.problem is not None else None,
        "scheduler": {
            "state": plan.scheduler,
            "ip": plan.scheduler_ip,
            "reachable": plan.scheduler_reachable,
        },
        "workers": {
            "healthy": plan.healthy_workers,
            "target": plan.target_workers,
            "by_state": {state.value: count for state, count in sorted(plan.workers.items())},
        },
        "evicted": evicted,
        "orphans": dict(sorted(plan.orphans.items())),
        "dask_cloudprovider_leftovers": list(plan.dask_cloudprovider_kept),
        "unowned_disks": list(plan.unowned),
        "held": list(plan.held),
    }


def _status_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["cluster"],
        row["state"],
        row["scheduler"]["state"],
        row["scheduler"]["ip"] or "-",
        f"{row['workers']['healthy']}/{row['workers']['target']}",
        str(row["evicted"]),
        str(sum(row["orphans"].values())),
        str(len(row["dask_cloudprovider_leftovers"])),
    )


async def observe_with(clients: AzureClients, config: Config) -> ClusterView:
    """One snapshot of the clusters and their plans; no ARM call when `wanted` says none is needed."""
    if not wanted(config):
        return ClusterView()
    snapshot = await observe_clusters(clients, config)
    return ClusterView(snapshot, plan_clusters(config, snapshot))


async def observe_config(config: Config, *, caller: str = CLI_CALLER) -> ClusterView:
    """As `observe_with`, on clients of its own, closed afterwards."""
    if not wanted(config):
        return ClusterView()
    async with AzureClients(config, caller=caller) as clients:
        return await observe_with(clients, config)


class ClusterApply:
    """`apply` for clusters: observe before asking, start on approval, finish before the summary.

    The plans run while the pools' actions do, not after them: a pool refresh can take an hour, and the
    cluster plan the admin approved would be that old by then.
    """

    def __init__(self, clients: AzureClients, config: Config, pacing: Pacing) -> None:
        self.config = config
        self.engine = ClusterEngine(clients, pacing=pacing)
        self.view = ClusterView()
        self._running: asyncio.Task[tuple[ClusterResult, ...]] | None = None
        self.results: tuple[ClusterResult, ...] = ()

    @property
    def pending(self) -> bool:
        return self.view.pending

    async def observe(self) -> ClusterView:
        self.view = await observe_with(self.engine.clients, self.config)
        return self.view

    def start(self) -> None:
        """Begin carrying out the plans shown (approval given); a second call does nothing."""
        if self._running is None and self.pending:
            self._running = asyncio.create_task(self.engine.carry_out(self.view.plans, self.config))

    async def finish(self) -> tuple[ClusterResult, ...]:
        if self._running is not None:
            self.results = await self._running
        return self.results

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def summary(self) -> list[tuple[str, bool]]:
        """One line per step carried out, with whether it ended well."""
        return [
            (
                f"{result.plan.name} (cluster): {outcome.step} {'ok' if outcome.ok else 'failed'}"
                + (f" after {outcome.attempts} attempts" if outcome.attempts > 1 else "")
                + (f": {safe(outcome.detail)}" if outcome.detail else ""),
                outcome.ok,
            )
            for result in self.results
            for outcome in result.outcomes
        ]
