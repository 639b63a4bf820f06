"""What every part of the emulator shares: the clock, the tenant's identities, the accounts, and the hooks
that let each part persist its state and be counted and faulted the same way.

Conventions every part follows:
- Every aiohttp route is added with `name="<service>.<Operation>"` (`batch.Pools_ResizePool`,
  `arm.VirtualMachines_CreateOrUpdate`, `identity.Token`): the request counters and the fault injector key
  on that name, so a new route is counted and faultable with no extra code.
- State lives in plain data that `dump()` turns into JSON-able dicts; a part registers a `StatePart` so
  `--state-file` carries it across restarts.
- All time comes from `ctx.clock` (simulated), never from `time` or `datetime.now`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from reconciler.emulator.clock import SimClock

# Fixed, documented and emulator-only, like Azurite's well-known key: example configs may carry it.
WELL_KNOWN_ACCOUNT_KEY = base64.b64encode(b"reconciler-emulator-well-known-account-key-0001").decode()
DEFAULT_SUBSCRIPTION_ID = "00000000-0000-4000-8000-000000000001"
DEFAULT_TENANT_ID = "00000000-0000-4000-8000-0000000000a1"
DEFAULT_CLIENT_ID = "00000000-0000-4000-8000-0000000000c1"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"  # noqa: S105 - emulator-only, documented
DEFAULT_RESOURCE_GROUP = "rg-emulator"
DEFAULT_LOCATION = "japaneast"
# The pipeline middleware mints one id per request; headers and error bodies of every part carry that one.
REQUEST_ID = web.RequestKey("request_id", str)


class StatePart(Protocol):
    """A part of the emulator whose state survives a restart through `--state-file`."""

    name: str

    def dump(self) -> dict[str, Any]: ...

    def load(self, data: dict[str, Any]) -> None: ...


@dataclass
class AccountSettings:
    name: str
    key: str = WELL_KNOWN_ACCOUNT_KEY
    resource_group: str = DEFAULT_RESOURCE_GROUP
    location: str = DEFAULT_LOCATION
    dedicated_core_quota: int = 500
    low_priority_core_quota: int = 500
    pool_quota: int = 20000


@dataclass
class EmulatorContext:
    clock: SimClock
    accounts: dict[str, AccountSettings]
    workdir: Path  # private files of this run: CA and service-principal PEMs
    subscription_id: str = DEFAULT_SUBSCRIPTION_ID
    tenant_id: str = DEFAULT_TENANT_ID
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    parts: dict[str, StatePart] = field(default_factory=dict)

    def register(self, part: StatePart) -> None:
        self.parts[part.name] = part

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())
