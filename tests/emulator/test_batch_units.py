"""Pieces of the Batch emulator with no HTTP in between: core table, OData filters, durations, signing, the
autoscale count history."""

from __future__ import annotations

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from reconciler.emulator.batch.auth import verify_shared_key
from reconciler.emulator.batch.count_history import MAX_SAMPLES, CountHistory, counts
from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.odata import parse_filter
from reconciler.emulator.batch.quotas import DEFAULT_CORES, cores_per_node
from reconciler.emulator.batch.timefmt import format_duration, parse_duration
from reconciler.emulator.context import WELL_KNOWN_ACCOUNT_KEY


@pytest.mark.parametrize(
    ("size", "cores"),
    [
        ("Standard_D2s_v3", 2),
        ("standard_d4s_v3", 4),
        ("STANDARD_D16DS_V5", 16),
        ("standard_f8s_v2", 8),
        ("standard_d13_v2", 8),
        ("standard_nc6", 6),
        ("something_new", DEFAULT_CORES),
    ],
)
def test_cores_per_vm_size(size: str, cores: int) -> None:
    assert cores_per_node(size) == cores


def matches(expression: str, row: dict[str, object]) -> bool:
    predicate = parse_filter(expression)
    assert predicate is not None
    return predicate(row)


def test_filter_subset() -> None:
    row: dict[str, object] = {
        "id": "web-01",
        "state": "active",
        "allocationState": "steady",
        "currentDedicatedNodes": 3,
    }
    assert matches("startswith(id,'web') and state eq 'ACTIVE'", row)
    assert not matches("id eq 'web-02' or allocationState eq 'resizing'", row)
    assert matches("not (id eq 'x') and currentDedicatedNodes ge 3", row)
    assert matches("id eq 'it''s'", {"id": "it's"})
    assert parse_filter("  ") is None
    for bad in ("id like 'a'", "startswith(id,3)", "id eq", "(id eq 'a'"):
        with pytest.raises(BatchServiceError) as caught:
            parse_filter(bad)
        assert caught.value.code == "InvalidQueryParameterValue"


def test_durations() -> None:
    assert parse_duration("PT15M") == 900
    assert parse_duration("P1DT2H") == 93600
    assert parse_duration("PT4M59S") == 299
    assert parse_duration("15 minutes") is None
    assert parse_duration("PT") is None
    assert format_duration(900) == "PT15M"
    assert format_duration(7 * 86400) == "P7D"


def test_signature_made_by_the_sdk_policy_verifies() -> None:
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential("demo", WELL_KNOWN_ACCOUNT_KEY))
    url = "http://127.0.0.1:8777/demo/pools?api-version=2025-06-01&%24filter=startswith%28id%2C%27a%27%29"
    request = HttpRequest("POST", url, json={"id": "a1", "vmSize": "standard_d2s_v3"})
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    headers = dict(request.headers)
    checked = {
        "account": "demo",
        "method": "POST",
        "headers": headers,
        "raw_path": "/demo/pools",
        "raw_query": url.split("?", 1)[1],
    }
    verify_shared_key(headers["Authorization"], key=WELL_KNOWN_ACCOUNT_KEY, **checked)  # type: ignore[arg-type]
    tampered = {**headers, "Content-Length": str(int(headers["Content-Length"]) + 1)}
    with pytest.raises(BatchServiceError) as caught:
        verify_shared_key(
            headers["Authorization"],
            key=WELL_KNOWN_ACCOUNT_KEY,
            **{**checked, "headers": tampered},  # type: ignore[arg-type]
        )
    assert (caught.value.status, caught.value.code) == (403, "AuthenticationFailed")


def test_count_history_keeps_one_point_per_tick_in_a_bounded_ring() -> None:
    history = CountHistory(origin=0.0)
    end = 3 * 3600 - 1
    for second in range(end + 1):  # a change every simulated second for three hours
        history.record(float(second), counts(second % 7, 0, 0, 0, 0))

    assert len(history) <= MAX_SAMPLES + 2
    active = history.samples(float(end))["ActiveTasks"]
    # Sample 0 is now; sample i is the tick at or before now - 30 i: ticks 359, 358, ... (x 30 s).
    assert active == [float(end % 7)] + [float(((359 - i) * 30) % 7) for i in range(1, MAX_SAMPLES)]

    restored = CountHistory(origin=0.0)
    restored.load(history.dump())
    assert restored.samples(float(end)) == history.samples(float(end))


def test_count_history_of_a_quiet_pool_is_one_point() -> None:
    history = CountHistory(origin=100.0)
    for second in range(100, 4000, 5):
        history.record(float(second), counts(2, 1, 1, 0, 1))

    assert len(history) == 1
    samples = history.samples(160.0)
    assert samples["PendingTasks"] == [3.0, 3.0, 3.0]  # at 160 s, and the ticks at 130 s and 100 s
    assert samples["CurrentDedicatedNodes"] == [1.0, 1.0, 1.0]
