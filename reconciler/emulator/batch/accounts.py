"""Per-account state: its pools (kept sorted for cheap paging), jobs, task queues and quotas."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from reconciler.emulator.batch.jobs import Job, Task
from reconciler.emulator.context import AccountSettings

if TYPE_CHECKING:
    from reconciler.emulator.batch.pools import Pool, Timings
    from reconciler.emulator.clock import SimClock


@dataclass
class AccountState:
    settings: AccountSettings
    clock: SimClock
    timings: Timings
    pools: dict[str, Pool] = field(default_factory=dict)
    pool_keys: list[str] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    queues: dict[str, list[Task]] = field(default_factory=dict)
    etag_serial: int = 0
    start_task_failures: dict[str, int] = field(default_factory=dict)
    cores_used: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    @property
    def name(self) -> str:
        return self.settings.name

    def new_etag(self) -> str:
        self.etag_serial += 1
        return f"0x8D{self.etag_serial + 0x4000000000:013X}"

    def clock_at(self, sim_seconds: float) -> datetime:
        return self.clock.at(sim_seconds)

    def settings_quota(self, dedicated: bool) -> int:
        s = self.settings
        return s.dedicated_core_quota if dedicated else s.low_priority_core_quota

    def cores_in_use(self, dedicated: bool, exclude: Pool | None = None) -> int:
        """Cores held by the account's nodes: a running total, since quota checks happen on every resize."""
        mine = exclude.cores_in_use(dedicated) if exclude is not None else 0
        return self.cores_used[dedicated] - mine

    def recount_cores(self) -> None:
        for dedicated in (True, False):
            self.cores_used[dedicated] = sum(p.cores_in_use(dedicated) for p in self.pools.values())

    def add_pool(self, pool: Pool) -> None:
        self.pools[pool.key] = pool
        bisect.insort(self.pool_keys, pool.key)

    def forget_pool(self, pool: Pool) -> None:
        if self.pools.get(pool.key) is pool:
            del self.pools[pool.key]
            index = bisect.bisect_left(self.pool_keys, pool.key)
            if index < len(self.pool_keys) and self.pool_keys[index] == pool.key:
                del self.pool_keys[index]

    def pools_after(self, key: str | None) -> Iterator[Pool]:
        """Pools in id order strictly after `key`: a page costs its own length, not the account's size."""
        start = 0 if key is None else bisect.bisect_right(self.pool_keys, key)
        for index in range(start, len(self.pool_keys)):
            pool = self.pools.get(self.pool_keys[index])
            if pool is not None:
                yield pool
