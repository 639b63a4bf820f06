"""`--state-file`: state written on shutdown and read at start, atomically, with a version."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from azure.batch import models
from emulator_env import new_pool

from reconciler.emulator import Emulator
from reconciler.emulator.persistence import STATE_VERSION, StateFileError, read_state, write_atomic


async def test_pools_survive_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with Emulator(state_file=state_file) as first:
        async with first.batch_client() as client:
            await client.create_pool(new_pool("kept"))
        first.clock.advance(3600)
        elapsed = first.clock.monotonic()
    document = json.loads(state_file.read_text())
    assert document["version"] == STATE_VERSION
    assert "batch" in document["parts"]

    async with Emulator(state_file=state_file) as second:
        assert second.clock.monotonic() >= elapsed  # simulated time resumes, never rewinds
        async with second.batch_client() as client:
            assert [p.id async for p in client.list_pools()] == ["kept"]
            assert (await client.get_pool("kept")).vm_size == "standard_d2s_v3"


async def test_autoscale_sample_history_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with Emulator(state_file=state_file) as first:
        async with first.batch_client() as client:
            await client.create_pool(new_pool("sampled"))
            job = models.BatchJobCreateOptions(
                id="waiting", pool_info=models.BatchPoolInfo(pool_id="sampled")
            )
            await client.create_job(job)
            first.clock.advance(15)
            for i in range(3):
                await client.create_task(
                    "waiting", models.BatchTaskCreateOptions(id=f"t{i}", command_line="sleep 60")
                )
        first.clock.advance(180)

    formula = "pct = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 3); $TargetDedicatedNodes = 0"
    async with Emulator(state_file=state_file) as second, second.batch_client() as client:
        enable = models.BatchPoolEnableAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = 0")
        await client.enable_pool_auto_scale("sampled", enable)
        options = models.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=formula)
        run = await client.evaluate_pool_auto_scale("sampled", options)
        assert run.results.endswith(";pct=100")  # six samples from before the restart, not one from after it


async def test_state_is_saved_on_demand_without_stopping(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with Emulator(state_file=state_file) as emu:
        async with emu.batch_client() as client:
            await client.create_pool(new_pool("early"))
        await emu.save_state()
        saved = read_state(state_file)
        assert saved is not None
        assert json.dumps(saved.parts["batch"]).count("early") >= 1


def test_missing_file_is_a_first_start(tmp_path: Path) -> None:
    assert read_state(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a valid state file"),
        ("[]", "expected a JSON object"),
        (json.dumps({"version": 99, "clock": {}, "parts": {}}), "version 99 is not supported"),
        (json.dumps({"version": STATE_VERSION, "parts": {}}), "missing clock"),
    ],
)
def test_unusable_files_are_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateFileError, match=message):
        read_state(path)


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.json"
    write_atomic(path, "first")
    write_atomic(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


async def test_state_is_also_saved_periodically(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with Emulator(state_file=state_file, save_interval=0.05) as emu:
        async with emu.batch_client() as client:
            await client.create_pool(new_pool("periodic"))
        for _ in range(200):  # waits on a real background writer, not on simulated time
            saved = read_state(state_file)
            if saved is not None and "periodic" in json.dumps(saved.parts):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the state was not saved while the emulator kept running")
