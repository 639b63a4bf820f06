"""The listeners and the shared request pipeline, exercised through real HTTP(S) clients."""

from __future__ import annotations

import json
import re
import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.core.rest import HttpRequest

import reconciler.emulator
from reconciler.emulator import Emulator, ThreadedEmulator
from reconciler.emulator.server import pipeline_middleware

# `batch.Pools_GetPool`: a part, a dot and an operation id with its underscore.
ROUTE_NAME = re.compile(r"\b(?:batch|arm|identity|emulator)\.[A-Z][A-Za-z]*_[A-Z][A-Za-z]*\b")


async def test_both_listeners_start_on_ephemeral_ports(emulator: Emulator) -> None:
    assert emulator.port > 0
    assert emulator.arm_port > 0
    assert emulator.port != emulator.arm_port
    ssl_context = ssl.create_default_context(cafile=str(emulator.ca_bundle))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emulator.admin_url}/clock") as plain:
            assert plain.status == 200
        async with session.get(f"{emulator.arm_url}/_emulator/clock", ssl=ssl_context) as secure:
            assert secure.status == 200
            assert "elapsed" in await secure.json()


async def test_https_is_refused_without_the_emulator_ca(emulator: Emulator) -> None:
    async with emulator.batch_client(tls=True, connection_verify=True, retry_total=0) as untrusting:
        with pytest.raises(ServiceRequestError):
            await untrusting.get_pool("p1")


async def test_https_works_with_the_emulator_ca(emulator: Emulator) -> None:
    async with emulator.batch_client(tls=True) as client:
        response = await client.send_request(HttpRequest("GET", f"{emulator.arm_url}/_emulator/clock"))
        assert response.status_code == 200


async def test_request_id_and_client_request_id_echo(emulator: Emulator) -> None:
    client_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as session:
        headers = {"client-request-id": client_id, "return-client-request-id": "true"}
        async with session.get(f"{emulator.admin_url}/clock", headers=headers) as echoed:
            assert uuid.UUID(echoed.headers["request-id"])
            assert echoed.headers["client-request-id"] == client_id
        async with session.get(
            f"{emulator.admin_url}/clock", headers={"client-request-id": client_id}
        ) as quiet:
            assert "client-request-id" not in quiet.headers
            assert quiet.headers["request-id"] != echoed.headers["request-id"]


async def test_unrouted_paths_answer_in_the_service_error_format(emulator: Emulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emulator.http_url}/demo/no-such-collection") as batch,
    ):
        assert batch.status == 404
        body = await batch.json()
        assert body["code"] == "ResourceNotFound"
        assert body["message"]["lang"] == "en-US"
        assert batch.headers["request-id"] in body["message"]["value"]


def test_connection_facts(emulator: Emulator) -> None:
    connection = emulator.connection
    assert connection["batch"]["demo"]["url"] == f"http://127.0.0.1:{emulator.port}/demo"
    assert connection["batch"]["demo"]["tls_url"] == f"https://127.0.0.1:{emulator.arm_port}/demo"
    assert connection["batch"]["demo"]["key"] == emulator.account_key("demo")
    assert connection["arm"]["url"] == f"https://127.0.0.1:{emulator.arm_port}"
    assert connection["admin"] == f"http://127.0.0.1:{emulator.port}/_emulator"
    assert set(connection["identity"]) >= {"authority", "tenant_id", "client_id", "client_secret"}
    json.dumps(connection)


