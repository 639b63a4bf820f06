"""`reconciler plan` against the emulator: exit codes, text and JSON, secrets, unreachable accounts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

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

from reconciler.commands.plan import plan_command
from reconciler.emulator import Emulator, ThreadedEmulator
from reconciler.spec.pool import Pool

ACR_VALUE = "acr-VALUE-never-shown-9"
WRONG_KEY = base64.b64encode(b"not the account key").decode()


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    with Emulator.in_thread({ACCOUNT: None, "other": None}) as emulator:
        yield emulator


def test_config_error_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("pools:\n  p1:\n    vm_sise: x\n", encoding="utf-8")
    assert plan_command([path], "text") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert "vm_sise" in err


def test_bad_output_format_is_an_error(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "c.yaml", emu, {"p1": pool_yaml()})
    assert plan_command([path], "yaml") == 1
    assert "--output must be text or json" in capsys.readouterr().err


def test_missing_pool_then_in_sync(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "c.yaml", emu, {"p1": pool_yaml()})
    assert plan_command([path], "text") == 2
    out = capsys.readouterr().out
    assert "create            demo/p1: declared but absent" in out
    assert 'vm_size: (absent) → "standard_d2s_v3" [recreate]' in out

    create_managed(emu, "p1", Pool.model_validate(pool_yaml()))
    settle(emu)
    assert plan_command([path], "text") == 0
    assert capsys.readouterr().out == "No changes: 1 pool(s) observed, 1 in sync.\n"


def test_out_of_band_resize_plans_a_resize(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "c.yaml", emu, {"p1": pool_yaml()})
    create_managed(emu, "p1", Pool.model_validate(pool_yaml()))
    settle(emu)
    with emu.batch_client(ACCOUNT) as client:
        from azure.batch import models

        client.begin_resize_pool("p1", models.BatchPoolResizeOptions(target_dedicated_nodes=3))
    settle(emu)
    assert plan_command([path], "json") == 2
    data = json.loads(capsys.readouterr().out)
    assert [(a["kind"], a["pool_id"]) for a in data["actions"]] == [("resize", "p1")]
    assert data["actions"][0]["changes"] == [
        {"path": "target_dedicated_nodes", "old": 3, "new": 1, "rule": "scale"}
    ]
    assert data["pools"][0]["state"] == "drifted"


def test_start_task_edit_plans_a_patch_and_vm_size_a_refresh(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    create_managed(emu, "p1", Pool.model_validate(pool_yaml(start_task={"command_line": "echo a"})))
    create_managed(emu, "p2", Pool.model_validate(pool_yaml()))
    settle(emu)
    path = write_config(
        tmp_path / "c.yaml",
        emu,
        {"p1": pool_yaml(start_task={"command_line": "echo b"}), "p2": pool_yaml(vm_size="standard_d4s_v3")},
    )
    assert plan_command([path], "json") == 2
    data = json.loads(capsys.readouterr().out)
    kinds = {(a["pool_id"], a["kind"]) for a in data["actions"]}
    assert kinds == {("p1", "patch"), ("p2", "refresh")}
    refreshing = next(p for p in data["pools"] if p["pool_id"] == "p2")
    assert (refreshing["state"], refreshing["phase"]) == ("refreshing", "draining")


def test_unmanaged_and_orphaned_pools_are_reported_not_touched(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    create_raw(emu, Pool.model_validate(pool_yaml()).to_batch_json("theirs"))
    create_managed(emu, "gone", Pool.model_validate(pool_yaml()))
    path = write_config(tmp_path / "c.yaml", emu, {})
    assert plan_command([path], "text") == 2
    out = capsys.readouterr().out
    assert "delete            demo/gone: no longer declared (held: safety.prune is off)" in out
    assert "note demo/theirs: unmanaged" in out
    assert "Plan: 0 action(s), 1 held" in out


def test_registry_password_shows_its_reference(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACR_PW", ACR_VALUE)
    machine = {
        **pool_yaml()["virtual_machine_configuration"],
        "container_configuration": {
            "type": "dockerCompatible",
            "container_registries": [
                {"registry_server": "myacr.azurecr.io", "username": "puller", "password": "${env:ACR_PW}"}
            ],
        },
    }
    path = write_config(tmp_path / "c.yaml", emu, {"p1": pool_yaml(virtual_machine_configuration=machine)})
    assert plan_command([path], "text") == 2
    text = capsys.readouterr().out
    assert 'password: (absent) → "${env:ACR_PW}" [recreate]' in text
    assert plan_command([path], "json") == 2
    data = capsys.readouterr().out
    assert "${env:ACR_PW}" in data
    assert ACR_VALUE not in text + data


def test_unreachable_account_exits_1_and_still_plans_the_others(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = {ACCOUNT: account_yaml(emu), "other": account_yaml(emu, "other", key=WRONG_KEY)}
    path = write_config(
        tmp_path / "c.yaml",
        emu,
        {"p1": pool_yaml(), "q1": pool_yaml(account="other")},
        accounts=accounts,
    )
    assert plan_command([path], "json") == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    states = {p["pool_id"]: p["state"] for p in data["pools"]}
    assert states == {"p1": "missing", "q1": "unreachable"}
    assert [a["pool_id"] for a in data["actions"]] == ["p1"]
    assert "account other: unreachable" in captured.err
