"""`Daemon`: the scheduler, the engine, reload, the HTTP listener and systemd, wired into one process.

What the daemon keeps in memory is only what a restart may lose: the current config, the clients, the
engine's requeue backoff and the pools' and clusters' running tasks. Everything a pass decides is
re-derived from Azure, so stopping is simple: no new actions, waits end at the next step boundary, and
whatever was half done is finished by the next process from what Azure shows.

A pass observes, plans and dispatches; it does not wait for what it dispatched. A drain may take hours
and a cluster's VM creates up to their deadline; a pass that waited for either would leave every other
pool unreconciled, /metrics and STATUS= stale and, on a fresh start, READY=1 unsent for as long. Each
pool's actions and each cluster's plan run as a task of their own (`Dispatcher`), their results are
recorded when they end, and the pass after that looks at the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import structlog

from reconciler.azure import operations
from reconciler.azure.clients import AzureClients
from reconciler.azure.operations import OperationFailed
from reconciler.azure.snapshot import Snapshot
from reconciler.daemon import logs
from reconciler.daemon.dispatch import ClusterFlight, Dispatch, Dispatcher, InFlight
from reconciler.daemon.engine import DaemonEngine, ShutdownRequested, finished
from reconciler.daemon.http import Listener, start_listener
from reconciler.daemon.metrics import IDLE_PHASE, Metrics
from reconciler.daemon.reload import WATCH_INTERVAL, Reloader
from reconciler.daemon.scheduler import DaemonScheduler
from reconciler.daemon.sdnotify import Notifier
from reconciler.engine.clusters import ClusterEngine, ClusterResult, ClustersPass, prunable
from reconciler.engine.cycle import CycleEvent
from reconciler.engine.executor import ActionResult
from reconciler.engine.reconcile import observe_and_plan
from reconciler.engine.wait import Pacing
from reconciler.plan.actions import Plan, PoolState, PoolStatus
from reconciler.plan.clusters import ClusterPlan, ClusterState
from reconciler.spec.config import Config

log = structlog.get_logger("reconciler.daemon")

DAEMON_CALLER: Final = "reconciler-daemon"
STOP_GRACE: Final = 10.0
"""Seconds shutdown waits for running calls to reach a step boundary before cancelling them."""
_STATUS_ORDER: Final = (
    PoolState.in_sync,
    PoolState.refreshing,
    PoolState.drifted,
    PoolState.missing,
    PoolState.degraded,
    PoolState.suspended,
    PoolState.unmanaged,
    PoolState.orphaned,
    PoolState.unreachable,
)
_STATUS_WORDS: Final = {PoolState.in_sync: "in sync"}


def summary(statuses: Sequence[PoolStatus], phases: Mapping[str, str] | None = None) -> str:
    """One line for systemd's STATUS=: "14 pools in sync, 1 refreshing (p_id2: draining)"."""
    if not statuses:
        return "no pools"
    phases = phases or {}
    tally = Counter(s.state for s in statuses)
    parts: list[str] = []
    for state in _STATUS_ORDER:
        count = tally.get(state, 0)
        if not count:
            continue
        words = f"{count} {'pool' if count == 1 else 'pools'} " if not parts else f"{count} "
        text = words + _STATUS_WORDS.get(state, state.value)
        if state is PoolState.refreshing:
            named = [s for s in statuses if s.state is state]
            shown = ", ".join(
                f"{s.pool_id}: {phases.get(s.pool_id) or s.phase or 'starting'}" for s in named[:3]
            )
            text += f" ({shown}{', ...' if len(named) > 3 else ''})"
        parts.append(text)
    return ", ".join(parts)


