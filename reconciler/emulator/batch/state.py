"""Batch state to and from JSON for `--state-file`: pools with their nodes, jobs with their tasks.

Running tasks are shared between a node and its job, so nodes and queues store (job, task) keys and the
objects are re-linked on load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from reconciler.emulator.batch.accounts import AccountState
from reconciler.emulator.batch.jobs import Job, Task
from reconciler.emulator.batch.nodes import Node
from reconciler.emulator.batch.pools import Pool

_POOL_SKIP = {"account", "nodes", "scheduled_at", "gone", "history"}


def _plain(obj: Any, skip: set[str]) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in skip}


def _task_key(task: Task) -> list[str]:
    return [task.job_id.lower(), task.id.lower()]


def dump_accounts(accounts: dict[str, AccountState]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, state in accounts.items():
        pools = []
        for pool in state.pools.values():
            data = _plain(pool, _POOL_SKIP)
            data["history"] = pool.history.dump()
            data["nodes"] = [
                {**_plain(node, {"running"}), "running": [_task_key(t) for t in node.running]}
                for node in pool.nodes.values()
            ]
            pools.append(data)
        out[name] = {
            "quotas": {
                "dedicated_core_quota": state.settings.dedicated_core_quota,
                "low_priority_core_quota": state.settings.low_priority_core_quota,
                "pool_quota": state.settings.pool_quota,
            },
            "etag_serial": state.etag_serial,
            "start_task_failures": state.start_task_failures,
            "pools": pools,
            "jobs": [
                {**_plain(job, {"tasks"}), "tasks": [_plain(t, set()) for t in job.tasks.values()]}
                for job in state.jobs.values()
            ],
            "queues": {key: [_task_key(t) for t in queue] for key, queue in state.queues.items()},
        }
    return out


def load_accounts(data: dict[str, Any], account: Callable[[str], AccountState]) -> dict[str, AccountState]:
    loaded: dict[str, AccountState] = {}
    for name, saved in data.items():
        try:
            state = account(name)
        except Exception:  # noqa: S112 - an account no longer configured is dropped with its state
            continue
        state.pools.clear()
        state.pool_keys.clear()
        state.jobs.clear()
        state.queues.clear()
        for key, value in (saved.get("quotas") or {}).items():
            setattr(state.settings, key, int(value))
        state.etag_serial = int(saved.get("etag_serial", 0))
        state.start_task_failures = dict(saved.get("start_task_failures") or {})
        tasks: dict[tuple[str, str], Task] = {}
        for job_data in saved.get("jobs", []):
            job = Job(**{k: v for k, v in job_data.items() if k != "tasks"})
            for task_data in job_data.get("tasks", []):
                task = Task(**task_data)
                job.tasks[task.id.lower()] = task
                tasks[(task.job_id.lower(), task.id.lower())] = task
            state.jobs[job.id.lower()] = job
        for pool_data in saved.get("pools", []):
            pool = Pool(state, **{k: v for k, v in pool_data.items() if k not in ("nodes", "history")})
            pool.history.load(pool_data.get("history") or [])
            for node_data in pool_data.get("nodes", []):
                running = [tasks[(j, t)] for j, t in node_data.get("running", []) if (j, t) in tasks]
                node = Node(**{k: v for k, v in node_data.items() if k != "running"}, running=running)
                pool.nodes[node.id] = node
            state.add_pool(pool)
        for key, refs in (saved.get("queues") or {}).items():
            state.queues[key] = [tasks[(j, t)] for j, t in refs if (j, t) in tasks]
        state.recount_cores()
        loaded[name] = state
    return loaded
