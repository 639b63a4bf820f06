"""`reconciler demo`: the daemon against a local Azure, narrated, so a newcomer sees it work in a minute.

The emulator runs in this process with a fast simulated clock and the daemon's pacing compressed to
match (`RECONCILER_TIME_SCALE`), so every duration in `demo.yaml` (package data beside this module)
means what it would in Azure.
Before the daemon starts the emulator is given one pool for each thing the reconciler does: one that
drifted, one that is missing, one that is not ours, and one busy with tasks whose refresh is requested
once the daemon has brought the others in line.

The daemon is the production `Daemon`, unchanged; only its JSON log goes to a file instead of stdout,
and every line of it is also read back here. The narration is driven by those events (and by a status
read of Azure after each pass and action), never by a timetable: what the daemon really does is told.

The rest of the reconciler is imported inside the functions that use it, not here: importing it takes
seconds, and a newcomer should see a first line at once and be able to press Ctrl-C at any moment
without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from reconciler.azure.clients import AzureClients
    from reconciler.daemon.app import Daemon
    from reconciler.emulator import Emulator
    from reconciler.plan.actions import PoolStatus
    from reconciler.spec.config import Config

DEMO_CONFIG: Final = Path(str(resources.files("reconciler.commands") / "demo.yaml"))
"""Package data, so that an installed wheel (the Docker image) has it as a checkout does."""
URL_ENV: Final = "RECONCILER_DEMO_BATCH_URL"
KEY_ENV: Final = "RECONCILER_DEMO_BATCH_KEY"
ACCOUNT: Final = "demo"
DEFAULT_TIME_SCALE: Final = 120.0
DEFAULT_METRICS_PORT: Final = 9464
DEMO_CALLER: Final = "reconciler-demo"

DRIFTED: Final = "ingest"
MISSING: Final = "reports"
BUSY: Final = "nightly"
UNMANAGED: Final = "legacy-render"
DEMO_POOLS: Final = (DRIFTED, MISSING, BUSY, UNMANAGED)

OUT_OF_BAND_NODES: Final = 4
HAND_MADE_NODES: Final = 1
EDITED_START_TASK: Final = '/bin/bash -c "echo edited in the portal"'
TASK_SECONDS: Final = 30 * 60.0
SETTLED: Final = 15 * 60.0
"""Simulated seconds the seeded pools have existed before the daemon looks: allocations are over."""
TASKS_RUN_FOR: Final = 10 * 60.0
"""Simulated seconds the busy pool's tasks have run when the daemon starts."""
_NOT_INHERITED: Final = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "RECONCILER_LOG_LEVEL")
"""The demo is not a systemd service, and its narration needs the daemon's info events."""


