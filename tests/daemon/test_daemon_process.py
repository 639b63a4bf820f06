"""The daemon as admins run it: a subprocess against the emulator subprocess on a fast simulated clock.

Every test ends by scanning all the daemon's output: each line is a JSON object, engine events carry
`run_id`, pool events carry `pool` and `account`, and neither the account key nor the registry password
(both given through the environment) appears anywhere.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from daemon_env import (
    ACCOUNT,
    SECRETS,
    DaemonProcess,
    EmulatorProcess,
    clock_behind,
    free_datagram_socket,
    pool_yaml,
    received,
    sample,
    write_config,
)

from reconciler import __version__
from reconciler.azure import operations
from reconciler.azure.clients import AzureClients
from reconciler.spec.config import Config

T = TypeVar("T")
FAMILIES = (
    "reconciler_reconcile_runs",
    "reconciler_reconcile_duration_seconds",
    "reconciler_last_successful_reconcile_timestamp_seconds",
    "reconciler_pools",
    "reconciler_pool_nodes",
    "reconciler_pool_target_nodes",
    "reconciler_pool_refresh_phase",
    "reconciler_refresh",
    "reconciler_refresh_duration_seconds",
    "reconciler_pool_last_refresh_timestamp_seconds",
    "reconciler_actions",
    "reconciler_azure_requests",
    "reconciler_azure_request_duration_seconds",
    "reconciler_azure_throttled",
    "reconciler_config_reloads",
    "reconciler_config_last_reload_success",
    "reconciler_build_info",
)
"""Every family the issue names (counters without `_total`, as the parser names them)."""

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short path: a unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="rcd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def processes(workdir: Path) -> AsyncIterator[list[Any]]:
    """Everything a test starts is stopped afterwards, and every daemon's output is checked."""
    started: list[Any] = []
    yield started
    for process in reversed(started):
        process.stop()
    for process in started:
        if isinstance(process, DaemonProcess):
            assert_logs_clean(process)


async def eventually(check: Callable[[], Awaitable[T | None]], within: float = 60, what: str = "") -> T:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.1)


def assert_logs_clean(daemon: DaemonProcess) -> None:
    text = daemon.log.read_text()
    for secret in SECRETS:
        assert secret not in text, f"a secret reached {daemon.log}"
    events = daemon.events()
    assert events
    for event in events:
        assert "event" in event
        assert "timestamp" in event
        assert "level" in event
        name = str(event["event"])
        if name.startswith(("pool.action.", "pool.refresh.phase", "reconcile.pass", "reconcile.acting")):
            assert event.get("run_id"), event
        if name.startswith("pool."):
            assert event.get("pool"), event
            assert event.get("account"), event


async def pools_by_id(emulator: EmulatorProcess) -> dict[str, dict[str, Any]]:
    async with emulator.batch() as client:
        pools = {p.id: p.as_dict() async for p in client.list_pools()}
        counts = {c.pool_id: c.as_dict() async for c in client.list_pool_node_counts()}
    for pool_id, body in pools.items():
        body["nodeCounts"] = counts.get(pool_id, {})
    return pools


def node_count(body: dict[str, Any], state: str) -> int:
    counts = body["nodeCounts"]
    return int(counts.get("dedicated", {}).get(state, 0)) + int(counts.get("lowPriority", {}).get(state, 0))


def steady_and_idle(pools: dict[str, dict[str, Any]]) -> bool:
    return all(
        p["allocationState"] == "steady"
        and p.get("currentDedicatedNodes", 0) == p.get("targetDedicatedNodes", 0)
        and node_count(p, "idle") == p.get("targetDedicatedNodes", 0)
        for p in pools.values()
    )


def emulator_config(emulator: EmulatorProcess) -> Config:
    return Config.model_validate(
        {
            "accounts": {
                ACCOUNT: {
                    "batch_url": emulator.batch_url,
                    "auth": {"method": "shared_key", "key": emulator.connection["batch"][ACCOUNT]["key"]},
                }
            },
        }
    )


async def pass_after(daemon: DaemonProcess, moment: float, summary: str) -> None:
    """Wait for a pass that started after `moment` (wall time) and ended with `summary` in its line."""

    def match(event: dict[str, Any]) -> bool:
        if event.get("event") != "reconcile.pass":
            return False
        at = datetime.fromisoformat(str(event["timestamp"])).timestamp()
        return at > moment and summary in str(event.get("summary"))

    await daemon.wait_log(match, within=60)


