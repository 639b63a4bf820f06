"""Scheduling: refresh windows, nominal fire times, catch-up of a missed refresh, jobs rebuilt per config."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.daemon.scheduler import (
    RECONCILE_JOB,
    REFRESH_PREFIX,
    DaemonScheduler,
    RefreshWindows,
    last_fire,
    misfire_grace,
)
from reconciler.spec.config import Config, RefreshWindow
from reconciler.spec.cron import cron_trigger
from reconciler.spec.pool_refresh import RefreshPolicy

IMAGE = {
    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def config(pools: dict[str, dict[str, Any]], **schedule: Any) -> Config:
    return Config.model_validate(
        {
            "accounts": {
                "demo": {
                    "batch_url": "http://127.0.0.1:1/demo",
                    "auth": {"method": "shared_key", "key": "a2V5"},
                }
            },
            "pools": {
                pool_id: {
                    "account": "demo",
                    "vm_size": "standard_d2s_v3",
                    "virtual_machine_configuration": IMAGE,
                    "target_dedicated_nodes": 1,
                    **extra,
                }
                for pool_id, extra in pools.items()
            },
            "schedule": {"reconcile_interval": "60s", "jitter": "5s", **schedule},
        }
    )


def test_windows_open_at_their_cron_start_for_their_duration() -> None:
    windows = RefreshWindows([RefreshWindow(start="0 1 * * *", duration=timedelta(hours=4))])
    assert windows.in_window(at("2026-11-21T01:00:00"))
    assert windows.in_window(at("2026-11-21T04:59:59"))
    assert not windows.in_window(at("2026-11-21T05:00:00"))
    assert not windows.in_window(at("2026-11-21T00:59:59"))
    assert windows.next_opening(at("2026-11-21T06:00:00")) == at("2026-11-22T01:00:00")
    assert RefreshWindows([]).in_window(at("2026-11-21T12:00:00"))
    assert misfire_grace(windows) == timedelta(hours=4)
    assert misfire_grace(RefreshWindows([])) == timedelta(hours=1)


def test_a_window_spanning_midnight_and_several_windows() -> None:
    windows = RefreshWindows(
        [
            RefreshWindow(start="0 23 * * 6", duration=timedelta(hours=3)),
            RefreshWindow(start="30 12 * * *", duration=timedelta(minutes=30)),
        ]
    )
    assert windows.in_window(at("2026-11-22T01:30:00"))  # Saturday 23:00 + 2.5 h
    assert not windows.in_window(at("2026-11-23T01:30:00"))
    assert windows.in_window(at("2026-11-23T12:45:00"))


def test_weekdays_mean_what_crontab_means() -> None:
    saturday = at("2026-11-21T00:00:00")
    assert saturday.strftime("%A") == "Saturday"

    def next_fire(expression: str) -> str:
        fire = cron_trigger(expression).get_next_fire_time(None, saturday)
        assert fire is not None
        return fire.strftime("%A")

    assert next_fire("0 2 * * 6") == "Saturday"
    assert next_fire("0 2 * * 0") == "Sunday"
    assert next_fire("0 2 * * 7") == "Sunday"
    assert next_fire("0 2 * * 1-5") == "Monday"
    assert next_fire("0 2 * * */3") == "Saturday"  # 0,3,6
    assert next_fire("0 2 * * 2,4") == "Tuesday"
    assert next_fire("0 2 * * mon-fri") == "Monday"
    assert next_fire("0 2 * * *") == "Saturday"


def test_a_window_on_a_weekday_crontab_does_not_have_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="outside 0-7"):
        RefreshWindows([RefreshWindow(start="0 1 * * 8", duration=timedelta(hours=1))])


def test_last_fire_reads_the_schedule_in_its_time_zone() -> None:
    tokyo = RefreshPolicy(schedule="0 2 * * *", timezone="Asia/Tokyo", jitter=timedelta(minutes=10))
    now = at("2026-11-21T17:30:00")  # 02:30 in Tokyo
    assert last_fire(tokyo, now, timedelta(hours=1)) == at("2026-11-21T17:00:00")
    assert last_fire(tokyo, now, timedelta(minutes=20)) is None
    assert last_fire(RefreshPolicy(), now, timedelta(days=2)) is None


async def _noop() -> None:
    return None


class Requests:
    def __init__(self) -> None:
        self.made: list[tuple[str, datetime]] = []

    async def __call__(self, pool_id: str, scheduled: datetime) -> None:
        self.made.append((pool_id, scheduled))


async def test_jobs_follow_the_config_and_a_missed_refresh_is_caught_up() -> None:
    now = at("2026-11-21T02:20:00")
    requests = Requests()
    scheduler = DaemonScheduler(_noop, requests, clock=lambda: now)
    cfg = config(
        {
            "nightly": {"refresh": {"schedule": "0 2 * * *"}},
            "later": {"refresh": {"schedule": "0 3 * * *", "jitter": "2m"}},
            "asleep": {"refresh": {"schedule": "0 2 * * *"}, "suspend": True},
            "manual": {},
        }
    )
    scheduler.rebuild(cfg)
    scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler.jobs()}
        assert set(jobs) == {RECONCILE_JOB, REFRESH_PREFIX + "nightly", REFRESH_PREFIX + "later"}
        reconcile = jobs[RECONCILE_JOB]
        assert reconcile.coalesce is True
        assert reconcile.max_instances == 1
        assert reconcile.trigger.interval == timedelta(seconds=60)
        assert reconcile.trigger.jitter == 5
        nightly = jobs[REFRESH_PREFIX + "nightly"]
        assert nightly.next_run_time == now
        assert nightly.misfire_grace_time == 3600
        later = jobs[REFRESH_PREFIX + "later"]
        assert later.trigger.jitter == 120
        assert later.next_run_time > now

        await nightly.func(*nightly.args)
        assert requests.made == [("nightly", at("2026-11-21T02:00:00"))]

        scheduler.rebuild(config({"manual": {}}))
        assert [job.id for job in scheduler.jobs()] == [RECONCILE_JOB]
    finally:
        scheduler.shutdown()


async def test_no_catch_up_outside_the_grace_or_outside_every_window() -> None:
    late = at("2026-11-21T03:30:00")
    scheduler = DaemonScheduler(_noop, Requests(), clock=lambda: late)
    scheduler.rebuild(config({"nightly": {"refresh": {"schedule": "0 2 * * *"}}}))
    scheduler.start()
    try:
        (job,) = [j for j in scheduler.jobs() if j.id != RECONCILE_JOB]
        assert job.next_run_time > datetime.now(UTC)
    finally:
        scheduler.shutdown()

    closed = at("2026-11-21T02:20:00")
    scheduler = DaemonScheduler(_noop, Requests(), clock=lambda: closed)
    windowed = config(
        {"nightly": {"refresh": {"schedule": "0 2 * * *"}}},
        refresh_windows=[{"start": "0 1 * * *", "duration": "1h"}],
    )
    scheduler.rebuild(windowed)
    scheduler.start()
    try:
        (job,) = [j for j in scheduler.jobs() if j.id != RECONCILE_JOB]
        assert job.next_run_time > datetime.now(UTC)
        assert not scheduler.windows.in_window(closed)
    finally:
        scheduler.shutdown()


async def test_the_reconcile_interval_is_compressed_with_the_time_scale() -> None:
    scheduler = DaemonScheduler(_noop, Requests(), time_scale=60)
    assert scheduler.interval(config({})) == (1.0, 5 / 60)
    tiny = config({}, reconcile_interval="2s", jitter="1s")
    assert scheduler.interval(tiny) == (0.2, 1 / 60)


async def test_job_events_are_counted_and_progress_is_tracked() -> None:
    events: list[tuple[str, str]] = []
    ran = asyncio.Event()

    async def failing() -> None:
        ran.set()
        raise RuntimeError("the pass blew up")

    scheduler = DaemonScheduler(failing, Requests(), on_event=lambda job, event: events.append((job, event)))
    scheduler.last_progress -= 1000
    assert not scheduler.progressed_within(10)
    scheduler.rebuild(config({}), first_tick=datetime.now(UTC))
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), 5)
        for _ in range(100):
            if ("reconcile", "error") in events:
                break
            await asyncio.sleep(0.01)
    finally:
        scheduler.shutdown()
    assert ("reconcile", "submitted") in events
    assert ("reconcile", "error") in events
    assert scheduler.progressed_within(10)


async def test_wake_brings_the_next_tick_forward() -> None:
    now = datetime.now(UTC)
    scheduler = DaemonScheduler(_noop, Requests(), clock=lambda: now)
    scheduler.rebuild(config({}))
    scheduler.start()
    try:
        (job,) = scheduler.jobs()
        assert job.next_run_time >= now + timedelta(seconds=59)
        scheduler.wake()
        assert scheduler.jobs()[0].next_run_time <= now + timedelta(seconds=1)
    finally:
        scheduler.shutdown()
