"""Pools, nodes, jobs and tasks rendered as the service's REST JSON.

Field order and defaults follow the service's own responses (see the reference examples) so a client
comparing bodies, or a human reading them, sees what Azure would show.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from reconciler.emulator.batch.jobs import Job, Task
from reconciler.emulator.batch.nodes import Node
from reconciler.emulator.batch.pools import Pool
from reconciler.emulator.batch.timefmt import iso

ClockAt = Callable[[float], datetime]

NODE_STATES = {
    "creating": "creating",
    "idle": "idle",
    "offline": "offline",
    "preempted": "preempted",
    "rebooting": "rebooting",
    "reimaging": "reimaging",
    "running": "running",
    "starting": "starting",
    "starttaskfailed": "startTaskFailed",
    "leavingpool": "leavingPool",
    "unknown": "unknown",
    "unusable": "unusable",
    "waitingforstarttask": "waitingForStartTask",
    "deallocated": "deallocated",
    "deallocating": "deallocating",
    "upgradingos": "upgradingOS",
}

# Properties the pool's own state answers for; the rest of the spec is echoed as given.
_STATEFUL = frozenset(
    {
        "id",
        "targetDedicatedNodes",
        "targetLowPriorityNodes",
        "enableAutoScale",
        "autoScaleFormula",
        "autoScaleEvaluationInterval",
    }
)


def metadata_url(base: str, what: str) -> str:
    return f"{base}/$metadata#{what}"


def _entity(base: str, what: str, element: bool) -> dict[str, Any]:
    """A body of its own carries the OData annotation first; an item of a list carries none."""
    return {"odata.metadata": metadata_url(base, f"{what}/@Element")} if element else {}


def _echo(body: dict[str, Any], spec: dict[str, Any], stateful: frozenset[str] = frozenset()) -> None:
    """The rest of the request as given, after what the state answers for: the service echoes it."""
    for key, value in spec.items():
        if key not in body and key not in stateful:
            body[key] = value


def pool_body(pool: Pool, base: str, *, element: bool = True) -> dict[str, Any]:
    at = pool.account.clock_at
    body = _entity(base, "pools", element)
    body.update(
        {
            "id": pool.id,
            "url": f"{base}/pools/{pool.id}",
            "eTag": pool.etag,
            "lastModified": iso(at(pool.last_modified)),
            "creationTime": iso(at(pool.created)),
            "state": pool.state,
            "stateTransitionTime": iso(at(pool.state_time)),
            "allocationState": pool.allocation_state,
            "allocationStateTransitionTime": iso(at(pool.allocation_time)),
        }
    )
    for key in ("displayName", "vmSize", "virtualMachineConfiguration", "resizeTimeout"):
        if key in pool.spec:
            body[key] = pool.spec[key]
    if pool.allocation_state == "steady" and pool.resize_errors:
        body["resizeErrors"] = pool.resize_errors
    if "resourceTags" in pool.spec:
        body["resourceTags"] = pool.spec["resourceTags"]
    body["currentDedicatedNodes"] = pool.count(True)
    body["currentLowPriorityNodes"] = pool.count(False)
    body["targetDedicatedNodes"] = pool.target_dedicated
    body["targetLowPriorityNodes"] = pool.target_low_priority
    body["enableAutoScale"] = pool.autoscale
    if pool.autoscale:
        body["autoScaleFormula"] = pool.spec.get("autoScaleFormula", "")
        body["autoScaleEvaluationInterval"] = pool.spec.get("autoScaleEvaluationInterval", "PT15M")
        if pool.autoscale_run is not None:
            body["autoScaleRun"] = pool.autoscale_run
    _echo(body, pool.spec, _STATEFUL)
    if pool.communication_mode is not None:
        body["currentNodeCommunicationMode"] = pool.communication_mode
    if pool.identity:
        body["identity"] = pool.identity
    return body


def node_body(pool: Pool, node: Node, base: str, *, element: bool = True) -> dict[str, Any]:
    at = pool.account.clock_at
    body = _entity(base, "nodes", element)
    body.update(
        {
            "id": node.id,
            "url": f"{base}/pools/{pool.id}/nodes/{node.id}",
            "state": node.state,
            "schedulingState": node.scheduling,
            "stateTransitionTime": iso(at(node.state_time)),
        }
    )
    if node.boot_time is not None:
        body["lastBootTime"] = iso(at(node.boot_time))
    body.update(
        {
            "allocationTime": iso(at(node.allocation_time)),
            "ipAddress": node.ip,
            "affinityId": f"TVM:{node.id}",
            "vmSize": pool.vm_size.lower(),
            "totalTasksRun": node.total_run,
            "totalTasksSucceeded": node.total_succeeded,
            "runningTasksCount": len(node.running),
            "runningTaskSlotsCount": node.used_slots(),
            "isDedicated": node.dedicated,
        }
    )
    if node.running:
        body["recentTasks"] = [
            {
                "taskUrl": f"{base}/jobs/{task.job_id}/tasks/{task.id}",
                "jobId": task.job_id,
                "taskId": task.id,
                "taskState": task.state,
                "executionInfo": task_execution(task, pool.account.clock_at),
            }
            for task in node.running
        ]
    if pool.spec.get("startTask"):
        body["startTask"] = pool.spec["startTask"]
    if node.start_task_state is not None and node.start_task_start is not None:
        info: dict[str, Any] = {
            "state": node.start_task_state,
            "startTime": iso(at(node.start_task_start)),
            "retryCount": 0,
        }
        if node.start_task_end is not None:
            failed = node.start_task_fails
            info["endTime"] = iso(at(node.start_task_end))
            info["exitCode"] = 1 if failed else 0
            info["result"] = "failure" if failed else "success"
            if failed:
                info["failureInfo"] = {
                    "category": "usererror",
                    "code": "FailureExitCode",
                    "message": "The task exited with an exit code representing a failure",
                }
        body["startTaskInfo"] = info
    body["nodeAgentInfo"] = {"version": "1.12.0.0", "lastUpdateTime": iso(at(node.allocation_time))}
    return body


def node_counts(nodes: list[Node]) -> dict[str, int]:
    counts = dict.fromkeys(NODE_STATES.values(), 0)
    for node in nodes:
        counts[NODE_STATES.get(node.state, "unknown")] += 1
    counts["total"] = len(nodes)
    return counts


def job_body(job: Job, base: str, clock_at: ClockAt, *, element: bool = True) -> dict[str, Any]:
    body = _entity(base, "jobs", element)
    body.update(
        {
            "id": job.id,
            "url": f"{base}/jobs/{job.id}",
            "eTag": job.etag,
            "lastModified": iso(clock_at(job.last_modified)),
            "creationTime": iso(clock_at(job.created)),
            "state": job.state,
            "stateTransitionTime": iso(clock_at(job.state_time)),
        }
    )
    _echo(body, job.spec)
    body["executionInfo"] = {"startTime": iso(clock_at(job.created)), "poolId": job.pool_id}
    return body


def task_execution(task: Task, clock_at: ClockAt) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if task.start_time is not None:
        info["startTime"] = iso(clock_at(task.start_time))
    if task.end_time is not None and task.state == "completed":
        info["endTime"] = iso(clock_at(task.end_time))
        info["exitCode"] = task.exit_code
    if task.failure is not None and task.state == "completed":
        info["failureInfo"] = task.failure
    info["retryCount"] = 0
    info["requeueCount"] = task.requeue_count
    if task.last_requeue is not None:
        info["lastRequeueTime"] = iso(clock_at(task.last_requeue))
    if task.result is not None and task.state == "completed":
        info["result"] = task.result
    return info


def task_body(task: Task, base: str, clock_at: ClockAt, *, element: bool = True) -> dict[str, Any]:
    body = _entity(base, "tasks", element)
    body.update(
        {
            "id": task.id,
            "url": f"{base}/jobs/{task.job_id}/tasks/{task.id}",
            "eTag": task.etag,
            "creationTime": iso(clock_at(task.created)),
            "lastModified": iso(clock_at(task.last_modified)),
            "state": task.state,
            "stateTransitionTime": iso(clock_at(task.state_time)),
        }
    )
    if task.previous_state is not None and task.previous_state_time is not None:
        body["previousState"] = task.previous_state
        body["previousStateTransitionTime"] = iso(clock_at(task.previous_state_time))
    _echo(body, task.spec)
    body["executionInfo"] = task_execution(task, clock_at)
    if task.node_id is not None and task.pool_id is not None and task.state != "active":
        node_url = f"{base}/pools/{task.pool_id}/nodes/{task.node_id}"
        body["nodeInfo"] = {
            "affinityId": f"TVM:{task.node_id}",
            "nodeUrl": node_url,
            "poolId": task.pool_id,
            "nodeId": task.node_id,
            "taskRootDirectory": f"workitems/{task.job_id}/job-1/{task.id}",
            "taskRootDirectoryUrl": f"{node_url}/files/workitems/{task.job_id}/job-1/{task.id}",
        }
    return body