class _EventTap(io.TextIOWrapper):
    """The file the daemon's log handler writes its JSON lines to, each line also read back here.

    Writes come from the logging handler, under its lock, possibly from another thread; events reach
    the loop through `call_soon_threadsafe`, in the order they were logged.
    """

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any]]
    ) -> None:
        super().__init__(path.open("wb"), encoding="utf-8", line_buffering=True)
        self.path = path
        self._loop = loop
        self._queue = queue
        self._partial = ""

    def write(self, text: str) -> int:
        if self.closed:
            return len(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        return super().write(text)


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set for the demo's lifetime: a reload of the config file (edited, or SIGHUP) resolves them too."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _emulator_key() -> str:
    """A key made up for this run: the daemon signs with it, and no log line may show it."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _pad(pool_id: str) -> str:
    return f"{pool_id:<14}"


def _shown(path: Path) -> Path:
    """As the user would type it from here: `reconciler/commands/demo.yaml` when run from the checkout."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


@dataclass
class _Seeded:
    unmanaged_etag: str | None
    tasks: int


async def _seed(emu: Emulator, config: Config, clients: AzureClients) -> _Seeded:
    """Azure as a newcomer might find it: our pools as the reconciler created them, then hands on them.

    The managed pools are created by the engine's own call with the spec's markers, as an earlier run
    would have; everything done to them afterwards goes through the plain SDK, as a portal would.
    """
    from reconciler.azure import operations
    from reconciler.plan.rules import desired_markers

    for pool_id in (DRIFTED, BUSY):
        desired = config.pools[pool_id]
        await operations.create_pool(clients, ACCOUNT, pool_id, desired, desired_markers(desired))
    by_hand = config.pools[UNMANAGED].to_batch_json(UNMANAGED)
    by_hand["targetDedicatedNodes"] = HAND_MADE_NODES
    sdk = emu.batch_client(ACCOUNT)
    await sdk.create_pool(by_hand)
    emu.clock.advance(SETTLED)

    start_task = dict(config.pools[DRIFTED].to_batch_json(DRIFTED).get("startTask") or {})
    start_task["commandLine"] = EDITED_START_TASK
    await sdk.update_pool(DRIFTED, {"startTask": start_task})
    await sdk.begin_resize_pool(DRIFTED, {"targetDedicatedNodes": OUT_OF_BAND_NODES})
    busy = config.pools[BUSY]
    tasks = (busy.target_dedicated_nodes or 1) * (busy.task_slots_per_node or 1)
    emu.batch.occupy_nodes(ACCOUNT, BUSY, tasks, TASK_SECONDS)
    emu.clock.advance(TASKS_RUN_FOR)

    hand_made = await operations.get_pool(clients, ACCOUNT, UNMANAGED)
    return _Seeded(hand_made.etag if hand_made is not None else None, tasks)


def _check_declared(config: Config) -> None:
    from reconciler.commands.common import CommandError

    missing = [p for p in DEMO_POOLS if p not in config.pools or config.pools[p].account != ACCOUNT]
    if ACCOUNT not in config.accounts or missing:
        names = ", ".join(missing) or "none"
        raise CommandError(
            f"the demo config must declare account {ACCOUNT!r} and its pools {', '.join(DEMO_POOLS)} "
            f"(missing: {names})"
        )


async def _statuses(config: Config, clients: AzureClients) -> dict[str, PoolStatus]:
    """How each pool stands now, from the same plan `reconciler status` prints."""
    from reconciler.azure.observe import observe
    from reconciler.plan.diff import make_plan

    snapshot = await observe(clients)
    plan = make_plan(config, snapshot, now=snapshot.observed_at)
    return {s.pool_id: s for s in plan.statuses}


def _state_words(status: PoolStatus) -> str:
    """`in sync`, and how its nodes are getting there while a resize runs: in sync is about the spec."""
    words = status.state.value.replace("_", " ")
    observed = status.observed
    if status.state.value == "in_sync" and observed is not None and not observed.steady:
        words += f" (allocation {observed.allocation_state})"
    return words


_DRAINS: Final = {
    "taskcompletion": "running tasks finish first",
    "retaineddata": "running tasks finish first, their data kept",
    "requeue": "running tasks stop and go back to the queue",
    "terminate": "running tasks are stopped",
}
_PHASE_WORDS: Final = {
    "disabling_autoscale": "turning autoscale off",
    "waiting_steady": "waiting for a resize in progress to settle",
    "deleting": "deleting the empty pool",
    "creating": "creating it from the spec",
    "allocating": "allocating its nodes",
    "enabling_autoscale": "turning autoscale back on",
    "patching": "patching the empty pool",
    "done": "built from the spec, at its target size",
}


@dataclass
class _Narrator:
    """The daemon's events in sentences, as they happen; it also asks for the refresh.

    The events use the engine's vocabulary (actions, phases, outcomes); a newcomer needs to read what
    happened to which pool and why. Reads of Azure (the status after a pass or an action, the refresh
    request) run off the event path, so a slow read never holds back the lines after it.
    """

    run: _Run
    config: Config
    clients: AzureClients
    seeded: _Seeded
    started: float = field(default_factory=time.monotonic)
    actions: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    ready: bool = False
    refresh_requested: bool = False
    refresh_done: bool = False
    unmanaged_told: bool = False
    muted: bool = False
    daemon: Daemon | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    _polling: asyncio.Lock = field(default_factory=asyncio.Lock)

    def say(self, text: str) -> None:
        if self.muted:
            return
        try:
            print(text, file=self.run.out, flush=True)
        except BrokenPipeError:
            # Whoever read the narration has gone (`| head`): the demo has no one left to show.
            self.muted = True
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.run.out.fileno())
            if self.daemon is not None:
                self.daemon.stop()

    def tell(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.started:5.1f}s] {text}")

    def azure_time(self, seconds: float) -> str:
        simulated = seconds * self.run.time_scale
        return f"{simulated / 60:.0f} min" if simulated >= 60 else f"{simulated:.0f} s"

    async def follow(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            self.on_event(await queue.get())

    def on_event(self, event: Mapping[str, Any]) -> None:
        name = str(event.get("event", ""))
        pool = str(event.get("pool", ""))
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, pool, event)
        elif name.startswith("pool.refresh.") and name.removeprefix("pool.refresh.") in _OUTCOMES:
            self.on_outcome(pool, name.removeprefix("pool.refresh."), event)
        elif event.get("level") in ("warning", "error", "critical"):
            where = f"{pool}: " if pool else ""
            why = event.get("detail") or event.get("error") or event.get("reason") or ""
            self.tell(f"warning: {where}{name} {why}".rstrip())

    # --- one method per event --------------------------------------------------------------------

    def on_listening(self, _pool: str, event: Mapping[str, Any]) -> None:
        url = str(event.get("url", ""))
        self.say(f"  metrics:  {url}/metrics   (health: {url}/healthz, {url}/readyz)")

    def on_action_start(self, pool: str, event: Mapping[str, Any]) -> None:
        action = str(event.get("action", ""))
        reason = str(event.get("reason", ""))
        self.actions[pool] = action
        if action == "create":
            self.tell(f"{_pad(pool)}missing ({reason}) -> creating it")
        elif action in ("patch", "resize", "enable_autoscale", "disable_autoscale"):
            self.tell(f"{_pad(pool)}drift detected: {reason} -> {action.replace('_', ' ')}")
        elif action == "refresh":
            self.tell(f"{_pad(pool)}{reason} -> refresh cycle: drain, delete, create")
        else:
            self.tell(f"{_pad(pool)}{action}: {reason}")

    def on_phase(self, pool: str, event: Mapping[str, Any]) -> None:
        phase = str(event.get("phase", ""))
        if self.actions.get(pool) != "refresh":
            if phase not in ("creating", "done"):
                self.tell(f"{_pad(pool)}{_PHASE_WORDS.get(phase, phase)}")
            return
        words = _PHASE_WORDS.get(phase, phase)
        if phase == "draining" and pool in self.config.pools:
            option = self.config.pools[pool].refresh.node_deallocation_option
            words = f"resized to 0 nodes with {option}: {_DRAINS.get(option, 'nodes leave')}"
        self.tell(f"{_pad(pool)}refresh phase: {phase} ({words})")

    def on_outcome(self, pool: str, outcome: str, event: Mapping[str, Any]) -> None:
        detail = str(event.get("detail", ""))
        seconds = float(event.get("seconds", 0.0))
        action = self.actions.get(pool, "")
        took = f"{seconds:.1f} s here, {self.azure_time(seconds)} in Azure time"
        if outcome != "done":
            self.tell(f"{_pad(pool)}{action or 'cycle'} ended {outcome}: {detail}")
        elif action == "refresh":
            self.tell(f"{_pad(pool)}refresh done in {took}: {detail}")
            if not self.refresh_done:
                self.refresh_done = True
                self.all_told()
        elif action == "create":
            self.tell(f"{_pad(pool)}created in {took}: {detail}")
        else:
            self.tell(f"{_pad(pool)}{action or 'cycle'} done: {detail}")

    def on_action_done(self, pool: str, event: Mapping[str, Any]) -> None:
        self.start(self.poll_status())
        action = str(event.get("action", ""))
        if action in ("patch", "resize", "enable_autoscale", "disable_autoscale"):
            self.tell(f"{_pad(pool)}drift corrected: {event.get('detail', '')}")

    def on_action_unfinished(self, pool: str, event: Mapping[str, Any]) -> None:
        self.start(self.poll_status())
        action, outcome = event.get("action", ""), event.get("outcome", "")
        self.tell(f"{_pad(pool)}{action} did not finish ({outcome}): {event.get('detail', '')}")

    def on_ready(self, _pool: str, event: Mapping[str, Any]) -> None:
        self.tell(f"daemon ready after its first pass: {event.get('status', '')}")
        self.ready = True
        self.start(self.poll_status())

    def on_pass(self, _pool: str, event: Mapping[str, Any]) -> None:
        summary = str(event.get("summary", ""))
        if summary and summary != self.summary:
            self.summary = summary
            self.tell(f"pass finished: {summary}")
        self.start(self.poll_status())

    def on_reloaded(self, _pool: str, event: Mapping[str, Any]) -> None:
        if self.daemon is not None:
            self.config = self.daemon.config
        self.tell(f"config reloaded ({event.get('pools', '?')} pools): the daemon acts on it at once")

    def on_reload_problem(self, _pool: str, event: Mapping[str, Any]) -> None:
        self.tell(f"config not reloaded, the previous one stays: {event.get('problem', '')}")

    def on_stopping(self, _pool: str, _event: Mapping[str, Any]) -> None:
        self.tell("daemon stopping: no new actions; running ones stop at their next step")

    def on_stopped(self, _pool: str, _event: Mapping[str, Any]) -> None:
        self.tell("daemon stopped")

    # --- what the narration does besides printing ------------------------------------------------

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self.guarded(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            self.tell(f"warning: the demo could not reach the emulator: {type(exc).__name__}")

    async def request_refresh(self) -> None:
        """What a refresh schedule, or `reconciler refresh nightly`, writes: a request in the pool."""
        from reconciler.azure import operations
        from reconciler.azure.observe import observe

        observed = (await observe(self.clients, [ACCOUNT])).pool(ACCOUNT, BUSY)
        if observed is None or not observed.managed:
            self.tell(f"{_pad(BUSY)}not there to refresh")
            return
        at = operations.request_time(observed, datetime.now(UTC))
        await operations.request_refresh(self.clients, ACCOUNT, BUSY, at, observed=observed)
        nodes = observed.dedicated_nodes
        self.tell(
            f"{_pad(BUSY)}refresh requested, as its refresh.schedule or `reconciler refresh {BUSY}` "
            f"would ({nodes['running']} of {nodes.total} nodes running tasks); the daemon's next pass "
            "carries it out"
        )

    async def poll_status(self) -> None:
        """Status changes told, and the refresh asked for once the other pools are in line.

        The refresh waits for them so that each part of the story is told on its own; it is decided
        from what Azure shows, whether the daemon acts within its pass or beside it.
        """
        from reconciler.plan.actions import PoolState

        async with self._polling:
            statuses = await _statuses(self.config, self.clients)
            self.tell_changes(statuses)
        others = [statuses.get(p) for p in (DRIFTED, MISSING)]
        settled = all(
            s is not None and s.state is PoolState.in_sync and s.observed is not None and s.observed.steady
            for s in others
        )
        if self.ready and settled and not self.refresh_requested:
            self.refresh_requested = True
            await self.request_refresh()

    def tell_changes(self, statuses: Mapping[str, PoolStatus]) -> None:
        for pool_id, status in sorted(statuses.items()):
            before = self.states.get(pool_id)
            now = _state_words(status)
            self.states[pool_id] = now
            if pool_id != UNMANAGED and before is not None and before != now:
                self.tell(f"{_pad(pool_id)}now {now}")
        hand_made = statuses.get(UNMANAGED)
        if hand_made is not None and not self.unmanaged_told:
            self.unmanaged_told = True
            self.tell(f"{_pad(UNMANAGED)}{self.untouched(hand_made)}")

    def untouched(self, status: PoolStatus) -> str:
        from reconciler.plan.actions import PoolState

        observed = status.observed
        same = observed is not None and observed.etag == self.seeded.unmanaged_etag
        nodes = observed.target_dedicated_nodes if observed is not None else 0
        if status.state is not PoolState.unmanaged or not same:
            etag = "same" if same else "different"
            return f"CHANGED: {status.state.value}, {nodes} node(s), ETag {etag}"
        return (
            f"left alone: unmanaged (no reconciler.managed-by marker), still {nodes} node(s) and the "
            "same ETag as when it was made; reported, never touched"
        )

    def all_told(self) -> None:
        ending = (
            f"the demo stops by itself at {self.run.duration:g} s"
            if self.run.duration is not None
            else "press Ctrl-C to stop"
        )
        self.say("")
        self.say(
            "That is all four: a missing pool created, drift corrected, a full refresh cycle, and a pool "
            f"that is not ours left alone. The daemon keeps reconciling; {ending}."
        )
        self.say(
            f"Try editing {_shown(self.run.config_path)} (say, target_dedicated_nodes of {MISSING}): "
            "the daemon reloads it and brings the emulator in line."
        )
        self.say("")

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def final_check(self) -> None:
        with contextlib.suppress(Exception):
            statuses = await _statuses(self.config, self.clients)
            hand_made = statuses.get(UNMANAGED)
            if hand_made is not None:
                self.tell(f"{_pad(UNMANAGED)}at the end: {self.untouched(hand_made)}")


_OUTCOMES: Final = frozenset({"done", "degraded", "waiting", "aborted", "timed_out", "failed"})
_HANDLERS: Final = {
    "http.listening": _Narrator.on_listening,
    "pool.action.start": _Narrator.on_action_start,
    "pool.refresh.phase": _Narrator.on_phase,
    "pool.action.done": _Narrator.on_action_done,
    "pool.action.unfinished": _Narrator.on_action_unfinished,
    "daemon.ready": _Narrator.on_ready,
    "reconcile.pass": _Narrator.on_pass,
    "config.reload.applied": _Narrator.on_reloaded,
    "config.reload.problem": _Narrator.on_reload_problem,
    "config.reload.refused": lambda *_: None,
    "daemon.stopping": _Narrator.on_stopping,
    "daemon.stopped": _Narrator.on_stopped,
}


def _describe_before(narrator: _Narrator, statuses: Mapping[str, PoolStatus]) -> None:
    say = narrator.say
    say(f'What is in the emulator\'s Batch account "{ACCOUNT}" now:')
    say(f"  {_pad(DRIFTED)}ours, but resized by hand to {OUT_OF_BAND_NODES} nodes and its start task edited")
    say(f"  {_pad(MISSING)}declared, not there")
    say(f"  {_pad(BUSY)}ours, {narrator.seeded.tasks} tasks of {TASK_SECONDS / 60:.0f} minutes running on it")
    say(f"  {_pad(UNMANAGED)}made by hand: no reconciler.managed-by marker")
    say("What the reconciler makes of it (as `reconciler status` would say):")
    for pool_id in DEMO_POOLS:
        status = statuses.get(pool_id)
        if status is not None:
            narrator.states[pool_id] = _state_words(status)
            say(f"  {_pad(pool_id)}{status.state.value:<10} {status.detail}")


@dataclass
class _Run:
    """One demo run's settings, fixed before the emulator starts."""

    config_path: Path
    duration: float | None
    time_scale: float
    metrics_port: int
    out: IO[str]
    began: float = field(default_factory=time.monotonic)


async def _demo(run: _Run) -> int:
    from reconciler.azure.clients import AzureClients
    from reconciler.commands.common import EXIT_ERROR, CommandError, load
    from reconciler.daemon import logs
    from reconciler.emulator import Emulator
    from reconciler.engine.wait import TIME_SCALE_ENV

    key = _emulator_key()
    async with Emulator({ACCOUNT: key}, time_scale=run.time_scale) as emu:
        values = {URL_ENV: emu.batch_url(ACCOUNT), KEY_ENV: key, TIME_SCALE_ENV: f"{run.time_scale:g}"}
        with _environment(values):
            try:
                config = load([run.config_path])
                _check_declared(config)
            except CommandError as exc:
                for line in str(exc).splitlines() or ["failed"]:
                    print(f"error: {line}", file=sys.stderr)
                return EXIT_ERROR
            env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            workdir = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
            tap = _EventTap(workdir / "daemon.log", asyncio.get_running_loop(), queue)
            level = logs.level_name(config.logging.level, env)
            logs.configure(level, "json", stream=tap, extra_secrets=[key])
            try:
                async with AzureClients(config, caller=DEMO_CALLER) as clients:
                    seeded = await _seed(emu, config, clients)
                    narrator = _Narrator(run, config, clients, seeded)
                    await _introduce(narrator, run, emu, tap.path)
                    return await _run_daemon(run, config, env, narrator, queue)
            finally:
                logs.configure("warning", "auto", stream=sys.stderr)
                tap.close()


async def _introduce(narrator: _Narrator, run: _Run, emu: Emulator, log_path: Path) -> None:
    say = narrator.say
    say(f"  emulator: {emu.batch_url(ACCOUNT)} (everything in it: {emu.admin_url}/batch/state)")
    second = narrator.azure_time(1.0)
    say(f"  clock:    {run.time_scale:g}x faster than yours: a second here is {second} in Azure")
    say("")
    _describe_before(narrator, await _statuses(narrator.config, narrator.clients))
    say("")
    say(f"Starting the daemon (`reconciler run`) on {_shown(run.config_path)}:")
    say(f"  log:      {log_path} (its JSON events drive what follows)")


async def _run_daemon(
    run: _Run,
    config: Config,
    env: Mapping[str, str],
    narrator: _Narrator,
    queue: asyncio.Queue[dict[str, Any]],
) -> int:
    from reconciler.commands.common import EXIT_ERROR, EXIT_OK
    from reconciler.daemon.app import Daemon
    from reconciler.engine.wait import Pacing

    loop = asyncio.get_running_loop()
    daemon = Daemon(
        [run.config_path], config, env=env, metrics_port=run.metrics_port, pacing=Pacing.from_env(env)
    )
    narrator.daemon = daemon
    if narrator.muted:
        daemon.stop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, daemon.stop)
        handled.append(signum)
    follower = asyncio.create_task(narrator.follow(queue))
    timer = None
    if run.duration is not None:
        timer = loop.call_later(max(run.began + run.duration - time.monotonic(), 0.0), daemon.stop)
    narrator.started = time.monotonic()
    try:
        code = await daemon.run(install_signals=False)
    except OSError as exc:
        print(
            f"error: cannot listen on {config.metrics.address}:{run.metrics_port}: {exc.strerror or exc} "
            "(another reconciler? --metrics-port 0 picks a free port)",
            file=sys.stderr,
        )
        code = EXIT_ERROR
    finally:
        if timer is not None:
            timer.cancel()
        for signum in handled:
            loop.remove_signal_handler(signum)
        await asyncio.sleep(0)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        while not queue.empty():
            narrator.on_event(queue.get_nowait())
        await narrator.close()
    if code == EXIT_OK:
        await narrator.final_check()
    return code


