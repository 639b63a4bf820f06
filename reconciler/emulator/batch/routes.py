"""aiohttp routes of the Batch data plane, named `batch.<operationId>` after BatchService.json.

Each handler authenticates, replays due transitions, honours the conditional headers and answers with the
service's headers (`ETag`, `Last-Modified`, `request-id`, `DataServiceVersion`) and error bodies.
"""

from __future__ import annotations

import inspect
import json
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from reconciler.emulator.batch.auth import authentication_failed, verify_shared_key
from reconciler.emulator.batch.bodies import pool_body
from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.odata import parse_select, project
from reconciler.emulator.batch.paging import ListQuery, Page, next_link
from reconciler.emulator.batch.pools import Pool
from reconciler.emulator.batch.service import BatchService
from reconciler.emulator.batch.timefmt import iso, parse_http_date, rfc1123
from reconciler.emulator.context import REQUEST_ID

BearerVerifier = Callable[[str], bool | Awaitable[bool]]
Handler = Callable[[web.Request, "Call"], Awaitable[web.StreamResponse]]

JSON_TYPE = "application/json;odata=minimalmetadata"
ERROR_METADATA = "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
DEFAULT_API_VERSION = "2025-06-01"


class Call:
    """What a handler needs of one request: service, account, base URL and the request id."""

    def __init__(self, service: BatchService, request: web.Request, request_id: str) -> None:
        self.service = service
        self.request = request
        self.request_id = request_id
        self.account = request.match_info["account"]
        origin = f"{request.scheme}://{request.host}"
        self.base = f"{origin}/{self.account}"

    @property
    def api_version(self) -> str:
        return self.request.query.get("api-version", DEFAULT_API_VERSION)

    def query_int(self, name: str) -> int | None:
        value = self.request.query.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError as err:
            raise BatchServiceError(
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
                {"QueryParameterName": name, "QueryParameterValue": value},
            ) from err

    async def body(self) -> dict[str, Any]:
        raw = await self.request.read()
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError as err:
            raise BatchServiceError(400, "InvalidRequestBody", "The request body is not valid JSON.") from err
        if not isinstance(parsed, dict):
            raise BatchServiceError(400, "InvalidRequestBody", "The request body must be a JSON object.")
        return parsed

    def paging(self) -> ListQuery:
        q = self.request.query
        return ListQuery(
            q.get("$filter"), q.get("$select"), self.query_int("maxresults"), q.get("$skiptoken")
        )

    def page(self, path: str, page: Page, metadata: str) -> web.Response:
        body: dict[str, Any] = {"odata.metadata": f"{self.base}/$metadata#{metadata}", "value": page.items}
        if page.next_query is not None:
            body["odata.nextLink"] = next_link(self.base, path, self.api_version, page.next_query)
        return json_response(body)

    def conditions(self, pool: Pool, *, read: bool = False) -> None:
        """If-Match / If-None-Match / If-(Un)Modified-Since against the pool's ETag and Last-Modified."""
        headers = self.request.headers
        last_modified = pool.account.clock_at(pool.last_modified).replace(microsecond=0)
        if_match = headers.get("If-Match")
        if if_match and if_match != "*" and pool.etag not in _etags(if_match):
            raise _condition_not_met()
        if_none = headers.get("If-None-Match")
        if if_none and (if_none == "*" or pool.etag in _etags(if_none)):
            raise _not_modified() if read else _condition_not_met()
        since = _http_date(headers.get("If-Modified-Since"))
        if since is not None and last_modified <= since:
            raise _not_modified() if read else _condition_not_met()
        until = _http_date(headers.get("If-Unmodified-Since"))
        if until is not None and last_modified > until:
            raise _condition_not_met()


def _etags(header: str) -> set[str]:
    return {part.strip().strip('"') for part in header.split(",")}


def _http_date(value: str | None) -> datetime | None:
    return parse_http_date(value) if value else None


def _condition_not_met() -> BatchServiceError:
    return BatchServiceError(
        412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met."
    )


