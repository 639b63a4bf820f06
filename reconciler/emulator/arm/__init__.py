"""Azure Resource Manager for the emulator: Batch pools, Compute VMs and disks, Network resources."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.emulator.context import EmulatorContext
from reconciler.emulator.identity import IdentityProvider


class ArmService:
    name = "arm"

    def __init__(self, ctx: EmulatorContext, batch: Any, identity: IdentityProvider) -> None:
        self.ctx = ctx
        self.batch = batch
        self.identity = identity

    def add_routes(self, app: web.Application) -> None:
        pass

    def add_admin_routes(self, app: web.Application) -> None:
        pass

    def dump(self) -> dict[str, Any]:
        return {}

    def load(self, data: dict[str, Any]) -> None:
        pass


__all__ = ["ArmService"]
