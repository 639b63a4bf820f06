"""Shared by emulator tests: the pool they (and the throughput benchmark) create, what a body lacks.

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


def missing_fields(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Paths present in `expected` but absent from `actual` (values may differ)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [path or "/"]
        missing = []
        for key, value in expected.items():
            if key not in actual:
                missing.append(f"{path}/{key}")
            else:
                missing += missing_fields(value, actual[key], f"{path}/{key}")
        return missing
    if isinstance(expected, list) and isinstance(actual, list):
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=False))
            for m in missing_fields(e, a, f"{path}[{i}]")
        ]
    return []
