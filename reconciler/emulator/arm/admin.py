"""Admin endpoints for ARM faults a test or a demo needs: evict a spot VM, fail the next VM create."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from reconciler.emulator.arm.compute import VM, ComputeProvider
from reconciler.emulator.arm.errors import ArmError
from reconciler.emulator.arm.resources import ArmState
from reconciler.emulator.arm.store import public


class ArmAdmin:
    def __init__(self, state: ArmState, compute: ComputeProvider) -> None:
        self.state = state
        self.compute = compute

    def evict(self, resource_group: str, vm_name: str) -> dict[str, Any] | None:
        """Evict a spot VM; returns the VM as ARM now shows it, or None when eviction deleted it."""
        self.state.store.settle()
        vm = self.state.require(resource_group, VM, vm_name)
        self.compute.evict(vm)
        remaining = self.state.find(resource_group, VM, vm_name)
        return None if remaining is None else public(remaining)

    def fail_next_vm_create(
        self, name: str | None = None, code: str | None = None, message: str | None = None
    ) -> None:
        self.state.add_fault("vm_create", name=name, code=code, message=message)

    async def _evict(self, request: web.Request) -> web.Response:
        try:
            vm = self.evict(request.match_info["resourceGroupName"], request.match_info["vmName"])
        except ArmError as exc:
            return exc.response()
        return web.json_response({"evicted": True, "deleted": vm is None, "vm": vm})

    async def _fail_next_create(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        self.fail_next_vm_create(body.get("name"), body.get("code"), body.get("message"))
        return web.json_response({"armed": True}, status=202)

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.dump())

    def add_routes(self, app: web.Application) -> None:
        root = "/_emulator/arm"
        app.router.add_post(
            f"{root}/virtualMachines/{{resourceGroupName}}/{{vmName}}/evict",
            self._evict,
            name="emulator.Arm_EvictVm",
        )
        app.router.add_post(
            f"{root}/faults/vmCreate", self._fail_next_create, name="emulator.Arm_FailNextVmCreate"
        )
        app.router.add_get(f"{root}/state", self._state, name="emulator.Arm_State")
