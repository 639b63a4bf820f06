"""Pool metadata the reconciler writes into Azure, so that what it knows survives restarts.

Only pools carrying `MANAGED_BY` are ever changed or deleted; `SPEC_HASH` says which spec built the pool;
`REFRESH_REQUESTED_AT` is a pending refresh, done once the pool was created after it; `SECRET_DIGESTS`
tells which secret-bearing field changed, since the service never returns secrets to compare;
`DELETION_PROTECTION` mirrors the spec's flag, because once a pool leaves the config its metadata is the
only place the prune guard can still read the protection from.
"""

from __future__ import annotations

from typing import Final

MANAGED_BY: Final = "reconciler.managed-by"
SPEC_HASH: Final = "reconciler.spec-hash"
REFRESH_REQUESTED_AT: Final = "reconciler.refresh-requested-at"
SECRET_DIGESTS: Final = "reconciler.secret-digests"  # noqa: S105 - a metadata name, not a secret
DELETION_PROTECTION: Final = "reconciler.deletion-protection"
MANAGED_BY_VALUE: Final = "reconciler"
"""The value written under MANAGED_BY; any value marks the pool as ours when read back."""

ALL: Final = frozenset({MANAGED_BY, SPEC_HASH, REFRESH_REQUESTED_AT, SECRET_DIGESTS, DELETION_PROTECTION})
