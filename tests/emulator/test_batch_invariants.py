"""Random sequences of resizes, drains, deletes and task submissions on the service layer.

Whatever happens to pools, every task is exactly one of: queued and `active`, `running` on exactly one node
of a pool, or `completed`. A task lost between those is the bug this hunts for.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from reconciler.emulator.batch import BatchService, BatchServiceError
from reconciler.emulator.clock import SimClock
from reconciler.emulator.context import AccountSettings, EmulatorContext

OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")


def check_invariants(service: BatchService) -> None:
    state = service.account("demo")
    queued = {id(t) for queue in state.queues.values() for t in queue}
    running = [t for pool in state.pools.values() for node in pool.nodes.values() for t in node.running]
    assert len(running) == len({id(t) for t in running}), "a task runs on two nodes"
    running_ids = {id(t) for t in running}
    for job in state.jobs.values():
        for task in job.tasks.values():
            where = (id(task) in queued, id(task) in running_ids)
            expected = {"active": (True, False), "running": (False, True), "completed": (False, False)}
            assert where == expected[task.state], (task.id, task.state, where)
    for pool in state.pools.values():
        for node in pool.nodes.values():
            assert node.used_slots() <= pool.slots_per_node
            if node.running:
                assert node.state in ("running", "leavingpool") or node.leave_option is not None
    assert state.cores_used[True] == sum(p.cores_in_use(True) for p in state.pools.values())


@pytest.mark.parametrize("seed", range(6))
def test_no_task_is_ever_lost(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    clock = SimClock()
    ctx = EmulatorContext(clock, {"demo": AccountSettings("demo", dedicated_core_quota=40)}, tmp_path)
    service = BatchService(ctx)
    pools = [f"p{i}" for i in range(3)]
    for pool_id in pools:
        service.create_job("demo", {"id": f"job-{pool_id}", "poolInfo": {"poolId": pool_id}})
    submitted = 0
    refusals: list[int] = []
    for _ in range(300):
        pool_id = rng.choice(pools)
        action = rng.random()
        try:
            if action < 0.15:
                body = {"id": pool_id, "vmSize": "standard_d4s_v3", "taskSlotsPerNode": rng.randint(1, 3)}
                service.create_pool("demo", {**body, "targetDedicatedNodes": rng.randint(0, 5)})
            elif action < 0.4:
                resize = {
                    "targetDedicatedNodes": rng.randint(0, 6),
                    "nodeDeallocationOption": rng.choice(OPTIONS),
                }
                service.resize_pool("demo", pool_id, resize)
            elif action < 0.45:
                service.stop_resize("demo", pool_id)
            elif action < 0.5:
                service.delete_pool("demo", pool_id)
            elif action < 0.75:
                count = rng.randint(1, 5)
                service.occupy_nodes(
                    "demo", pool_id, count, rng.choice((30, 300, 3000)), job_id=f"job-{pool_id}"
                )
                submitted += count
        except BatchServiceError as err:
            refusals.append(err.status)
        clock.advance(rng.choice((0, 5, 40, 200, 1000)))
        service.sync()
        check_invariants(service)
    tasks = [t for job in service.account("demo").jobs.values() for t in job.tasks.values()]
    assert len(tasks) == submitted
    assert set(refusals) <= {404, 409}