class Daemon:
    """One reconciler process; `await Daemon(paths, config).run()` returns the exit status."""

    def __init__(
        self,
        paths: Sequence[Path],
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        metrics_port: int | None = None,
        notifier: Notifier | None = None,
        pacing: Pacing | None = None,
        watch_interval: float = WATCH_INTERVAL,
        stop_grace: float = STOP_GRACE,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.config = config
        self.metrics = Metrics()
        self.notifier = notifier or Notifier(env)
        self.pacing = pacing or Pacing.from_env(env)
        self._metrics_port = metrics_port
        self._watch_interval = watch_interval
        self._stop_grace = stop_grace
        self._client_options = dict(client_options or {})
        self._stop = asyncio.Event()
        self._stopping = False
        self._passes: set[asyncio.Task[Any]] = set()
        self._reloads: set[asyncio.Task[bool]] = set()
        self._retired: list[AzureClients] = []
        self._statuses: tuple[PoolStatus, ...] = ()
        self._reached_azure = False
        self._first_pass_done = False
        self._in_pass = False
        self._pass_started = 0.0
        self._look_soon = False
        self._wake_handle: asyncio.TimerHandle | None = None
        self.dispatcher = Dispatcher(self._on_finished, self._on_cluster_finished)
        self.listener: Listener | None = None
        self.scheduler = DaemonScheduler(
            self._tick,
            self._request_refresh,
            on_event=self.metrics.job_event,
            time_scale=self.pacing.time_scale,
        )
        self.reloader = Reloader(self.paths, config, self._swap, self.metrics)
        self.clients = self._make_clients(config)
        self.engine = self._make_engine(self.clients)
        self.cluster_engine = self._make_cluster_engine(self.clients)
        self.metrics.config_last_reload_success.set(1)

    # --- building blocks -------------------------------------------------------------------------

    def _make_clients(self, config: Config) -> AzureClients:
        options: dict[str, Any] = {"per_retry_policies": [self.metrics.policy()], **self._client_options}
        return AzureClients(config, caller=DAEMON_CALLER, client_options=options)

    def _make_engine(self, clients: AzureClients, previous: DaemonEngine | None = None) -> DaemonEngine:
        engine = DaemonEngine(
            clients,
            pacing=self.pacing,
            observers=[self._on_cycle_event],
            sleep=self._sleep,
            in_window=lambda now: self.scheduler.windows.in_window(now),
            stopping=lambda: self._stopping,
        )
        if previous is not None:
            engine.backoff = previous.backoff
            engine.limits = previous.limits
        return engine

    def _make_cluster_engine(self, clients: AzureClients) -> ClusterEngine:
        return ClusterEngine(clients, pacing=self.pacing, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        """The engine's only way to wait: ends early, with `ShutdownRequested`, once stopping."""
        self.scheduler.mark_progress()
        if self._stop.is_set():
            raise ShutdownRequested
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._stop.wait()
        except TimeoutError:
            self.scheduler.mark_progress()
            return
        raise ShutdownRequested

    def _on_cycle_event(self, event: CycleEvent) -> None:
        self.scheduler.mark_progress()
        self.metrics.observe_cycle(event)
        if event.kind == "phase":
            self.dispatcher.note_phase(event.account, event.pool_id, event.phase)
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        live = {pool: phase for pool, phase in self.metrics.phases().items() if phase != IDLE_PHASE}
        return summary(self._statuses, live)

    @property
    def busy(self) -> bool:
        """A pass, a refresh request, or a pool's or cluster's dispatched work is running."""
        return bool(self._passes) or bool(self.dispatcher.tasks())

    # --- probes ----------------------------------------------------------------------------------

    def health_window(self) -> float:
        """Seconds without scheduler or engine progress after which the process counts as stuck."""
        interval, jitter = self.scheduler.interval(self.config)
        longest_poll = self.pacing.max_interval / self.pacing.time_scale
        return max(3 * interval + jitter, 2 * longest_poll, 5.0)

    def alive(self) -> tuple[bool, str]:
        if not self.scheduler.running and not self._stopping:
            return False, "scheduler not running"
        if not self.scheduler.progressed_within(self.health_window()):
            return False, f"no scheduler progress for {self.health_window():.0f}s"
        return True, "scheduler progressing"

    def ready(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "stopping"
        if not self._first_pass_done:
            return False, "first pass not finished"
        if not self._reached_azure:
            return False, "the last pass reached no Azure account"
        return True, "config loaded, Azure reached"

    # --- jobs ------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._passes.add(task)
        self._in_pass = True
        await self._close_retired()
        started = self._pass_started = time.monotonic()
        run_id = uuid.uuid4().hex[:12]
        try:
            with logs.bind_run(run_id):
                await self._pass(started)
        finally:
            self._in_pass = False
            if task is not None:
                self._passes.discard(task)
            self.scheduler.mark_progress()
            if self._look_soon:
                self._wake_soon()

    async def _pass(self, started: float) -> None:
        config = self.config
        engine = self.engine
        clusters: ClustersPass | None = None
        clusters_started: tuple[ClusterPlan, ...] = ()
        try:
            observed = await observe_and_plan(
                config, self.clients, backoff=engine.backoff, now=datetime.now(UTC)
            )
            snapshot, plan = observed.snapshot, observed.plan
            self._statuses = plan.statuses
            dispatched = self._dispatch(engine, plan)
            if config.clusters and not self._stopping:
                clusters = await self.cluster_engine.plan(config)
                clusters_started = self._dispatch_clusters(clusters, config)
        except ShutdownRequested:
            self.metrics.record_failed_pass(time.monotonic() - started, "interrupted")
            log.info("reconcile.interrupted", reason="stopping")
            return
        except Exception as exc:
            self.metrics.record_failed_pass(time.monotonic() - started, "error")
            log.error("reconcile.failed", error=f"{type(exc).__name__}: {exc}")
            self._after_first_pass()
            return
        seconds = time.monotonic() - started
        ok = not snapshot.errors and (clusters is None or clusters.ok)
        self.metrics.record_pass(observed, seconds, datetime.now(UTC), ok=ok)
        self._record_in_flight()
        if clusters is not None:
            self.metrics.record_clusters(clusters)
        self._reached_azure = _reached(snapshot, config)
        log.info(
            "reconcile.pass",
            ok=ok,
            seconds=round(seconds, 3),
            actions=len(dispatched.started),
            in_flight=len(self.dispatcher.flights()),
            busy=len(dispatched.busy),
            clusters=len(clusters.plans) if clusters is not None else 0,
            clusters_started=len(clusters_started),
            clusters_in_flight=len(self.dispatcher.clusters()),
            summary=summary(self._statuses),
        )
        self._after_first_pass()

    def _dispatch(self, engine: DaemonEngine, plan: Plan) -> Dispatch:
        """Hand each pool's actions to a task of its own, except pools whose task still runs.

        The window gate sees only the pools that are free, so a refresh deferred outside its windows
        is logged once, as before, and a running cycle is never held back halfway.
        """
        if self._stopping:
            if plan.actions:
                log.info("reconcile.not_acting", reason="stopping", actions=len(plan.actions))
            return Dispatch()
        busy = tuple(a for a in plan.actions if self.dispatcher.busy(a.account, a.pool_id))
        free = tuple(a for a in plan.actions if not self.dispatcher.busy(a.account, a.pool_id))
        gated, _held = engine.gate(Plan(free, plan.statuses, plan.held), engine.now())
        dispatched = self.dispatcher.dispatch(engine, gated.actions)
        if dispatched.started:
            log.info(
                "reconcile.acting",
                actions=len(dispatched.started),
                held=len(gated.held),
                in_flight=len(self.dispatcher.flights()),
            )
        for account, pool_id in sorted({(a.account, a.pool_id) for a in busy}):
            log.debug("pool.action.in_flight", pool=pool_id, account=account)
        return Dispatch(dispatched.started, busy)

    def _dispatch_clusters(self, clusters: ClustersPass, config: Config) -> tuple[ClusterPlan, ...]:
        """Hand each cluster's plan to a task of its own, except clusters whose task still runs.

        Prunes already running count against `safety.max_deletions_per_run`, so tasks outliving a pass
        never prune more clusters at once than one pass may.
        """
        if self._stopping:
            return ()
        free = [p for p in clusters.plans if p.steps and not self.dispatcher.cluster_busy(p.name)]
        pruning = sum(1 for f in self.dispatcher.clusters() if f.plan.state is ClusterState.pruning)
        allowed = prunable(free, config.safety.max_deletions_per_run - pruning)
        for plan in free:
            if plan.state is ClusterState.pruning and plan.name not in allowed:
                log.info(
                    "cluster.prune.held", cluster=plan.name, reason="safety.max_deletions_per_run reached"
                )
        ready = [p for p in free if p.state is not ClusterState.pruning or p.name in allowed]
        started = self.dispatcher.dispatch_clusters(self.cluster_engine, ready)
        if started:
            log.info(
                "cluster.acting",
                clusters=sorted(p.name for p in started),
                in_flight=len(self.dispatcher.clusters()),
            )
        return started

    def _on_cluster_finished(self, flight: ClusterFlight, result: ClusterResult | None) -> None:
        """A cluster's task ended: its counts recorded, and the next pass brought forward to look.

        A plan stopped by shutdown (None) is left out: the next process finishes it.
        """
        self.scheduler.mark_progress()
        if result is not None:
            self.metrics.record_cluster_results((result,))
            log.info(
                "cluster.applied",
                cluster=flight.name,
                ok=result.ok,
                created=len(result.created),
                timeouts=result.timeouts,
                failed=sum(1 for o in result.outcomes if not o.ok),
                seconds=round(time.monotonic() - flight.started, 3),
            )
        if not self._stopping:
            self._wake_soon()

    def _on_finished(self, flight: InFlight, results: tuple[ActionResult, ...]) -> None:
        """A pool's task ended: its results counted as a pass's were, and the next pass brought forward.

        Results cut short by shutdown are left out: the next process finishes those cycles.
        """
        self.metrics.record_actions(finished(results))
        self._record_in_flight()
        self.scheduler.mark_progress()
        if self._stopping:
            return
        self.notifier.status(self.status_line())
        self._wake_soon()

    def _record_in_flight(self) -> None:
        flights = self.dispatcher.flights()
        self.metrics.record_in_flight(
            {f.pool_id: f.phase for f in flights}, (a.kind for f in flights for a in f.actions)
        )

    def _wake_soon(self) -> None:
        """The next pass, to see what a task did, no sooner than the engine's shortest poll after the last.

        Replaces observing again after each pass that acted: one pass looks at every task that ended
        meanwhile, and a plan that never converges costs passes at the polling floor, not faster.
        """
        if self._stopping:
            return
        if self._in_pass:
            self._look_soon = True
            return
        self._look_soon = False
        if self._wake_handle is not None:
            return
        delay = self.pacing.floor - (time.monotonic() - self._pass_started)
        self._wake_handle = asyncio.get_running_loop().call_later(max(delay, 0.0), self._wake_now)

    def _wake_now(self) -> None:
        self._wake_handle = None
        if not self._stopping:
            self.scheduler.wake()

    def _after_first_pass(self) -> None:
        line = self.status_line()
        if not self._first_pass_done:
            self._first_pass_done = True
            self.notifier.ready(line)
            log.info("daemon.ready", status=line)
        else:
            self.notifier.status(line)

    async def _request_refresh(self, pool_id: str, scheduled: datetime) -> None:
        """The scheduled refresh: written into the pool, carried out by the next reconcile tick."""
        pool = self.config.pools.get(pool_id)
        if pool is None or self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._passes.add(task)
            task.add_done_callback(self._passes.discard)
        bound = log.bind(pool=pool_id, account=pool.account, scheduled=operations.iso_utc(scheduled))
        try:
            observed = await operations.get_pool(self.clients, pool.account, pool_id)
            if observed is None or not observed.managed:
                bound.info("pool.refresh.not_requested", reason="absent" if observed is None else "unmanaged")
                return
            if observed.creation_time is not None and observed.creation_time > scheduled:
                bound.info("pool.refresh.not_requested", reason="created after the scheduled time")
                return
            requested = observed.refresh_requested_at
            if requested is not None and requested >= scheduled:
                bound.info("pool.refresh.not_requested", reason="already requested")
                return
            at = operations.request_time(observed, scheduled)
            await operations.request_refresh(self.clients, pool.account, pool_id, at, observed=observed)
        except OperationFailed as failed:
            bound.warning("pool.refresh.request_failed", error=str(failed), kind=failed.kind.value)
            raise
        self.metrics.refresh_requests.labels(pool=pool_id).inc()
        bound.info("pool.refresh.requested", at=operations.iso_utc(at))
        self.scheduler.wake()

    # --- reload ----------------------------------------------------------------------------------

    async def _swap(self, config: Config) -> None:
        old = self.config
        self.config = config
        if config.accounts != old.accounts or config.azure != old.azure:
            self._retired.append(self.clients)
            self.clients = self._make_clients(config)
            self.engine = self._make_engine(self.clients, self.engine)
            self.cluster_engine = self._make_cluster_engine(self.clients)
        if config.logging != old.logging:
            logs.configure(logs.level_name(config.logging.level), config.logging.format)
        if config.metrics != old.metrics:
            log.warning(
                "config.reload.restart_needed", section="metrics", reason="the listener keeps its address"
            )
        self.scheduler.rebuild(config, first_tick=datetime.now(UTC))

    async def _close_retired(self) -> None:
        """Clients replaced by a reload, once no pass and no pool's task can still be using them.

        A cycle dispatched before the reload keeps its engine, and with it the clients it began with.
        """
        if any(task is not asyncio.current_task() for task in self._passes):
            return
        in_use = {id(f.engine.clients) for f in self.dispatcher.flights()}
        in_use |= {id(f.engine.clients) for f in self.dispatcher.clusters()}
        retired = [c for c in self._retired if id(c) not in in_use]
        self._retired = [c for c in self._retired if id(c) in in_use]
        for clients in retired:
            with contextlib.suppress(Exception):
                await clients.close()

    def request_reload(self) -> None:
        """From the SIGHUP handler; the task is held so it cannot be collected while it runs."""
        task = asyncio.get_running_loop().create_task(self.reloader.reload("sighup"))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """From a signal handler: begin an orderly shutdown."""
        if not self._stopping:
            log.info("daemon.stopping")
            self.notifier.stopping("stopping")
            flights, clusters = self.dispatcher.flights(), self.dispatcher.clusters()
            if flights or clusters:
                log.info(
                    "reconcile.interrupted",
                    reason="stopping",
                    in_flight=len(flights) + len(clusters),
                    pools=sorted(f.pool_id for f in flights),
                    clusters=sorted(f.name for f in clusters),
                )
        self._stopping = True
        self._stop.set()

    async def run(self, *, install_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        self.listener = await start_listener(
            self.config.metrics, self.metrics.registry, self, port=self._metrics_port
        )
        log.info(
            "http.listening",
            url=f"{self.listener.scheme}://{self.config.metrics.address}:{self.listener.port}",
            port=self.listener.port,
        )
        handled: list[signal.Signals] = []
        if install_signals:
            for signum, handler in (
                (signal.SIGTERM, self.stop),
                (signal.SIGINT, self.stop),
                (signal.SIGHUP, self.request_reload),
            ):
                loop.add_signal_handler(signum, handler)
                handled.append(signum)
        helpers = [asyncio.create_task(self.reloader.watch(self._watch_interval))]
        if self.notifier.watchdog_interval is not None:
            helpers.append(asyncio.create_task(self._watchdog(self.notifier.watchdog_interval)))
        self.scheduler.rebuild(self.config, first_tick=datetime.now(UTC))
        self.scheduler.start()
        log.info("daemon.started", pools=len(self.config.pools), accounts=len(self.config.accounts))
        try:
            await self._stop.wait()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            await self._shutdown(helpers)
        return 0

    async def _watchdog(self, interval: float) -> None:
        """WATCHDOG=1 only while the scheduler progresses: a stuck loop gets restarted by systemd."""
        while True:
            if self.scheduler.progressed_within(self.health_window()):
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _shutdown(self, helpers: list[asyncio.Task[None]]) -> None:
        deadline = time.monotonic() + self._stop_grace
        self.stop()
        self.scheduler.pause()
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        await _settle(set(self._passes) | self.dispatcher.tasks(), deadline)
        self._passes.clear()
        self.scheduler.shutdown()
        if self.listener is not None:
            await self.listener.close()
        self._retired.append(self.clients)
        await self._close_retired()
        self.notifier.close()
        log.info("daemon.stopped")


async def _settle(tasks: set[asyncio.Task[Any]], deadline: float) -> None:
    """Let tasks reach their next step boundary until the deadline, then cancel what is left."""
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
    for task in pending:
        task.cancel()
    if pending:
        log.warning("daemon.cancelled", tasks=len(pending))
        await asyncio.wait(pending, timeout=2.0)


def _reached(snapshot: Snapshot, config: Config) -> bool:
    """At least one account answered, or there is none to ask."""
    accounts = snapshot.accounts
    if not accounts:
        return not config.accounts
    return any(a.error is None for a in accounts.values())
