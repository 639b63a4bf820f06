"""The client holder: who calls say they come from, what HTTP logging writes, what it makes and closes."""

from __future__ import annotations

import logging

import pytest
from azure_env import CALLER, NO_RETRIES, MakeConfig, shared_key

from reconciler.azure.clients import AzureClients
from reconciler.azure.credentials import Credentials
from reconciler.azure.errors import ErrorKind
from reconciler.azure.observe import observe_account
from reconciler.emulator import Emulator

BASE_POOL = {
    "vmSize": "standard_d2s_v3",
    "virtualMachineConfiguration": {
        "imageReference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
    },
    "targetDedicatedNodes": 0,
}


async def test_calls_name_their_caller(emu: Emulator, make_config: MakeConfig) -> None:
    async with AzureClients(make_config(), caller="daemon-a", client_options=NO_RETRIES) as first:
        await observe_account(first, "alpha")
    async with AzureClients(make_config(), caller="daemon-b", client_options=NO_RETRIES) as second:
        await observe_account(second, "alpha")
    assert emu.counters.total("batch.Pools_ListPools", "daemon-a") == 1
    assert emu.counters.total("batch.Pools_ListPools", "daemon-b") == 1


async def test_http_logging_writes_no_header_query_or_body(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await observe_account(clients, "alpha")
    lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.azure.http"]
    assert any("/alpha/pools -> 200" in line for line in lines)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert emu.account_key("alpha") not in everything
    assert "SharedKey" not in everything
    assert "$select" not in everything
    assert not [r for r in caplog.records if r.name.startswith("azure.core.pipeline.policies.http_logging")]


async def test_clients_are_made_once_and_closed_with_the_holder(
    emu: Emulator, make_config: MakeConfig
) -> None:
    subscription = emu.connection["arm"]["subscription_id"]
    async with AzureClients(make_config(), caller=CALLER) as clients:
        batch = clients.batch("alpha")
        assert clients.batch("alpha") is batch
        assert clients.batch("beta") is not batch
        assert clients.compute(subscription) is clients.compute(subscription)
        assert clients.network(subscription) is clients.network(subscription)
        mgmt = clients.batch_mgmt(subscription)
        arm_credential = clients.credentials.arm()
        with pytest.raises(KeyError):
            clients.batch("unknown")
    with pytest.raises(RuntimeError, match="closed"):
        clients.credentials.arm()
    assert mgmt is not None
    assert arm_credential is not None


async def test_credentials_handed_in_stay_open(emu: Emulator, make_config: MakeConfig) -> None:
    config = make_config()
    async with Credentials(config.azure) as credentials:
        async with AzureClients(config, credentials=credentials) as clients:
            first = clients.credentials.arm()
        assert credentials.arm() is first


async def test_a_listing_over_several_pages_is_still_one_listing(
    emu: Emulator, clients: AzureClients
) -> None:
    for index in range(1005):
        emu.batch.add_pool("alpha", {"id": f"p{index:04d}", **BASE_POOL})
    emu.counters.reset()
    observed = await observe_account(clients, "alpha")
    assert len(observed.pools) == 1005
    assert emu.counters.total("batch.Pools_GetPool") == 0
    assert emu.counters.total("batch.Pools_ListPools", CALLER, 200) == 2, "two pages of one listing"
    last = observed.pools["p1004"]
    assert (last.state, last.allocation_state) == ("active", "steady")
    assert last.desired_view["vm_size"] == "standard_d2s_v3"


async def test_an_account_reaches_the_service_through_its_proxy(
    emu: Emulator, make_config: MakeConfig
) -> None:
    dead_proxy = {
        "batch_url": emu.batch_url("alpha"),
        "account_name": "alpha",
        "auth": shared_key(emu, "alpha"),
        "proxies": {"http": "http://127.0.0.1:9"},
    }
    async with AzureClients(
        make_config(extra={"viaproxy": dead_proxy}), client_options=NO_RETRIES
    ) as clients:
        direct = await observe_account(clients, "alpha")
        proxied = await observe_account(clients, "viaproxy")
    assert direct.error is None
    assert proxied.error is not None
    assert proxied.error.kind is ErrorKind.TRANSIENT