# --- systemd notify and the metrics after the first pass -------------------------------------------


async def test_notify_and_metrics_match_the_emulator(workdir: Path, processes: list[Any]) -> None:
    emulator = await EmulatorProcess(workdir, time_scale=60).start()
    processes.append(emulator)
    async with emulator.batch() as client:
        await client.create_pool(
            {
                "id": "legacy",
                "vmSize": "standard_d2s_v3",
                "virtualMachineConfiguration": {
                    "imageReference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
                    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
                },
                "targetDedicatedNodes": 1,
            }
        )
    config = write_config(
        workdir / "config.yaml", emulator.batch_url, pool_yaml("p1", 2) + pool_yaml("p2", 1), interval="60s"
    )
    notify = free_datagram_socket(workdir / "notify.sock")
    messages: list[str] = []

    async def drain() -> None:
        while True:
            messages.extend(received(notify))
            await asyncio.sleep(0.01)

    reader = asyncio.create_task(drain())
    daemon = DaemonProcess(
        workdir,
        config,
        {
            "NOTIFY_SOCKET": str(workdir / "notify.sock"),
            "WATCHDOG_USEC": "400000",
            "RECONCILER_TIME_SCALE": "60",
        },
    )
    started = time.time()
    processes.append(await daemon.start())

    async def got(prefix: str) -> bool:
        return any(line.startswith(prefix) for m in messages for line in m.split("\n"))

    await eventually(lambda: got("READY=1"), what="READY=1")
    await eventually(lambda: got("WATCHDOG=1"), within=10, what="WATCHDOG=1")
    pools = await eventually(
        lambda: _settled(emulator), what="pools created, steady and idle in the emulator"
    )
    await pass_after(daemon, time.time(), "2 pools in sync")
    await eventually(lambda: got("STATUS=2 pools in sync, 1 unmanaged"), within=10, what="STATUS line")

    families = await daemon.scrape()
    missing = [name for name in FAMILIES if name not in families]
    assert not missing
    assert sample(families, "reconciler_build_info", version=__version__) == 1
    assert (sample(families, "reconciler_reconcile_runs", "_total", result="success") or 0) >= 2
    assert (sample(families, "reconciler_reconcile_duration_seconds", "_count") or 0) >= 2
    last_ok = sample(families, "reconciler_last_successful_reconcile_timestamp_seconds")
    assert last_ok is not None
    assert started < last_ok <= time.time()
    assert sample(families, "reconciler_pools", status="in_sync") == 2
    assert sample(families, "reconciler_pools", status="unmanaged") == 1
    assert sample(families, "reconciler_pools", status="drifted") == 0
    assert set(pools) == {"p1", "p2", "legacy"}
    for pool_id, body in pools.items():
        for state in ("idle", "running", "starting", "leavingPool", "creating"):
            value = sample(families, "reconciler_pool_nodes", pool=pool_id, account=ACCOUNT, state=state)
            assert value == node_count(body, state), (pool_id, state)
        target = sample(
            families, "reconciler_pool_target_nodes", pool=pool_id, account=ACCOUNT, priority="dedicated"
        )
        assert target == body["targetDedicatedNodes"]
    for pool_id in ("p1", "p2"):
        assert sample(families, "reconciler_pool_refresh_phase", pool=pool_id, phase="idle") == 1
        created = datetime.fromisoformat(pools[pool_id]["creationTime"].replace("Z", "+00:00"))
        last = sample(families, "reconciler_pool_last_refresh_timestamp_seconds", pool=pool_id)
        assert last == pytest.approx(created.timestamp(), abs=0.01)
    assert sample(families, "reconciler_pool_last_refresh_timestamp_seconds", pool="legacy") is None
    assert sample(families, "reconciler_actions", "_total", action="create", result="done") == 2
    assert (sample(families, "reconciler_refresh_duration_seconds", "_count", phase="allocating") or 0) == 2
    listed = sample(
        families, "reconciler_azure_requests", "_total", service="batch", operation="GET pools", status="200"
    )
    assert listed is not None
    assert listed >= 2
    assert (
        sample(families, "reconciler_azure_request_duration_seconds", "_count", service="batch") or 0
    ) >= 2
    assert sample(families, "reconciler_config_last_reload_success") == 1
    assert sample(families, "reconciler_config_reloads", "_total", result="failure") == 0

    # The request counter agrees with what the emulator saw from this caller.
    before = _requests(families)
    seen = (await emulator.admin("GET", "/counters?caller=reconciler-daemon"))["total"]
    after = _requests(await daemon.scrape())
    assert before <= seen <= after

    # A throttled answer is counted; the pass after it still succeeds.
    await emulator.admin(
        "POST",
        "/faults",
        {
            "operation": "batch.Pools_ListPools",
            "status": 429,
            "code": "TooManyRequests",
            "retry_after": 0,
            "count": 1,
        },
    )

    async def throttled() -> bool:
        return (sample(await daemon.scrape(), "reconciler_azure_throttled", "_total") or 0) >= 1

    await eventually(throttled, what="the 429 counted")
    assert (await daemon.get("/healthz"))[0] == 200
    assert (await daemon.get("/readyz"))[0] == 200

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    await eventually(lambda: got("STOPPING=1"), within=5, what="STOPPING=1")
    reader.cancel()
    notify.close()


