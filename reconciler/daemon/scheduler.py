"""When the daemon acts: the reconcile tick, each pool's refresh schedule, and the refresh windows.

The job store is in memory and rebuilt from the config on every swap: the config is the only source of
jobs, so a reload that drops a pool's schedule drops its job, and nothing stale survives in a database.
What must survive a restart is written into Azure instead: a scheduled refresh only *requests* the
refresh (pool metadata, stamped with the cron's nominal fire time), and the reconcile tick carries it out.
Stamping the nominal time rather than "now" makes a request idempotent: the same fire requested twice
(a catch-up after a restart, a reload) writes the same value, and one already carried out is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.spec.config import Config, RefreshWindow
from reconciler.spec.cron import cron_trigger
from reconciler.spec.pool_refresh import RefreshPolicy

log = structlog.get_logger("reconciler.daemon.scheduler")

RECONCILE_JOB: Final = "reconcile"
REFRESH_PREFIX: Final = "refresh:"
DEFAULT_MISFIRE_GRACE: Final = timedelta(hours=1)
"""How late a scheduled refresh may still be requested when no refresh window says otherwise."""
MIN_TICK: Final = 0.2

Reconcile = Callable[[], Awaitable[None]]
RequestRefresh = Callable[[str, datetime], Awaitable[None]]
OnEvent = Callable[[str, str], None]

_EVENT_NAMES: Final = {
    EVENT_JOB_SUBMITTED: "submitted",
    EVENT_JOB_EXECUTED: "executed",
    EVENT_JOB_ERROR: "error",
    EVENT_JOB_MISSED: "missed",
    EVENT_JOB_MAX_INSTANCES: "max_instances",
}


def fires(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """The trigger's fire times in [start, end], jitter left out."""
    found: list[datetime] = []
    moment: datetime | None = trigger.get_next_fire_time(None, start)
    while moment is not None and moment <= end:
        found.append(moment)
        moment = trigger.get_next_fire_time(moment, moment)
    return found


def plain_trigger(policy: RefreshPolicy) -> CronTrigger | None:
    """The schedule without its jitter: the nominal fire times a request is stamped with."""
    if policy.schedule is None:
        return None
    return cron_trigger(policy.schedule, policy.timezone)


def last_fire(policy: RefreshPolicy, now: datetime, lookback: timedelta) -> datetime | None:
    """The latest nominal fire of the pool's schedule in (now - lookback, now], if any."""
    trigger = plain_trigger(policy)
    if trigger is None:
        return None
    found = fires(trigger, now - lookback, now)
    return found[-1].astimezone(UTC) if found else None


class RefreshWindows:
    """`schedule.refresh_windows`: spans (cron start in UTC + duration) in which refreshes may begin.

    No windows at all means refreshes may begin at any time.
    """

    def __init__(self, windows: Sequence[RefreshWindow]) -> None:
        self._windows = [(cron_trigger(w.start), w.duration, w.start) for w in windows]

    @property
    def configured(self) -> bool:
        return bool(self._windows)

    @property
    def longest(self) -> timedelta | None:
        return max((duration for _, duration, _ in self._windows), default=None)

    def in_window(self, now: datetime) -> bool:
        """May a destructive phase begin at `now`?"""
        if not self._windows:
            return True
        tick = timedelta(microseconds=1)
        return any(fires(trigger, now - duration + tick, now) for trigger, duration, _ in self._windows)

    def next_opening(self, now: datetime) -> datetime | None:
        openings = [trigger.get_next_fire_time(None, now) for trigger, _, _ in self._windows]
        return min((o for o in openings if o is not None), default=None)


def misfire_grace(windows: RefreshWindows) -> timedelta:
    """How late a missed scheduled refresh may still be requested: the longest window, else an hour."""
    return windows.longest or DEFAULT_MISFIRE_GRACE