def demo_command(
    duration: float | None = None,
    time_scale: float = DEFAULT_TIME_SCALE,
    metrics_port: int = DEFAULT_METRICS_PORT,
    *,
    config: Path | None = None,
) -> int:
    """Run the demo; `duration` stops it after that many seconds, else it runs until Ctrl-C (exit 0).

    Exit 1 for arguments it cannot use, a config without the demo's pools, or a metrics port in use.
    """
    config_path = config or DEMO_CONFIG
    problem = None
    if duration is not None and duration <= 0:
        problem = "--duration must be a positive number of seconds"
    elif time_scale <= 0:
        problem = "--time-scale must be a positive number"
    elif not config_path.is_file():
        problem = f"{config_path} not found"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(
        "reconciler demo: the daemon against a local Azure Batch emulator; no Azure account needed.",
        flush=True,
    )
    try:
        return asyncio.run(_demo(_Run(config_path, duration, time_scale, metrics_port, sys.stdout)))
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reconciler demo", description=__doc__)
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE)
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="0: any free port")
    parser.add_argument("--config", type=Path, default=None, help=f"default: {DEMO_CONFIG}")
    args = parser.parse_args(argv)
    return demo_command(args.duration, args.time_scale, args.metrics_port, config=args.config)


if __name__ == "__main__":
    sys.exit(main())