async def _settled(emulator: EmulatorProcess) -> dict[str, dict[str, Any]] | None:
    pools = await pools_by_id(emulator)
    return pools if len(pools) == 3 and steady_and_idle(pools) else None


def _requests(families: dict[str, Any]) -> float:
    family = families["reconciler_azure_requests"]
    return sum(s.value for s in family.samples if s.name.endswith("_total"))


# --- a refresh scheduled by cron -------------------------------------------------------------------


async def test_missed_cron_refresh_runs_when_the_daemon_is_back(workdir: Path, processes: list[Any]) -> None:
    # The emulator's clock starts a day behind, so the pool is built "before" a cron time of the last
    # minute; moving the clock forward a day afterwards lets the rebuilt pool be created after it.
    state = await clock_behind(workdir / "emulator-state.json", timedelta(days=1).total_seconds())
    emulator = await EmulatorProcess(workdir, time_scale=60, state_file=state).start()
    processes.append(emulator)
    env = {"RECONCILER_TIME_SCALE": "60"}
    config = write_config(workdir / "config.yaml", emulator.batch_url, pool_yaml("p1", 1), interval="60s")
    first = DaemonProcess(workdir, config, env, name="first")
    processes.append(await first.start())
    await eventually(lambda: _idle(emulator, "p1"), what="p1 built by the first daemon")
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0

    await emulator.admin("POST", "/clock/advance", {"seconds": timedelta(days=1).total_seconds()})
    scheduled = (datetime.now(UTC) - timedelta(seconds=2)).replace(second=0, microsecond=0)
    cron = f"{scheduled.minute} {scheduled.hour} * * *"
    refresh = f"    refresh:\n      schedule: '{cron}'\n      timezone: UTC\n"
    write_config(config, emulator.batch_url, pool_yaml("p1", 1, extra=refresh), interval="60s")
    second = DaemonProcess(workdir, config, env, name="second")
    processes.append(await second.start(wait_ready=False))

    caught = await second.wait_log(lambda e: e.get("event") == "refresh.catch_up")
    assert caught["pool"] == "p1"
    assert caught["scheduled"] == scheduled.isoformat()
    requested = await second.wait_log(lambda e: e.get("event") == "pool.refresh.requested")
    assert requested["scheduled"] == operations.iso_utc(scheduled)
    await second.wait_log(lambda e: e.get("event") == "pool.action.done" and e.get("action") == "refresh")

    async def counted() -> dict[str, Any] | None:
        families = await second.scrape()
        done = sample(families, "reconciler_refresh", "_total", pool="p1", result="done")
        return families if done == 1 else None

    families = await eventually(counted, what="the refresh counted")
    assert sample(families, "reconciler_refresh_requests", "_total", pool="p1") == 1
    assert (sample(families, "reconciler_refresh_duration_seconds", "_count", phase="draining") or 0) >= 1
    pool = (await pools_by_id(emulator))["p1"]
    created = datetime.fromisoformat(pool["creationTime"].replace("Z", "+00:00"))
    assert created > scheduled

    # A restart inside the grace does not ask for the same scheduled refresh again.
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0
    third = DaemonProcess(workdir, config, env, name="third")
    processes.append(await third.start())
    skipped = await third.wait_log(lambda e: e.get("event") == "pool.refresh.not_requested")
    assert skipped["reason"] == "created after the scheduled time"


