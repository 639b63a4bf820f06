"""What every ARM handler shares: bearer auth, the subscription check, settling, and error rendering."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.emulator.arm.errors import ArmError
from reconciler.emulator.arm.store import ResourceStore
from reconciler.emulator.identity import ARM_AUDIENCE, LEGACY_ARM_AUDIENCE, IdentityProvider, TokenError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEFAULT_API_VERSION = "2025-04-01"


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def arm_audiences(request: web.Request) -> tuple[str, ...]:
    """What ARM accepts as `aud`: the public cloud's names, and this endpoint's own URL as a private
    cloud's ARM does, so a client scoped `<arm_endpoint>/.default` is served like one scoped to Azure's."""
    return (ARM_AUDIENCE, LEGACY_ARM_AUDIENCE, base_url(request) + "/")


def api_version(request: web.Request) -> str:
    return request.query.get("api-version", DEFAULT_API_VERSION)


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ArmError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class ArmGate:
    """Wraps handlers so each one sees an authenticated caller, a known subscription and a settled store."""

    def __init__(self, identity: IdentityProvider, store: ResourceStore) -> None:
        self.identity = identity
        self.store = store

    def __call__(self, handler: Handler) -> Handler:
        async def gated(request: web.Request) -> web.StreamResponse:
            try:
                self.identity.verify_bearer(request.headers.get("Authorization"), arm_audiences(request))
            except TokenError as exc:
                challenge = self.identity.www_authenticate(base_url(request), ARM_AUDIENCE, exc)
                return ArmError(401, exc.code, exc.message).response({"WWW-Authenticate": challenge})
            subscription = request.match_info.get("subscriptionId")
            if subscription is not None and subscription.lower() != self.store.subscription_id.lower():
                return ArmError(
                    404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
                ).response()
            self.store.settle()
            try:
                return await handler(request)
            except ArmError as exc:
                return exc.response()

        return gated
