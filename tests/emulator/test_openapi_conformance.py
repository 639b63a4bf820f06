"""The OpenAPI validation policy itself, then every data-plane operation the emulator serves driven through
the real aio SDK client with that policy in its pipeline."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from emulator_env import new_pool
from openapi import BATCH_SPEC, BatchOpenApi, OpenApiValidationPolicy

from reconciler.emulator import Emulator, ThreadedEmulator
from reconciler.emulator.batch.routes import ROUTES

EXAMPLES = sorted(path for path in BATCH_SPEC.parent.glob("*_*.json"))
POOL_URL = "http://127.0.0.1:8777/demo/pools/pool1"
LAST_MODIFIED = {"Last-Modified": "Thu, 13 Oct 2016 19:18:47 GMT"}


@pytest.fixture(scope="module")
def spec() -> BatchOpenApi:
    return BatchOpenApi()


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((BATCH_SPEC.parent / name).read_text())
    return document


def pool_body() -> dict[str, Any]:
    return copy.deepcopy(example("Pools_GetPool_Basic.json")["responses"]["200"]["body"])


def check(policy: OpenApiValidationPolicy, body: object, *, status: int = 200, url: str = POOL_URL) -> str:
    raw = json.dumps(body).encode()
    return policy.check("GET", url, status, LAST_MODIFIED, raw)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_reference_example_response_passes(spec: BatchOpenApi, path: Path) -> None:
    document = json.loads(path.read_text())
    operations = {op.operation_id: op for _, op in spec.operations}
    operation = operations[document["operationId"]]
    policy = OpenApiValidationPolicy(spec)
    url = "http://127.0.0.1:8777/demo" + operation.template.replace("{", "").replace("}", "")

    for status, response in document["responses"].items():
        raw = json.dumps(response["body"]).encode() if "body" in response else b""
        assert (
            policy.check(operation.method, url, int(status), response.get("headers", {}), raw)
            == (document["operationId"])
        )


def test_a_valid_pool_passes_and_is_recorded(spec: BatchOpenApi) -> None:
    policy = OpenApiValidationPolicy(spec)

    assert check(policy, pool_body()) == "Pools_GetPool"
    assert policy.seen == {"Pools_GetPool"}
    assert policy.statuses[("Pools_GetPool", 200)] == 1


@pytest.mark.parametrize(
    ("mutate", "pointer", "problem"),
    [
        (lambda b: b.update(allocationState="bogus"), "/allocationState", "'bogus' is not one of"),
        (lambda b: b.update(creationTime="2016-13-45T19:00:00Z"), "/creationTime", "is not a 'date-time'"),
        (lambda b: b.update(creationTime="11/22/2016 19:00:00"), "/creationTime", "is not a 'date-time'"),
        (lambda b: b.update(resizeTimeout="15 minutes"), "/resizeTimeout", "is not a 'duration'"),
        (lambda b: b.update(currentDedicatedNodes=2**31), "/currentDedicatedNodes", "is not a 'int32'"),
        (lambda b: b.update(currentDedicatedNodes="2"), "/currentDedicatedNodes", "is not of type 'integer'"),
        (lambda b: b.update(allocation_state="steady"), "", "unexpected property 'allocation_state'"),
        (lambda b: b.update(url="not a url"), "/url", "is not a 'uri'"),
        (lambda b: b.update(metadata=[{"name": "a"}]), "/metadata/0", "'value' is a required property"),
        (lambda b: b.update(enableAutoScale=None), "/enableAutoScale", "None is not of type 'boolean'"),
    ],
)
def test_a_nonconforming_pool_fails_with_operation_pointer_and_message(
    spec: BatchOpenApi, mutate: Any, pointer: str, problem: str
) -> None:
    body = pool_body()
    mutate(body)

    with pytest.raises(AssertionError) as caught:
        check(OpenApiValidationPolicy(spec), body)

    text = str(caught.value)
    assert text.startswith("Pools_GetPool (GET /demo/pools/pool1 -> 200):")
    assert f"\n  {pointer or '/'}: " in text
    assert problem in text


def test_odata_annotations_are_allowed(spec: BatchOpenApi) -> None:
    body = pool_body() | {"odata.metadata": "https://account.region.batch.azure.com/$metadata#pools/@Element"}
    assert check(OpenApiValidationPolicy(spec), body) == "Pools_GetPool"


def test_error_bodies_are_checked_against_batch_error(spec: BatchOpenApi) -> None:
    policy = OpenApiValidationPolicy(spec)
    error = {
        "code": "PoolBeingResized",
        "message": {"lang": "en-US", "value": "The specified pool is being resized."},
        "values": [{"key": "RequestId", "value": "00000000-0000-0000-0000-000000000000"}],
    }

    assert check(policy, error, status=409) == "Pools_GetPool"
    with pytest.raises(
        AssertionError, match=r"/message: 'The pool is being resized.' is not of type 'object'"
    ):
        check(policy, error | {"message": "The pool is being resized."}, status=409)


def test_undeclared_status_and_unknown_path_fail(spec: BatchOpenApi) -> None:
    policy = OpenApiValidationPolicy(spec)

    with pytest.raises(AssertionError, match="status 201 is not one the operation declares"):
        check(policy, pool_body(), status=201)
    with pytest.raises(AssertionError, match="no operation in the OpenAPI document serves this path"):
        check(policy, {}, url="http://127.0.0.1:8777/demo/pools/pool1/bogus")
    assert policy.seen == set()


@pytest.mark.parametrize("condition", ["If-None-Match", "If-Modified-Since"])
def test_a_bodiless_304_answers_a_conditional_get(spec: BatchOpenApi, condition: str) -> None:
    policy = OpenApiValidationPolicy(spec)
    asked = {
        condition: '"0x8D4123BEF87D233"' if condition == "If-None-Match" else LAST_MODIFIED["Last-Modified"]
    }

    assert policy.check("GET", POOL_URL, 304, {}, b"", request_headers=asked) == "Pools_GetPool"
    assert policy.statuses[("Pools_GetPool", 304)] == 1
    with pytest.raises(AssertionError, match="a 304 Not Modified carries no body"):
        policy.check("GET", POOL_URL, 304, {}, json.dumps(pool_body()).encode(), request_headers=asked)


def test_a_304_nobody_asked_for_fails(spec: BatchOpenApi) -> None:
    policy = OpenApiValidationPolicy(spec)

    with pytest.raises(AssertionError, match="status 304 answers only a GET with If-None-Match"):
        policy.check("GET", POOL_URL, 304, {}, b"", request_headers={"If-Match": '"0x1"'})
    with pytest.raises(AssertionError, match="this POST carried neither"):
        policy.check("POST", POOL_URL + "/resize", 304, {}, b"", request_headers={"If-None-Match": '"0x1"'})
    assert policy.seen == set()


def test_paths_match_with_and_without_the_account_prefix(spec: BatchOpenApi) -> None:
    assert spec.find("POST", "/demo/pools/p1/resize") is not None
    assert spec.find("POST", "/pools/p1/resize") is not None
    assert spec.find("GET", "/pools/pools") is not None
    found = spec.find("GET", "/pools/pools")
    assert found is not None
    assert found.operation_id == "Pools_ListPools"
    node = spec.find("GET", "/demo/pools/p1/nodes/tvm-1")
    assert node is not None
    assert node.operation_id == "Nodes_GetNode"


def test_malformed_headers_and_bodies_fail(spec: BatchOpenApi) -> None:
    policy = OpenApiValidationPolicy(spec)
    raw = json.dumps(pool_body()).encode()

    with pytest.raises(
        AssertionError, match="header Last-Modified: '2016-10-13T19:18:47Z' is not an RFC 7231"
    ):
        policy.check("GET", POOL_URL, 200, {"last-modified": "2016-10-13T19:18:47Z"}, raw)
    with pytest.raises(AssertionError, match="the body is not JSON"):
        policy.check("GET", POOL_URL, 200, {}, b"<html>")
    with pytest.raises(AssertionError, match="the response has no body"):
        policy.check("GET", POOL_URL, 200, {}, b"")
    assert policy.check("GET", POOL_URL, 200, {}, None) == "Pools_GetPool"  # streamed: not read, not judged


# ---- the emulator, through the real aio SDK client, with the policy in its pipeline ----

SETTLE = 20 * 60  # simulated seconds: enough for allocation, resizes and deletes to finish


@pytest.fixture
async def validated(emulator: Emulator) -> AsyncIterator[tuple[Any, OpenApiValidationPolicy]]:
    policy = OpenApiValidationPolicy()
    # After the retry policy and inside the SDK's error policy, so error bodies are validated too.
    async with emulator.batch_client(per_retry_policies=[policy]) as client:
        yield client, policy


async def collect(pages: AsyncIterable[Any]) -> list[Any]:
    return [item async for item in pages]


async def test_every_served_operation_conforms(
    emulator: Emulator, validated: tuple[Any, OpenApiValidationPolicy]
) -> None:
    client, policy = validated
    served = {operation for _, _, operation, _ in ROUTES}
    assert served <= policy.spec.operation_ids, "the emulator serves operations the document lacks"

    await client.create_pool(
        new_pool("conf-a", 2, metadata=[models.BatchMetadataItem(name="team", value="x")])
    )
    await client.create_pool(new_pool("conf-b"))
    with pytest.raises(ResourceExistsError):
        await client.create_pool(new_pool("conf-a"))
    emulator.clock.advance(SETTLE)

    pools = await collect(client.list_pools(max_results=1))
    assert [pool.id for pool in pools] == ["conf-a", "conf-b"]
    assert [
        p.id for p in await collect(client.list_pools(filter="id eq 'conf-b'", select=["id", "state"]))
    ] == ["conf-b"]
    pool = await client.get_pool("conf-a", select=["id", "allocationState", "currentDedicatedNodes"])
    assert (pool.allocation_state, pool.current_dedicated_nodes) == ("steady", 2)
    current = await client.get_pool("conf-a")
    for condition in (
        {"etag": current.etag, "match_condition": MatchConditions.IfModified},
        {"if_modified_since": current.last_modified},
    ):
        with pytest.raises(ResourceModifiedError) as not_modified:  # how azure-batch 15.1 reports a 304
            await client.get_pool("conf-a", **condition)
        assert not_modified.value.status_code == 304
    assert policy.statuses[("Pools_GetPool", 304)] == 2
    assert await client.pool_exists("conf-a")
    with pytest.raises(ResourceNotFoundError):  # azure-batch 15.1 raises on the documented 404
        await client.pool_exists("conf-missing")
    with pytest.raises(ResourceNotFoundError):
        await client.get_pool("conf-missing")

    await client.update_pool("conf-a", models.BatchPoolUpdateOptions(metadata=[]))
    # The document requires certificateReferences; azure-batch 15.1's model no longer has the field.
    replace = models.BatchPoolReplaceOptions(application_package_references=[], metadata=[])
    await client.replace_pool_properties("conf-a", replace)

    nodes = await collect(client.list_nodes("conf-a"))
    assert len(nodes) == 2
    await client.get_node("conf-a", nodes[0].id)
    counts = await collect(client.list_pool_node_counts())
    assert {c.pool_id for c in counts} == {"conf-a", "conf-b"}

    await client.create_job(
        models.BatchJobCreateOptions(id="conf-job", pool_info=models.BatchPoolInfo(pool_id="conf-a"))
    )
    await client.create_task("conf-job", models.BatchTaskCreateOptions(id="t1", command_line="sleep 120"))
    group = models.BatchTaskGroup(
        task_values=[models.BatchTaskCreateOptions(id=f"t{i}", command_line="sleep 60") for i in (2, 3)]
    )
    await client.create_task_collection("conf-job", group)
    emulator.clock.advance(30)
    assert {t.id for t in await collect(client.list_tasks("conf-job"))} == {"t1", "t2", "t3"}
    await client.get_task("conf-job", "t1")
    await client.get_job("conf-job")
    await collect(client.list_jobs())
    await client.get_job_task_counts("conf-job")

    await client.begin_resize_pool("conf-a", models.BatchPoolResizeOptions(target_dedicated_nodes=4))
    with pytest.raises(ResourceExistsError):  # 409 PoolBeingResized
        await client.begin_resize_pool("conf-a", models.BatchPoolResizeOptions(target_dedicated_nodes=5))
    await client.begin_stop_pool_resize("conf-a")
    emulator.clock.advance(SETTLE)
    node_ids = [node.id for node in await collect(client.list_nodes("conf-a"))]
    await client.begin_remove_nodes("conf-a", models.BatchNodeRemoveOptions(node_ids=node_ids[:1]))
    emulator.clock.advance(SETTLE)

    await client.enable_pool_auto_scale(
        "conf-b",
        models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 1",
            auto_scale_evaluation_interval=timedelta(minutes=5),
        ),
    )
    run = await client.evaluate_pool_auto_scale(
        "conf-b",
        models.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = 2; x = 3"),
    )
    assert (
        run.results == "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;x=3"
    )
    with pytest.raises(HttpResponseError) as bad_formula:
        await client.evaluate_pool_auto_scale(
            "conf-b",
            models.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = foo(2)"),
        )
    assert bad_formula.value.status_code == 400
    autoscaled = await client.get_pool("conf-b")
    assert autoscaled.enable_auto_scale
    assert autoscaled.auto_scale_run is not None
    await client.disable_pool_auto_scale("conf-b")

    await client.begin_delete_job("conf-job")
    await client.begin_delete_pool("conf-a")
    with pytest.raises(ResourceExistsError):  # 409 PoolBeingDeleted
        await client.begin_resize_pool("conf-a", models.BatchPoolResizeOptions(target_dedicated_nodes=1))
    await client.begin_delete_pool("conf-b")
    emulator.clock.advance(SETTLE)
    assert await collect(client.list_pools()) == []

    assert served - policy.seen == set(), "served operations this test did not exercise"
    errors = {status for (_, status) in policy.statuses if status >= 400}
    assert {400, 404, 409} <= errors


def test_the_policy_reads_bodies_in_the_sync_client_too(threaded_emulator: ThreadedEmulator) -> None:
    policy = OpenApiValidationPolicy()
    client = threaded_emulator.batch_client(per_retry_policies=[policy])

    client.create_pool(new_pool("sync-pool", 1))
    threaded_emulator.advance(SETTLE)
    assert client.get_pool("sync-pool").current_dedicated_nodes == 1
    assert [pool.id for pool in client.list_pools()] == ["sync-pool"]
    with pytest.raises(ResourceNotFoundError):
        client.get_pool("sync-missing")

    assert policy.seen == {"Pools_CreatePool", "Pools_GetPool", "Pools_ListPools"}
    assert policy.statuses[("Pools_GetPool", 404)] == 1
