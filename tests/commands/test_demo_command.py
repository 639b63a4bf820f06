"""`reconciler demo` as a newcomer meets it: a process whose narration is read line by line as it comes.

What the narration claims is checked against what the process serves while it runs: the daemon's
`/metrics`, and the emulator's own view of its pools (its admin state, whose address the demo prints).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.azure import markers
from reconciler.commands.demo import DEMO_CONFIG, KEY_ENV, URL_ENV, demo_command
from reconciler.spec.errors import ConfigError
from reconciler.spec.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "import sys; from reconciler.commands.demo import main; sys.exit(main(sys.argv[1:]))"
WALL_LIMIT = 60.0


class Demo:
    """The demo in a subprocess; stdout is collected line by line, stderr kept whole."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.stderr = ""
        self._more = asyncio.Event()
        self._readers = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    @classmethod
    async def start(cls, *args: str) -> Demo:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            ENTRY,
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip("\n"))
            self._more.set()
        self._more.set()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = (await self.process.stderr.read()).decode()

    async def line(self, pattern: str, within: float = 45.0) -> re.Match[str]:
        """The first line so far (or to come) matching `pattern`."""
        deadline = time.monotonic() + within
        while True:
            for text in self.lines:
                found = re.search(pattern, text)
                if found:
                    return found
            if self.process.returncode is not None and self._readers[0].done():
                raise AssertionError(f"the demo ended without {pattern!r}:\n{self.output}\n{self.stderr}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {within}s:\n{self.output}")
            self._more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), timeout=min(remaining, 1.0))

    async def wait(self, within: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout=within)
        await asyncio.gather(*self._readers)
        return code

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
async def demos() -> AsyncIterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        await demo.close()


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def sample(text: str, name: str, suffix: str = "", **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for found in family.samples:
            if found.name == name + suffix and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return None


async def settled_metrics(url: str, within: float = 10.0) -> str:
    """/metrics once the pass that carried the refresh out has recorded the state it left."""
    deadline = time.monotonic() + within
    while True:
        status, text = await fetch(url)
        assert status == 200
        if sample(text, "reconciler_pools", status="in_sync") == 3 or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.2)


