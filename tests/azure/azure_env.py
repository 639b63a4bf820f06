"""Names and auth settings the Azure-layer tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.emulator import Emulator
from reconciler.spec.config import Config

ACCOUNTS = ("alpha", "beta")
CALLER = "reconciler-test"
NO_RETRIES = {"retry_total": 0}

MakeConfig = Callable[..., Config]


def shared_key(emu: Emulator, account: str) -> dict[str, Any]:
    return {"method": "shared_key", "key": emu.account_key(account)}


def client_secret(emu: Emulator) -> dict[str, Any]:
    identity = emu.connection["identity"]
    return {
        "method": "client_secret",
        "tenant_id": identity["tenant_id"],
        "client_id": identity["client_id"],
        "client_secret": identity["client_secret"],
    }


def certificate(emu: Emulator) -> dict[str, Any]:
    identity = emu.connection["identity"]
    return {
        "method": "certificate",
        "tenant_id": identity["tenant_id"],
        "client_id": identity["client_id"],
        "certificate_path": identity["certificate_path"],
    }
