"""The task and node counts a pool's autoscale formula samples (`$PendingTasks.GetSample(...)` and kin).

The service records every metric once per 30 seconds. Counts only change at task and node events, so a pool
keeps the points where they changed rather than the samples: at most one point per 30-second recording tick
matters (a tick sees only the last change before it), so a point is replaced while no tick has passed since
it, and the ring holds no more points than the look-back has ticks. Samples are expanded from the points when
a formula runs; nothing runs between events, so 10 000 quiet pools cost one small deque each.

Ticks fall every 30 s from the pool's creation. Sample 0 is the counts at evaluation time (the service's
propagation delay is not simulated, so a test sees the counts it just caused); sample `i` is what the tick at
or before `now - 30 i` recorded. No sample is older than the pool, which is why `GetSamplePercent` is low
right after creation.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from reconciler.emulator.batch.autoscale_samples import SAMPLE_PERIOD_SECONDS

# The metrics recorded, in the order of a `Counts` tuple; keyed as `AutoScaleInputs.samples` keys them.
COUNTED = (
    "ActiveTasks",
    "RunningTasks",
    "PendingTasks",
    "CurrentDedicatedNodes",
    "CurrentLowPriorityNodes",
    "SampleNodeCount",
)
MAX_SAMPLES = 180  # 90 minutes of look-back: beyond the windows the documented formulas ask for
_EPSILON = 1e-9

Counts = tuple[int, int, int, int, int, int]


def counts(active: int, running: int, dedicated: int, low_priority: int, nodes: int) -> Counts:
    """`PendingTasks` is active plus running, as the service defines it."""
    return (active, running, active + running, dedicated, low_priority, nodes)


class CountHistory:
    __slots__ = ("_points", "limit", "origin")

    def __init__(self, origin: float, limit: int = MAX_SAMPLES) -> None:
        self.origin = origin
        self.limit = limit
        # One point per tick of the look-back, the one current when it began, and one for rounding.
        self._points: deque[tuple[float, Counts]] = deque(maxlen=limit + 2)

    def __len__(self) -> int:
        return len(self._points)

    def _tick_at_or_after(self, at: float) -> float:
        ticks = math.ceil((at - self.origin) / SAMPLE_PERIOD_SECONDS - _EPSILON)
        return self.origin + ticks * SAMPLE_PERIOD_SECONDS

    def _tick_at_or_before(self, at: float) -> float:
        ticks = math.floor((at - self.origin) / SAMPLE_PERIOD_SECONDS + _EPSILON)
        return self.origin + ticks * SAMPLE_PERIOD_SECONDS

    def record(self, at: float, current: Counts) -> None:
        points = self._points
        if points:
            last_at, last = points[-1]
            if current == last:
                return
            at = max(at, last_at)
            if self._tick_at_or_after(last_at) >= at:  # no tick saw the last point: it never was a sample
                points.pop()
                if points and points[-1][1] == current:
                    return
        points.append((at, current))

    def samples(self, now: float) -> dict[str, list[float]]:
        """Each metric's samples at `now`, most recent first; the histories end where the points do."""
        wanted = min(self.limit, int((now - self.origin) // SAMPLE_PERIOD_SECONDS) + 1)
        found: list[Counts] = []
        points = self._points
        index = len(points) - 1
        for i in range(max(0, wanted)):
            at = now if i == 0 else self._tick_at_or_before(now - i * SAMPLE_PERIOD_SECONDS)
            while index >= 0 and points[index][0] > at + _EPSILON:
                index -= 1
            if index < 0:
                break
            found.append(points[index][1])
        return {name: [float(row[k]) for row in found] for k, name in enumerate(COUNTED)}

    def dump(self) -> list[list[float | int]]:
        return [[at, *values] for at, values in self._points]

    def load(self, rows: Iterable[list[float | int]]) -> None:
        for row in rows:
            at, *values = row
            if len(values) == len(COUNTED):
                active, running, _, dedicated, low_priority, nodes = (int(v) for v in values)
                self._points.append((float(at), counts(active, running, dedicated, low_priority, nodes)))
