"""What every ARM handler shares: bearer auth, the subscription check, settling, and error rendering."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from reconciler.emulator.arm.errors import ArmError
from reconciler.emulator.arm.store import ResourceStore
from reconciler.emulator.identity import ARM_AUDIENCE, LEGACY_ARM_AUDIENCE, IdentityProvider, TokenError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DEFAULT_API_VERSION = "2025-04-01"
DEFAULT_PAGE_SIZE = 1000
SKIP_PARAMETER = "$skiptoken"

T = TypeVar("T")


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


def page_response(
    request: web.Request,
    rows: Iterable[tuple[str, T]],
    render: Callable[[T], Any],
    *,
    page_size: int,
) -> web.Response:
    """One page of an ARM list: `value`, and a `nextLink` while more remain.

    `rows` are `(key, item)`; keys are unique (lower-cased names or ids) and order the list, and the link's
    `$skiptoken` resumes after the page's last key, so a resource created or deleted between pages neither
    repeats nor hides another, as with ARM's own skip tokens. The link keeps the request's query, api-version
    included: azure-mgmt-network and -compute follow `nextLink` as it is, azure-mgmt-batch re-sends its
    parameters and sets its own api-version. Only the page is rendered, so a long list costs one page.
    """
    after = _skipped_to(request.query.get(SKIP_PARAMETER))
    remaining = sorted((row for row in rows if after is None or row[0] > after), key=lambda row: row[0])
    page = remaining[: max(1, page_size)]
    body: dict[str, Any] = {"value": [render(item) for _, item in page]}
    if len(remaining) > len(page):
        query = [(k, v) for k, v in request.query.items() if k != SKIP_PARAMETER]
        query.append((SKIP_PARAMETER, base64.urlsafe_b64encode(page[-1][0].encode()).decode().rstrip("=")))
        body["nextLink"] = f"{base_url(request)}{request.rel_url.raw_path}?{urlencode(query)}"
    return json_response(body)


def _skipped_to(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ArmError(400, "InvalidSkipToken", f"The skip token '{token}' is not valid.") from exc


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
