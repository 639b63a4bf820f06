"""The daemon's one HTTP listener: /metrics for Prometheus, /healthz and /readyz for probes.

One listener, because every place the daemon runs (a systemd unit, an ACI container group) has room
for one port and one probe configuration. It binds to loopback unless the config says otherwise: the
metrics name every pool, which is more than an open port should tell the network. The probes differ on
purpose: /healthz fails only when restarting would help (a stuck loop or scheduler), /readyz also while
Azure cannot be reached, which a restart would not fix.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from reconciler.spec.config import Metrics as MetricsSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Probes(Protocol):
    def alive(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def tls_context(settings: MetricsSettings) -> ssl.SSLContext | None:
    if settings.tls is None or settings.tls.cert_file is None or settings.tls.key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(settings.tls.cert_file), str(settings.tls.key_file))
    return context


def basic_auth(settings: MetricsSettings) -> Credentials | None:
    auth = settings.basic_auth
    if auth is None or auth.username is None or auth.password is None:
        return None
    return Credentials(auth.username, auth.password.reveal())


def _authorized(header: str, expected: Credentials) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    same_user = hmac.compare_digest(user.encode(), expected.username.encode())
    same_password = hmac.compare_digest(password.encode(), expected.password.encode())
    return same_user and same_password


def make_app(registry: CollectorRegistry, probes: Probes, credentials: Credentials | None) -> web.Application:
    """Every path sits behind basic auth when it is configured: probes are local callers that can pass it."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if credentials is not None and not _authorized(request.headers.get("Authorization", ""), credentials):
            return web.Response(
                status=401, text="unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="reconciler"'}
            )
        return await handler(request)

    async def metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    def probe(check: Callable[[], tuple[bool, str]]) -> Handler:
        async def answer(_request: web.Request) -> web.Response:
            ok, detail = check()
            return web.Response(status=200 if ok else 503, text=f"{'ok' if ok else 'not ok'}: {detail}\n")

        return answer

    app = web.Application(middlewares=[guard])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", probe(probes.alive))
    app.router.add_get("/readyz", probe(probes.ready))
    return app


class Listener:
    """The running listener; `port` is the bound one (useful with port 0)."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, port: int, scheme: str) -> None:
        self._runner = runner
        self._site = site
        self.port = port
        self.scheme = scheme

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_listener(
    settings: MetricsSettings,
    registry: CollectorRegistry,
    probes: Probes,
    *,
    port: int | None = None,
) -> Listener:
    """Bind and serve; `port` overrides the config's (0 picks a free one)."""
    context = tls_context(settings)
    app = make_app(registry, probes, basic_auth(settings))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.address, settings.port if port is None else port, ssl_context=context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = settings.port if port is None else port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
            break
    return Listener(runner, site, bound, "https" if context is not None else "http")
