"""The ARM state every resource provider shares, and the answers ARM gives to PUT, DELETE and actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from reconciler.emulator.arm.errors import ArmError, group_not_found, not_found
from reconciler.emulator.arm.http import (
    DEFAULT_PAGE_SIZE,
    api_version,
    base_url,
    json_response,
    page_response,
)
from reconciler.emulator.arm.lro import Operations, Progress, retry_headers
from reconciler.emulator.arm.store import META, TRANSITIONAL, Resource, ResourceStore, key_of, public
from reconciler.emulator.context import EmulatorContext


class ArmState:
    """Resources, operations and one-shot faults of the management plane, all plain data."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.clock = ctx.clock
        groups = [account.resource_group for account in ctx.accounts.values()]
        self.store = ResourceStore(ctx.clock, ctx.subscription_id, groups)
        self.operations = Operations(ctx.clock, ctx.subscription_id)
        self.operations.probes.update(
            put=self._probe_put, delete=self._probe_delete, action=self._probe_action
        )
        self.faults: dict[str, list[dict[str, Any]]] = {}
        self.page_size = DEFAULT_PAGE_SIZE

    @property
    def location(self) -> str:
        first = next(iter(self.ctx.accounts.values()), None)
        return first.location if first is not None else "japaneast"

    def now_iso(self) -> str:
        return self.clock.now().isoformat().replace("+00:00", "Z")

    @staticmethod
    def new_guid() -> str:
        return str(uuid.uuid4())

    # --- lookups ----------------------------------------------------------------------------------------

    def require_group(self, resource_group: str) -> None:
        if not self.store.has_group(resource_group):
            raise group_not_found(resource_group)

    def require(self, resource_group: str, provider_type: str, name: str) -> Resource:
        resource = self.store.get(self.store.resource_id(resource_group, provider_type, name))
        if resource is None:
            self.require_group(resource_group)
            raise not_found(provider_type, name, resource_group)
        return resource

    def find(self, resource_group: str, provider_type: str, name: str) -> Resource | None:
        return self.store.get(self.store.resource_id(resource_group, provider_type, name))

    def require_reference(self, referenced_id: str | None, referrer_id: str, expected_type: str) -> Resource:
        """A resource a body refers to, or the 400 ARM gives for a dangling reference."""
        resource = self.store.get(referenced_id) if referenced_id else None
        if resource is None or resource["type"].lower() != expected_type.lower():
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {referenced_id} referenced by resource {referrer_id} was not found. Please make "
                "sure that the referenced resource exists, and that both resources are in the same region.",
                [],
            )
        return resource

    def list_response(
        self, request: web.Request, resources: Iterable[Resource], render: Callable[[Resource], Any] = public
    ) -> web.Response:
        """One page of `resources`, in the order of their ids."""
        rows = ((key_of(resource["id"]), resource) for resource in resources)
        return page_response(request, rows, render, page_size=self.page_size)

    # --- one-shot faults ---------------------------------------------------------------------------------

    def add_fault(self, kind: str, **details: Any) -> None:
        self.faults.setdefault(kind, []).append(details)

    def take_fault(self, kind: str, name: str) -> dict[str, Any] | None:
        for i, fault in enumerate(self.faults.get(kind, [])):
            if fault.get("name") in (None, name):
                return self.faults[kind].pop(i)
        return None

    # --- long-running operations -------------------------------------------------------------------------

    def _probe_put(self, record: dict[str, Any]) -> Progress:
        resource = self.store.get(record["target"])
        if resource is None:
            return Progress("Canceled")
        state = resource["properties"].get("provisioningState", "Succeeded")
        if state in ("Creating", "Updating"):
            return Progress("InProgress", self.store.remaining(resource))
        if state == "Failed":
            error = resource.get(META, {}).get("error") or {"code": "InternalError", "message": "Failed."}
            return Progress("Failed", error=error)
        return Progress("Succeeded")

    def _probe_delete(self, record: dict[str, Any]) -> Progress:
        resource = self.store.get(record["target"])
        if resource is None:
            return Progress("Succeeded")
        return Progress("InProgress", self.store.remaining(resource))

    def _probe_action(self, record: dict[str, Any]) -> Progress:
        resource = self.store.get(record["target"])
        if resource is None:
            return Progress("Succeeded")
        remaining = self.store.remaining(resource)
        return Progress("InProgress", remaining) if remaining > 0 else Progress("Succeeded")

    def put_response(
        self, request: web.Request, resource: Resource, *, created: bool, provider: str
    ) -> web.Response:
        body = public(resource)
        remaining = self.store.remaining(resource)
        if body.get("properties", {}).get("provisioningState") not in TRANSITIONAL:
            return json_response(body, 201 if created else 200)
        operation_id = self.operations.start("put", resource["id"], provider, resource.get("location", ""))
        headers = self.operations.headers(
            base_url(request), operation_id, api_version(request), remaining, location=False
        )
        return json_response(body, 201 if created else 200, headers)

    def accepted(self, request: web.Request, resource: Resource, kind: str, provider: str) -> web.Response:
        """202 with both monitors, as ARM answers DELETE and POST actions."""
        operation_id = self.operations.start(
            kind, resource["id"], provider, resource.get("location") or self.location
        )
        remaining = self.store.remaining(resource)
        headers = self.operations.headers(
            base_url(request), operation_id, api_version(request), remaining, location=True
        )
        return web.Response(status=202, headers=headers)

    async def operation_status(self, request: web.Request) -> web.Response:
        operation_id = request.match_info["operationId"]
        progress = self.operations.progress(operation_id)
        if progress is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")
        headers = retry_headers(progress.remaining, self.clock) if progress.status == "InProgress" else None
        return json_response(self.operations.status_body(operation_id, progress), 200, headers)

    async def operation_result(self, request: web.Request) -> web.Response:
        operation_id = request.match_info["operationId"]
        progress = self.operations.progress(operation_id)
        if progress is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")
        if progress.status == "InProgress":
            _, location = self.operations.urls(base_url(request), operation_id, api_version(request))
            return web.Response(
                status=202, headers={"Location": location, **retry_headers(progress.remaining, self.clock)}
            )
        if progress.status == "Failed":
            error = progress.error or {"code": "InternalError", "message": "The operation failed."}
            return json_response({"error": error}, 400)
        record = self.operations.records[operation_id]
        target = self.store.get(record["target"]) if record["kind"] != "delete" else None
        if target is None:
            return web.Response(status=204)
        return json_response(public(target))

    def add_operation_routes(self, app: web.Application, gate: Any, provider: str, label: str) -> None:
        root = f"/subscriptions/{{subscriptionId}}/providers/{provider}/locations/{{location}}"
        app.router.add_get(
            f"{root}/operations/{{operationId}}",
            gate(self.operation_status),
            name=f"arm.{label}Operations_Get",
        )
        app.router.add_get(
            f"{root}/operationResults/{{operationId}}",
            gate(self.operation_result),
            name=f"arm.{label}OperationResults_Get",
        )

    # --- state ------------------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {"store": self.store.dump(), "operations": self.operations.dump(), "faults": self.faults}

    def load(self, data: dict[str, Any]) -> None:
        self.store.load(data.get("store", {}))
        self.operations.load(data.get("operations", {}))
        self.faults = dict(data.get("faults", {}))


def same_id(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and key_of(a) == key_of(b)
