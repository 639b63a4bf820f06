"""Test and demo controls of the Batch emulator under `/_emulator/batch/`."""

from __future__ import annotations

from aiohttp import web

from reconciler.emulator.batch.service import BatchService


def add_batch_admin_routes(app: web.Application, service: BatchService) -> None:
    """Expose the admin methods of `service` over HTTP for out-of-process callers."""
    return None
