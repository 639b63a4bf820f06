"""Processes for the daemon's end-to-end tests: the emulator and the daemon, each in its own subprocess.

- `EmulatorProcess`: `reconciler emulator` with a custom account key, read through its connection file;
  `admin()` reaches its `/_emulator` controls (time scale, faults, counters), `batch()` an SDK client.
- `DaemonProcess`: `python -m reconciler.commands.run`, its stdout+stderr in a file; `wait_log()` polls
  that file for a JSON event, `scrape()` parses `/metrics` with prometheus-client's own parser.
- `write_config()`: a config for account `demo` whose key and registry password come from the
  environment, so a scan of the logs can look for both.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from prometheus_client.parser import text_string_to_metric_families

from reconciler.emulator import Emulator
from reconciler.spec.config import Config

ACCOUNT = "demo"
ACCOUNT_KEY = "ZGFlbW9uLXRlc3Qta2V5LW5vdC10aGUtd2VsbC1rbm93bi1vbmUtMDA0Mg=="
REGISTRY_PASSWORD = "registry-pw-7Qx9-never-logged"
SECRETS = (ACCOUNT_KEY, REGISTRY_PASSWORD)
PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]


def pool_yaml(pool_id: str, nodes: int, *, vm_size: str = "standard_d2s_v3", extra: str = "") -> str:
    return f"""
  {pool_id}:
    account: {ACCOUNT}
    vm_size: {vm_size}
    target_dedicated_nodes: {nodes}
    virtual_machine_configuration:
      image_reference: {{publisher: canonical, offer: ubuntu, sku: 22_04-lts}}
      node_agent_sku_id: batch.node.ubuntu 22.04
      container_configuration:
        type: dockerCompatible
        container_registries:
          - registry_server: example.azurecr.io
            username: puller
            password: ${{env:REGISTRY_PASSWORD}}
{extra}"""


def write_config(
    path: Path, batch_url: str, pools: str, *, interval: str = "60s", schedule_extra: str = ""
) -> Path:
    text = f"""accounts:
  {ACCOUNT}:
    batch_url: {batch_url}
    auth:
      method: shared_key
      key: ${{env:BATCH_KEY}}
schedule:
  reconcile_interval: {interval}
  jitter: 0s
{schedule_extra}logging:
  level: info
pools:{pools}
"""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)
    return path


class EmulatorProcess:
    def __init__(self, workdir: Path, time_scale: float, state_file: Path | None = None) -> None:
        self.workdir = workdir
        self.time_scale = time_scale
        self.state_file = state_file
        self.connection_file = workdir / "emulator.json"
        self.log = workdir / "emulator.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.connection: dict[str, Any] = {}

    async def start(self) -> EmulatorProcess:
        self.process = spawn(

                [
                    PYTHON, "-m", "reconciler", "emulator", "--port", "0", "--arm-port", "0",
                    "--account", f"{ACCOUNT}={ACCOUNT_KEY}", "--time-scale", str(self.time_scale),
                    "--connection-file", str(self.connection_file),
                    *(["--state-file", str(self.state_file)] if self.state_file else []),
                ],
                self.log,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.connection_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start: {self.log.read_text()}")
            await asyncio.sleep(0.05)
        self.connection = json.loads(self.connection_file.read_text())
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def batch_url(self) -> str:
        return str(self.connection["batch"][ACCOUNT]["url"])

    def batch(self) -> BatchClient:
        return BatchClient(self.batch_url, AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY))

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.connection['admin']}{path}", json=body) as response,
        ):
            response.raise_for_status()
            return await response.json() if response.status != 204 else None


def spawn(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a process writing stdout and stderr to `log` (appended: a restart keeps the earlier lines)."""
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def clock_behind(path: Path, seconds: float) -> Path:
    """A state file whose simulated clock reads `seconds` before now: the emulator resumes from it."""
    from reconciler.emulator import Emulator

    start = datetime.now(UTC) - timedelta(seconds=seconds)
    async with Emulator({ACCOUNT: ACCOUNT_KEY}, start=start, state_file=path):
        pass
    return path


class DaemonProcess:
    def __init__(
        self, workdir: Path, config: Path, env: Mapping[str, str] | None = None, name: str = "d"
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.extra_env = dict(env or {})
        self.log = workdir / f"daemon-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._offset = 0

    async def start(self, wait_ready: bool = True) -> DaemonProcess:
        env = {
            **os.environ,
            "BATCH_KEY": ACCOUNT_KEY,
            "REGISTRY_PASSWORD": REGISTRY_PASSWORD,
            **self.extra_env,
        }
        if "NOTIFY_SOCKET" not in self.extra_env:
            env.pop("NOTIFY_SOCKET", None)
        command = [
            PYTHON,
            "-m",
            "reconciler.commands.run",
            "--config",
            str(self.config),
            "--metrics-port",
            "0",
        ]
        self.process = spawn(command, self.log, env)
        listening = await self.wait_log(lambda e: e.get("event") == "http.listening", within=30)
        self.port = int(listening["port"])
        if wait_ready:
            await self.wait_log(lambda e: e.get("event") == "daemon.ready", within=60)
        return self

    def events(self) -> list[dict[str, Any]]:
        """Every line so far, parsed; a line that is not a JSON object fails the test."""
        events = []
        for line in self.log.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            assert isinstance(event, dict), line
            events.append(event)
        return events

    async def wait_log(self, match: Callable[[dict[str, Any]], bool], within: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            for event in self.events():
                if match(event):
                    return event
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching log event within {within}s:\n{self.tail()}")
            await asyncio.sleep(0.1)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}{path}") as response,
        ):
            return response.status, await response.text()

    async def scrape(self) -> dict[str, Any]:
        """Families by name (counters under their name without `_total`), as prometheus-client parses them."""
        status, text = await self.get("/metrics")
        assert status == 200
        return {family.name: family for family in text_string_to_metric_families(text)}

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def sample(families: Mapping[str, Any], name: str, suffix: str = "", **labels: str) -> float | None:
    """The value of the sample `name+suffix` whose labels include `labels`, or None."""
    family = families.get(name)
    if family is None:
        return None
    for sample_ in family.samples:
        if sample_.name == name + suffix and all(sample_.labels.get(k) == v for k, v in labels.items()):
            return float(sample_.value)
    return None


def free_datagram_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


IMAGE = {
    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}


def make_config(emu: Emulator, *pool_ids: str, **schedule: Any) -> Config:
    """One-node pools in the emulator's account; `schedule` keys go to the config's `schedule`."""
    pool = {
        "account": ACCOUNT,
        "vm_size": "standard_d2s_v3",
        "virtual_machine_configuration": copy.deepcopy(IMAGE),
        "target_dedicated_nodes": 1,
    }
    return Config.model_validate(
        {
            "accounts": {
                ACCOUNT: {
                    "batch_url": emu.batch_url(ACCOUNT),
                    "auth": {"method": "shared_key", "key": emu.account_key(ACCOUNT)},
                }
            },
            "pools": {pool_id: copy.deepcopy(pool) for pool_id in pool_ids},
            "schedule": schedule,
        }
    )
