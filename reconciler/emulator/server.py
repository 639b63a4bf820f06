"""The emulator's two listeners and the request pipeline they share.

Azure serves the Batch data plane over HTTPS only, but the shared-key flow of the Azure CLI and of most
admin scripts works unchanged over plain HTTP, which needs no CA; ARM and the token endpoint need HTTPS
because azure-identity and the management SDKs refuse anything else. Hence two apps: HTTP (Batch with
shared key, admin) and HTTPS (Batch with shared key or bearer, ARM, identity, admin), both run through one
middleware so every route is counted, faultable and tagged with request ids the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from reconciler.emulator.admin import add_admin_routes
from reconciler.emulator.arm import ArmService
from reconciler.emulator.batch import BatchService, add_batch_admin_routes, add_batch_routes
from reconciler.emulator.context import REQUEST_ID as REQUEST_ID
from reconciler.emulator.context import EmulatorContext
from reconciler.emulator.counters import RESET_STATUS, RequestCounters, account_of, caller_of
from reconciler.emulator.faults import FaultInjector, error_response
from reconciler.emulator.identity import IdentityProvider
from reconciler.emulator.tls import TlsMaterial

log = logging.getLogger("reconciler.emulator")

BATCH_AUDIENCE = "https://batch.core.windows.net/"
CLIENT_MAX_SIZE = 16 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def operation_of(request: web.Request) -> str:
    """The route name (`batch.Pools_GetPool`), or `<service>.Unrouted` for paths no route serves."""
    name = request.match_info.route.name
    if name:
        return name
    path = request.path
    if path.startswith("/_emulator"):
        return "emulator.Unrouted"
    if path.lower().startswith("/subscriptions"):
        return "arm.Unrouted"
    return "batch.Unrouted"


def pipeline_middleware(ctx: EmulatorContext, faults: FaultInjector, counters: RequestCounters) -> Middleware:
    """One middleware for ids, faults, latency, counting and the catch-all, to keep per-request cost low."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        request[REQUEST_ID] = request_id
        operation = operation_of(request)
        status = 500
        try:
            response = await _respond(request, handler, operation, request_id, ctx, faults)
            status = RESET_STATUS if response is None else response.status  # None: connection aborted
        except web.HTTPException as exc:
            status = exc.status
            if request.match_info.route.name is None and exc.status in (404, 405):
                return _unrouted(request, operation, exc.status, request_id, ctx)
            raise
        finally:
            counters.record(operation, caller_of(request.headers), status, account_of(request.match_info))
        return response or web.Response(status=500)

    return middleware


async def _respond(
    request: web.Request,
    handler: Handler,
    operation: str,
    request_id: str,
    ctx: EmulatorContext,
    faults: FaultInjector,
) -> web.StreamResponse | None:
    decision = faults.decide(operation, request.match_info)
    if decision is not None:
        if decision.delay > 0:
            await asyncio.sleep(decision.delay)
        rule = decision.rule
        if rule is not None and rule.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return None
        if rule is not None:
            return error_response(
                operation,
                rule.status,
                rule.code,
                rule.message,
                request_id=request_id,
                now=ctx.clock.now(),
                account=request.match_info.get("account"),
                retry_after=rule.retry_after,
            )
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("emulator.unhandled_error operation=%s path=%s", operation, request.path)
        return error_response(
            operation,
            500,
            "InternalServerError",
            "The emulator failed to process the request; see its log.",
            request_id=request_id,
            now=ctx.clock.now(),
            account=request.match_info.get("account"),
        )


def _unrouted(
    request: web.Request, operation: str, status: int, request_id: str, ctx: EmulatorContext
) -> web.Response:
    code, verb = ("UnsupportedHttpVerb", "method") if status == 405 else ("ResourceNotFound", "path")
    return error_response(
        operation,
        status,
        code,
        f"The emulator does not serve this {verb}: {request.method} {request.path}",
        request_id=request_id,
        now=ctx.clock.now(),
    )


async def _echo_ids(request: web.BaseRequest, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id is None:
        return
    headers = response.headers
    headers.setdefault("request-id", request_id)
    headers.setdefault("x-ms-request-id", request_id)
    if request.headers.get("return-client-request-id", "").lower() == "true":
        client_id = request.headers.get("client-request-id")
        if client_id:
            headers.setdefault("client-request-id", client_id)
    arm_client_id = request.headers.get("x-ms-client-request-id")
    if arm_client_id:
        headers.setdefault("x-ms-client-request-id", arm_client_id)


def bearer_verifier(identity: IdentityProvider, audience: str) -> Callable[[str], bool]:
    """Adapt the identity provider's raising check to the boolean check the Batch routes expect."""

    def verify(token: str) -> bool:
        authorization = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        try:
            identity.verify_bearer(authorization, audience)
        except Exception:
            return False
        return True

    return verify


class EmulatorServer:
    """Both listeners; `start` binds them (port 0 picks a free port) and records the real ports."""

    def __init__(
        self,
        ctx: EmulatorContext,
        *,
        batch: BatchService,
        identity: IdentityProvider,
        arm: ArmService,
        faults: FaultInjector,
        counters: RequestCounters,
        tls: TlsMaterial,
    ) -> None:
        self.ctx = ctx
        self.faults = faults
        self.counters = counters
        self._tls = tls
        middleware = pipeline_middleware(ctx, faults, counters)

        self.http_app = self._app(middleware)
        add_admin_routes(self.http_app, ctx, faults, counters)
        add_batch_admin_routes(self.http_app, batch)
        arm.add_admin_routes(self.http_app)
        add_batch_routes(self.http_app, batch)

        self.https_app = self._app(middleware)
        add_admin_routes(self.https_app, ctx, faults, counters)
        add_batch_admin_routes(self.https_app, batch)
        arm.add_admin_routes(self.https_app)
        identity.add_routes(self.https_app)
        arm.add_routes(self.https_app)
        add_batch_routes(self.https_app, batch, verify_bearer=bearer_verifier(identity, BATCH_AUDIENCE))

        self._runners: list[web.AppRunner] = []
        self.port = 0
        self.arm_port = 0

    @property
    def operations(self) -> frozenset[str]:
        apps = (self.http_app, self.https_app)
        return frozenset(str(route.name) for app in apps for route in app.router.routes() if route.name)

    @staticmethod
    def _app(middleware: Middleware) -> web.Application:
        app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[middleware])
        app.on_response_prepare.append(_echo_ids)
        return app

    async def start(self, host: str, port: int, arm_port: int) -> None:
        try:
            self.port = await self._listen(self.http_app, host, port, None)
            ssl_context = self._tls.server_context(Path(self.ctx.workdir))
            self.arm_port = await self._listen(self.https_app, host, arm_port, ssl_context)
        except BaseException:
            await self.stop()
            raise

    async def _listen(
        self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        return int(runner.addresses[-1][1])

    async def stop(self) -> None:
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
