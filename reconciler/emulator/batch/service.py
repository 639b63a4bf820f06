"""The Batch service state shared by the data plane and by ARM's `batchAccounts/pools`.

Both faces speak data-plane REST JSON (camelCase dicts) to it so one pool is one object whatever the
caller.
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.context import EmulatorContext


class BatchService:
    name = "batch"

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        ctx.register(self)

    def _todo(self) -> BatchServiceError:
        return BatchServiceError(501, "NotImplemented", "not yet implemented")

    def create_pool(
        self, account: str, body: dict[str, Any], *, identity: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        raise self._todo()

    def get_pool(self, account: str, pool_id: str) -> dict[str, Any]:
        raise self._todo()

    def list_pools(self, account: str) -> list[dict[str, Any]]:
        raise self._todo()

    def patch_pool(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._todo()

    def resize_pool(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._todo()

    def stop_resize(self, account: str, pool_id: str) -> dict[str, Any]:
        raise self._todo()

    def enable_autoscale(self, account: str, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self._todo()

    def disable_autoscale(self, account: str, pool_id: str) -> dict[str, Any]:
        raise self._todo()

    def delete_pool(self, account: str, pool_id: str) -> None:
        raise self._todo()

    def dump(self) -> dict[str, Any]:
        return {}

    def load(self, data: dict[str, Any]) -> None:
        return None
