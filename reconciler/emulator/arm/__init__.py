"""Azure Resource Manager for the emulator: Batch pools, Compute VMs and disks, Network resources.

Served on the HTTPS app only, behind bearer tokens for `https://management.azure.com/` from the emulator's
own token endpoint. Long-running operations answer with the monitors ARM uses, so the SDK pollers run
unchanged; their durations are simulated time.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.emulator.arm.admin import ArmAdmin
from reconciler.emulator.arm.batch_pools import BatchPoolsProvider
from reconciler.emulator.arm.compute import ComputeProvider
from reconciler.emulator.arm.errors import ArmError
from reconciler.emulator.arm.groups import ResourceGroups
from reconciler.emulator.arm.http import ArmGate
from reconciler.emulator.arm.network import NetworkProvider
from reconciler.emulator.arm.resources import ArmState
from reconciler.emulator.batch import BatchService
from reconciler.emulator.context import EmulatorContext
from reconciler.emulator.identity import IdentityProvider


class ArmService:
    """The management plane: one state, providers on top, registered as the `arm` StatePart."""

    name = "arm"

    def __init__(self, ctx: EmulatorContext, batch: BatchService, identity: IdentityProvider) -> None:
        self.ctx = ctx
        self.state = ArmState(ctx)
        self.network = NetworkProvider(self.state)
        self.compute = ComputeProvider(self.state, self.network)
        self.pools = BatchPoolsProvider(self.state, batch)
        self.groups = ResourceGroups(self.state)
        self.admin = ArmAdmin(self.state, self.compute)
        self.gate = ArmGate(identity, self.state.store)
        ctx.register(self)

    def add_routes(self, app: web.Application) -> None:
        self.groups.add_routes(app, self.gate)
        self.network.add_routes(app, self.gate)
        self.compute.add_routes(app, self.gate)
        self.pools.add_routes(app, self.gate)

    def add_admin_routes(self, app: web.Application) -> None:
        self.admin.add_routes(app)

    def evict(self, resource_group: str, vm_name: str) -> dict[str, Any] | None:
        """Evict a spot VM now (deallocated or deleted per its `evictionPolicy`)."""
        return self.admin.evict(resource_group, vm_name)

    def fail_next_vm_create(
        self, name: str | None = None, code: str | None = None, message: str | None = None
    ) -> None:
        """The next VM create (of `name`, or of any VM) ends with `provisioningState: Failed`."""
        self.admin.fail_next_vm_create(name, code, message)

    def set_page_size(self, items: int) -> None:
        """List answers of at most `items` per page, the rest behind `nextLink`: small pages exercise a
        caller's paging without thousands of resources. Pool lists also honour a smaller `maxresults`."""
        if items < 1:
            raise ValueError("a page holds at least one item")
        self.state.page_size = items

    def dump(self) -> dict[str, Any]:
        return {"state": self.state.dump(), "pools": self.pools.dump()}

    def load(self, data: dict[str, Any]) -> None:
        self.state.load(data.get("state", {}))
        self.pools.load(data.get("pools", {}))


__all__ = ["ArmError", "ArmService"]
