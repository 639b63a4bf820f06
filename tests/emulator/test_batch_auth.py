"""Shared Key verification: the SDK's own signatures pass, anything else is the service's 403."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from azure.batch import models as m
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from reconciler.emulator import Emulator

OTHER_KEY = base64.b64encode(b"not the account key").decode()


def code_of(error: HttpResponseError) -> str:
    assert error.error is not None
    return str(error.error.code)


async def forbidden(client: BatchClient) -> HttpResponseError:
    async with client:
        with pytest.raises(HttpResponseError) as caught:
            await client.get_pool("anything")
    return caught.value


async def test_wrong_key_is_authentication_failed(emulator: Emulator) -> None:
    client = BatchClient(emulator.batch_url(), AzureNamedKeyCredential("demo", OTHER_KEY))
    error = await forbidden(client)
    assert (error.status_code, code_of(error)) == (403, "AuthenticationFailed")
    assert error.error is not None
    detail = {d.code: str(d.message) for d in error.error.details}
    assert "string to sign" in detail["AuthenticationErrorDetail"]
    assert "/demo/demo/pools/anything" in detail["AuthenticationErrorDetail"]


async def test_unknown_account_is_refused(emulator: Emulator) -> None:
    url = emulator.batch_url().rsplit("/", 1)[0] + "/nobody"
    client = BatchClient(url, AzureNamedKeyCredential("nobody", emulator.account_key()))
    error = await forbidden(client)
    assert (error.status_code, code_of(error)) == (403, "AuthenticationFailed")


async def test_signature_for_another_account_is_refused(emulator: Emulator) -> None:
    client = BatchClient(emulator.batch_url(), AzureNamedKeyCredential("someone", emulator.account_key()))
    error = await forbidden(client)
    assert (error.status_code, code_of(error)) == (403, "AuthenticationFailed")


async def test_missing_or_bearer_authorization_over_http(emulator: Emulator) -> None:
    url = f"{emulator.batch_url()}/pools?api-version=2025-06-01"
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer abc"}):
            async with session.get(url, headers=headers) as response:
                assert response.status == 403
                body: dict[str, Any] = await response.json()
                assert body["code"] == "AuthenticationFailed"
                assert body["message"]["lang"] == "en-US"
                assert "\nRequestId:" in body["message"]["value"]
                assert body["odata.metadata"].endswith(
                    "$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
                )
                assert response.headers["request-id"] in body["message"]["value"]
                assert response.headers["DataServiceVersion"] == "3.0"


async def test_signed_requests_with_bodies_and_queries_pass(emulator: Emulator, batch_client: Any) -> None:
    await batch_client.create_pool(m.BatchPoolCreateOptions(id="signed-ok", vm_size="standard_a1"))
    assert [p.id async for p in batch_client.list_pools(filter="startswith(id,'signed')", max_results=5)] == [
        "signed-ok"
    ]
    await batch_client.disable_pool_auto_scale("signed-ok")
