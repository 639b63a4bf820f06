"""`reconciler refresh` in-process against an emulator on a background loop, through the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models

from reconciler.azure import markers
from reconciler.azure.observe import parse_time
from reconciler.commands.apply import apply_command
from reconciler.commands.refresh import refresh_command
from reconciler.emulator import Emulator, ThreadedEmulator

SCALE = 600.0
ACCOUNT = "demo"
IMAGE = {
    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}


class Setup:
    def __init__(self, emu: ThreadedEmulator, path: Path) -> None:
        self.emu = emu
        self.path = path
        self.pools: dict[str, Any] = {
            name: {
                "account": ACCOUNT,
                "vm_size": "standard_d2s_v3",
                "virtual_machine_configuration": IMAGE,
                "target_dedicated_nodes": 1,
            }
            for name in ("one", "two", "legacy")
        }

    def config(self) -> list[Path]:
        accounts = {
            ACCOUNT: {
                "batch_url": self.emu.batch_url(ACCOUNT),
                "auth": {"method": "shared_key", "key": self.emu.account_key(ACCOUNT)},
            }
        }
        self.path.write_text(json.dumps({"accounts": accounts, "pools": self.pools}), encoding="utf-8")
        return [self.path]

    def sim_pool(self, pool_id: str) -> Any:
        return self.emu.call(lambda: self.emu.batch.pool(ACCOUNT, pool_id))

    def metadata(self, pool_id: str) -> dict[str, str]:
        return {m["name"]: m["value"] for m in self.sim_pool(pool_id).spec.get("metadata", [])}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("RECONCILER_TIME_SCALE", str(SCALE))
    with Emulator.in_thread({ACCOUNT: None}, time_scale=SCALE) as emu:
        built = Setup(emu, tmp_path / "config.yaml")
        legacy = {
            "id": "legacy",
            "vmSize": "standard_d2s_v3",
            "virtualMachineConfiguration": {
                "imageReference": IMAGE["image_reference"],
                "nodeAgentSKUId": IMAGE["node_agent_sku_id"],
            },
            "metadata": [{"name": "owner", "value": "someone"}],
        }
        emu.batch_client(ACCOUNT).create_pool(models.BatchPoolCreateOptions(legacy))
        assert apply_command(built.config(), True) == 0
        yield built


def test_a_request_is_written_into_the_pool_and_kept_while_pending(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    created = setup.sim_pool("one").created
    capsys.readouterr()
    assert refresh_command(setup.config(), ["ONE"], False) == 0
    first = setup.metadata("one")
    requested = parse_time(first[markers.REFRESH_REQUESTED_AT])
    assert requested is not None
    assert requested > setup.emu.emulator.clock.at(created)
    assert first[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE
    assert markers.SPEC_HASH in first
    assert "one: refresh requested at" in capsys.readouterr().out

    assert refresh_command(setup.config(), ["one"], False) == 0
    assert setup.metadata("one")[markers.REFRESH_REQUESTED_AT] == first[markers.REFRESH_REQUESTED_AT]
    assert "already requested" in capsys.readouterr().out
    assert setup.sim_pool("one").created == created
    assert setup.metadata("two").get(markers.REFRESH_REQUESTED_AT) is None


def test_wait_carries_the_refresh_out_and_follows_it(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {name: setup.sim_pool(name).created for name in ("one", "two")}
    capsys.readouterr()
    assert refresh_command(setup.config(), ["one", "two"], True) == 0
    out = capsys.readouterr().out.splitlines()
    for name in ("one", "two"):
        phases = [line.split("phase ", 1)[1] for line in out if line.startswith(f"{name}: phase ")]
        assert phases == ["draining", "deleting", "creating", "allocating", "done"]
        assert f"{name}: done: built from the spec and at its target" in out
        assert setup.sim_pool(name).created > before[name]
        assert markers.REFRESH_REQUESTED_AT not in setup.metadata(name)


def test_unknown_and_unmanaged_pools_are_refused_with_one_line_each(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert refresh_command(setup.config(), ["nope", "other"], False) == 1
    err = capsys.readouterr().err
    assert "error: nope: not declared in the config" in err
    assert "error: other: not declared in the config" in err
    assert refresh_command(setup.config(), ["legacy", "one"], True) == 1
    err = capsys.readouterr().err
    assert "legacy: exists without reconciler.managed-by" in err
    assert "Traceback" not in err
    assert setup.metadata("legacy") == {"owner": "someone"}
    assert markers.REFRESH_REQUESTED_AT not in setup.metadata("one")


def test_a_pool_being_deleted_or_gone_is_created_again(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.emu.batch_client(ACCOUNT).begin_delete_pool("two")
    capsys.readouterr()
    assert refresh_command(setup.config(), ["two"], False) == 0
    assert "two: being deleted; it will be created again" in capsys.readouterr().out
    assert refresh_command(setup.config(), ["two"], True) == 0
    out = capsys.readouterr().out
    assert "two: done: built from the spec and at its target" in out
    assert setup.sim_pool("two").state == "active"
    assert setup.metadata("two")[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE
