"""Microsoft's example requests, sent through the real aio SDK, answered as the examples answer them.

Each example's request parameters go through the SDK as a caller would send them; the response (status,
headers named, body) is compared with the example's: the same field names both ways and, for everything an
input echoes back or the service computes deterministically, the same values. Volatile fields (timestamps,
eTags, node ids and addresses, the url's host and account prefix) are compared by presence only. Where the
emulator cannot answer as the example does, the test says so and checks what it can.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.batch import models
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from openapi import BATCH_SPEC, OpenApiValidationPolicy

from reconciler.emulator import Emulator

SETTLE = 20 * 60  # simulated seconds for allocation, start tasks and resizes to finish
VOLATILE = frozenset(
    {
        "eTag", "lastModified", "creationTime", "stateTransitionTime", "allocationStateTransitionTime",
        "lastBootTime", "allocationTime", "startTime", "endTime", "lastUpdateTime", "ipAddress", "affinityId",
        "timestamp", "version",
    }
)  # fmt: skip
# OData annotations the service adds to every body; Microsoft's examples leave them out.
ANNOTATIONS = frozenset({"odata.metadata"})
# What the emulator answers differently from an example, each with its reason. A test fails if a new
# difference appears or a listed one goes away, so this list stays the truth.
KNOWN_DEVIATIONS: dict[str, list[str]] = {
    # From 2016, before currentNodeCommunicationMode existed; the service reports it once a pool has nodes,
    # as the SecurityProfile example (which has a node) shows.
    "Pools_ListPools_Basic.json": ["/value/0/currentNodeCommunicationMode: not in the example"],
    # The example's url names pool "pool" although its id is "mypool001": a slip in the example.
    "Pools_GetPool_SecurityProfile.json": ["/url: '/pools/mypool001', the example has '/pools/pool'"],
    # startTaskInfo.result ("success") is newer than these 2016 examples; the service sets it today.
    "Nodes_ListNodes.json": [f"/value/{i}/startTaskInfo/result: not in the example" for i in range(3)],
    # The GetNode example also leaves out runningTaskSlotsCount, which ListNodes shows for the same node.
    "Nodes_GetNode.json": [
        "/runningTaskSlotsCount: not in the example",
        "/startTaskInfo/result: not in the example",
    ],
    # The example's url names task "taskId" although its id is "testTask": a slip in the example.
    "Tasks_GetTask.json": ["/url: '/jobs/jobId/tasks/testTask', the example has '/jobs/jobId/tasks/taskId'"],
    # From 2016: it prints the alias it was given and no low-priority target. Today's service prints both
    # targets under their full names (azure-sdk-for-python's recorded tests), as the emulator does.
    "Pools_EvaluatePoolAutoscale.json": [
        "/results: '$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue', "
        "the example has '$TargetDedicated=1;$NodeDeallocationOption=requeue'"
    ],
}
_SPEC: dict[str, Any] = json.loads(BATCH_SPEC.read_text())


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((BATCH_SPEC.parent / name).read_text())
    return document


def writable(definition: str, body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a response body that a create request of `definition` accepts: the inputs."""
    accepted = _SPEC["definitions"][definition]["properties"]
    return {key: value for key, value in body.items() if key in accepted}


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = [f"{path}/{key}: missing" for key in expected if key not in actual]
        found += [
            f"{path}/{key}: not in the example"
            for key in actual
            if key not in expected and key not in ANNOTATIONS
        ]
        for key in expected.keys() & actual.keys():
            if key in VOLATILE:
                continue
            if key == "url":
                found += _url_difference(expected[key], actual[key], f"{path}/url")
            else:
                found += differences(expected[key], actual[key], f"{path}/{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(actual)} items, the example has {len(expected)}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{path}/{i}")
        ]
    return [] if expected == actual else [f"{path}: {actual!r}, the example has {expected!r}"]


