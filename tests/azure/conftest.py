"""Fixtures for the Azure layer: an emulator with two accounts and configs pointing at it.

- `emu`: a started emulator with accounts `alpha` and `beta` (well-known key).
- `make_config(**accounts_auth)`: a `Config` whose accounts point at `emu` with the given auth per
  account (shared key by default), ARM and identity at the emulator, its CA trusted; `extra` adds
  accounts as written.
- `clients`: `AzureClients` over that config with the SDK's own retries off, so an injected fault
  reaches the test at once instead of being retried after a real sleep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure_env import ACCOUNTS, CALLER, NO_RETRIES, MakeConfig, client_secret, shared_key

from reconciler.azure.clients import AzureClients
from reconciler.emulator import Emulator
from reconciler.spec.config import Config


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(dict.fromkeys(ACCOUNTS)) as emulator:
        yield emulator


@pytest.fixture
def make_config(emu: Emulator) -> MakeConfig:
    def build(
        *,
        tls: bool = False,
        azure_auth: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        **auth: Any,
    ) -> Config:
        accounts = {
            name: {
                "batch_url": emu.batch_url(name, tls=tls),
                "account_name": name,
                "auth": auth.get(name) or shared_key(emu, name),
            }
            for name in ACCOUNTS
        }
        accounts.update(extra or {})
        return Config.model_validate(
            {
                "azure": {
                    "arm_endpoint": emu.arm_url,
                    "authority": emu.connection["identity"]["authority"],
                    "ca_bundle": emu.connection["ca_bundle"],
                    "auth": azure_auth or client_secret(emu),
                },
                "accounts": accounts,
            }
        )

    return build


@pytest.fixture
async def clients(make_config: MakeConfig) -> AsyncIterator[AzureClients]:
    async with AzureClients(make_config(), caller=CALLER, client_options=NO_RETRIES) as held:
        yield held
