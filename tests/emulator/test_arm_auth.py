"""ARM accepts only its own audience's tokens from the emulator's tenant, and answers 401 as ARM does."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from reconciler.emulator import Emulator

BATCH_SCOPE = "https://batch.core.windows.net//.default"
ARM_SCOPE = "https://management.azure.com/.default"


class ScopeSwap:
    """An async credential that asks the real credential for another resource than the client wants."""

    def __init__(self, credential: Any, scope: str) -> None:
        self.credential = credential
        self.scope = scope

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = await self.credential.get_token(self.scope)
        return token

    async def close(self) -> None:
        await self.credential.close()

    async def __aenter__(self) -> ScopeSwap:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


async def test_batch_token_is_refused_by_arm(emulator: Emulator) -> None:
    credential = ScopeSwap(emulator.token_credential(), BATCH_SCOPE)
    compute = emulator.compute_client(credential=credential)
    responses: list[Any] = []
    with pytest.raises(ClientAuthenticationError) as refused:
        await compute.virtual_machines.get(
            "rg", "vm", raw_response_hook=lambda r: responses.append(r.http_response)
        )
    assert refused.value.status_code == 401
    assert refused.value.error is not None
    assert refused.value.error.code == "InvalidAuthenticationTokenAudience"
    challenge = responses[-1].headers["WWW-Authenticate"]
    assert f'authorization_uri="{emulator.arm_url}/{emulator.ctx.tenant_id}"' in challenge


async def test_arm_token_is_refused_by_the_batch_data_plane(emulator: Emulator) -> None:
    from azure.batch.aio import BatchClient

    credential = ScopeSwap(emulator.token_credential(), ARM_SCOPE)
    async with BatchClient(
        emulator.batch_url(tls=True), credential, connection_verify=str(emulator.ca_bundle)
    ) as batch:
        with pytest.raises(HttpResponseError) as refused:
            await batch.get_pool("anything")
    assert refused.value.status_code == 401


@pytest.mark.parametrize("kind", ["secret", "certificate"])
async def test_mgmt_clients_authenticate_with_either_service_principal_credential(
    emulator: Emulator, kind: str
) -> None:
    credential = emulator.token_credential(kind=kind)  # type: ignore[arg-type]
    network = emulator.network_client(credential=credential)
    assert [n async for n in network.virtual_networks.list_all()] == []
    batch_mgmt = emulator.batch_mgmt_client(credential=credential)
    account = await batch_mgmt.batch_account.get(emulator.ctx.accounts["demo"].resource_group, "demo")
    assert account.account_endpoint.endswith("/demo")


async def test_wrong_subscription_is_not_found(emulator: Emulator) -> None:
    from azure.mgmt.compute.aio import ComputeManagementClient

    async with ComputeManagementClient(
        emulator.token_credential(),
        "11111111-1111-4111-8111-111111111111",
        base_url=emulator.arm_url,
        connection_verify=str(emulator.ca_bundle),
        credential_scopes=[ARM_SCOPE],
    ) as compute:
        with pytest.raises(HttpResponseError) as missing:
            await compute.virtual_machines.get("rg", "vm")
    assert missing.value.error is not None
    assert missing.value.error.code == "SubscriptionNotFound"


@pytest.mark.parametrize("audience", ["{arm}/.default", "https://management.core.windows.net//.default"])
async def test_arm_accepts_its_own_url_and_the_legacy_management_audience(
    emulator: Emulator, audience: str
) -> None:
    credential = ScopeSwap(emulator.token_credential(), audience.format(arm=emulator.arm_url))
    compute = emulator.compute_client(credential=credential)
    vms = [vm async for vm in compute.virtual_machines.list_all()]
    assert vms == []


async def test_a_token_for_another_host_is_refused_by_arm(emulator: Emulator) -> None:
    credential = ScopeSwap(emulator.token_credential(), "https://arm.example.net/.default")
    compute = emulator.compute_client(credential=credential)
    with pytest.raises(ClientAuthenticationError) as refused:
        await compute.virtual_machines.get("rg", "vm")
    assert refused.value.status_code == 401
