"""`reconciler apply` in-process against an emulator on a background loop, through the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models

from reconciler.azure import markers
from reconciler.commands.apply import apply_command
from reconciler.commands.common import CLI_CALLER
from reconciler.commands.plan import plan_command
from reconciler.emulator import Emulator, ThreadedEmulator

SCALE = 600.0
ACCOUNT = "demo"


def pool(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "account": ACCOUNT,
        "vm_size": "standard_d2s_v3",
        "virtual_machine_configuration": {
            "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
            "node_agent_sku_id": "batch.node.ubuntu 22.04",
        },
        "target_dedicated_nodes": 2,
        "start_task": {"command_line": "echo ready"},
    }
    spec.update(overrides)
    return spec


class Setup:
    def __init__(self, emu: ThreadedEmulator, path: Path) -> None:
        self.emu = emu
        self.path = path
        self.pools: dict[str, dict[str, Any]] = {}

    def write(self) -> list[Path]:
        config = {
            "accounts": {
                ACCOUNT: {
                    "batch_url": self.emu.batch_url(ACCOUNT),
                    "auth": {"method": "shared_key", "key": self.emu.account_key(ACCOUNT)},
                }
            },
            "pools": self.pools,
        }
        self.path.write_text(json.dumps(config), encoding="utf-8")
        return [self.path]

    def apply(self, yes: bool = True) -> int:
        return apply_command(self.write(), yes)

    def plan(self) -> int:
        return plan_command(self.write(), "text")

    def sim_pool(self, pool_id: str) -> Any:
        return self.emu.call(lambda: self.emu.batch.pool(ACCOUNT, pool_id))

    def calls(self, operation: str = "batch.*") -> int:
        return int(self.emu.counters.total(operation, caller=CLI_CALLER))


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("RECONCILER_TIME_SCALE", str(SCALE))
    with Emulator.in_thread({ACCOUNT: None}, time_scale=SCALE) as emu:
        yield Setup(emu, tmp_path / "config.yaml")


def test_apply_creates_missing_pools_then_plan_is_in_sync_and_a_pass_costs_two_calls(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.pools = {"a1": pool(), "a2": pool(target_dedicated_nodes=1)}
    assert setup.apply() == 0
    out = capsys.readouterr().out
    assert "a1 (demo): create done" in out
    assert "a2 (demo): create done" in out
    assert setup.sim_pool("a1").allocation_state == "steady"
    assert len(setup.sim_pool("a1").nodes) == 2

    assert setup.plan() == 0
    setup.emu.counters.reset()
    assert setup.apply() == 0
    assert setup.calls() == 2
    assert setup.calls("batch.Pools_ListPools") == 1
    assert setup.calls("batch.Pools_ListPoolNodeCounts") == 1


def test_out_of_band_resize_is_corrected(setup: Setup) -> None:
    setup.pools = {"r": pool()}
    assert setup.apply() == 0
    client = setup.emu.batch_client(ACCOUNT)
    client.begin_resize_pool("r", models.BatchPoolResizeOptions(target_dedicated_nodes=4))
    assert setup.plan() == 2
    created = setup.sim_pool("r").created
    assert setup.apply() == 0
    pool_state = setup.sim_pool("r")
    assert pool_state.target_dedicated == 2
    assert pool_state.created == created
    assert setup.plan() == 0


def test_a_patchable_change_is_patched_without_recreating(setup: Setup) -> None:
    setup.pools = {"p": pool()}
    assert setup.apply() == 0
    created = setup.sim_pool("p").created
    setup.pools["p"] = pool(start_task={"command_line": "echo changed"})
    setup.emu.counters.reset()
    assert setup.apply() == 0
    state = setup.sim_pool("p")
    assert state.created == created
    assert state.spec["startTask"]["commandLine"] == "echo changed"
    assert setup.calls("batch.Pools_UpdatePool") == 1
    assert setup.calls("batch.Pools_DeletePool") == 0
    assert setup.plan() == 0


def test_a_recreate_class_change_runs_the_refresh_cycle(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.pools = {"v": pool()}
    assert setup.apply() == 0
    created = setup.sim_pool("v").created
    setup.pools["v"] = pool(vm_size="standard_d4s_v3")
    capsys.readouterr()
    assert setup.apply() == 0
    out = capsys.readouterr().out
    for phase in ("draining", "deleting", "creating", "allocating"):
        assert f"v: phase {phase}" in out
    state = setup.sim_pool("v")
    assert state.created > created
    assert state.vm_size == "standard_d4s_v3"
    assert setup.plan() == 0


def test_unmanaged_pools_are_never_touched(setup: Setup) -> None:
    client = setup.emu.batch_client(ACCOUNT)
    body = {
        "id": "legacy",
        "vmSize": "standard_d2s_v3",
        "virtualMachineConfiguration": {
            "imageReference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
            "nodeAgentSKUId": "batch.node.ubuntu 22.04",
        },
        "targetDedicatedNodes": 1,
    }
    client.create_pool(models.BatchPoolCreateOptions(body))
    before = setup.sim_pool("legacy").etag
    setup.pools = {"legacy": pool(vm_size="standard_d4s_v3"), "new": pool(target_dedicated_nodes=0)}
    assert setup.apply() == 0
    legacy = setup.sim_pool("legacy")
    assert legacy.etag == before
    assert not any(m["name"] == markers.MANAGED_BY for m in legacy.spec.get("metadata", []))


def test_without_yes_and_without_a_terminal_it_refuses(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.pools = {"n": pool()}
    assert setup.apply(yes=False) == 1
    captured = capsys.readouterr()
    assert "--yes" in captured.err
    assert "Traceback" not in captured.err
    assert setup.emu.call(lambda: setup.emu.batch.account(ACCOUNT).pools) == {}


def test_quota_failure_is_reported_and_exits_1(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.emu.call(lambda: setup.emu.batch.set_quotas(ACCOUNT, dedicated_cores=2))
    setup.pools = {"q": pool(target_dedicated_nodes=3)}
    assert setup.apply() == 1
    out = capsys.readouterr().out
    assert "q (demo): create degraded" in out
    assert "AccountCoreQuotaReached" in out
    created = setup.sim_pool("q").created
    assert setup.apply() == 1
    assert setup.sim_pool("q").created == created


def test_removing_the_start_task_replaces_the_properties_without_recreating(setup: Setup) -> None:
    setup.pools = {"st": pool(metadata=[{"name": "team", "value": "a"}])}
    assert setup.apply() == 0
    created = setup.sim_pool("st").created
    bare = pool(metadata=[{"name": "team", "value": "b"}])
    del bare["start_task"]
    setup.pools["st"] = bare
    assert setup.apply() == 0
    state = setup.sim_pool("st")
    assert "startTask" not in state.spec
    metadata = {m["name"]: m["value"] for m in state.spec["metadata"]}
    assert metadata["team"] == "b"
    assert metadata[markers.MANAGED_BY] == markers.MANAGED_BY_VALUE
    assert state.created == created
    assert setup.plan() == 0