def _url_difference(expected: str, actual: str, path: str) -> list[str]:
    ours = "/" + urlsplit(actual).path.lstrip("/").partition("/")[2]  # without the emulator's /<account>
    theirs = urlsplit(expected).path
    return [] if ours == theirs else [f"{path}: {ours!r}, the example has {theirs!r}"]


class Recorder(SansIOHTTPPolicy[Any, Any]):
    """The last raw response of the client's pipeline: what the example's response is compared with."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: Any = None

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        self.status = http.status_code
        self.headers = {k.lower(): v for k, v in http.headers.items()}
        text = http.text()
        self.body = json.loads(text) if text else None

    def scrub(self, ids: list[str]) -> None:
        """Blank the ids the service made up (node ids), here and in every url that carries them."""
        text = json.dumps(self.body)
        for made_up in ids:
            text = text.replace(made_up, "NODE")
        self.body = json.loads(text)

    def matches(self, expected: dict[str, Any]) -> list[str]:
        (status, response), *_ = expected["responses"].items()
        problems = [] if self.status == int(status) else [f"status {self.status}, the example has {status}"]
        names = {name.lower() for name in response if name != "body"}
        problems += [f"header {name} missing" for name in sorted(names - self.headers.keys())]
        if "body" in response:
            problems += differences(response["body"], self.body)
        return problems


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(emulator: Emulator, recorder: Recorder) -> AsyncIterator[Any]:
    policies = [OpenApiValidationPolicy(), recorder]
    async with emulator.batch_client(per_retry_policies=policies) as batch:
        yield batch


async def collect(pages: AsyncIterable[Any]) -> list[Any]:
    return [item async for item in pages]


async def create_pool_like(client: Any, body: dict[str, Any]) -> None:
    await client.create_pool(models.BatchPoolCreateOptions(writable("BatchPoolCreateOptions", body)))


def template_pool(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = example("Pools_GetPool_Basic.json")["responses"]["200"]["body"]
    return body | overrides


@pytest.mark.parametrize(
    "name",
    ["Pools_CreatePool_VirtualMachineConfiguration.json", "Pools_CreatePool_AcceleratedNetworking.json"],
)
async def test_create_pool_examples_answer_201_and_echo_every_input(
    client: Any, recorder: Recorder, name: str
) -> None:
    document = example(name)
    request = document["parameters"]["pool"]

    await client.create_pool(models.BatchPoolCreateOptions(request))
    assert recorder.matches(document) == []

    await client.get_pool(request["id"])
    echoed = {key: recorder.body[key] for key in request}
    assert differences(request, echoed) == KNOWN_DEVIATIONS.get(name, [])


@pytest.mark.parametrize("name", ["Pools_GetPool_Basic.json", "Pools_GetPool_SecurityProfile.json"])
async def test_get_pool_examples(emulator: Emulator, client: Any, recorder: Recorder, name: str) -> None:
    document = example(name)
    await create_pool_like(client, document["responses"]["200"]["body"])
    emulator.clock.advance(SETTLE)

    await client.get_pool(document["parameters"]["poolId"])

    assert recorder.matches(document) == KNOWN_DEVIATIONS.get(name, [])


async def test_list_pools_example(emulator: Emulator, client: Any, recorder: Recorder) -> None:
    document = example("Pools_ListPools_Basic.json")
    for pool in document["responses"]["200"]["body"]["value"]:
        await create_pool_like(client, pool)
    emulator.clock.advance(SETTLE)

    await collect(client.list_pools())

    assert recorder.matches(document) == KNOWN_DEVIATIONS["Pools_ListPools_Basic.json"]


async def test_pool_lifecycle_examples_answer_with_their_status_codes(
    emulator: Emulator, client: Any, recorder: Recorder
) -> None:
    resize = example("Pools_ResizePool.json")
    pool_id = resize["parameters"]["poolId"]
    await create_pool_like(client, template_pool(id=pool_id))
    emulator.clock.advance(SETTLE)

    await client.begin_resize_pool(
        pool_id, models.BatchPoolResizeOptions(resize["parameters"]["resizeOptions"])
    )
    assert recorder.matches(resize) == []
    await client.begin_stop_pool_resize(pool_id)
    assert recorder.matches(example("Pools_StopPoolResize.json")) == []
    emulator.clock.advance(SETTLE)

    update = example("Pools_UpdatePool.json")
    await client.update_pool(pool_id, models.BatchPoolUpdateOptions(update["parameters"]["pool"]))
    assert recorder.matches(update) == []
    start_task = (await client.get_pool(pool_id)).start_task
    assert start_task.command_line == update["parameters"]["pool"]["startTask"]["commandLine"]

    replace = example("Pools_ReplacePoolProperties.json")
    await client.replace_pool_properties(
        pool_id, models.BatchPoolReplaceOptions(replace["parameters"]["pool"])
    )
    assert recorder.matches(replace) == []

    statuses = {int(code) for code in example("Pools_PoolExists.json")["responses"]}
    assert await client.pool_exists(pool_id)
    assert recorder.status in statuses
    with pytest.raises(ResourceNotFoundError):  # azure-batch 15.1 raises where the document answers 404
        await client.pool_exists("no-such-pool")
    assert recorder.status in statuses - {200}

    await client.begin_delete_pool(pool_id)
    assert recorder.matches(example("Pools_DeletePool.json")) == []


async def test_autoscale_examples(emulator: Emulator, client: Any, recorder: Recorder) -> None:
    enable = example("Pools_EnablePoolAutoscale.json")
    pool_id = enable["parameters"]["poolId"]
    await create_pool_like(client, template_pool(id=pool_id))
    emulator.clock.advance(SETTLE)

    options = models.BatchPoolEnableAutoScaleOptions(enable["parameters"]["enableAutoScaleOptions"])
    await client.enable_pool_auto_scale(pool_id, options)
    assert recorder.matches(enable) == []
    pool = await client.get_pool(pool_id)
    assert pool.auto_scale_formula == "$TargetDedicated=0"
    assert pool.auto_scale_evaluation_interval.total_seconds() == 8 * 60

    evaluate = example("Pools_EvaluatePoolAutoscale.json")
    formula = evaluate["parameters"]["evaluateAutoScaleOptions"]
    await client.evaluate_pool_auto_scale(pool_id, models.BatchPoolEvaluateAutoScaleOptions(formula))
    assert recorder.matches(evaluate) == KNOWN_DEVIATIONS["Pools_EvaluatePoolAutoscale.json"]

    await client.disable_pool_auto_scale(pool_id)
    assert recorder.matches(example("Pools_DisablePoolAutoScale.json")) == []


async def test_node_examples(emulator: Emulator, client: Any, recorder: Recorder) -> None:
    listed = example("Nodes_ListNodes.json")
    expected_nodes = listed["responses"]["200"]["body"]["value"]
    first = expected_nodes[0]
    pool_id = listed["parameters"]["poolId"]
    await client.create_pool(
        models.BatchPoolCreateOptions(
            {
                "id": pool_id,
                "vmSize": first["vmSize"],
                "virtualMachineConfiguration": {
                    "imageReference": {"publisher": "canonical", "offer": "ubuntuserver", "sku": "18.04-lts"},
                    "nodeAgentSKUId": "batch.node.ubuntu 18.04",
                },
                "targetDedicatedNodes": len(expected_nodes),
                "startTask": first["startTask"],
            }
        )
    )
    emulator.clock.advance(SETTLE)

    nodes = await collect(client.list_nodes(pool_id))
    ids = [node.id for node in nodes]
    recorder.scrub(ids)
    assert recorder.matches(_blank_node_ids(listed)) == KNOWN_DEVIATIONS.get("Nodes_ListNodes.json", [])

    await client.get_node(pool_id, ids[1])
    recorder.scrub(ids)
    assert recorder.matches(_blank_node_ids(example("Nodes_GetNode.json"))) == KNOWN_DEVIATIONS.get(
        "Nodes_GetNode.json", []
    )

    # The example's node ids belong to its own pool; the same request names this pool's nodes.
    await client.begin_remove_nodes(pool_id, models.BatchNodeRemoveOptions({"nodeList": ids}))
    assert recorder.matches(example("Pools_RemoveNodes.json")) == []


def _blank_node_ids(document: dict[str, Any]) -> dict[str, Any]:
    body = document["responses"]["200"]["body"]
    text = json.dumps(document)
    for node in body.get("value", [body]):
        text = text.replace(node["id"], "NODE")
    blanked: dict[str, Any] = json.loads(text)
    return blanked


async def test_node_counts_example_has_the_documented_shape(
    emulator: Emulator, client: Any, recorder: Recorder
) -> None:
    document = example("Pools_ListPoolNodeCounts.json")
    expected = document["responses"]["200"]["body"]["value"]
    for entry in expected:
        dedicated, low = entry["dedicated"]["total"], entry["lowPriority"]["total"]
        await create_pool_like(
            client,
            template_pool(id=entry["poolId"], targetDedicatedNodes=dedicated, targetLowPriorityNodes=low),
        )
    emulator.clock.advance(SETTLE)

    await collect(client.list_pool_node_counts())

    # The example's pools hold offline, reimaging and preempted nodes, which only their own history
    # produced; here the same totals are all idle. Names and totals must match, states by total only.
    got = recorder.body["value"]
    assert [entry["poolId"] for entry in got] == [entry["poolId"] for entry in expected]
    for ours, theirs in zip(got, expected, strict=True):
        for kind in ("dedicated", "lowPriority"):
            assert ours[kind].keys() == theirs[kind].keys()
            assert ours[kind]["total"] == theirs[kind]["total"]
            assert ours[kind]["idle"] == theirs[kind]["total"]


async def test_job_and_task_examples(emulator: Emulator, client: Any, recorder: Recorder) -> None:
    job = example("Jobs_CreateJob_Basic.json")
    await create_pool_like(client, template_pool(id=job["parameters"]["job"]["poolInfo"]["poolId"]))
    emulator.clock.advance(SETTLE)
    await client.create_job(models.BatchJobCreateOptions(job["parameters"]["job"]))
    assert recorder.matches(job) == []
    job_id = job["parameters"]["job"]["id"]

    create = example("Tasks_CreateTask_Basic.json")
    await client.create_task(job_id, models.BatchTaskCreateOptions(create["parameters"]["task"]))
    assert recorder.matches(create) == []

    listed = example("Tasks_ListTasks.json")
    expected = listed["responses"]["200"]["body"]["value"]
    await client.create_task(
        job_id, models.BatchTaskCreateOptions(writable("BatchTaskCreateOptions", expected[1]))
    )
    await collect(client.list_tasks(job_id))
    # task1 came from the CreateTask example, which leaves out the inputs the listed task1 had.
    assert differences(expected[1], recorder.body["value"][1], "/value/1") == KNOWN_DEVIATIONS.get(
        "Tasks_ListTasks.json", []
    )

    get = example("Tasks_GetTask.json")
    body = get["responses"]["200"]["body"]
    await client.create_task(job_id, models.BatchTaskCreateOptions(writable("BatchTaskCreateOptions", body)))
    await client.get_task(job_id, body["id"])
    assert recorder.matches(get) == KNOWN_DEVIATIONS.get("Tasks_GetTask.json", [])


def test_every_reference_example_is_exercised_here() -> None:
    source = Path(__file__).read_text()
    names = sorted(path.name for path in BATCH_SPEC.parent.glob("*_*.json"))
    assert names, "no examples found beside BatchService.json"
    assert [name for name in names if f'"{name}"' not in source] == []
