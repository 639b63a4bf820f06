"""`reconciler export` against the emulator: existing pools → YAML that validates and plans as in sync."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pool_commands_env import (
    ACCOUNT,
    account_yaml,
    create_managed,
    create_raw,
    pool_yaml,
    settle,
    write_config,
)
from ruamel.yaml import YAML

from reconciler.azure import markers
from reconciler.commands.apply import apply_command
from reconciler.commands.export import export_command
from reconciler.commands.plan import plan_command
from reconciler.commands.refresh import refresh_command
from reconciler.emulator import Emulator, ThreadedEmulator
from reconciler.plan.hashing import spec_hash
from reconciler.spec.loader import load_config
from reconciler.spec.pool import Pool

SAS = "https://store.blob.core.windows.net/c/setup.sh?sv=2024&sig=SAS-SIGNATURE-secret"
RAW_IMAGE = {
    "imageReference": {
        "publisher": "canonical",
        "offer": "0001-com-ubuntu-server-jammy",
        "sku": "22_04-lts",
        "version": "latest",
    },
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    with Emulator.in_thread({ACCOUNT: None}) as emulator:
        yield emulator


def legacy_pools(emu: ThreadedEmulator) -> None:
    """Pools created by hand before the tool, as an admin's scripts made them (REST bodies)."""
    create_raw(
        emu,
        {
            "id": "etl",
            "vmSize": "STANDARD_D4S_V3",
            "virtualMachineConfiguration": RAW_IMAGE,
            "targetDedicatedNodes": 2,
            "taskSlotsPerNode": 4,
            "startTask": {
                "commandLine": "/bin/bash -c 'MODE=${MODE} bash setup.sh ${env:HOME}'",
                "resourceFiles": [{"httpUrl": SAS, "filePath": "setup.sh"}],
                "environmentSettings": [{"name": "MODE", "value": "nightly"}],
                "waitForSuccess": True,
            },
            "metadata": [{"name": "team", "value": "data"}],
        },
    )
    create_raw(
        emu,
        {
            "id": "elastic",
            "vmSize": "standard_d2s_v3",
            "virtualMachineConfiguration": RAW_IMAGE,
            "enableAutoScale": True,
            "autoScaleFormula": "$TargetDedicatedNodes = 1;\n$NodeDeallocationOption = taskcompletion;",
            "autoScaleEvaluationInterval": "PT10M",
        },
    )
    create_raw(
        emu,
        {
            "id": "with-user",
            "vmSize": "standard_d2s_v3",
            "virtualMachineConfiguration": RAW_IMAGE,
            "targetDedicatedNodes": 0,
            "userAccounts": [
                {"name": "runner", "password": "user-PASSWORD-secret", "elevationLevel": "admin"}
            ],
        },
    )


TEAM = {"name": "team", "value": "data"}


def read_yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


def pool_metadata(emu: ThreadedEmulator, pool_id: str) -> dict[str, str]:
    pool = emu.call(lambda: emu.batch.pool(ACCOUNT, pool_id))
    return {m["name"]: m["value"] for m in pool.spec.get("metadata", [])}


