"""systemd/reconciler.service, checked by systemd's own tools and against the daemon's contract.

`systemd-analyze verify` needs the executable the unit names, so it runs on a copy whose ExecStart
points at this virtualenv's `reconciler` script; everything else in the copy is the shipped file.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_env import BIN, POOL_YAML, ROOT, RunningEmulator, azure_yaml, mdwe, require_tool, sandboxed

UNIT = ROOT / "systemd" / "reconciler.service"
SHIPPED_EXEC = "/opt/reconciler/bin/reconciler"
MAX_EXPOSURE = 2.0
"""`systemd-analyze security` calls ≤ 3.9 "OK"; the unit scores 1.1, so a lost setting fails this."""


def directives(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, values in file order (some keys repeat)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def templated(tmp_path: Path, text: str | None = None) -> Path:
    source = UNIT.read_text() if text is None else text
    assert SHIPPED_EXEC in source, f"ExecStart no longer names {SHIPPED_EXEC}"
    copy = tmp_path / "reconciler.service"
    copy.write_text(source.replace(SHIPPED_EXEC, str(BIN / "reconciler")))
    return copy


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


def test_verify_passes_without_warnings(tmp_path: Path) -> None:
    copy = templated(tmp_path)
    result = analyze("verify", str(copy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_verify_fails_when_the_executable_is_missing(tmp_path: Path) -> None:
    """The check above can fail: verify does look for the ExecStart binary."""
    copy = tmp_path / "reconciler.service"
    copy.write_text(UNIT.read_text().replace(SHIPPED_EXEC, str(tmp_path / "absent" / "reconciler")))
    result = analyze("verify", str(copy), cwd=tmp_path)
    assert result.returncode != 0
    assert "is not executable" in result.stderr


def exposure(copy: Path) -> float:
    result = analyze("security", "--offline=true", str(copy), cwd=copy.parent)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_security_exposure_is_low(tmp_path: Path) -> None:
    level = exposure(templated(tmp_path))
    print(f"systemd-analyze security: exposure {level}")
    assert level <= MAX_EXPOSURE


def test_security_score_reacts_to_lost_hardening(tmp_path: Path) -> None:
    """Drop the hardening block and the same measurement must rise past the threshold."""
    text = UNIT.read_text()
    head, _, rest = text.partition("# Hardening.")
    _, _, tail = rest.partition("# Logs are JSON")
    level = exposure(templated(tmp_path, head + "# Logs are JSON" + tail))
    assert level > MAX_EXPOSURE


def test_unit_keeps_the_daemon_contract() -> None:
    """What the daemon relies on: notify + watchdog, SIGHUP reload, its config path, the credential."""
    unit = directives(UNIT.read_text())
    expected = {
        "Type": ["notify"],
        "Restart": ["on-failure"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "EnvironmentFile": ["-/etc/reconciler/env"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["reconciler"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "NoNewPrivileges": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "CapabilityBoundingSet": [""],
        "ProtectKernelTunables": ["yes"],
        "ProtectKernelModules": ["yes"],
        "ProtectKernelLogs": ["yes"],
        "ProtectControlGroups": ["yes"],
        "LockPersonality": ["yes"],
        "MemoryDenyWriteExecute": ["yes"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert unit["SystemCallFilter"][0] == "@system-service"
    assert unit["WatchdogSec"][0].endswith("s")
    assert unit["ExecStart"] == [f"{SHIPPED_EXEC} run --config /etc/reconciler/config.yaml"]
    credential = unit["LoadCredential"][0]
    assert credential.startswith("sp.pem:/etc/reconciler/")


def test_mdwe_wrapper_really_refuses_wx_memory() -> None:
    """The check below means something only if W^X is enforced on the child (Linux ≥ 6.3)."""
    libc = ctypes.CDLL(None)
    assert hasattr(libc, "prctl")
    probe = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"
    result = subprocess.run(
        mdwe(sys.executable, "-c", probe), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0, "a W+X mapping was allowed: the kernel lacks PR_SET_MDWE"
    assert "Permission denied" in result.stderr or "PR_SET_MDWE failed" in result.stderr
    assert "PR_SET_MDWE failed" not in result.stderr, result.stderr


SANDBOX_PROBE = """
import os, socket
for family in (socket.AF_NETLINK, socket.AF_PACKET):
    try:
        socket.socket(family, socket.SOCK_RAW)
        print("allowed", family)
    except OSError:
        pass
try:
    os.setpriority(os.PRIO_PROCESS, 0, 1)
    print("allowed setpriority")
except OSError:
    pass
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
print("ok")
"""


def test_sandbox_wrapper_enforces_the_units_filters() -> None:
    """The check below means something only if the unit's rules are really applied to the child."""
    result = subprocess.run(
        sandboxed(sys.executable, "-c", SANDBOX_PROBE),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok"], result.stdout


def test_the_daemons_stack_runs_in_the_units_sandbox(emulator: RunningEmulator, tmp_path: Path) -> None:
    """A full apply under the unit's system-call filter, socket families and W^X, signing in as the unit
    does: a service principal's certificate (cryptography signs the assertion), HTTPS to ARM and to Batch
    through the SDK and aiohttp. The running daemon is checked the same way in test_dashboard_e2e.py."""
    connection = emulator.connection
    config = tmp_path / "config.yaml"
    config.write_text(
        azure_yaml(connection, method="certificate")
        + f"accounts:\n  demo: {{batch_url: {connection['batch']['demo']['tls_url']}}}\n"
        + f"pools:\n{POOL_YAML.format(pool='wx', nodes=1)}"
    )
    env = {**os.environ, "RECONCILER_TIME_SCALE": "300"}
    result = subprocess.run(
        sandboxed(str(BIN / "reconciler"), "apply", "--yes", "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Applied: 1 ok, 0 not ok." in result.stdout
    state = subprocess.run(
        [str(BIN / "reconciler"), "status", "--config", str(config), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert state.returncode == 0, state.stdout + state.stderr
    assert "wx" in json.dumps(json.loads(state.stdout))


@pytest.mark.parametrize("readme", ["systemd/README.md", "README.md"])
def test_readme_reports_the_measured_exposure(readme: str, tmp_path: Path) -> None:
    level = exposure(templated(tmp_path))
    text = (ROOT / readme).read_text()
    assert f"**{level:.1f} OK**" in text, f"{readme} should report the exposure level {level:.1f}"


@pytest.mark.parametrize("path", ["/etc/reconciler/config.yaml", "/etc/reconciler/env"])
def test_readme_names_the_files_the_unit_reads(path: str) -> None:
    assert path in (ROOT / "systemd" / "README.md").read_text()
