"""How much the engine does at once: per-account mutations, refresh cycles overall, fairly.

Batch throttles per account, and a refresh drains real work, so both are bounded: at most
`per_account` mutating calls in flight against one account (default 4) and at most `refresh_cycles`
pools being recreated at once (default 2). The refresh slots are handed out round-robin across accounts,
so an account with fifty pools to refresh cannot keep another account's one pool waiting behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import Final

DEFAULT_PER_ACCOUNT: Final = 4
DEFAULT_REFRESH_CYCLES: Final = 2


class FairSlots:
    """`limit` slots shared by groups; a freed slot goes to the next group in turn, FIFO within it."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a limit is at least 1")
        self.limit = limit
        self.in_use = 0
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @contextlib.asynccontextmanager
    async def slot(self, group: str) -> AsyncIterator[None]:
        await self._acquire(group)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, group: str) -> None:
        if self.in_use < self.limit and not self._waiting:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(group, deque()).append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()
            else:
                self._forget(group, future)
            raise

    def _forget(self, group: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(group)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[group]

    def _release(self) -> None:
        while self._waiting:
            group, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            del self._waiting[group]
            if queue:
                self._waiting[group] = queue  # to the back of the round
            if not future.done():
                future.set_result(None)
                return
        self.in_use -= 1


class Limits:
    """The engine's concurrency limits; one instance shared by everything acting in one process."""

    def __init__(
        self, per_account: int = DEFAULT_PER_ACCOUNT, refresh_cycles: int = DEFAULT_REFRESH_CYCLES
    ) -> None:
        if per_account < 1:
            raise ValueError("per_account is at least 1")
        self.per_account = per_account
        self._accounts: dict[str, asyncio.Semaphore] = {}
        self.refreshes = FairSlots(refresh_cycles)

    def mutation(self, account: str) -> asyncio.Semaphore:
        """Hold around each mutating call to `account` (not around waits)."""
        semaphore = self._accounts.get(account)
        if semaphore is None:
            semaphore = self._accounts[account] = asyncio.Semaphore(self.per_account)
        return semaphore

    def refresh(self, account: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold for a whole refresh cycle of a pool of `account`."""
        return self.refreshes.slot(account)
