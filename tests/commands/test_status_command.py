"""`reconciler status` against the emulator: one row per pool, with state, phase, nodes and errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
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

from reconciler.azure import markers
from reconciler.commands.status import status_command
from reconciler.emulator import Emulator, ThreadedEmulator
from reconciler.spec.pool import Pool

REQUESTED = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    with Emulator.in_thread({ACCOUNT: None}) as emulator:
        yield emulator


def test_status_json_per_pool(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    create_managed(emu, "steady", Pool.model_validate(pool_yaml(target_dedicated_nodes=2)))
    create_managed(
        emu,
        "asked",
        Pool.model_validate(pool_yaml()),
        **{markers.REFRESH_REQUESTED_AT: REQUESTED.isoformat()},
    )
    create_raw(emu, Pool.model_validate(pool_yaml()).to_batch_json("legacy"))
    settle(emu)
    path = write_config(
        tmp_path / "c.yaml",
        emu,
        {"steady": pool_yaml(target_dedicated_nodes=2), "asked": pool_yaml(), "absent": pool_yaml()},
    )
    assert status_command([path], "json") == 0
    rows = {row["pool_id"]: row for row in json.loads(capsys.readouterr().out)["pools"]}
    assert set(rows) == {"steady", "asked", "absent", "legacy"}

    steady = rows["steady"]
    assert (steady["state"], steady["phase"], steady["allocation_state"]) == ("in_sync", None, "steady")
    assert sum(steady["nodes"]["dedicated"].values()) == 2
    assert steady["target"] == {"dedicated": 2, "low_priority": 0}
    assert steady["created"] is not None
    assert steady["resize_errors"] == []

    assert (rows["asked"]["state"], rows["asked"]["phase"]) == ("refreshing", "draining")
    assert rows["asked"]["refresh_requested_at"] == REQUESTED.isoformat()
    assert rows["absent"]["state"] == "missing"
    assert rows["absent"]["allocation_state"] is None
    assert rows["legacy"]["state"] == "unmanaged"


def test_status_text_table(tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    create_managed(emu, "p1", Pool.model_validate(pool_yaml()))
    settle(emu)
    path = write_config(tmp_path / "c.yaml", emu, {"p1": pool_yaml(), "p2": pool_yaml()})
    assert status_command([path], "text") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ACCOUNT", "POOL", "STATE", "ALLOCATION"]
    assert lines[1].split()[:4] == ["demo", "p1", "in_sync", "steady"]
    assert "(target 1+0)" in lines[1]
    assert lines[2].split()[:3] == ["demo", "p2", "missing"]
    assert "demo/p2: declared but absent" in lines


def test_status_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status_command([tmp_path / "absent.yaml"], "text") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_quota_short_pool_is_degraded_with_its_resize_error(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.call(lambda: emu.emulator.batch.set_quotas(ACCOUNT, dedicated_cores=2))
    spec = pool_yaml(target_dedicated_nodes=4)
    create_managed(emu, "big", Pool.model_validate(spec))
    settle(emu)
    path = write_config(tmp_path / "c.yaml", emu, {"big": spec})
    assert status_command([path], "json") == 0
    (row,) = json.loads(capsys.readouterr().out)["pools"]
    assert row["state"] == "degraded"
    assert [e["code"] for e in row["resize_errors"]] == ["AccountCoreQuotaReached"]
    assert sum(row["nodes"]["dedicated"].values()) < 4
    assert status_command([path], "text") == 0
    assert "AccountCoreQuotaReached" in capsys.readouterr().out


def test_unreachable_account_rows_and_exit_1(
    tmp_path: Path, emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = base64.b64encode(b"not the key").decode()
    path = write_config(
        tmp_path / "c.yaml",
        emu,
        {"p1": pool_yaml()},
        accounts={ACCOUNT: account_yaml(emu, key=wrong)},
    )
    assert status_command([path], "json") == 1
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)["pools"]
    assert (row["pool_id"], row["state"]) == ("p1", "unreachable")
    assert "account demo: unreachable" in captured.err
