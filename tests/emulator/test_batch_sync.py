"""The blocking `azure.batch.BatchClient` against the emulator running on its own thread."""

from __future__ import annotations

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from reconciler.emulator import ThreadedEmulator

SETTLE = 600.0


def code_of(error: HttpResponseError) -> str:
    assert error.error is not None
    return str(error.error.code)


def test_sync_client_lifecycle(threaded_emulator: ThreadedEmulator) -> None:
    client: BatchClient = threaded_emulator.batch_client()
    client.create_pool(
        m.BatchPoolCreateOptions(id="sync", vm_size="standard_d4s_v3", target_dedicated_nodes=2)
    )
    with pytest.raises(ResourceExistsError) as exists:
        client.create_pool(m.BatchPoolCreateOptions(id="sync", vm_size="standard_d4s_v3"))
    assert code_of(exists.value) == "PoolExists"

    threaded_emulator.advance(SETTLE)
    pool = client.get_pool("sync")
    assert (pool.allocation_state, pool.current_dedicated_nodes) == (m.AllocationState.STEADY, 2)
    assert [p.id for p in client.list_pools()] == ["sync"]
    assert client.pool_exists("sync")

    client.begin_resize_pool("sync", m.BatchPoolResizeOptions(target_dedicated_nodes=0), polling_interval=1)
    with pytest.raises(HttpResponseError) as busy:
        client.begin_resize_pool("sync", m.BatchPoolResizeOptions(target_dedicated_nodes=1))
    assert (busy.value.status_code, code_of(busy.value)) == (409, "PoolBeingResized")
    threaded_emulator.advance(SETTLE)
    assert client.get_pool("sync").current_dedicated_nodes == 0

    poller = client.begin_delete_pool("sync", polling_interval=1)
    assert client.get_pool("sync").state == m.BatchPoolState.DELETING
    threaded_emulator.advance(SETTLE)
    poller.result(timeout=10)
    with pytest.raises(ResourceNotFoundError) as gone:
        client.get_pool("sync")
    assert code_of(gone.value) == "PoolNotFound"
    client.close()