async def test_unexpected_errors_become_a_500_in_the_service_format(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in a handler")

    app = web.Application(middlewares=[pipeline_middleware(emulator.ctx, emulator.faults, emulator.counters)])
    app.router.add_get("/{account}/pools/{poolId}", broken, name="batch.Pools_GetPool")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        credential = AzureNamedKeyCredential("demo", emulator.account_key())
        async with BatchClient(f"http://127.0.0.1:{port}/demo", credential, retry_total=0) as client:
            with pytest.raises(HttpResponseError) as raised:
                await client.get_pool("p1")
    finally:
        await runner.cleanup()
    assert raised.value.status_code == 500
    assert raised.value.error is not None
    assert raised.value.error.code == "InternalServerError"
    assert "a bug in a handler" in caplog.text  # the traceback stays server-side
    assert "a bug in a handler" not in str(raised.value)
    assert emulator.counters.total(operation="batch.Pools_GetPool", status=500) == 1


async def test_admin_advances_the_clock_and_sets_the_time_scale(emulator: Emulator) -> None:
    before = emulator.clock.monotonic()
    async with aiohttp.ClientSession(base_url=emulator.http_url) as session:
        async with session.post("/_emulator/clock/advance", json={"seconds": 600}) as advanced:
            assert advanced.status == 200
        async with session.post("/_emulator/clock/advance", json={"seconds": -1}) as backwards:
            assert backwards.status == 400
        async with session.post("/_emulator/time-scale", json={"time_scale": 60}) as scaled:
            assert (await scaled.json())["time_scale"] == 60
        async with session.get("/_emulator/state") as state:
            dumped = await state.json()
    assert emulator.clock.monotonic() - before >= 600
    assert emulator.clock.time_scale == 60
    assert "batch" in dumped["parts"]


def test_threaded_emulator_serves_the_sync_client(threaded_emulator: ThreadedEmulator) -> None:
    client = threaded_emulator.batch_client(tls=True)
    assert list(client.list_pools()) == []
    before = threaded_emulator.call(threaded_emulator.clock.monotonic)
    threaded_emulator.advance(120)
    assert threaded_emulator.call(threaded_emulator.clock.monotonic) >= before + 120
    assert threaded_emulator.counters.total(operation="batch.Pools_ListPools", status=200) == 1


async def test_ready_made_clients_reach_every_face(emulator: Emulator) -> None:
    group = "rg-emulator"
    async with emulator.batch_client(tls=True, auth="token") as data_plane:
        assert [p async for p in data_plane.list_pools()] == []
    assert [vm async for vm in emulator.compute_client().virtual_machines.list(group)] == []
    assert [net async for net in emulator.network_client().virtual_networks.list(group)] == []
    pools = emulator.batch_mgmt_client().pool.list_by_batch_account(group, "demo")
    assert [pool async for pool in pools] == []
    with pytest.raises(ValueError, match="HTTPS"):
        emulator.batch_client(auth="token")


def test_threaded_emulator_serves_the_sync_management_clients(threaded_emulator: ThreadedEmulator) -> None:
    assert list(threaded_emulator.batch_client(tls=True, auth="token").list_pools()) == []
    assert list(threaded_emulator.compute_client().virtual_machines.list("rg-emulator")) == []
    assert threaded_emulator.counters.total(operation="arm.*", status=200) >= 1


async def test_a_busy_port_fails_start_and_cleans_up(emulator: Emulator) -> None:
    second = Emulator(port=emulator.port)
    with pytest.raises(OSError):
        await second.start()
    await second.stop()  # harmless after a failed start
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    third = Emulator(port=free, arm_port=emulator.arm_port)  # HTTP binds, HTTPS cannot
    with pytest.raises(OSError):
        await third.start()
    async with Emulator(port=free) as fourth:  # so the HTTP listener was released
        assert fourth.port == free


async def test_batch_error_bodies_name_the_request_id_of_the_headers(batch_client: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as raised:
        await batch_client.get_pool("no-such-pool")
    response = raised.value.response
    assert response is not None
    request_id = response.headers["request-id"]
    assert response.headers["x-ms-request-id"] == request_id
    lines = response.json()["message"]["value"].splitlines()
    assert f"RequestId:{request_id}" in lines


def test_route_names_in_the_emulator_sources_are_real_routes(emulator: Emulator) -> None:
    served = emulator.operations
    mentioned = {
        (path.name, name)
        for path in Path(reconciler.emulator.__file__).parent.rglob("*.py")
        for name in ROUTE_NAME.findall(path.read_text())
    }
    assert mentioned, "the pattern no longer finds the route names the sources mention"
    assert sorted((file, name) for file, name in mentioned if name not in served) == []
