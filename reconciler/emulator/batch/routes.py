"""aiohttp routes of the Batch data plane, named after the OpenAPI operationIds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from reconciler.emulator.batch.service import BatchService

BearerVerifier = Callable[[str], bool | Awaitable[bool]]


def add_batch_routes(
    app: web.Application, service: BatchService, *, verify_bearer: BearerVerifier | None = None
) -> None:
    """Serve the data plane under `/{account}/...`; `verify_bearer(token)` enables Entra tokens."""
    return None
