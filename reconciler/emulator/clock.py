"""Simulated time for the emulator.

Azure takes minutes to allocate nodes and hours to drain them; tests and the demo cannot. Every timed
behaviour in the emulator reads this clock, which runs `time_scale` times faster than wall time and can be
jumped forward, so a two-hour drain is a test of milliseconds without a single real sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, time_scale: float = 1.0, start: datetime | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._scale = time_scale
        self._wall_base = time.monotonic()
        self._sim_base = 0.0
        self._changed = asyncio.Event()

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        if value <= 0:
            raise ValueError("time_scale must be positive")
        self._rebase()
        self._scale = value
        self._notify()

    def monotonic(self) -> float:
        """Simulated seconds since the clock started; never goes backwards."""
        return self._sim_base + (time.monotonic() - self._wall_base) * self._scale

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def at(self, sim_seconds: float) -> datetime:
        """The wall-clock datetime of a `monotonic()` reading."""
        return self._start + timedelta(seconds=sim_seconds)

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward and wake every `sleep` whose deadline has passed."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._rebase()
        self._sim_base += seconds
        self._notify()

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of simulated time (woken early by `advance`)."""
        deadline = self.monotonic() + seconds
        while (remaining := deadline - self.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=remaining / self._scale)

    def _rebase(self) -> None:
        self._sim_base = self.monotonic()
        self._wall_base = time.monotonic()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def state(self) -> dict[str, float | str]:
        return {"start": self._start.isoformat(), "elapsed": self.monotonic(), "time_scale": self._scale}

    @classmethod
    def from_state(cls, state: dict[str, float | str], time_scale: float | None = None) -> SimClock:
        clock = cls(time_scale or float(state["time_scale"]), datetime.fromisoformat(str(state["start"])))
        clock._sim_base = float(state["elapsed"])
        return clock
