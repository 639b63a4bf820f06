"""Concurrency limits: per-account mutations, and refresh slots handed out fairly across accounts."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.engine.backoff import RequeueBackoff
from reconciler.engine.limits import FairSlots, Limits


async def test_mutations_per_account_never_exceed_the_limit_and_accounts_do_not_wait_on_each_other() -> None:
    limits = Limits(per_account=2)
    running = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    order: list[str] = []

    async def call(account: str, seconds: float) -> None:
        async with limits.mutation(account):
            running[account] += 1
            peak[account] = max(peak[account], running[account])
            await asyncio.sleep(seconds)
            running[account] -= 1
            order.append(account)

    await asyncio.gather(*(call("a", 0.05) for _ in range(6)), call("b", 0.0))
    assert peak == {"a": 2, "b": 1}
    assert order[0] == "b"


async def test_refresh_slots_go_round_robin_across_accounts() -> None:
    slots = FairSlots(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def cycle(account: str, index: int) -> None:
        async with slots.slot(account):
            order.append(f"{account}{index}")
            await gate.wait()

    first = asyncio.create_task(cycle("busy", 0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(cycle("busy", i)) for i in range(1, 4)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(cycle("quiet", 1)))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *waiting)
    assert order[:3] == ["busy0", "busy1", "quiet1"]
    assert slots.in_use == 0


async def test_a_cancelled_waiter_gives_up_its_turn() -> None:
    slots = FairSlots(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot("a"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.in_use == 0
    async with slots.slot("b"):
        assert slots.in_use == 1


def test_requeue_backoff_doubles_up_to_the_cap_and_clears_on_success() -> None:
    from datetime import UTC, datetime, timedelta

    from reconciler.plan.actions import Backoff

    backoff = RequeueBackoff(base=timedelta(minutes=1), cap=timedelta(minutes=5), jitter=0.0)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pauses = [backoff.failed("acc", "p", now, "quota").until - now for _ in range(5)]
    assert pauses == [timedelta(minutes=m) for m in (1, 2, 4, 5, 5)]
    assert backoff.until(now) == {("acc", "p"): Backoff(now + timedelta(minutes=5), "quota")}
    assert backoff.until(now + timedelta(minutes=6)) == {}
    backoff.succeeded("acc", "p")
    assert backoff.get("acc", "p") is None