async def _idle(emulator: EmulatorProcess, pool_id: str) -> bool:
    pools = await pools_by_id(emulator)
    return pool_id in pools and steady_and_idle({pool_id: pools[pool_id]})


# --- reload --------------------------------------------------------------------------------------


async def test_sighup_with_a_broken_config_keeps_the_old_desired_state(
    workdir: Path, processes: list[Any]
) -> None:
    emulator = await EmulatorProcess(workdir, time_scale=60).start()
    processes.append(emulator)
    config = write_config(workdir / "config.yaml", emulator.batch_url, pool_yaml("p1", 1), interval="60s")
    daemon = DaemonProcess(workdir, config, {"RECONCILER_TIME_SCALE": "60"})
    processes.append(await daemon.start())
    await eventually(lambda: _idle(emulator, "p1"), what="p1 built")

    broken = pool_yaml("p1", 1).replace("target_dedicated_nodes: 1", "target_dedicated_nodes: [oops")
    write_config(config, emulator.batch_url, broken, interval="60s")
    daemon.signal(signal.SIGHUP)
    problem = await daemon.wait_log(lambda e: e.get("event") == "config.reload.problem")
    assert re.match(rf"{re.escape(str(config))}:\d+:\d+: ", problem["problem"]), problem
    await daemon.wait_log(lambda e: e.get("event") == "config.reload.refused")
    families = await daemon.scrape()
    assert (sample(families, "reconciler_config_reloads", "_total", result="failure") or 0) >= 1
    assert sample(families, "reconciler_config_last_reload_success") == 0

    # The old desired state is still enforced: an out-of-band resize is put back.
    async with emulator.batch() as client:
        await client.begin_resize_pool("p1", {"targetDedicatedNodes": 3})

    async def back_to_one() -> bool:
        pools = await pools_by_id(emulator)
        return pools["p1"]["targetDedicatedNodes"] == 1 and steady_and_idle(pools)

    moment = time.time()
    await daemon.wait_log(
        lambda e: (
            e.get("event") == "pool.action.start"
            and e.get("action") == "resize"
            and datetime.fromisoformat(str(e["timestamp"])).timestamp() > moment - 30
        )
    )
    await eventually(back_to_one, what="the resize corrected to the old target")

    write_config(config, emulator.batch_url, pool_yaml("p1", 2), interval="60s")
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log(lambda e: e.get("event") == "config.reload.applied")

    async def two() -> bool:
        pools = await pools_by_id(emulator)
        return pools["p1"]["targetDedicatedNodes"] == 2

    await eventually(two, what="the fixed config applied")
    families = await daemon.scrape()
    assert (sample(families, "reconciler_config_reloads", "_total", result="success") or 0) >= 1
    assert sample(families, "reconciler_config_last_reload_success") == 1


# --- shutdown in the middle of a refresh ---------------------------------------------------------


async def test_sigterm_mid_refresh_exits_quickly_and_a_restart_finishes(
    workdir: Path, processes: list[Any]
) -> None:
    emulator = await EmulatorProcess(workdir, time_scale=20).start()
    processes.append(emulator)
    config = write_config(workdir / "config.yaml", emulator.batch_url, pool_yaml("p1", 2), interval="20s")
    env = {"RECONCILER_TIME_SCALE": "20"}
    daemon = DaemonProcess(workdir, config, env, name="first")
    processes.append(await daemon.start())
    await eventually(lambda: _idle(emulator, "p1"), what="p1 built")

    clients_config = emulator_config(emulator)
    async with AzureClients(clients_config, caller="daemon-test") as clients:
        observed = await operations.get_pool(clients, ACCOUNT, "p1")
        assert observed is not None
        at = operations.request_time(observed, datetime.now(UTC))
        await operations.request_refresh(clients, ACCOUNT, "p1", at, observed=observed)

    await daemon.wait_log(
        lambda e: e.get("event") == "pool.refresh.phase" and e.get("phase") in ("draining", "deleting")
    )
    stopped_at = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0
    assert time.monotonic() - stopped_at < 5
    await daemon.wait_log(lambda e: e.get("event") == "daemon.stopped")
    interrupted = await daemon.wait_log(lambda e: e.get("event") == "pool.action.interrupted")
    assert interrupted["action"] == "refresh"
    await daemon.wait_log(lambda e: e.get("event") == "reconcile.interrupted")
    assert not [e for e in daemon.events() if e["event"] == "daemon.cancelled"], "stopped by cancellation"
    pool = (await pools_by_id(emulator)).get("p1")
    unfinished = pool is None or datetime.fromisoformat(pool["creationTime"].replace("Z", "+00:00")) <= at
    assert unfinished, "the refresh was meant to be interrupted"

    again = DaemonProcess(workdir, config, env, name="second")
    processes.append(await again.start())

    async def rebuilt() -> bool:
        pools = await pools_by_id(emulator)
        pool = pools.get("p1")
        if pool is None or not steady_and_idle({"p1": pool}):
            return False
        return datetime.fromisoformat(pool["creationTime"].replace("Z", "+00:00")) > at

    await eventually(rebuilt, what="the refresh finished after the restart")
    await pass_after(again, time.time(), "1 pool in sync")
    assert len(await pools_by_id(emulator)) == 1


