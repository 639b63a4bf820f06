"""The Prometheus families the daemon exports, and how passes, cycles and Azure calls update them.

The family names and labels are a contract with dashboards and alerts: renaming one breaks someone's
Grafana. Label values stay bounded: pool ids, account names, node states, phase names, action kinds,
HTTP status codes and normalised operation names; never an error message or a raw URL.

Per-pool gauges are rebuilt from each snapshot, so a pool that disappears from Azure disappears from
/metrics at the next pass instead of freezing at its last value.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from reconciler import __version__
from reconciler.azure.snapshot import ObservedPool, Snapshot
from reconciler.engine.clusters import ClusterResult, ClustersPass, figures
from reconciler.engine.cycle import CycleEvent
from reconciler.engine.executor import ActionResult
from reconciler.engine.reconcile import PassResult
from reconciler.plan.actions import ActionKind, Plan, PoolState

NODE_STATES: Final = (
    "creating",
    "deallocated",
    "deallocating",
    "idle",
    "leavingPool",
    "offline",
    "preempted",
    "rebooting",
    "reimaging",
    "running",
    "startTaskFailed",
    "starting",
    "unknown",
    "unusable",
    "upgradingOS",
    "waitingForStartTask",
)
"""The Batch node states, always all exported, so a state that empties reads 0 rather than vanishing."""
IDLE_PHASE: Final = "idle"
RUN_RESULTS: Final = ("success", "failure", "error", "interrupted")

_PASS_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_PHASE_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
_REQUEST_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every family in one registry of its own, so tests and two daemons in one process never clash."""

    def __init__(self, registry: CollectorRegistry | None = None, version: str = __version__) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconcile_runs = Counter(
            "reconciler_reconcile_runs", "Reconcile passes by result.", ["result"], registry=r
        )
        self.reconcile_duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Wall time of a reconcile pass: observing, planning and dispatching its actions.",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "reconciler_last_successful_reconcile_timestamp_seconds",
            "Unix time at which the last pass that observed every account and dispatched its actions ended.",
            registry=r,
        )
        self.pools = Gauge(
            "reconciler_pools", "Declared and observed pools by status.", ["status"], registry=r
        )
        self.pool_nodes = Gauge(
            "reconciler_pool_nodes", "Nodes of a pool by state.", ["pool", "account", "state"], registry=r
        )
        self.pool_target_nodes = Gauge(
            "reconciler_pool_target_nodes",
            "Target node count of a pool by priority.",
            ["pool", "account", "priority"],
            registry=r,
        )
        self.pool_refresh_phase = Gauge(
            "reconciler_pool_refresh_phase",
            "1 for the refresh phase a managed pool is in (idle when none).",
            ["pool", "phase"],
            registry=r,
        )
        self.refresh_total = Counter(
            "reconciler_refresh", "Finished refresh cycles by outcome.", ["pool", "result"], registry=r
        )
        self.refresh_duration = Histogram(
            "reconciler_refresh_duration_seconds",
            "How long each phase of a refresh cycle lasted.",
            ["phase"],
            buckets=_PHASE_BUCKETS,
            registry=r,
        )
        self.pool_last_refresh = Gauge(
            "reconciler_pool_last_refresh_timestamp_seconds",
            "Unix time the managed pool was last (re)created.",
            ["pool"],
            registry=r,
        )
        self.actions = Counter(
            "reconciler_actions",
            "Actions carried out, by kind and outcome.",
            ["action", "result"],
            registry=r,
        )
        self.actions_in_flight = Gauge(
            "reconciler_actions_in_flight",
            "Actions dispatched by a pass and still running, by kind.",
            ["action"],
            registry=r,
        )
        self.azure_requests = Counter(
            "reconciler_azure_requests",
            "HTTP requests to Azure (each retry counted) by service, operation and status.",
            ["service", "operation", "status"],
            registry=r,
        )
        self.azure_request_duration = Histogram(
            "reconciler_azure_request_duration_seconds",
            "Wall time of one HTTP request to Azure.",
            ["service"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.azure_throttled = Counter(
            "reconciler_azure_throttled",
            "Requests Azure answered with 429, or 503 with Retry-After.",
            registry=r,
        )
        self.config_reloads = Counter(
            "reconciler_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        self.config_last_reload_success = Gauge(
            "reconciler_config_last_reload_success",
            "1 when the last reload (or the initial load) was applied, 0 when it was refused.",
            registry=r,
        )
        self.build_info = Gauge(
            "reconciler_build_info", "Always 1; the version is in the label.", ["version"], registry=r
        )
        self.scheduler_jobs = Counter(
            "reconciler_scheduler_job_events",
            "Scheduler job events (executed, error, missed, max_instances) by job kind.",
            ["job", "event"],
            registry=r,
        )
        self.refresh_requests = Counter(
            "reconciler_refresh_requests",
            "Refresh requests written into pool metadata by the schedule.",
            ["pool"],
            registry=r,
        )
        self.cluster_workers = Gauge(
            "reconciler_cluster_workers",
            "Dask workers of a cluster by state.",
            ["cluster", "state"],
            registry=r,
        )
        self.cluster_target_workers = Gauge(
            "reconciler_cluster_target_workers",
            "Workers a cluster is declared with.",
            ["cluster"],
            registry=r,
        )
        self.cluster_scheduler_up = Gauge(
            "reconciler_cluster_scheduler_up",
            "1 when the cluster's scheduler VM is running.",
            ["cluster"],
            registry=r,
        )
        self.cluster_replacements = Counter(
            "reconciler_cluster_replacements",
            "Workers or schedulers replaced, by reason.",
            ["cluster", "reason"],
            registry=r,
        )
        self.cluster_orphans_deleted = Counter(
            "reconciler_cluster_orphans_deleted",
            "Leftover resources of a cluster deleted, by kind.",
            ["cluster", "kind"],
            registry=r,
        )
        self.build_info.labels(version=version).set(1)
        for result in RUN_RESULTS:
            self.reconcile_runs.labels(result=result)
        for status in PoolState:
            self.pools.labels(status=status.value).set(0)
        for outcome in ("success", "failure"):
            self.config_reloads.labels(result=outcome)
        for kind in ActionKind:
            self.actions_in_flight.labels(action=kind.value).set(0)
        self._phases: dict[str, str] = {}

    # --- a pass ----------------------------------------------------------------------------------

    def record_pass(
        self, result: PassResult, seconds: float, finished: datetime, *, ok: bool | None = None
    ) -> None:
        """Counters and gauges after a pass that ran to its end; `ok` overrides the pools' verdict."""
        ok = result.ok if ok is None else ok
        self.reconcile_duration.observe(seconds)
        self.reconcile_runs.labels(result="success" if ok else "failure").inc()
        if ok:
            self.last_success.set(finished.timestamp())
        self.record_actions(result.results)
        self.record_state(result.snapshot, result.plan)

    def record_actions(self, results: Iterable[ActionResult]) -> None:
        """Actions that ended, whether the pass awaited them or they ran detached from it."""
        for action_result in results:
            kind = action_result.action.kind
            self.actions.labels(action=kind.value, result=action_result.outcome.value).inc()
            if kind is ActionKind.refresh:
                self.refresh_total.labels(
                    pool=action_result.action.pool_id, result=action_result.outcome.value
                ).inc()

    def record_in_flight(self, running: Mapping[str, str | None], kinds: Iterable[ActionKind]) -> None:
        """Pools whose actions still run detached: their live phase over the snapshot's, and the count.

        `running` maps each such pool to the phase its cycle last reported (None before its first).
        """
        for pool, phase in running.items():
            if phase is not None:
                self.set_phase(pool, phase)
        tally = Tally(kinds)
        for kind in ActionKind:
            self.actions_in_flight.labels(action=kind.value).set(tally.get(kind, 0))

    def record_failed_pass(self, seconds: float, result: str = "error") -> None:
        self.reconcile_duration.observe(seconds)
        self.reconcile_runs.labels(result=result).inc()

    def record_state(self, snapshot: Snapshot, plan: Plan) -> None:
        """Pool gauges from what was observed and how the plan judged it."""
        tally = Tally(status.state for status in plan.statuses)
        for state in PoolState:
            self.pools.labels(status=state.value).set(tally.get(state, 0))
        self.pool_nodes.clear()
        self.pool_target_nodes.clear()
        self.pool_last_refresh.clear()
        for account in snapshot.accounts.values():
            for observed in account.pools.values():
                self._record_pool(observed)
        phases: dict[str, str] = {}
        for status in plan.statuses:
            if status.observed is None or not status.observed.managed:
                continue
            if status.state in (PoolState.refreshing, PoolState.orphaned) and status.phase:
                phases[status.pool_id] = status.phase
            else:
                phases[status.pool_id] = IDLE_PHASE
        self._phases = {}
        self.pool_refresh_phase.clear()
        for pool, phase in phases.items():
            self.set_phase(pool, phase)

    def _record_pool(self, observed: ObservedPool) -> None:
        pool, account = observed.pool_id, observed.account
        for state in NODE_STATES:
            count = observed.dedicated_nodes[state] + observed.low_priority_nodes[state]
            self.pool_nodes.labels(pool=pool, account=account, state=state).set(count)
        targets = self.pool_target_nodes
        targets.labels(pool=pool, account=account, priority="dedicated").set(observed.target_dedicated_nodes)
        targets.labels(pool=pool, account=account, priority="low_priority").set(
            observed.target_low_priority_nodes
        )
        if observed.managed and observed.creation_time is not None:
            self.pool_last_refresh.labels(pool=pool).set(observed.creation_time.timestamp())

    def phases(self) -> dict[str, str]:
        """The phase each managed pool is in now, as the gauge shows it."""
        return dict(self._phases)

    def set_phase(self, pool: str, phase: str) -> None:
        previous = self._phases.get(pool)
        if previous == phase:
            return
        if previous is not None:
            self.pool_refresh_phase.remove(pool, previous)
        self._phases[pool] = phase
        self.pool_refresh_phase.labels(pool=pool, phase=phase).set(1)

    def record_clusters(self, done: ClustersPass) -> None:
        """Cluster gauges from what ARM showed, counters from what was done.

        A pass observes and plans; its clusters' plans run as tasks of their own, whose results come
        in later through `record_cluster_results`.
        """
        self.cluster_workers.clear()
        self.cluster_target_workers.clear()
        self.cluster_scheduler_up.clear()
        for plan in done.plans:
            numbers = figures(plan)
            for state, count in numbers.workers.items():
                self.cluster_workers.labels(cluster=numbers.cluster, state=state).set(count)
            self.cluster_target_workers.labels(cluster=numbers.cluster).set(numbers.target_workers)
            self.cluster_scheduler_up.labels(cluster=numbers.cluster).set(1 if numbers.scheduler_up else 0)
        self.record_cluster_results(done.results)

    def record_cluster_results(self, results: Iterable[ClusterResult]) -> None:
        for result in results:
            numbers = figures(result.plan, result)
            for reason, count in numbers.replacements.items():
                self.cluster_replacements.labels(cluster=numbers.cluster, reason=str(reason)).inc(count)
            for kind, count in numbers.orphans_deleted.items():
                self.cluster_orphans_deleted.labels(cluster=numbers.cluster, kind=kind).inc(count)

    # --- the engine's phase observer -------------------------------------------------------------

    def observe_cycle(self, event: CycleEvent) -> None:
        """Live phase changes while a cycle runs, between the passes that rebuild the gauges."""
        if event.kind == "phase":
            if event.previous is not None and event.previous != "done":
                self.refresh_duration.labels(phase=event.previous).observe(event.seconds)
            self.set_phase(event.pool_id, IDLE_PHASE if event.phase == "done" else event.phase)
        elif event.kind == "outcome":
            self.set_phase(event.pool_id, IDLE_PHASE)

    # --- Azure requests --------------------------------------------------------------------------

    def azure_request(self, service: str, operation: str, status: str, seconds: float | None) -> None:
        self.azure_requests.labels(service=service, operation=operation, status=status).inc()
        if seconds is not None:
            self.azure_request_duration.labels(service=service).observe(seconds)

    def policy(self) -> RequestMetricsPolicy:
        return RequestMetricsPolicy(self)

    # --- config and scheduler --------------------------------------------------------------------

    def config_reload(self, applied: bool) -> None:
        self.config_reloads.labels(result="success" if applied else "failure").inc()
        self.config_last_reload_success.set(1 if applied else 0)

    def job_event(self, job: str, event: str) -> None:
        self.scheduler_jobs.labels(job=job, event=event).inc()


_PROVIDERS: Final = {
    "microsoft.batch": "batch_management",
    "microsoft.compute": "compute",
    "microsoft.network": "network",
}
_BATCH_COLLECTIONS: Final = frozenset(
    {
        "pools",
        "poolnodecounts",
        "nodecounts",
        "jobs",
        "jobschedules",
        "applications",
        "supportedimages",
        "lifetimepoolstats",
        "lifetimejobstats",
        "poolusagemetrics",
        "certificates",
    }
)


def classify_request(method: str, url: str) -> tuple[str, str]:
    """(service, operation) of a request, e.g. ("batch", "POST pools/{id}/resize").

    Names are alternately kept and replaced by `{id}` from the first collection segment on, so pool ids,
    resource groups and subscriptions never become label values.
    """
    segments = [s for s in urlsplit(url).path.split("/") if s]
    lowered = [s.lower() for s in segments]
    if "providers" in lowered:
        start = lowered.index("providers") + 1
        provider = lowered[start] if start < len(lowered) else ""
        service = _PROVIDERS.get(provider, "arm")
        kinds = segments[start + 1 :: 2]
        return service, f"{method} {'/'.join(kinds)}".strip()
    if lowered[:1] == ["subscriptions"]:
        return "arm", f"{method} {'/'.join(segments[0::2])}"
    first = next((i for i, s in enumerate(lowered) if s in _BATCH_COLLECTIONS), None)
    if first is None:
        return "other", method
    parts = [s if i % 2 == 0 else "{id}" for i, s in enumerate(lowered[first:])]
    return "batch", f"{method} {'/'.join(parts)}"


class RequestMetricsPolicy(SansIOHTTPPolicy[Any, Any]):
    """Counts and times every HTTP attempt of the SDK clients; install it as a per-retry policy."""

    _START: Final = "reconciler.metrics.start"

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context[self._START] = time.perf_counter()

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        status = int(http.status_code)
        self._count(request, str(status))
        if status == 429 or (status == 503 and "retry-after" in {k.lower() for k in http.headers}):
            self.metrics.azure_throttled.inc()

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        self._count(request, "error")

    def _count(self, request: PipelineRequest[Any], status: str) -> None:
        started = request.context.get(self._START)
        seconds = time.perf_counter() - started if isinstance(started, float) else None
        service, operation = classify_request(request.http_request.method, request.http_request.url)
        self.metrics.azure_request(service, operation, status, seconds)
