"""A small Entra ID: one tenant, one service principal, and the token endpoint MSAL talks to.

Credentials in the product are azure-identity's real ones; pointing their authority here lets every test
exercise the same code paths (secret and certificate service principals) that run against Azure.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from reconciler.emulator.context import EmulatorContext


class TokenError(Exception):
    """A bearer token the caller must answer with 401."""


class IdentityProvider:
    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx

    def add_routes(self, app: web.Application) -> None:
        pass

    def verify_bearer(self, authorization: str | None, audience: str) -> None:
        raise TokenError("not implemented yet")

    def connection_info(self, base_url: str) -> dict[str, Any]:
        return {"authority": base_url, "tenant_id": self.ctx.tenant_id, "client_id": self.ctx.client_id}

    def credential(
        self,
        base_url: str,
        ca_bundle: str,
        *,
        aio: bool = True,
        kind: Literal["secret", "certificate"] = "secret",
    ) -> Any:
        raise NotImplementedError
