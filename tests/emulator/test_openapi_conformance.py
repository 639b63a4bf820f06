"""The OpenAPI validation policy itself, then every data-plane operation the emulator serves driven through
the real aio SDK client with that policy in its pipeline."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from openapi import BATCH_SPEC, BatchOpenApi, OpenApiValidationPolicy

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
