"""Kill-anywhere: `reconciler refresh POOL --wait` SIGKILLed at every phase and at random instants.

Everything runs as it would for an admin: the emulator and every command are separate processes, the
command finds the emulator only through the config file, and nothing is shared in memory. After each kill
the same command is run again; at the end there must be exactly one pool, built from the new spec after
the last request, every task must have completed (none killed by the drain), and `plan` must say in sync.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.azure import markers
from reconciler.plan.hashing import spec_hash
from reconciler.spec.loader import load_config

SCALE = 300
POOL = "kill"
PHASES = ("draining", "deleting", "creating", "allocating")
RANDOM_KILLS = 4
SEED = 20260
TASKS = 4
TASK_SECONDS = 600


class Emulator:
    def __init__(self, process: subprocess.Popen[str], connection: dict[str, Any]) -> None:
        self.process = process
        self.connection = connection
        self.admin = str(connection["admin"])

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.admin + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.admin + "/batch/state", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        account: dict[str, Any] = data["accounts"]["demo"]
        return account


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    connection_file = tmp_path / "connection.json"
    log = (tmp_path / "emulator.log").open("w")
    args = ["emulator", "--port", "0", "--arm-port", "0", "--time-scale", str(SCALE)]
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args, "--connection-file", str(connection_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not connection_file.exists():
            assert process.poll() is None, (tmp_path / "emulator.log").read_text()
            assert time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.05)
        yield Emulator(process, json.loads(connection_file.read_text()))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def write_config(path: Path, emulator: Emulator, vm_size: str) -> Path:
    account = emulator.connection["batch"]["demo"]
    config = {
        "accounts": {
            "demo": {"batch_url": account["url"], "auth": {"method": "shared_key", "key": account["key"]}}
        },
        "pools": {
            POOL: {
                "account": "demo",
                "vm_size": vm_size,
                "virtual_machine_configuration": {
                    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
                    "node_agent_sku_id": "batch.node.ubuntu 22.04",
                },
                "target_dedicated_nodes": 2,
                "start_task": {"command_line": "echo ready"},
                "refresh": {"node_deallocation_option": "taskcompletion"},
            }
        },
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


ENV = {**os.environ, "RECONCILER_TIME_SCALE": str(SCALE)}


class Run:
    """One `refresh --wait` process, its stdout read line by line on a thread."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            command("refresh", POOL, "--wait", "--config", str(config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, wanted: str | None, timeout: float) -> bool:
        """Read lines until `wanted` appears (True) or the process ends or time runs out (False)."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return False
            if line is None:
                return False
            self.seen.append(line)
            if wanted is not None and line == wanted:
                return True
        return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.until(None, 1.0)

    def finish(self, timeout: float) -> int:
        self.until(None, timeout)
        code = self.process.wait(timeout=5)
        return code


def requests_in(lines: list[str]) -> list[datetime]:
    found = []
    for line in lines:
        for marker in (f"{POOL}: refresh requested at ", f"{POOL}: refresh already requested at "):
            if line.startswith(marker):
                found.append(datetime.fromisoformat(line[len(marker) :].replace("Z", "+00:00")))
    return found


def test_refresh_killed_anywhere_finishes_with_one_pool_and_no_lost_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    started = time.monotonic()
    config = write_config(tmp_path / "config.yaml", emulator, "standard_d2s_v3")
    created = subprocess.run(
        command("apply", "--yes", "--config", str(config)),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    job = emulator.post(f"/batch/demo/pools/{POOL}/occupy", {"tasks": TASKS, "seconds": TASK_SECONDS})[
        "jobId"
    ]
    write_config(config, emulator, "standard_d4s_v3")

    rng = random.Random(SEED)
    lines: list[str] = []
    kills: list[str] = []
    for phase in PHASES:
        run = Run(config)
        if run.until(f"{POOL}: phase {phase}", timeout=30):
            time.sleep(rng.uniform(0.0, 0.05))
            run.kill()
            kills.append(phase)
        else:
            run.finish(timeout=30)
        lines += run.seen
    for _ in range(RANDOM_KILLS):
        run = Run(config)
        run.until(None, timeout=rng.uniform(1.5, 4.0))
        if run.process.poll() is None:
            run.kill()
            kills.append("random")
        lines += run.seen
    final = Run(config)
    assert final.finish(timeout=60) == 0, "\n".join(final.seen)
    lines += final.seen
    assert final.seen[-1] == f"{POOL}: done: built from the spec and at its target"

    assert set(PHASES) <= set(kills), kills
    expected_hash = spec_hash(load_config([config]).pools[POOL])
    pools = emulator.state()["pools"]
    assert [p["id"] for p in pools] == [POOL]
    (pool,) = pools
    metadata = {m["name"]: m["value"] for m in pool["metadata"]}
    assert metadata[markers.SPEC_HASH] == expected_hash
    assert pool["vmSize"] == "standard_d4s_v3"
    assert pool["state"] == "active"
    created_at = datetime.fromisoformat(pool["creationTime"].replace("Z", "+00:00"))
    requested = requests_in(lines)
    assert requested
    assert created_at > max(requested)

    deadline = time.monotonic() + 30
    while True:
        (job_state,) = [j for j in emulator.state()["jobs"] if j["id"] == job]
        tasks = job_state["tasks"]
        if all(t["state"] == "completed" for t in tasks) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(tasks) == TASKS
    for task in tasks:
        assert task["state"] == "completed", task
        assert task["executionInfo"]["result"] == "success", task
        assert task["executionInfo"].get("failureInfo") is None, task

    plan = subprocess.run(
        command("plan", "--config", str(config)), capture_output=True, text=True, env=ENV, timeout=60
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert time.monotonic() - started < 90
