"""Fixtures for cluster tests: a fast emulator with the network in place, and clients on it.

- `emu`: an emulator at `FAST` time scale; `network`/`compute` (tests/conftest.py) are its SDK clients.
- `subnet_id`: the `workers` subnet of a vnet and NSG created through the network SDK.
- `recorder`: a pipeline policy keeping every VM PUT body the reconciler sends.
- `make_clients(config)`: `AzureClients` over a config, with `recorder` in their pipeline.
- `engine_for(config, time_scale=FAST, **limits)`: a `ClusterEngine` paced for the emulator's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cluster_env import FAST, RecordedBodies, make_network

from reconciler.azure.clients import AzureClients
from reconciler.emulator import Emulator
from reconciler.engine.clusters import ClusterEngine, ClusterLimits
from reconciler.engine.wait import Pacing
from reconciler.spec.config import Config


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=FAST) as emulator:
        yield emulator


@pytest.fixture
async def subnet_id(network: Any) -> str:
    return await make_network(network)


@pytest.fixture
def recorder() -> RecordedBodies:
    return RecordedBodies()


@pytest.fixture
async def make_clients(recorder: RecordedBodies) -> AsyncIterator[Callable[[Config], AzureClients]]:
    held: list[AzureClients] = []

    def build(config: Config) -> AzureClients:
        clients = AzureClients(
            config, caller="cluster-test", client_options={"per_call_policies": [recorder]}
        )
        held.append(clients)
        return clients

    yield build
    for clients in held:
        await clients.close()


@pytest.fixture
def engine_for(
    make_clients: Callable[[Config], AzureClients],
) -> Callable[..., ClusterEngine]:
    def build(config: Config, *, time_scale: float = FAST, **limits: Any) -> ClusterEngine:
        return ClusterEngine(
            make_clients(config),
            pacing=Pacing(time_scale=time_scale),
            limits=ClusterLimits(**limits),
        )

    return build