def test_export_validates_and_plans_in_sync(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy_pools(emu)
    create_managed(emu, "ours", Pool.model_validate(pool_yaml()))
    spelled = {"command_line": "/bin/sh -c true", "wait_for_success": True, "max_task_retry_count": 0}
    create_managed(emu, "spelled", Pool.model_validate(pool_yaml(start_task=spelled)))
    settle(emu)
    config = write_config(tmp_path / "c.yaml", emu, {})
    exported = tmp_path / "exported.yaml"

    assert export_command([config], ACCOUNT, exported) == 0
    captured = capsys.readouterr()
    text = exported.read_text(encoding="utf-8")
    for secret in ("SAS-SIGNATURE-secret", "user-PASSWORD-secret", emu.account_key(ACCOUNT)):
        assert secret not in text + captured.out + captured.err
    names = [line.strip() for line in captured.err.splitlines()[1:]]
    assert names == [
        "BATCH_DEMO_AUTH_KEY",
        "ETL_START_TASK_RESOURCE_FILES_0_HTTP_URL",
        "WITH_USER_USER_ACCOUNTS_0_PASSWORD",
    ]

    data = read_yaml(text)
    assert set(data["pools"]) == {"etl", "elastic", "with-user", "ours", "spelled"}
    etl = data["pools"]["etl"]
    assert etl["account"] == ACCOUNT
    assert (
        etl["start_task"]["resource_files"][0]["http_url"]
        == "${env:ETL_START_TASK_RESOURCE_FILES_0_HTTP_URL}"
    )
    assert etl["metadata"] == [{"name": "team", "value": "data"}]
    assert etl["start_task"]["command_line"] == "/bin/bash -c 'MODE=$${MODE} bash setup.sh $${env:HOME}'"
    assert "metadata" not in data["pools"]["ours"]
    assert data["pools"]["elastic"]["auto_scale_formula"].startswith("$TargetDedicatedNodes = 1;\n")
    assert "|" in text
    assert data["accounts"][ACCOUNT] == {
        "batch_url": emu.batch_url(ACCOUNT),
        "auth": {"method": "shared_key", "key": "${env:BATCH_DEMO_AUTH_KEY}"},
    }

    env = {
        "BATCH_DEMO_AUTH_KEY": emu.account_key(ACCOUNT),
        "ETL_START_TASK_RESOURCE_FILES_0_HTTP_URL": SAS,
        "WITH_USER_USER_ACCOUNTS_0_PASSWORD": "user-PASSWORD-secret",
    }
    loaded = load_config([exported], env=env)
    assert loaded.pools["elastic"].enable_auto_scale
    assert all(pool["adopt"] is True for pool in data["pools"].values())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert plan_command([exported], "json") == 2
    planned = json.loads(capsys.readouterr().out)
    assert sorted((a["pool_id"], a["kind"], a["changes"]) for a in planned["actions"]) == [
        ("elastic", "adopt", []),
        ("etl", "adopt", []),
        ("with-user", "adopt", []),
    ]
    assert planned["held"] == []


def test_exported_pools_are_adopted_by_apply_and_can_then_be_refreshed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_TIME_SCALE", "600")
    with Emulator.in_thread({ACCOUNT: None}, time_scale=600) as emu:
        create_raw(emu, {**Pool.model_validate(pool_yaml()).to_batch_json("legacy"), "metadata": [TEAM]})
        create_raw(emu, Pool.model_validate(pool_yaml()).to_batch_json("edited"))
        settle(emu)
        exported = tmp_path / "exported.yaml"
        assert export_command([write_config(tmp_path / "c.yaml", emu, {})], ACCOUNT, exported) == 0
        data = read_yaml(exported.read_text(encoding="utf-8"))
        data["pools"]["edited"]["target_dedicated_nodes"] = 3
        data["pools"]["edited"]["start_task"] = {"command_line": "echo changed"}
        monkeypatch.setenv("BATCH_DEMO_AUTH_KEY", emu.account_key(ACCOUNT))
        with exported.open("w", encoding="utf-8") as stream:
            YAML().dump(data, stream)
        capsys.readouterr()

        assert apply_command([exported], True) == 0
        out = capsys.readouterr().out
        assert "legacy (demo): adopt done" in out
        assert "not adopted: differs from the spec in start_task, target_dedicated_nodes" in out
        legacy = pool_metadata(emu, "legacy")
        assert legacy[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE
        assert legacy[markers.SPEC_HASH] == spec_hash(load_config([exported]).pools["legacy"])
        assert legacy["team"] == "data"
        edited = emu.call(lambda: emu.batch.pool(ACCOUNT, "edited"))
        assert markers.MANAGED_BY not in pool_metadata(emu, "edited")
        assert edited.target_dedicated == 1
        assert "startTask" not in edited.spec

        created = emu.call(lambda: emu.batch.pool(ACCOUNT, "legacy")).created
        assert refresh_command([exported], ["legacy"], True) == 0
        assert "legacy: done" in capsys.readouterr().out
        rebuilt = emu.call(lambda: emu.batch.pool(ACCOUNT, "legacy"))
        assert rebuilt.created > created
        assert pool_metadata(emu, "legacy")[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE
        capsys.readouterr()
        assert refresh_command([exported], ["edited"], False) == 1
        assert capsys.readouterr().err == (
            "error: edited: exists without reconciler.managed-by; never touched;"
            " `reconciler apply` adopts it while it matches the spec\n"
        )


def test_export_to_stdout(tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    create_raw(emu, Pool.model_validate(pool_yaml()).to_batch_json("one"))
    config = write_config(tmp_path / "c.yaml", emu, {})
    assert export_command([config], ACCOUNT, None) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Exported by `reconciler export --account demo`")
    assert read_yaml(out)["pools"]["one"]["target_dedicated_nodes"] == 1


def test_export_keeps_references_the_config_used(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_KEY", emu.account_key(ACCOUNT))
    accounts = {ACCOUNT: {**account_yaml(emu), "auth": {"method": "shared_key", "key": "${env:DEMO_KEY}"}}}
    config = write_config(tmp_path / "c.yaml", emu, {}, accounts=accounts)
    assert export_command([config], ACCOUNT, None) == 0
    captured = capsys.readouterr()
    assert read_yaml(captured.out)["accounts"][ACCOUNT]["auth"]["key"] == "${env:DEMO_KEY}"
    assert captured.err == ""


def test_export_unknown_account(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", emu, {})
    assert export_command([config], "nope", None) == 1
    assert capsys.readouterr().err == "error: account 'nope' is not declared in the config (declared: demo)\n"
