"""The desired state of one Azure Batch pool."""

from __future__ import annotations

import re

from reconciler.spec.base import SpecModel
from reconciler.spec.durations import Duration

_POOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_pool_id(pool_id: str) -> str | None:
    """Why the service would reject this pool id, or None when it is acceptable."""
    if not _POOL_ID.fullmatch(pool_id):
        return "a pool id is 1 to 64 letters, digits, '-' or '_'"
    return None


class Pool(SpecModel):
    """One pool as the Batch service should hold it, plus how this tool keeps it so."""

    account: str
    vm_size: str
    resize_timeout: Duration | None = None
    target_dedicated_nodes: int | None = None
    suspend: bool = False
    deletion_protection: bool = False
