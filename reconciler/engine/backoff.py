"""Per-pool exponential requeue times after failures, fed back to the planner as `backoff_until`.

A pool that hit its core quota fails the same way on the next tick, and so does a create refused with
`PoolQuotaReached`, a refresh whose drain was aborted or a PATCH the service rejects; retrying any of them
every tick would spend API calls and log lines on a state only an admin can change. Each consecutive
failure doubles the pause, up to `cap`, and one success clears it. Kept in memory on purpose: this is
rate limiting, not progress, and a restart that forgets it costs one early retry.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from reconciler.plan.actions import Backoff

PoolKey = tuple[str, str]
"""(account, pool id as the config spells it), the key `make_plan(backoff_until=...)` reads."""


def pool_key(account: str, pool_id: str) -> PoolKey:
    return account, pool_id


@dataclass(frozen=True)
class Requeue:
    failures: int
    until: datetime
    reason: str


class RequeueBackoff:
    def __init__(
        self,
        *,
        base: timedelta = timedelta(minutes=1),
        cap: timedelta = timedelta(hours=1),
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._pools: dict[PoolKey, Requeue] = {}

    def failed(self, account: str, pool_id: str, now: datetime, reason: str) -> Requeue:
        """Record one more failure; the pool is left alone until the returned `until`."""
        key = pool_key(account, pool_id)
        previous = self._pools.get(key)
        failures = (previous.failures if previous else 0) + 1
        pause = min(self.cap, self.base * 2 ** (failures - 1))
        pause *= 1.0 + self._rng.uniform(0.0, self.jitter)
        entry = Requeue(failures, now + pause, reason)
        self._pools[key] = entry
        return entry

    def succeeded(self, account: str, pool_id: str) -> None:
        self._pools.pop(pool_key(account, pool_id), None)

    def get(self, account: str, pool_id: str) -> Requeue | None:
        return self._pools.get(pool_key(account, pool_id))

    def until(self, now: datetime | None = None) -> Mapping[PoolKey, Backoff]:
        """Pools still paused (all of them without `now`), keyed by `pool_key`, with the failure."""
        return MappingProxyType(
            {
                key: Backoff(r.until, r.reason)
                for key, r in self._pools.items()
                if now is None or r.until > now
            }
        )