class DaemonScheduler:
    """APScheduler's `AsyncIOScheduler` with the daemon's jobs, events counted and progress tracked.

    `time_scale` (as in `Pacing`) compresses the reconcile interval for runs against a fast emulator;
    cron schedules stay on the wall clock.
    """

    def __init__(
        self,
        reconcile: Reconcile,
        request_refresh: RequestRefresh,
        *,
        on_event: OnEvent | None = None,
        time_scale: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._reconcile = reconcile
        self._request_refresh = request_refresh
        self._on_event = on_event
        self._time_scale = time_scale
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        self._scheduler.add_listener(self._event, mask=sum(_EVENT_NAMES))
        self.last_progress = time.monotonic()
        self.windows = RefreshWindows([])
        self._policies: dict[str, RefreshPolicy] = {}
        self._grace = DEFAULT_MISFIRE_GRACE

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._scheduler.start()

    def pause(self) -> None:
        """Fire no more jobs; running ones go on (shutting APScheduler down would cancel them)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop the scheduler; APScheduler cancels any job still running, so stop those first."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def mark_progress(self) -> None:
        self.last_progress = time.monotonic()

    def progressed_within(self, seconds: float) -> bool:
        return time.monotonic() - self.last_progress <= seconds

    def wake(self) -> None:
        """Run the reconcile tick now rather than at its next interval (a refresh was just requested)."""
        job = self._scheduler.get_job(RECONCILE_JOB)
        if job is not None:
            job.modify(next_run_time=self._clock())

    def jobs(self) -> list[Any]:
        return list(self._scheduler.get_jobs())

    # --- jobs from the config --------------------------------------------------------------------

    def interval(self, config: Config) -> tuple[float, float]:
        """(interval, jitter) of the reconcile tick in wall seconds."""
        interval = max(MIN_TICK, config.schedule.reconcile_interval.total_seconds() / self._time_scale)
        jitter = config.schedule.jitter.total_seconds() / self._time_scale
        return interval, min(jitter, interval / 2)

    def rebuild(self, config: Config, *, first_tick: datetime | None = None) -> None:
        """Replace every job with those `config` declares; `first_tick` defaults to one interval away."""
        now = self._clock()
        self._scheduler.remove_all_jobs()
        self.windows = RefreshWindows(config.schedule.refresh_windows)
        self._grace = misfire_grace(self.windows)
        interval, jitter = self.interval(config)
        self._scheduler.add_job(
            self._reconcile,
            IntervalTrigger(seconds=interval, jitter=jitter or None, timezone=UTC),
            id=RECONCILE_JOB,
            name=RECONCILE_JOB,
            next_run_time=first_tick or now + timedelta(seconds=interval),
            misfire_grace_time=max(1, int(interval)),
        )
        self._policies = {}
        for pool_id, pool in sorted(config.pools.items()):
            trigger = pool.refresh.trigger()
            if trigger is None or pool.suspend:
                continue
            self._policies[pool_id] = pool.refresh
            missed = self._missed(pool.refresh, now)
            self._scheduler.add_job(
                self._refresh,
                trigger,
                args=[pool_id],
                id=REFRESH_PREFIX + pool_id,
                name=REFRESH_PREFIX + pool_id,
                misfire_grace_time=int(self._grace.total_seconds()),
                **({"next_run_time": now} if missed is not None else {}),
            )
            if missed is not None:
                log.info("refresh.catch_up", pool=pool_id, account=pool.account, scheduled=missed.isoformat())

    def _missed(self, policy: RefreshPolicy, now: datetime) -> datetime | None:
        """A fire within the grace that a daemon that was down did not request, if a window is open."""
        if not self.windows.in_window(now):
            return None
        fired = last_fire(policy, now, self._grace)
        if fired is None or fired >= now - timedelta(seconds=1):
            return None
        return fired

    async def _refresh(self, pool_id: str) -> None:
        policy = self._policies.get(pool_id)
        if policy is None:
            return
        now = self._clock()
        nominal = last_fire(policy, now, self._grace + policy.jitter + timedelta(minutes=1))
        await self._request_refresh(pool_id, nominal or now)

    # --- events ----------------------------------------------------------------------------------

    def _event(self, event: JobEvent) -> None:
        name = _EVENT_NAMES.get(event.code, str(event.code))
        job = RECONCILE_JOB if event.job_id == RECONCILE_JOB else "refresh"
        pool = event.job_id.removeprefix(REFRESH_PREFIX) if job == "refresh" else None
        if name in ("submitted", "executed"):
            self.mark_progress()
        if self._on_event is not None:
            self._on_event(job, name)
        fields: dict[str, Any] = {"job": job, **({"pool": pool} if pool else {})}
        if name == "error" and isinstance(event, JobExecutionEvent):
            exc = event.exception
            log.error("scheduler.job_error", error=f"{type(exc).__name__}: {exc}", **fields)
        elif name == "missed":
            log.warning("scheduler.job_missed", **fields)
        elif name == "max_instances":
            log.debug("scheduler.job_skipped", reason="previous run still going", **fields)
