"""Config files pointing at a running emulator, and pools put into it the way the engine would.

The commands run `asyncio.run` themselves, so these tests drive a `ThreadedEmulator` from plain
(synchronous) test functions and set up pools with the blocking data-plane SDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azure.batch import models
from pool_spec_env import pool_dict
from ruamel.yaml import YAML

from reconciler.emulator import ThreadedEmulator
from reconciler.plan.rules import desired_markers
from reconciler.spec.pool import Pool

ACCOUNT = "demo"


def pool_yaml(**overrides: Any) -> dict[str, Any]:
    return pool_dict(ACCOUNT, **overrides)


def account_yaml(emu: ThreadedEmulator, account: str = ACCOUNT, key: str | None = None) -> dict[str, Any]:
    return {
        "batch_url": emu.batch_url(account),
        "auth": {"method": "shared_key", "key": key or emu.account_key(account)},
    }


def write_config(
    path: Path,
    emu: ThreadedEmulator,
    pools: dict[str, dict[str, Any]],
    *,
    accounts: dict[str, dict[str, Any]] | None = None,
    **sections: Any,
) -> Path:
    document = {"accounts": accounts or {ACCOUNT: account_yaml(emu)}, "pools": pools, **sections}
    with path.open("w", encoding="utf-8") as stream:
        YAML().dump(document, stream)
    return path


def create_managed(emu: ThreadedEmulator, pool_id: str, spec: Pool, **extra_metadata: str) -> None:
    """Create the pool as the engine does: the spec's create body plus our markers."""
    body = spec.to_batch_json(pool_id)
    marks = {**desired_markers(spec), **extra_metadata}
    body["metadata"] = [*body.get("metadata", []), *({"name": k, "value": v} for k, v in marks.items())]
    create_raw(emu, body)


def create_raw(emu: ThreadedEmulator, body: dict[str, Any], account: str = ACCOUNT) -> None:
    with emu.batch_client(account) as client:
        client.create_pool(models.BatchPoolCreateOptions(body))


def settle(emu: ThreadedEmulator, seconds: float = 1800) -> None:
    """Let simulated time pass so allocations finish."""
    emu.advance(seconds)