def _not_modified() -> BatchServiceError:
    return BatchServiceError(304, "ConditionNotMet", "The resource has not been modified.")


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers={"Content-Type": JSON_TYPE})


def pool_headers(response: web.StreamResponse, pool: Pool, base: str) -> web.StreamResponse:
    response.headers["ETag"] = pool.etag
    response.headers["Last-Modified"] = rfc1123(pool.account.clock_at(pool.last_modified))
    response.headers["DataServiceId"] = f"{base}/pools/{pool.id}"
    return response


def error_response(
    call_base: str, err: BatchServiceError, request_id: str, when: datetime, head: bool
) -> web.Response:
    if err.status == 304 or head:
        return web.Response(status=err.status)
    body: dict[str, Any] = {
        "odata.metadata": f"{call_base}/$metadata#{ERROR_METADATA}",
        "code": err.code,
        "message": {"lang": "en-US", "value": f"{err.message}\nRequestId:{request_id}\nTime:{iso(when)}"},
    }
    if err.values:
        body["values"] = [{"key": k, "value": v} for k, v in err.values.items()]
    return json_response(body, err.status)


async def _authenticate(call: Call, verify_bearer: BearerVerifier | None) -> None:
    request = call.request
    authorization = request.headers.get("Authorization", "")
    if authorization.lower().startswith("bearer "):
        if verify_bearer is None:
            raise authentication_failed("Bearer tokens are accepted over HTTPS only.")
        outcome = verify_bearer(authorization[7:].strip())
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if not outcome:
            raise BatchServiceError(
                401,
                "AuthenticationFailed",
                "Server failed to authenticate the request: the access token is missing, invalid, expired or "
                "for another audience.",
            )
        call.service.account(call.account)
        return
    settings = call.service.ctx.accounts.get(call.account)
    if settings is None:
        raise authentication_failed(f"The account '{call.account}' does not exist.")
    if not authorization:
        raise authentication_failed("The request does not carry an Authorization header.")
    verify_shared_key(
        authorization,
        account=call.account,
        key=settings.key,
        method=request.method,
        headers=request.headers,
        raw_path=request.rel_url.raw_path,
        raw_query=request.rel_url.raw_query_string,
    )


