"""Microsoft.Batch `batchAccounts/{account}/pools`: ARM's face of the pools the data plane serves.

Every call goes through the BatchService, so a pool created here is the pool a data-plane client lists and
resizes, and vice versa. What only ARM knows (the identity block as ARM spells it, the deallocation option
given in `scaleSettings.fixedScale`) is kept beside it, keyed by account and pool id.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from reconciler.emulator.arm.errors import ArmError, not_found
from reconciler.emulator.arm.http import api_version, base_url, json_response, page_response, read_json
from reconciler.emulator.arm.lro import Progress, retry_headers
from reconciler.emulator.arm.pool_convert import (
    create_body,
    identity_to_arm,
    identity_to_data_plane,
    pool_to_arm,
    properties_to_data_plane,
    resize_body,
)
from reconciler.emulator.arm.resources import ArmState
from reconciler.emulator.batch import BatchService, BatchServiceError
from reconciler.emulator.context import AccountSettings

PROVIDER = "Microsoft.Batch"
ACCOUNT = "Microsoft.Batch/batchAccounts"
DELETE_ESTIMATE_SECONDS = 15.0  # the Retry-After ARM announces for a pool delete, in simulated seconds


class BatchPoolsProvider:
    def __init__(self, state: ArmState, batch: BatchService) -> None:
        self.state = state
        self.batch = batch
        self.extras: dict[str, dict[str, Any]] = {}
        state.operations.probes["pool_delete"] = self._probe_delete

    def add_routes(self, app: web.Application, gate: Any) -> None:
        account = (
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
            f"{ACCOUNT}/{{accountName}}"
        )
        pool = f"{account}/pools/{{poolName}}"
        router = app.router
        router.add_get(account, gate(self.get_account), name="arm.BatchAccount_Get")
        router.add_post(f"{account}/listKeys", gate(self.list_keys), name="arm.BatchAccount_GetKeys")
        router.add_put(pool, gate(self.put_pool), name="arm.Pool_Create")
        router.add_patch(pool, gate(self.patch_pool), name="arm.Pool_Update")
        router.add_get(pool, gate(self.get_pool), name="arm.Pool_Get")
        router.add_delete(pool, gate(self.delete_pool), name="arm.Pool_Delete")
        router.add_get(f"{account}/pools", gate(self.list_pools), name="arm.Pool_ListByBatchAccount")
        router.add_post(f"{pool}/stopResize", gate(self.stop_resize), name="arm.Pool_StopResize")
        router.add_post(
            f"{pool}/disableAutoScale", gate(self.disable_autoscale), name="arm.Pool_DisableAutoScale"
        )
        router.add_get(
            f"{account}/poolOperationResults/{{operationId}}",
            gate(self.delete_result),
            name="arm.Pool_DeleteOperationResult",
        )

    # --- helpers ----------------------------------------------------------------------------------------

    def _account(self, request: web.Request) -> AccountSettings:
        rg = request.match_info["resourceGroupName"]
        name = request.match_info["accountName"]
        account = self.state.ctx.accounts.get(name) or self.state.ctx.accounts.get(name.lower())
        if account is None or account.resource_group.lower() != rg.lower():
            self.state.require_group(rg)
            raise not_found(ACCOUNT, name, rg)
        return account

    def _resource_id(self, account: AccountSettings, pool_id: str) -> str:
        return (
            self.state.store.resource_id(account.resource_group, ACCOUNT, account.name) + f"/pools/{pool_id}"
        )

    def _key(self, account: AccountSettings, pool_id: str) -> str:
        return f"{account.name}/{pool_id}".lower()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BatchServiceError as exc:
            raise ArmError(exc.status, exc.code, exc.message) from exc

    def _render(self, account: AccountSettings, pool: dict[str, Any]) -> dict[str, Any]:
        extras = self.extras.get(self._key(account, pool["id"]), {})
        spelled = extras.get("vmSize")
        if spelled and str(spelled).lower() == str(pool.get("vmSize", "")).lower():
            pool = {**pool, "vmSize": spelled}  # ARM echoes the size as the caller spelled it
        body = pool_to_arm(
            pool,
            self._resource_id(account, pool["id"]),
            identity=extras.get("identity"),
            node_deallocation_option=extras.get("nodeDeallocationOption"),
        )
        given = extras.get("applicationPackages")
        rendered = body["properties"].get("applicationPackages")
        if given and rendered and [_last(p["id"]) for p in given] == [_last(p["id"]) for p in rendered]:
            body["properties"]["applicationPackages"] = given  # ARM echoes the package ids it was given
        return body

    def _respond(self, account: AccountSettings, pool_id: str, status: int = 200) -> web.Response:
        body = self._render(account, self._call(self.batch.get_pool, account.name, pool_id))
        headers = {"ETag": body["etag"]} if body.get("etag") else None
        return json_response(body, status, headers)

    @staticmethod
    def _check_if_match(request: web.Request, pool: dict[str, Any] | None) -> None:
        if_match = request.headers.get("If-Match")
        if_none_match = request.headers.get("If-None-Match")
        current = f'W/"{pool["eTag"]}"' if pool is not None and pool.get("eTag") else None
        if (
            if_none_match is not None
            and pool is not None
            and (if_none_match == "*" or if_none_match == current)
        ):
            raise ArmError(
                412, "PreconditionFailed", "The pool already exists and If-None-Match forbids updating it."
            )
        if if_match is not None and (
            pool is None
            or (if_match != "*" and if_match.strip().removeprefix("W/") != (current or "").removeprefix("W/"))
        ):
            raise ArmError(412, "PreconditionFailed", "The pool's ETag does not match the If-Match header.")

    def _find(self, account: AccountSettings, pool_id: str) -> dict[str, Any] | None:
        try:
            pool: dict[str, Any] = self.batch.get_pool(account.name, pool_id)
        except BatchServiceError as exc:
            if exc.status == 404:
                return None
            raise ArmError(exc.status, exc.code, exc.message) from exc
        return pool

    def _apply_scale(self, account: AccountSettings, pool: dict[str, Any], scale: dict[str, Any]) -> None:
        pool_id = pool["id"]
        if "autoScale" in scale:
            auto = scale["autoScale"] or {}
            body = {"autoScaleFormula": auto.get("formula", "")}
            if auto.get("evaluationInterval"):
                body["autoScaleEvaluationInterval"] = auto["evaluationInterval"]
            self._call(self.batch.enable_autoscale, account.name, pool_id, body)
        elif "fixedScale" in scale:
            fixed = scale["fixedScale"] or {}
            if pool.get("enableAutoScale"):
                self._call(self.batch.disable_autoscale, account.name, pool_id)
            self._call(self.batch.resize_pool, account.name, pool_id, resize_body(fixed))
            if fixed.get("nodeDeallocationOption"):
                self.extras.setdefault(self._key(account, pool_id), {})["nodeDeallocationOption"] = fixed[
                    "nodeDeallocationOption"
                ]

    def _apply_update(self, account: AccountSettings, pool: dict[str, Any], body: dict[str, Any]) -> None:
        properties = body.get("properties") or {}
        if body.get("identity") is not None:
            self.extras.setdefault(self._key(account, pool["id"]), {})["identity"] = body["identity"]
        if properties.get("applicationPackages") is not None:
            self.extras.setdefault(self._key(account, pool["id"]), {})["applicationPackages"] = properties[
                "applicationPackages"
            ]
        if properties.get("scaleSettings"):
            self._apply_scale(account, pool, properties["scaleSettings"])
        rest = properties_to_data_plane(properties)
        if rest.get("virtualMachineConfiguration") == pool.get("virtualMachineConfiguration"):
            rest.pop("virtualMachineConfiguration", None)
        rest = {key: value for key, value in rest.items() if pool.get(key) != value}
        if rest:
            self._call(self.batch.patch_pool, account.name, pool["id"], rest)

    # --- handlers ---------------------------------------------------------------------------------------

    async def put_pool(self, request: web.Request) -> web.Response:
        account = self._account(request)
        pool_id = request.match_info["poolName"]
        body = await read_json(request)
        existing = self._find(account, pool_id)
        self._check_if_match(request, existing)
        if existing is not None and existing.get("state") != "deleting":
            self._apply_update(account, existing, body)
            return self._respond(account, pool_id)
        properties = body.get("properties") or {}
        identity = body.get("identity")
        self._call(
            self.batch.create_pool,
            account.name,
            create_body(pool_id, properties),
            identity=identity_to_data_plane(identity),
        )
        extras: dict[str, Any] = {"vmSize": properties.get("vmSize")}
        if identity:
            extras["identity"] = identity_to_arm(identity_to_data_plane(identity))
        fixed = (properties.get("scaleSettings") or {}).get("fixedScale") or {}
        if fixed.get("nodeDeallocationOption"):
            extras["nodeDeallocationOption"] = fixed["nodeDeallocationOption"]
        if properties.get("applicationPackages"):
            extras["applicationPackages"] = properties["applicationPackages"]
        self.extras[self._key(account, pool_id)] = extras
        return self._respond(account, pool_id)

    async def patch_pool(self, request: web.Request) -> web.Response:
        account = self._account(request)
        pool_id = request.match_info["poolName"]
        body = await read_json(request)
        pool = self._call(self.batch.get_pool, account.name, pool_id)
        self._check_if_match(request, pool)
        self._apply_update(account, pool, body)
        return self._respond(account, pool_id)

    async def get_pool(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return self._respond(account, request.match_info["poolName"])

    async def list_pools(self, request: web.Request) -> web.Response:
        account = self._account(request)
        rows = self._call(self.batch.list_pools, account.name)
        page_size = self.state.page_size
        wanted = request.query.get("maxresults")
        if wanted is not None:
            if not wanted.isdigit() or int(wanted) < 1:
                raise ArmError(
                    400,
                    "InvalidQueryParameterValue",
                    f"maxresults must be a positive integer, not '{wanted}'.",
                )
            page_size = min(page_size, int(wanted))
        return page_response(request, rows, lambda body: self._render(account, body()), page_size=page_size)

    async def stop_resize(self, request: web.Request) -> web.Response:
        account = self._account(request)
        pool_id = request.match_info["poolName"]
        self._call(self.batch.stop_resize, account.name, pool_id)
        return self._respond(account, pool_id)

    async def disable_autoscale(self, request: web.Request) -> web.Response:
        account = self._account(request)
        pool_id = request.match_info["poolName"]
        self._call(self.batch.disable_autoscale, account.name, pool_id)
        return self._respond(account, pool_id)

    async def delete_pool(self, request: web.Request) -> web.Response:
        account = self._account(request)
        pool_id = request.match_info["poolName"]
        pool = self._find(account, pool_id)
        if pool is None:
            return web.Response(status=204)
        if pool.get("state") != "deleting":
            self._call(self.batch.delete_pool, account.name, pool_id)
        operation_id = f"delete-{pool_id}-{uuid.uuid4().hex[:15].upper()}"
        self.state.operations.records[operation_id] = {
            "kind": "pool_delete",
            "target": self._key(account, pool_id),
            "account": account.name,
            "pool": pool_id,
            "provider": PROVIDER,
            "location": account.location,
            "startTime": self.state.clock.now().isoformat(),
        }
        return web.Response(status=202, headers=self._delete_headers(request, account, operation_id))

    def _delete_headers(
        self, request: web.Request, account: AccountSettings, operation_id: str
    ) -> dict[str, str]:
        account_id = self.state.store.resource_id(account.resource_group, ACCOUNT, account.name)
        location = (
            f"{base_url(request)}{account_id}/poolOperationResults/{operation_id}"
            f"?api-version={api_version(request)}"
        )
        return {"Location": location, **retry_headers(DELETE_ESTIMATE_SECONDS, self.state.clock)}

    def _probe_delete(self, record: dict[str, Any]) -> Progress:
        try:
            self.batch.get_pool(record["account"], record["pool"])
        except BatchServiceError as exc:
            if exc.status == 404:
                return Progress("Succeeded")
            raise
        return Progress("InProgress", DELETE_ESTIMATE_SECONDS)

    async def delete_result(self, request: web.Request) -> web.Response:
        account = self._account(request)
        operation_id = request.match_info["operationId"]
        progress = self.state.operations.progress(operation_id)
        if progress is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")
        if progress.status == "InProgress":
            return web.Response(status=202, headers=self._delete_headers(request, account, operation_id))
        self.extras.pop(self.state.operations.records[operation_id]["target"], None)
        return web.Response(status=200)

    async def get_account(self, request: web.Request) -> web.Response:
        account = self._account(request)
        resource_id = self.state.store.resource_id(account.resource_group, ACCOUNT, account.name)
        return json_response(
            {
                "id": resource_id,
                "name": account.name,
                "type": ACCOUNT,
                "location": account.location,
                "identity": {"type": "None"},
                "properties": {
                    "accountEndpoint": f"{request.host}/{account.name}",
                    "nodeManagementEndpoint": f"{request.host}/{account.name}",
                    "provisioningState": "Succeeded",
                    "poolAllocationMode": "BatchService",
                    "publicNetworkAccess": "Enabled",
                    "dedicatedCoreQuota": account.dedicated_core_quota,
                    "lowPriorityCoreQuota": account.low_priority_core_quota,
                    "poolQuota": account.pool_quota,
                    "activeJobAndJobScheduleQuota": 300,
                    "allowedAuthenticationModes": ["SharedKey", "AAD", "TaskAuthenticationToken"],
                },
            }
        )

    async def list_keys(self, request: web.Request) -> web.Response:
        account = self._account(request)
        return json_response({"accountName": account.name, "primary": account.key, "secondary": account.key})

    def dump(self) -> dict[str, Any]:
        return dict(self.extras)

    def load(self, data: dict[str, Any]) -> None:
        self.extras = dict(data)


def _last(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1].lower()
