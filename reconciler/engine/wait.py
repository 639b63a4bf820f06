"""The one way the engine waits for Azure: `wait_until`, polling on tenacity.

Phases last from seconds (an autoscale disable) to hours (a drain), so a fixed poll interval either
hammers the API or notices the end late. Intervals grow exponentially from `min_interval` with jitter (so
many pools polled together spread out) and are capped at `max_interval`, which callers set to a fraction
of the phase's deadline: the lag after a transition stays a bounded fraction of the phase, and the GETs of
a phase stay logarithmic in its length. A throttled poll waits at least what the service asked for.

Only throttled and transient failures of the *observation* are waited through, as polls that saw nothing:
azure-core has already retried the call itself, so this is not a second retry loop around one request but
the next observation, which was due anyway.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final, TypeVar

from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception, retry_if_result

from reconciler.azure.errors import AzureError, ErrorKind

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

TIME_SCALE_ENV: Final = "RECONCILER_TIME_SCALE"
_WAITED_THROUGH: Final = frozenset({ErrorKind.THROTTLED, ErrorKind.TRANSIENT})
_JITTER: Final = 0.2


class DeadlineExceeded(Exception):
    """A phase did not end within its deadline; `last` is the last observation, if any."""

    def __init__(self, phase: str, waited: float, last: object = None) -> None:
        super().__init__(f"{phase}: still not done after {waited:.0f}s")
        self.phase = phase
        self.waited = waited
        self.last = last


@dataclass(frozen=True)
class Pacing:
    """How the engine spaces its polls, in wall seconds.

    `time_scale` divides every duration the engine derives from the spec (deadlines, caps) and every
    interval: against an emulator whose clock runs N times faster, `time_scale=N` makes the engine behave
    exactly as it would against Azure, only N times sooner.
    """

    min_interval: float = 15.0
    """The first poll of a phase, and the floor of every later one."""
    max_interval: float = 900.0
    """The ceiling of any poll interval, however long the phase's deadline."""
    cap_fraction: float = 0.1
    """The poll interval's ceiling as a fraction of the phase's deadline."""
    time_scale: float = 1.0

    def seconds(self, duration: timedelta | float) -> float:
        """A spec duration (simulated when `time_scale` > 1) in wall seconds."""
        value = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        return value / self.time_scale

    def cap(self, deadline: float) -> float:
        """The longest interval for a phase whose deadline is `deadline` wall seconds away."""
        scaled_max = self.max_interval / self.time_scale
        return max(self.floor, min(scaled_max, deadline * self.cap_fraction))

    @property
    def floor(self) -> float:
        return self.min_interval / self.time_scale

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base: Pacing | None = None) -> Pacing:
        """`RECONCILER_TIME_SCALE=N` for demos and tests against an emulator run with `--time-scale N`."""
        pacing = base or cls()
        raw = (os.environ if env is None else env).get(TIME_SCALE_ENV)
        if not raw:
            return pacing
        try:
            scale = float(raw)
        except ValueError:
            raise ValueError(f"{TIME_SCALE_ENV} must be a positive number, not {raw!r}") from None
        if not scale > 0:
            raise ValueError(f"{TIME_SCALE_ENV} must be a positive number, not {raw!r}")
        return replace(pacing, time_scale=scale)


def _classified(exc: BaseException) -> AzureError | None:
    error = getattr(exc, "error", None)
    return error if isinstance(error, AzureError) else None


def _waited_through(exc: BaseException) -> bool:
    error = _classified(exc)
    return error is not None and error.kind in _WAITED_THROUGH


class _Backoff:
    """Exponential growth from `floor` to `cap`, +0-20 % jitter, at least Retry-After, never past the end."""

    def __init__(self, floor: float, cap: float, end: float, clock: Clock, rng: random.Random) -> None:
        self.floor, self.cap, self.end, self.clock, self.rng = floor, cap, end, clock, rng

    def __call__(self, state: RetryCallState) -> float:
        base = self.floor * 2 ** (state.attempt_number - 1)
        wait: float = min(self.cap, base * self.rng.uniform(1.0, 1.0 + _JITTER))
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        if failure is not None:
            error = _classified(failure)
            if error is not None and error.retry_after is not None:
                wait = max(wait, error.retry_after)
        return max(0.0, min(wait, self.end - self.clock()))


async def wait_until(
    observe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    phase: str,
    deadline: float,
    min_interval: float,
    max_interval: float,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    rng: random.Random | None = None,
    first_delay: float = 0.0,
) -> T:
    """Poll `observe` until `done(result)`, within `deadline` seconds; the first poll after `first_delay`.

    Raises `DeadlineExceeded(phase, waited, last)` when the deadline passes first. Failures other than
    throttled or transient ones (carried as `.error: AzureError` on the exception) propagate at once.
    """
    start = clock()
    end = start + deadline
    last: list[T] = []

    async def poll() -> T:
        result = await observe()
        last[:] = [result]
        return result

    if first_delay > 0:
        await sleep(min(first_delay, deadline))
    retrying = AsyncRetrying(
        retry=retry_if_result(lambda result: not done(result)) | retry_if_exception(_waited_through),
        wait=_Backoff(min_interval, max(min_interval, max_interval), end, clock, rng or random.Random()),
        stop=lambda _state: clock() >= end,
        sleep=sleep,
        reraise=False,
    )
    try:
        return await retrying(poll)
    except RetryError:
        raise DeadlineExceeded(phase, clock() - start, last[0] if last else None) from None
