"""Microsoft.Resources resource groups.

Groups are implicit: a resource PUT into an unknown group creates it, so the three SDKs the project uses
(none of which manages groups) work on their own. The groups endpoint still exists for callers that create
groups first, and GETs in a group nobody has used answer `ResourceGroupNotFound` as ARM does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.emulator.arm.errors import group_not_found
from reconciler.emulator.arm.http import json_response, page_response, read_json
from reconciler.emulator.arm.resources import ArmState


class ResourceGroups:
    def __init__(self, state: ArmState) -> None:
        self.state = state

    def _body(self, name: str, location: str | None = None) -> dict[str, Any]:
        return {
            "id": self.state.store.group_id(name),
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location or self.state.location,
            "properties": {"provisioningState": "Succeeded"},
        }

    async def put(self, request: web.Request) -> web.Response:
        name = request.match_info["resourceGroupName"]
        body = await read_json(request)
        created = not self.state.store.has_group(name)
        self.state.store.ensure_group(name)
        return json_response(
            self._body(self.state.store.groups[name.lower()], body.get("location")), 201 if created else 200
        )

    async def get(self, request: web.Request) -> web.Response:
        name = request.match_info["resourceGroupName"]
        if not self.state.store.has_group(name):
            raise group_not_found(name)
        return json_response(self._body(self.state.store.groups[name.lower()]))

    async def head(self, request: web.Request) -> web.Response:
        return web.Response(
            status=204 if self.state.store.has_group(request.match_info["resourceGroupName"]) else 404
        )

    async def list(self, request: web.Request) -> web.Response:
        rows = ((key.lower(), name) for key, name in self.state.store.groups.items())
        return page_response(request, rows, self._body, page_size=self.state.page_size)

    def add_routes(self, app: web.Application, gate: Any) -> None:
        for segment in ("resourcegroups", "resourceGroups"):
            item = f"/subscriptions/{{subscriptionId}}/{segment}/{{resourceGroupName}}"
            suffix = "" if segment == "resourcegroups" else "_Canonical"
            app.router.add_put(item, gate(self.put), name=f"arm.ResourceGroups_CreateOrUpdate{suffix}")
            app.router.add_get(item, gate(self.get), name=f"arm.ResourceGroups_Get{suffix}", allow_head=False)
            app.router.add_head(item, gate(self.head), name=f"arm.ResourceGroups_CheckExistence{suffix}")
            app.router.add_get(
                f"/subscriptions/{{subscriptionId}}/{segment}",
                gate(self.list),
                name=f"arm.ResourceGroups_List{suffix}",
            )