def in_order(lines: Sequence[str], patterns: Sequence[str]) -> None:
    """Each pattern matches a line after the line the previous one matched."""
    position = 0
    for pattern in patterns:
        for index in range(position, len(lines)):
            if re.search(pattern, lines[index]):
                position = index + 1
                break
        else:
            shown = "\n".join(lines)
            raise AssertionError(f"no line matching {pattern!r} after line {position}:\n{shown}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the daemon's log, each of which must be a JSON object."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert all(isinstance(e, dict) for e in events)
    return events


def emulated_pools(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {pool["id"]: pool for pool in state["accounts"]["demo"]["pools"]}


def metadata(pool: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in pool.get("metadata") or []}


async def test_the_demo_creates_corrects_refreshes_and_leaves_the_unmanaged_pool_alone(
    demos: list[Demo],
) -> None:
    began = time.monotonic()
    demo = await Demo.start("--duration", "35", "--metrics-port", "0")
    demos.append(demo)

    emulator = await demo.line(r"emulator: \S+ \(everything in it: (\S+)\)")
    metrics = await demo.line(r"metrics:\s+(http://127\.0\.0\.1:\d+/metrics)")
    log_path = Path((await demo.line(r"log:\s+(\S+)")).group(1))
    await demo.line(r"nightly\s+refresh done in")

    text = await settled_metrics(metrics.group(1))
    assert sample(text, "reconciler_refresh", "_total", pool="nightly", result="done") == 1
    assert sample(text, "reconciler_actions", "_total", action="create", result="done") == 1
    assert sample(text, "reconciler_actions", "_total", action="patch", result="done") == 1
    assert sample(text, "reconciler_actions", "_total", action="resize", result="done") == 1
    assert sample(text, "reconciler_actions", "_total", action="refresh", result="done") == 1
    assert sample(text, "reconciler_pools", status="unmanaged") == 1
    assert sample(text, "reconciler_pools", status="in_sync") == 3

    status, body = await fetch(emulator.group(1))
    assert status == 200
    pools = emulated_pools(json.loads(body))
    hand_made = pools["legacy-render"]
    assert not any(name.startswith("reconciler.") for name in metadata(hand_made))
    assert hand_made["targetDedicatedNodes"] == 1
    assert hand_made["vmSize"] == "standard_d4s_v3"
    assert pools["ingest"]["targetDedicatedNodes"] == 2
    assert "edited in the portal" not in pools["ingest"]["startTask"]["commandLine"]
    assert metadata(pools["reports"])[markers.MANAGED_BY]
    nightly_tasks = [
        task
        for job in json.loads(body)["accounts"]["demo"]["jobs"]
        if job["executionInfo"]["poolId"] == "nightly"
        for task in job["tasks"]
    ]
    assert len(nightly_tasks) == 4
    for task in nightly_tasks:
        assert task["state"] == "completed"
        assert task["executionInfo"]["exitCode"] == 0
        assert task["executionInfo"]["requeueCount"] == 0

    code = await demo.wait(WALL_LIMIT - (time.monotonic() - began))
    assert code == 0, demo.stderr
    assert time.monotonic() - began <= WALL_LIMIT
    assert "Traceback" not in demo.stderr

    lines = demo.lines
    in_order(lines, [r"reports\s+missing \(declared but absent\) -> creating it", r"reports\s+created in"])
    in_order(lines, [r"ingest\s+drift detected: start_task changed", r"ingest\s+drift corrected: patched"])
    in_order(lines, [r"ingest\s+drift detected: size differs", r"ingest\s+drift corrected: resized to 2"])
    in_order(
        lines,
        [
            r"daemon ready",
            r"nightly\s+refresh requested, .*\b2 of 2 nodes running tasks",
            r"nightly\s+refresh phase: draining",
            r"nightly\s+refresh phase: deleting",
            r"nightly\s+refresh phase: creating",
            r"nightly\s+refresh phase: allocating",
            r"nightly\s+refresh phase: done",
            r"nightly\s+refresh done in",
            r"daemon stopped",
            r"legacy-render\s+at the end: left alone: unmanaged",
        ],
    )
    assert any(re.search(r"legacy-render\s+left alone: unmanaged", line) for line in lines)
    assert not any("CHANGED" in line or "warning" in line for line in lines), demo.output

    events = json_lines(log_path)
    phases = [e["phase"] for e in events if e["event"] == "pool.refresh.phase" and e["pool"] == "nightly"]
    assert phases == ["draining", "deleting", "creating", "allocating", "done"]
    assert all("run_id" in e for e in events if e["event"].startswith("pool."))


async def test_ctrl_c_in_the_middle_of_a_refresh_stops_the_demo_cleanly(demos: list[Demo]) -> None:
    demo = await Demo.start("--metrics-port", "0")
    demos.append(demo)
    metrics = await demo.line(r"metrics:\s+(http://127\.0\.0\.1:\d+)/metrics")
    await demo.line(r"nightly\s+refresh phase: draining")
    assert (await fetch(metrics.group(1) + "/healthz"))[0] == 200

    demo.process.send_signal(signal.SIGINT)
    stopping = time.monotonic()
    assert await demo.wait(20) == 0, demo.stderr
    assert time.monotonic() - stopping < 15
    assert "Traceback" not in demo.stderr
    in_order(demo.lines, [r"daemon stopping", r"daemon stopped", r"legacy-render\s+at the end: left alone"])
    assert not any(re.search(r"nightly\s+refresh done", line) for line in demo.lines)
    with pytest.raises(aiohttp.ClientError):
        await fetch(metrics.group(1) + "/healthz")


async def test_an_edit_of_the_config_while_it_runs_is_reloaded_and_acted_on(
    demos: list[Demo], tmp_path: Path
) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text(DEMO_CONFIG.read_text())
    demo = await Demo.start("--metrics-port", "0", "--config", str(config))
    demos.append(demo)
    await demo.line(r"reports\s+created in")
    await demo.line(rf"Try editing {re.escape(str(config))}")

    text = config.read_text()
    declared = "  reports:\n    account: demo\n    target_dedicated_nodes: 1\n"
    assert declared in text
    config.write_text(text.replace(declared, declared.replace(": 1", ": 3")))
    await demo.line(r"config reloaded \(4 pools\)")
    await demo.line(r"reports\s+drift corrected: resized to 3 dedicated", within=20)

    demo.process.send_signal(signal.SIGTERM)
    assert await demo.wait(20) == 0, demo.stderr
    assert "Traceback" not in demo.stderr


async def test_a_reader_that_goes_away_ends_the_demo_cleanly() -> None:
    """`reconciler demo | head`: nobody is left to show the story to, so the demo ends, exit 0."""
    command = f"{sys.executable} -c '{ENTRY}' --metrics-port 0 | head -n 2; exit ${{PIPESTATUS[0]}}"
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("reconciler demo: ")
    assert "Traceback" not in err.decode()


async def test_a_metrics_port_in_use_is_one_line_and_exit_1(demos: list[Demo]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = await Demo.start("--duration", "20", "--metrics-port", str(port))
        demos.append(demo)
        assert await demo.wait(30) == 1
    err = demo.stderr.strip().splitlines()
    assert len(err) == 1, demo.stderr
    assert err[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in err[0].lower()
    assert err[0].endswith("(another reconciler? --metrics-port 0 picks a free port)")


def test_the_demo_config_validates_once_the_demo_sets_its_variables() -> None:
    url = "http://127.0.0.1:8777/demo"
    config = load_config([DEMO_CONFIG], env={URL_ENV: url, KEY_ENV: "a2V5"})
    assert config.accounts["demo"].batch_url == url
    assert sorted(config.pools) == ["ingest", "legacy-render", "nightly", "reports"]
    assert config.pools["nightly"].refresh.node_deallocation_option == "taskcompletion"

    with pytest.raises(ConfigError) as raised:
        load_config([DEMO_CONFIG], env={})
    assert URL_ENV in str(raised.value)
    assert KEY_ENV in str(raised.value)


def test_a_config_without_the_demo_pools_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(
        "accounts:\n"
        "  demo:\n"
        f"    batch_url: ${{env:{URL_ENV}}}\n"
        f"    auth: {{method: shared_key, key: '${{env:{KEY_ENV}}}'}}\n"
        "pools:\n"
        "  reports:\n"
        "    account: demo\n"
        "    vm_size: standard_d2s_v3\n"
        "    target_dedicated_nodes: 1\n"
        "    virtual_machine_configuration:\n"
        "      image_reference: {publisher: canonical, offer: ubuntu, sku: 22_04-lts}\n"
        "      node_agent_sku_id: batch.node.ubuntu 22.04\n"
    )
    assert demo_command(duration=5, time_scale=120, metrics_port=0, config=path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: the demo config must declare account 'demo'")
    assert "(missing: ingest, nightly, legacy-render)" in err[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0.0}, "error: --duration must be a positive number of seconds"),
        ({"time_scale": -1.0}, "error: --time-scale must be a positive number"),
        ({"config": Path("/nonexistent/demo.yaml")}, "error: /nonexistent/demo.yaml not found"),
    ],
)
def test_arguments_it_cannot_use_are_refused_before_anything_starts(
    kwargs: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo_command(**kwargs) == 1
    assert capsys.readouterr().err.startswith(message)
