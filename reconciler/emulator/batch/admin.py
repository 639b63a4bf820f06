"""Test and demo controls of the Batch emulator under `/_emulator/batch/`.

The same controls are methods of `BatchService` (`set_quotas`, `fail_start_tasks`, `occupy_nodes`,
`set_timings`, `describe`); these routes expose them to out-of-process callers such as the demo.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.service import BatchService

AdminHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _guard(handler: AdminHandler) -> AdminHandler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except BatchServiceError as err:
            return _reply({"code": err.code, "message": err.message}, err.status)
        except (ValueError, TypeError, KeyError) as err:
            return _reply({"code": "InvalidInput", "message": str(err)}, 400)

    return run


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    body = json.loads(raw or b"{}")
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    return None if body.get(key) is None else int(body[key])


def add_batch_admin_routes(app: web.Application, service: BatchService) -> None:
    """Expose the admin methods of `service` over HTTP for out-of-process callers."""

    async def quotas(request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        settings = service.set_quotas(
            request.match_info["account"],
            dedicated_cores=_optional_int(body, "dedicatedCores"),
            low_priority_cores=_optional_int(body, "lowPriorityCores"),
            pools=_optional_int(body, "pools"),
        )
        return _reply(
            {
                "dedicatedCores": settings.dedicated_core_quota,
                "lowPriorityCores": settings.low_priority_core_quota,
                "pools": settings.pool_quota,
            }
        )

    async def fail_start_tasks(request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        info = request.match_info
        service.fail_start_tasks(info["account"], info["poolId"], int(body.get("count", 1)))
        return _reply({"poolId": info["poolId"], "failNextStartTasks": int(body.get("count", 1))})

    async def occupy(request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        info = request.match_info
        job_id = service.occupy_nodes(
            info["account"], info["poolId"], int(body["tasks"]), float(body["seconds"]), body.get("jobId")
        )
        return _reply({"jobId": job_id})

    async def timings(request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        updated = service.set_timings(**{k: float(v) for k, v in body.items()})
        return _reply(vars(updated))

    async def state(request: web.Request) -> web.StreamResponse:
        return _reply(service.describe())

    prefix = "/_emulator/batch"
    router = app.router
    router.add_post(prefix + "/{account}/quotas", _guard(quotas), name="admin.BatchSetQuotas")
    router.add_post(
        prefix + "/{account}/pools/{poolId}/fail-start-tasks",
        _guard(fail_start_tasks),
        name="admin.BatchFailStartTasks",
    )
    router.add_post(
        prefix + "/{account}/pools/{poolId}/occupy", _guard(occupy), name="admin.BatchOccupyNodes"
    )
    router.add_post(prefix + "/timings", _guard(timings), name="admin.BatchSetTimings")
    router.add_get(prefix + "/state", _guard(state), name="admin.BatchState")
