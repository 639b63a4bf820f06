"""`wait_until` on a fake clock: spacing, Retry-After, deadlines, and errors that must not be waited out."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest

from reconciler.azure.errors import AzureError, ErrorKind
from reconciler.azure.operations import OperationFailed
from reconciler.engine.wait import DeadlineExceeded, Pacing, wait_until


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failure(kind: ErrorKind, retry_after: float | None = None) -> OperationFailed:
    return OperationFailed("get", "p", AzureError(kind, "injected", code="X", retry_after=retry_after))


async def test_polls_back_off_exponentially_up_to_the_cap_and_notice_the_end_promptly() -> None:
    fake = FakeTime()
    polls: list[float] = []

    async def observe() -> float:
        polls.append(fake.now)
        return fake.now

    result = await wait_until(
        observe,
        lambda t: t >= 1000.0,
        phase="drain",
        deadline=7200.0,
        min_interval=5.0,
        max_interval=360.0,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(1),
    )
    assert result >= 1000.0
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert all(g2 >= g1 * 0.8 for g1, g2 in itertools.pairwise(gaps))
    assert max(gaps) <= 360.0
    assert result - 1000.0 <= 360.0
    assert len(polls) <= 10


async def test_retry_after_of_a_throttled_poll_is_honoured() -> None:
    fake = FakeTime()
    answers: list[object] = [failure(ErrorKind.THROTTLED, retry_after=42.0), "done"]

    async def observe() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    result = await wait_until(
        observe,
        lambda r: r == "done",
        phase="p",
        deadline=600.0,
        min_interval=1.0,
        max_interval=10.0,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert result == "done"
    assert fake.sleeps == [42.0]


async def test_transient_polls_are_waited_through_but_other_errors_propagate() -> None:
    fake = FakeTime()
    answers: list[object] = [failure(ErrorKind.TRANSIENT), failure(ErrorKind.AUTH)]

    async def observe() -> str:
        raise answers.pop(0)  # type: ignore[misc]

    with pytest.raises(OperationFailed) as raised:
        await wait_until(
            observe,
            lambda r: True,
            phase="p",
            deadline=600.0,
            min_interval=1.0,
            max_interval=10.0,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert raised.value.kind is ErrorKind.AUTH
    assert len(fake.sleeps) == 1


async def test_deadline_is_a_clear_error_with_the_last_observation() -> None:
    fake = FakeTime()

    async def observe() -> str:
        return "resizing"

    with pytest.raises(DeadlineExceeded) as raised:
        await wait_until(
            observe,
            lambda r: r == "steady",
            phase="drain",
            deadline=100.0,
            min_interval=5.0,
            max_interval=30.0,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert raised.value.phase == "drain"
    assert raised.value.last == "resizing"
    assert raised.value.waited == pytest.approx(100.0)
    assert "drain" in str(raised.value)
    assert fake.now == pytest.approx(100.0)


def test_pacing_scales_durations_and_caps_by_the_deadline() -> None:
    pacing = Pacing(min_interval=5.0, max_interval=300.0, cap_fraction=0.05, time_scale=100.0)
    assert pacing.seconds(timedelta(hours=2)) == pytest.approx(72.0)
    assert pacing.cap(pacing.seconds(timedelta(hours=2))) == pytest.approx(3.0)
    assert pacing.cap(0.1) == pytest.approx(0.05)
    assert Pacing.from_env({"RECONCILER_TIME_SCALE": "300"}).time_scale == 300.0
    with pytest.raises(ValueError, match="RECONCILER_TIME_SCALE"):
        Pacing.from_env({"RECONCILER_TIME_SCALE": "-1"})
