"""The pool body that tests (and the throughput benchmark) create in the emulator through the real SDK.

Imported by name, as `emulator_env`, so unlike `conftest` it cannot collide with another folder's helper.
"""

from __future__ import annotations

from typing import Any

from azure.batch import models

IMAGE = models.BatchVmImageReference(
    publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
)
VM = models.VirtualMachineConfiguration(image_reference=IMAGE, node_agent_sku_id="batch.node.ubuntu 22.04")


def new_pool(pool_id: str, dedicated: int = 0, **extra: Any) -> models.BatchPoolCreateOptions:
    """A plain Ubuntu pool of `standard_d2s_v3` nodes; `extra` sets any other create property."""
    return models.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=VM,
        target_dedicated_nodes=dedicated,
        **extra,
    )
