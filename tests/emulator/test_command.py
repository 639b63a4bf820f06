"""`reconciler emulator` as a real process, used from another process the way scripts and the CLI do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.emulator.command import parse_accounts
from reconciler.emulator.context import WELL_KNOWN_ACCOUNT_KEY

CLIENT = textwrap.dedent(
    """
    import json, sys
    from azure.batch import BatchClient, models
    from azure.core.credentials import AzureNamedKeyCredential

    facts = json.load(open(sys.argv[1]))["batch"]["demo"]
    client = BatchClient(facts["url"], AzureNamedKeyCredential("demo", facts["key"]))
    client.create_pool(models.BatchPoolCreateOptions(
        id="from-another-process",
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=models.BatchVmImageReference(
                publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"),
            node_agent_sku_id="batch.node.ubuntu 22.04"),
        target_dedicated_nodes=0,
    ))
    print(json.dumps(sorted(pool.id for pool in client.list_pools())))
    """
)


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        if process.poll() is not None:
            errors = process.stderr.read() if process.stderr else ""
            pytest.fail(f"emulator exited early with {process.returncode}: {errors}")
        time.sleep(0.05)  # polling a real subprocess, not simulating time
    pytest.fail("the emulator never wrote its connection file")


def test_cli_emulator_serves_a_separate_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    connection_file = tmp_path / "f.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "emulator",
            "--port",
            "0",
            "--arm-port",
            "0",
            "--connection-file",
            str(connection_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        facts = wait_for(connection_file, process)
        assert facts["batch"]["demo"]["key"] == WELL_KNOWN_ACCOUNT_KEY  # type: ignore[index]
        assert str(facts["arm"]["url"]).startswith("https://127.0.0.1:")  # type: ignore[index]
        assert Path(str(facts["ca_bundle"])).read_text().startswith("-----BEGIN CERTIFICATE-----")
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, str(connection_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        assert json.loads(client.stdout) == ["from-another-process"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        stdout = process.stdout.read() if process.stdout else ""
        assert "emulator listening" in stdout
        assert not connection_file.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_accounts_default_to_the_well_known_key() -> None:
    assert parse_accounts(["demo", "prod=a2V5"]) == {"demo": None, "prod": "a2V5"}


@pytest.mark.parametrize("value", ["UPPER", "ab", "demo=not base64!", "demo="])
def test_bad_accounts_are_one_clear_error(value: str) -> None:
    with pytest.raises(ValueError, match="--account"):
        parse_accounts([value])


def test_bad_account_exits_2_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "emulator", "--account", "Bad_Name", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: --account")
