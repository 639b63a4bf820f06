"""`reconciler emulator` as a real process, used from another process the way scripts and the CLI do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator.command import parse_accounts
from reconciler.emulator.context import WELL_KNOWN_ACCOUNT_KEY

# The Azure CLI-style flow: endpoint + shared key read from the connection file, sync client, own process.
CLIENT = textwrap.dedent(
    """
    import json, sys
    from azure.batch import BatchClient, models
    from azure.core.credentials import AzureNamedKeyCredential

    facts = json.load(open(sys.argv[1]))["batch"]["demo"]
    client = BatchClient(facts["url"], AzureNamedKeyCredential("demo", facts["key"]))
    for pool_id in sys.argv[2:]:
        image = models.BatchVmImageReference(
            publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts")
        client.create_pool(models.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=models.VirtualMachineConfiguration(
                image_reference=image, node_agent_sku_id="batch.node.ubuntu 22.04"),
            target_dedicated_nodes=0,
        ))
    print(json.dumps(sorted(pool.id for pool in client.list_pools())))
    """
)


def run_client(connection_file: Path, *create: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(connection_file), *create],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


@contextmanager
def emulator_process(connection_file: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    command = [sys.executable, "-m", "reconciler", "emulator", "--port", "0", "--arm-port", "0"]
    with subprocess.Popen(
        [*command, "--connection-file", str(connection_file), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not connection_file.exists():
                if process.poll() is not None:
                    errors = process.stderr.read() if process.stderr else ""
                    pytest.fail(f"emulator exited early with {process.returncode}: {errors}")
                if time.monotonic() > deadline:
                    pytest.fail("the emulator never wrote its connection file")
                time.sleep(0.05)  # polling a real subprocess, not simulating time
            yield process, json.loads(connection_file.read_text())
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def stop(process: subprocess.Popen[str], signum: signal.Signals) -> str:
    process.send_signal(signum)
    assert process.wait(timeout=30) == 0
    return process.stdout.read() if process.stdout else ""


def test_cli_emulator_serves_a_separate_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    connection_file = tmp_path / "f.json"
    with emulator_process(connection_file) as (process, facts):
        assert facts["batch"]["demo"]["key"] == WELL_KNOWN_ACCOUNT_KEY
        assert facts["batch"]["demo"]["url"].startswith("http://127.0.0.1:")
        assert facts["arm"]["url"].startswith("https://127.0.0.1:")
        assert facts["identity"]["authority"] == facts["arm"]["url"]
        assert Path(facts["ca_bundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE KEY" in Path(facts["identity"]["certificate_path"]).read_text()
        assert run_client(connection_file, "from-another-process") == ["from-another-process"]
        assert "emulator listening" in stop(process, signal.SIGTERM)
    assert not connection_file.exists()


def test_state_file_carries_pools_across_a_cli_restart(tmp_path: Path) -> None:
    connection_file, state_file = tmp_path / "f.json", tmp_path / "state.json"
    with emulator_process(connection_file, "--state-file", str(state_file)) as (process, _):
        assert run_client(connection_file, "kept-1", "kept-2") == ["kept-1", "kept-2"]
        stop(process, signal.SIGINT)
    assert state_file.exists()
    with emulator_process(connection_file, "--state-file", str(state_file)) as (process, _):
        assert run_client(connection_file) == ["kept-1", "kept-2"]
        stop(process, signal.SIGTERM)


def test_accounts_default_to_the_well_known_key() -> None:
    assert parse_accounts(["demo", "prod=a2V5"]) == {"demo": None, "prod": "a2V5"}


@pytest.mark.parametrize("value", ["UPPER", "ab", "demo=not base64!", "demo="])
def test_bad_accounts_are_one_clear_error(value: str) -> None:
    with pytest.raises(ValueError, match="--account"):
        parse_accounts([value])


def test_bad_account_exits_2_with_one_line() -> None:
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


def test_unusable_state_file_exits_1_with_one_line(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text('{"version": 99}')
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "emulator", "--port", "0", "--state-file", str(state_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "version 99 is not supported" in result.stderr
