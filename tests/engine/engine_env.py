"""What the engine tests share (fixtures are in conftest.py): pool specs and a `World` around an emulator.

`World` builds configs pointing at the emulator, `AzureClients` with the SDK's retries off (so injected
faults reach the engine) and an `Engine` whose `Pacing.time_scale` equals `SCALE`, so every spec duration
and poll interval is compressed exactly as the emulator's clock is.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from reconciler.azure.clients import AzureClients
from reconciler.emulator import Emulator
from reconciler.engine.executor import Engine
from reconciler.engine.limits import Limits
from reconciler.engine.wait import Pacing
from reconciler.spec.config import Config

SCALE = 600.0
ACCOUNT = "demo"
CALLER = "reconciler-engine-test"
IMAGE = {
    "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
    "node_agent_sku_id": "batch.node.ubuntu 22.04",
}


def pool_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "account": ACCOUNT,
        "vm_size": "standard_d2s_v3",
        "virtual_machine_configuration": copy.deepcopy(IMAGE),
        "target_dedicated_nodes": 2,
        "start_task": {"command_line": "echo ready"},
        "metadata": [{"name": "team", "value": "research"}],
    }
    spec.update(overrides)
    return spec


class World:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.pools: dict[str, dict[str, Any]] = {}
        self.safety: dict[str, Any] = {}
        self.events: list[Any] = []

    def config(self) -> Config:
        return Config.model_validate(
            {
                "accounts": {
                    ACCOUNT: {
                        "batch_url": self.emu.batch_url(ACCOUNT),
                        "auth": {"method": "shared_key", "key": self.emu.account_key(ACCOUNT)},
                    }
                },
                "pools": self.pools,
                "safety": self.safety,
            }
        )

    def clients(self) -> AzureClients:
        return AzureClients(self.config(), caller=CALLER, client_options={"retry_total": 0})

    def engine(self, clients: AzureClients, **limits: int) -> Engine:
        pacing = Pacing(time_scale=SCALE)
        return Engine(clients, limits=Limits(**limits), pacing=pacing, observers=[self.events.append])

    def sim_pool(self, pool_id: str) -> Any:
        return self.emu.batch.account(ACCOUNT).pools.get(pool_id.lower())

    def tasks(self, job_id: str) -> list[Any]:
        return list(self.emu.batch.job(ACCOUNT, job_id).tasks.values())

    async def occupy(self, pool_id: str, tasks: int, seconds: float) -> str:
        """A job of `tasks` sleeping tasks on the pool, returned once every node runs one."""
        job = self.emu.batch.occupy_nodes(ACCOUNT, pool_id, tasks, seconds)
        nodes = len(self.sim_pool(pool_id).nodes)
        for _ in range(500):
            if sum(1 for t in self.tasks(job) if t.state == "running") == min(tasks, nodes):
                return job
            await asyncio.sleep(0.01)
        raise AssertionError("the tasks never started")
