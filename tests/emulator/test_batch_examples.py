"""The reference examples served back: the same inputs give the same fields (values of state aside)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azure.core.rest import HttpRequest

from reconciler.emulator import Emulator

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "azure-reference" / "batch-data-plane"
SETTLE = 600.0
# Properties the service added after these examples were recorded; the OpenAPI document declares them.
NEWER = {"odata.metadata", "runningTaskSlotsCount"}


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((REFERENCE / name).read_text())["responses"]["200"]["body"]
    return body


async def call(client: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = HttpRequest(method, f"{path}?api-version=2025-06-01", json=body)
    response = await client.send_request(request)
    assert response.status_code < 300, response.text()
    return response.json() if response.text() else None


async def test_get_pool_matches_the_basic_example(emulator: Emulator, batch_client: Any) -> None:
    expected = example("Pools_GetPool_Basic.json")
    settable = (
        "id",
        "vmSize",
        "resizeTimeout",
        "targetDedicatedNodes",
        "targetLowPriorityNodes",
        "enableAutoScale",
        "enableInterNodeCommunication",
        "startTask",
        "taskSlotsPerNode",
        "taskSchedulingPolicy",
        "virtualMachineConfiguration",
    )
    await call(batch_client, "POST", "/pools", {k: expected[k] for k in settable})
    served = await call(batch_client, "GET", "/pools/pool")
    assert set(served) - NEWER == set(expected)
    for key in settable:
        assert served[key] == expected[key], key
    assert served["state"] == "active"
    assert served["allocationState"] == "steady"

    listed = await call(batch_client, "GET", "/pools")
    assert set(listed["value"][0]) - NEWER == set(example("Pools_ListPools_Basic.json")["value"][0])


async def test_node_matches_the_example(emulator: Emulator, batch_client: Any) -> None:
    expected = example("Nodes_GetNode.json")
    pool = {"id": "nodes", "vmSize": "small", "targetDedicatedNodes": 1, "startTask": expected["startTask"]}
    await call(batch_client, "POST", "/pools", pool)
    emulator.clock.advance(SETTLE)
    [node] = (await call(batch_client, "GET", "/pools/nodes/nodes"))["value"]
    assert set(node) - NEWER == set(expected)
    assert node["startTask"] == expected["startTask"]
    assert node["startTaskInfo"]["state"] == "completed"
    assert node["state"] == "idle"
    assert node["affinityId"] == f"TVM:{node['id']}"


async def test_evaluate_and_node_counts_match_the_examples(emulator: Emulator, batch_client: Any) -> None:
    pool = {
        "id": "pool1",
        "vmSize": "small",
        "enableAutoScale": True,
        "autoScaleFormula": "$TargetDedicated=0",
    }
    await call(batch_client, "POST", "/pools", pool)
    run = await call(
        batch_client, "POST", "/pools/pool1/evaluateautoscale", {"autoScaleFormula": "$TargetDedicated=1"}
    )
    assert set(run) - NEWER == set(example("Pools_EvaluatePoolAutoscale.json"))
    counts = (await call(batch_client, "GET", "/nodecounts"))["value"][0]
    expected = example("Pools_ListPoolNodeCounts.json")["value"][0]
    assert set(counts) == set(expected)
    assert set(counts["dedicated"]) == set(expected["dedicated"])


async def test_task_matches_the_example(emulator: Emulator, batch_client: Any) -> None:
    expected = example("Tasks_GetTask.json")
    await call(batch_client, "POST", "/jobs", {"id": "jobId", "poolInfo": {"poolId": "none-yet"}})
    task = {
        "id": "taskId",
        "commandLine": expected["commandLine"],
        "userIdentity": expected["userIdentity"],
        "multiInstanceSettings": expected["multiInstanceSettings"],
        "constraints": expected["constraints"],
        "requiredSlots": expected["requiredSlots"],
    }
    await call(batch_client, "POST", "/jobs/jobId/tasks", task)
    served = await call(batch_client, "GET", "/jobs/jobId/tasks/taskId")
    assert set(served) - NEWER == set(expected)
    assert served["executionInfo"] == expected["executionInfo"]
    assert served["constraints"] == expected["constraints"]
