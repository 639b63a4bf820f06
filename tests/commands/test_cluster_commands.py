"""`plan`, `apply` and `status` with a Dask cluster next to a pool, against the emulator's ARM and Batch."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pool_commands_env import ACCOUNT, account_yaml, pool_yaml, write_config

from reconciler.commands.apply import apply_command
from reconciler.commands.common import CLI_CALLER
from reconciler.commands.plan import plan_command
from reconciler.commands.status import status_command
from reconciler.emulator import Emulator, ThreadedEmulator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clusters"))
from cluster_env import RG, azure_settings, cluster_spec, make_network

SCALE = 600.0
CLUSTER = "analytics"
SCHEDULER = f"{CLUSTER}-dask-scheduler"


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadedEmulator]:
    monkeypatch.setenv("RECONCILER_TIME_SCALE", str(SCALE))
    with Emulator.in_thread({ACCOUNT: None}, time_scale=SCALE) as emulator:
        emulator.run(make_network(emulator.emulator.network_client(polling_interval=0)))
        yield emulator


def write(
    tmp_path: Path,
    emu: ThreadedEmulator,
    pools: dict[str, Any],
    clusters: dict[str, Any],
    **sections: Any,
) -> list[Path]:
    path = write_config(
        tmp_path / "config.yaml",
        emu,
        pools,
        accounts={ACCOUNT: account_yaml(emu)},
        azure=azure_settings(emu.connection),
        clusters=clusters,
        **sections,
    )
    return [path]


def arm_calls(emu: ThreadedEmulator) -> int:
    return int(emu.counters.total("arm.*", caller=CLI_CALLER))


def vm_names(emu: ThreadedEmulator) -> list[str]:
    compute = emu.compute_client()
    return sorted(vm.name for vm in compute.virtual_machines.list(RG))


def test_plan_apply_status_cover_a_pool_and_a_cluster(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write(tmp_path, emu, {"p1": pool_yaml()}, {CLUSTER: cluster_spec(n_workers=2)})

    assert plan_command(paths, "text") == 2
    out = capsys.readouterr().out
    assert "create            demo/p1: declared but absent" in out
    assert f"  {CLUSTER}: missing" in out
    assert "    create scheduler (initial)" in out
    assert f"    create 2 worker(s) {CLUSTER}-dask-worker-0000, {CLUSTER}-dask-worker-0001 (initial)" in out
    assert plan_command(paths, "json") == 2
    data = json.loads(capsys.readouterr().out)
    assert [a["pool_id"] for a in data["actions"]] == ["p1"]
    (cluster,) = data["clusters"]
    assert (cluster["cluster"], cluster["state"], cluster["in_sync"]) == (CLUSTER, "missing", False)
    assert cluster["steps"][0] == "create scheduler (initial)"

    assert apply_command(paths, True) == 0
    out = capsys.readouterr().out
    assert f"{CLUSTER} (cluster): create scheduler {SCHEDULER} ok" in out
    assert f"{CLUSTER} (cluster): create worker {CLUSTER}-dask-worker-0001 ok" in out
    assert "Applied: 4 ok, 0 not ok." in out
    assert vm_names(emu) == [SCHEDULER, f"{CLUSTER}-dask-worker-0000", f"{CLUSTER}-dask-worker-0001"]
    assert emu.call(lambda: emu.batch.pool(ACCOUNT, "p1")) is not None

    assert plan_command(paths, "text") == 0
    out = capsys.readouterr().out
    assert "No changes: 1 pool(s) observed, 1 in sync." in out
    assert "No cluster changes: 1 cluster(s) observed, 1 in sync." in out

    assert status_command(paths, "text") == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CLUSTER"))
    assert lines[header].split() == [
        "CLUSTER",
        "STATE",
        "SCHEDULER",
        "ADDRESS",
        "WORKERS",
        "EVICTED",
        "ORPHANS",
        "LEFTOVERS",
    ]
    row = lines[header + 1].split()
    assert row[:3] == [CLUSTER, "in_sync", "running"]
    assert row[3].startswith("10.5.1.")
    assert row[4:] == ["2/2", "0", "0", "0"]
    assert status_command(paths, "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["pool_id"] for p in data["pools"]] == ["p1"]
    (row_json,) = data["clusters"]
    assert row_json["workers"] == {"healthy": 2, "target": 2, "by_state": {"running": 2}}
    assert row_json["scheduler"]["state"] == "running"
    assert row_json["scheduler"]["ip"] == row[3]
    assert row_json["evicted"] == 0


def test_status_counts_an_evicted_spot_worker_and_plan_replaces_it(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write(
        tmp_path,
        emu,
        {},
        {CLUSTER: cluster_spec(n_workers=2, spot={"enabled": True, "eviction_policy": "Deallocate"})},
    )
    assert apply_command(paths, True) == 0
    capsys.readouterr()
    compute = emu.compute_client()
    compute.virtual_machines.simulate_eviction(RG, f"{CLUSTER}-dask-worker-0000")

    assert status_command(paths, "json") == 0
    (row,) = json.loads(capsys.readouterr().out)["clusters"]
    assert row["evicted"] == 1
    assert (row["workers"]["healthy"], row["workers"]["target"]) == (1, 2)
    assert plan_command(paths, "text") == 2
    assert f"    delete vm {CLUSTER}-dask-worker-0000 (worker, evicted)" in capsys.readouterr().out


def test_without_clusters_and_prune_no_arm_call_is_made(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write(tmp_path, emu, {"p1": pool_yaml()}, {})
    before = arm_calls(emu)
    assert plan_command(paths, "json") == 2
    assert status_command(paths, "text") == 0
    assert arm_calls(emu) == before
    assert json.loads(capsys.readouterr().out.split("\n}\n")[0] + "}")["clusters"] == []

    pruning = write(tmp_path, emu, {"p1": pool_yaml()}, {}, safety={"prune": True})
    assert plan_command(pruning, "json") == 2
    assert arm_calls(emu) > before


def test_a_cluster_that_cannot_be_planned_exits_1(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = cluster_spec(extra_bootstrap=["echo " + "x" * 70_000])
    paths = write(tmp_path, emu, {}, {CLUSTER: huge})
    assert plan_command(paths, "text") == 1
    captured = capsys.readouterr()
    assert f"error: cluster {CLUSTER}: the scheduler's cloud-init is" in captured.err
    assert f"  {CLUSTER}: error" in captured.out
    assert status_command(paths, "text") == 1


def test_an_unreachable_subscription_exits_1_and_the_pools_are_still_planned(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    azure = azure_settings(emu.connection)
    azure["subscription_id"] = "00000000-0000-0000-0000-0000000000ff"
    path = write_config(
        tmp_path / "config.yaml",
        emu,
        {"p1": pool_yaml()},
        accounts={ACCOUNT: account_yaml(emu)},
        azure=azure,
        clusters={CLUSTER: cluster_spec()},
    )
    assert plan_command([path], "json") == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [a["pool_id"] for a in data["actions"]] == ["p1"]
    assert list(data["cluster_errors"]) == [azure["subscription_id"]]
    assert data["clusters"][0]["state"] == "error"
    assert f"error: subscription {azure['subscription_id']}: unreachable" in captured.err
    assert "Traceback" not in captured.err


def test_apply_without_yes_and_no_terminal_changes_no_cluster(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write(tmp_path, emu, {}, {CLUSTER: cluster_spec(n_workers=1)})

    assert apply_command(paths, False) == 1

    captured = capsys.readouterr()
    assert "    create scheduler (initial)" in captured.out
    assert "Not applied." in captured.out
    assert "pass --yes" in captured.err
    assert vm_names(emu) == []