# --- a long drain does not hold back the other pools ----------------------------------------------

DRAIN_SCALE = 60
TASK_HOURS = 3


async def test_a_drain_holds_back_neither_other_pools_nor_metrics_nor_ready_nor_shutdown(
    workdir: Path, processes: list[Any]
) -> None:
    emulator = await EmulatorProcess(workdir, time_scale=DRAIN_SCALE).start()
    processes.append(emulator)
    interval = 1.0  # wall seconds: 60 s of simulated time
    pools = pool_yaml("pa", 2) + pool_yaml("pc", 1)
    config = write_config(workdir / "config.yaml", emulator.batch_url, pools, interval="60s")
    env = {"RECONCILER_TIME_SCALE": str(DRAIN_SCALE)}
    first = DaemonProcess(workdir, config, env, name="first")
    processes.append(await first.start())
    await eventually(lambda: _all_idle(emulator, "pa", "pc"), what="pa and pc built")
    for pool in ("pa", "pc"):
        # Requested before its create cycle ends, the refresh would be carried out by that cycle.
        await first.wait_log(lambda e, p=pool: e.get("event") == "pool.action.done" and e.get("pool") == p)

    # Tasks occupy every node of pa for hours of simulated time; a refresh drains it under taskcompletion.
    seconds = TASK_HOURS * 3600
    await emulator.admin("POST", f"/batch/{ACCOUNT}/pools/pa/occupy", {"tasks": 2, "seconds": seconds})
    async with AzureClients(emulator_config(emulator), caller="daemon-test") as clients:
        observed = await operations.get_pool(clients, ACCOUNT, "pa")
        assert observed is not None
        at = operations.request_time(observed, datetime.now(UTC))
        await operations.request_refresh(clients, ACCOUNT, "pa", at, observed=observed)
    await first.wait_log(lambda e: e.get("event") == "pool.refresh.phase" and e.get("phase") == "draining")
    before = await first.scrape()
    last_ok_before = sample(before, "reconciler_last_successful_reconcile_timestamp_seconds")
    assert last_ok_before is not None

    # Meanwhile: pc resized out of band, and pb declared but missing.
    async with emulator.batch() as client:
        await client.begin_resize_pool("pc", {"targetDedicatedNodes": 3})
    changed = time.time()
    write_config(config, emulator.batch_url, pools + pool_yaml("pb", 1), interval="60s")
    first.signal(signal.SIGHUP)

    def started(pool: str, action: str) -> Callable[[dict[str, Any]], bool]:
        def match(event: dict[str, Any]) -> bool:
            return (
                event.get("event") == "pool.action.start"
                and event.get("pool") == pool
                and event.get("action") == action
                and _at(event) > changed
            )

        return match

    created = await first.wait_log(started("pb", "create"), within=10)
    resized = await first.wait_log(started("pc", "resize"), within=10)
    assert _at(created) - changed < 3 * interval
    assert _at(resized) - changed < 3 * interval

    async def converged() -> bool:
        now = await pools_by_id(emulator)
        return (
            "pb" in now
            and steady_and_idle({"pb": now["pb"], "pc": now["pc"]})
            and now["pc"]["targetDedicatedNodes"] == 1
        )

    await eventually(converged, within=30, what="pb created and pc put back to 1 node")
    drained_meanwhile = (await pools_by_id(emulator))["pa"]
    assert node_count(drained_meanwhile, "running") == 2, "pa's tasks are still running: its drain goes on"

    async def fresh() -> dict[str, Any] | None:
        families = await first.scrape()
        last_ok = sample(families, "reconciler_last_successful_reconcile_timestamp_seconds") or 0
        resized = sample(families, "reconciler_actions", "_total", action="resize", result="done")
        return families if last_ok > _at_least(last_ok_before, changed) and resized else None

    families = await eventually(fresh, within=10, what="a successful pass after the resize ended")
    assert sample(families, "reconciler_pool_refresh_phase", pool="pa", phase="draining") == 1
    assert sample(families, "reconciler_pool_refresh_phase", pool="pb", phase="idle") == 1
    assert sample(families, "reconciler_actions_in_flight", action="refresh") == 1
    assert sample(families, "reconciler_actions", "_total", action="create", result="done") == 3
    assert sample(families, "reconciler_refresh", "_total", pool="pa", result="done") is None
    passes = sample(families, "reconciler_reconcile_duration_seconds", "_count") or 0
    took = sample(families, "reconciler_reconcile_duration_seconds", "_sum") or 0
    assert passes >= 5
    assert took / passes < 1.0, "a pass lasts as long as observing and dispatching, not the drain"
    assert sample(families, "reconciler_reconcile_duration_seconds", "_bucket", le="1.0") == passes

    # SIGTERM mid-drain: a prompt exit 0; the interrupted cycle is not counted as a failure.
    stopping = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0
    assert time.monotonic() - stopping < 5
    interrupted = await first.wait_log(lambda e: e.get("event") == "reconcile.interrupted")
    assert interrupted["pools"] == ["pa"]
    assert not [e for e in first.events() if e["event"] == "daemon.cancelled"], "stopped by cancellation"
    assert _unfinished((await pools_by_id(emulator))["pa"], at)

    # Restarted, the first pass resumes the long drain and READY=1 comes at once regardless.
    notify = free_datagram_socket(workdir / "notify.sock")
    restarted = {**env, "NOTIFY_SOCKET": str(workdir / "notify.sock")}
    second = DaemonProcess(workdir, config, restarted, name="second")
    launched = time.monotonic()
    processes.append(await second.start(wait_ready=False))
    messages: list[str] = []

    async def ready() -> float | None:
        messages.extend(received(notify))
        if any(m.startswith("READY=1") for m in messages):
            return time.monotonic()
        return None

    ready_at = await eventually(ready, within=20, what="READY=1")
    assert ready_at - launched < 10
    resumed = await second.wait_log(lambda e: e.get("event") == "pool.action.start" and e.get("pool") == "pa")
    assert resumed["action"] == "refresh"
    assert (await second.get("/readyz"))[0] == 200
    assert node_count((await pools_by_id(emulator))["pa"], "running") == 2, "READY came before the drain"
    notify.close()

    # The tasks end; the restarted daemon finishes pa's cycle, exactly once.
    await emulator.admin("POST", "/clock/advance", {"seconds": seconds})

    async def rebuilt() -> dict[str, dict[str, Any]] | None:
        now = await pools_by_id(emulator)
        pool = now.get("pa")
        if pool is None or not steady_and_idle({"pa": pool}) or _unfinished(pool, at):
            return None
        return now

    final = await eventually(rebuilt, within=90, what="pa's refresh finished after the restart")
    assert set(final) == {"pa", "pb", "pc"}

    async def counted() -> bool:
        families = await second.scrape()
        return sample(families, "reconciler_refresh", "_total", pool="pa", result="done") == 1

    await eventually(counted, within=10, what="the refresh counted once")
    refreshes = [
        e
        for daemon in (first, second)
        for e in daemon.events()
        if e["event"] == "pool.action.done" and e.get("action") == "refresh"
    ]
    assert [e["pool"] for e in refreshes] == ["pa"]
    created_calls = [
        e
        for daemon in (first, second)
        for e in daemon.events()
        if e["event"] == "pool.refresh.call" and e.get("pool") == "pa" and e.get("call") == "create"
    ]
    assert len(created_calls) == 2, "pa created once by the first daemon, once more by its refresh"


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def _at_least(*moments: float) -> float:
    return max(moments)


def _unfinished(pool: dict[str, Any], requested: datetime) -> bool:
    return datetime.fromisoformat(pool["creationTime"].replace("Z", "+00:00")) <= requested


async def _all_idle(emulator: EmulatorProcess, *pool_ids: str) -> bool:
    pools = await pools_by_id(emulator)
    return all(p in pools for p in pool_ids) and steady_and_idle({p: pools[p] for p in pool_ids})