def _wrap(
    service: BatchService, handler: Handler, verify_bearer: BearerVerifier | None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def run(request: web.Request) -> web.StreamResponse:
        request_id = request.get(REQUEST_ID) or str(uuid.uuid4())
        call = Call(service, request, request_id)
        try:
            await _authenticate(call, verify_bearer)
            if "api-version" not in request.query:
                raise BatchServiceError(
                    400,
                    "MissingRequiredQueryParameter",
                    "A query parameter that's mandatory for this request is not specified.",
                    {"QueryParameterName": "api-version"},
                )
            service.note_base_url(call.account, call.base)
            service.sync()
            response = await handler(request, call)
        except BatchServiceError as err:
            when = service.clock.now()
            response = error_response(call.base, err, request_id, when, request.method == "HEAD")
            if err.retry_after is not None:
                wall = err.retry_after / service.clock.time_scale
                response.headers["Retry-After"] = str(max(1, math.ceil(wall)))
        response.headers["request-id"] = request_id
        response.headers["DataServiceVersion"] = "3.0"
        return response

    return run


# ---- handlers ----


async def list_pools(request: web.Request, call: Call) -> web.StreamResponse:
    page = call.service.list_pool_page(call.account, call.base, call.paging())
    return call.page("pools", page, "pools")


async def create_pool(request: web.Request, call: Call) -> web.StreamResponse:
    pool = call.service.add_pool(call.account, await call.body())
    response = web.Response(status=201)
    response.headers["Location"] = f"{call.base}/pools/{pool.id}"
    return pool_headers(response, pool, call.base)


def _pool(call: Call, *, read: bool = False) -> Pool:
    pool = call.service.pool(call.account, call.request.match_info["poolId"])
    call.conditions(pool, read=read)
    return pool


async def get_pool(request: web.Request, call: Call) -> web.StreamResponse:
    pool = _pool(call, read=True)
    body = project(pool_body(pool, call.base), parse_select(request.query.get("$select")))
    return pool_headers(json_response(body), pool, call.base)


async def pool_exists(request: web.Request, call: Call) -> web.StreamResponse:
    pool = _pool(call, read=True)
    return pool_headers(web.Response(status=200), pool, call.base)


PoolChange = Callable[[BatchService, str, str, dict[str, Any]], object]


def _pool_change(change: PoolChange, status: int, *, reads_body: bool = True) -> Handler:
    """A pool operation the service answers with a status and the pool's new ETag and Last-Modified only.
    One that takes no body does not parse the request's, as the service ignores it."""

    async def handle(request: web.Request, call: Call) -> web.StreamResponse:
        pool = _pool(call)
        change(call.service, call.account, pool.id, await call.body() if reads_body else {})
        return pool_headers(web.Response(status=status), pool, call.base)

    return handle


update_pool = _pool_change(BatchService.patch_pool, 200)
replace_pool = _pool_change(BatchService.replace_pool, 204)
resize_pool = _pool_change(BatchService.resize_pool, 202)
remove_nodes = _pool_change(BatchService.remove_nodes, 202)
enable_autoscale = _pool_change(BatchService.enable_autoscale, 200)
stop_resize = _pool_change(
    lambda service, account, pool_id, _: service.stop_resize(account, pool_id), 202, reads_body=False
)
disable_autoscale = _pool_change(
    lambda service, account, pool_id, _: service.disable_autoscale(account, pool_id), 200, reads_body=False
)


async def delete_pool(request: web.Request, call: Call) -> web.StreamResponse:
    pool = _pool(call)
    call.service.delete_pool(call.account, pool.id)
    return web.Response(status=202)


async def evaluate_autoscale(request: web.Request, call: Call) -> web.StreamResponse:
    pool = _pool(call)
    body = call.service.evaluate_autoscale(call.account, pool.id, await call.body())
    return pool_headers(json_response(body), pool, call.base)


async def list_nodes(request: web.Request, call: Call) -> web.StreamResponse:
    pool_id = request.match_info["poolId"]
    page = call.service.list_node_page(call.account, pool_id, call.base, call.paging())
    return call.page(f"pools/{pool_id}/nodes", page, "nodes")


async def get_node(request: web.Request, call: Call) -> web.StreamResponse:
    info = request.match_info
    return json_response(call.service.get_node(call.account, info["poolId"], info["nodeId"], call.base))


async def list_node_counts(request: web.Request, call: Call) -> web.StreamResponse:
    page = call.service.list_node_counts(call.account, call.paging())
    return call.page("nodecounts", page, "poolnodecounts")


def _created(call: Call, path: str, etag: str, last_modified: float) -> web.Response:
    """The 201 of an add: the new entity's ETag, Last-Modified and address, no body."""
    response = web.Response(status=201)
    response.headers["ETag"] = etag
    response.headers["Last-Modified"] = rfc1123(call.service.clock.at(last_modified))
    response.headers["DataServiceId"] = f"{call.base}/{path}"
    return response


async def create_job(request: web.Request, call: Call) -> web.StreamResponse:
    job = call.service.create_job(call.account, await call.body())
    return _created(call, f"jobs/{job.id}", job.etag, job.last_modified)


async def list_jobs(request: web.Request, call: Call) -> web.StreamResponse:
    return call.page("jobs", call.service.list_job_page(call.account, call.base, call.paging()), "jobs")


async def get_job(request: web.Request, call: Call) -> web.StreamResponse:
    job = call.service.job(call.account, request.match_info["jobId"])
    response = json_response(call.service.job_body(call.account, job, call.base))
    response.headers["ETag"] = job.etag
    return response


async def delete_job(request: web.Request, call: Call) -> web.StreamResponse:
    call.service.delete_job(call.account, request.match_info["jobId"])
    return web.Response(status=202)


async def create_task(request: web.Request, call: Call) -> web.StreamResponse:
    job_id = request.match_info["jobId"]
    task = call.service.add_task(call.account, job_id, await call.body())
    return _created(call, f"jobs/{task.job_id}/tasks/{task.id}", task.etag, task.last_modified)


async def create_task_collection(request: web.Request, call: Call) -> web.StreamResponse:
    job_id = request.match_info["jobId"]
    return json_response(call.service.add_tasks(call.account, job_id, await call.body(), call.base))


async def list_tasks(request: web.Request, call: Call) -> web.StreamResponse:
    job_id = request.match_info["jobId"]
    page = call.service.list_task_page(call.account, job_id, call.base, call.paging())
    return call.page(f"jobs/{job_id}/tasks", page, "tasks")


async def get_task(request: web.Request, call: Call) -> web.StreamResponse:
    info = request.match_info
    task = call.service.task(call.account, info["jobId"], info["taskId"])
    response = json_response(call.service.task_body(task, call.base))
    response.headers["ETag"] = task.etag
    return response


async def task_counts(request: web.Request, call: Call) -> web.StreamResponse:
    return json_response(call.service.task_counts(call.account, request.match_info["jobId"], call.base))


ROUTES: tuple[tuple[str, str, str, Handler], ...] = (
    ("GET", "/pools", "Pools_ListPools", list_pools),
    ("POST", "/pools", "Pools_CreatePool", create_pool),
    ("GET", "/pools/{poolId}", "Pools_GetPool", get_pool),
    ("HEAD", "/pools/{poolId}", "Pools_PoolExists", pool_exists),
    ("PATCH", "/pools/{poolId}", "Pools_UpdatePool", update_pool),
    ("DELETE", "/pools/{poolId}", "Pools_DeletePool", delete_pool),
    ("POST", "/pools/{poolId}/resize", "Pools_ResizePool", resize_pool),
    ("POST", "/pools/{poolId}/stopresize", "Pools_StopPoolResize", stop_resize),
    ("POST", "/pools/{poolId}/removenodes", "Pools_RemoveNodes", remove_nodes),
    ("POST", "/pools/{poolId}/updateproperties", "Pools_ReplacePoolProperties", replace_pool),
    ("POST", "/pools/{poolId}/enableautoscale", "Pools_EnablePoolAutoScale", enable_autoscale),
    ("POST", "/pools/{poolId}/disableautoscale", "Pools_DisablePoolAutoScale", disable_autoscale),
    ("POST", "/pools/{poolId}/evaluateautoscale", "Pools_EvaluatePoolAutoScale", evaluate_autoscale),
    ("GET", "/pools/{poolId}/nodes", "Nodes_ListNodes", list_nodes),
    ("GET", "/pools/{poolId}/nodes/{nodeId}", "Nodes_GetNode", get_node),
    ("GET", "/nodecounts", "Pools_ListPoolNodeCounts", list_node_counts),
    ("GET", "/jobs", "Jobs_ListJobs", list_jobs),
    ("POST", "/jobs", "Jobs_CreateJob", create_job),
    ("GET", "/jobs/{jobId}", "Jobs_GetJob", get_job),
    ("DELETE", "/jobs/{jobId}", "Jobs_DeleteJob", delete_job),
    ("GET", "/jobs/{jobId}/tasks", "Tasks_ListTasks", list_tasks),
    ("POST", "/jobs/{jobId}/tasks", "Tasks_CreateTask", create_task),
    ("POST", "/jobs/{jobId}/addtaskcollection", "Tasks_CreateTaskCollection", create_task_collection),
    ("GET", "/jobs/{jobId}/tasks/{taskId}", "Tasks_GetTask", get_task),
    ("GET", "/jobs/{jobId}/taskcounts", "Jobs_GetJobTaskCounts", task_counts),
)


def add_batch_routes(
    app: web.Application, service: BatchService, *, verify_bearer: BearerVerifier | None = None
) -> None:
    """Serve the data plane under `/{account}/...`; `verify_bearer(token)` enables Entra tokens."""
    for method, path, operation, handler in ROUTES:
        wrapped = _wrap(service, handler, verify_bearer)
        full = "/{account}" + path
        app.router.add_route(method, full, wrapped, name=f"batch.{operation}")
