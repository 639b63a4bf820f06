"""Batch state across an emulator restart (`--state-file`): pools, nodes, jobs and running tasks."""

from __future__ import annotations

from pathlib import Path

from azure.batch import models as m

from reconciler.emulator import Emulator

SETTLE = 600.0


async def test_running_work_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with Emulator(state_file=state_file) as first, first.batch_client() as client:
        await client.create_pool(
            m.BatchPoolCreateOptions(id="kept", vm_size="standard_d2s_v3", target_dedicated_nodes=2)
        )
        first.clock.advance(SETTLE)
        first.batch.occupy_nodes("demo", "kept", tasks=3, seconds=900, job_id="work")
        before = await client.get_pool("kept")
        nodes_before = sorted([n.id async for n in client.list_nodes("kept")])

    async with Emulator(state_file=state_file) as second, second.batch_client() as client:
        after = await client.get_pool("kept")
        assert after.etag == before.etag
        assert after.current_dedicated_nodes == 2
        assert sorted([n.id async for n in client.list_nodes("kept")]) == nodes_before
        counts = (await client.get_job_task_counts("work")).task_counts
        assert (counts.running, counts.active) == (2, 1)
        second.clock.advance(901)
        counts = (await client.get_job_task_counts("work")).task_counts
        assert (counts.completed, counts.running) == (2, 1)
        second.clock.advance(901)
        assert (await client.get_job_task_counts("work")).task_counts.succeeded == 3
