"""Metric histories behind `$PendingTasks.GetSample(...)` and its sibling methods.

Sampling semantics: the service records one sample of every metric each 30 seconds. The emulator hands the
evaluator each history most recent first (task and node counts from the pool's `CountHistory`), and the
newest sample counts as recorded at the evaluation time (the service's minute of propagation delay is not
simulated, so a test sees the counts it just caused). Sample `i` is therefore taken as `i * 30 s` old. A
look-back window `[a, b)` holds the samples whose age lies in it; `GetSample(TimeInterval_Minute * 10)` is
the window `[0, 10 min)`, which holds 20 samples when the history is full, and its sample percent is the
share of those 20 that exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from reconciler.emulator.batch.autoscale_errors import INSUFFICIENT_SAMPLES, FormulaError
from reconciler.emulator.batch.autoscale_values import Interval, Timestamp, Value, Vec, format_double

SAMPLE_PERIOD_SECONDS = 30.0


class History:
    def __init__(self, name: str, samples: Sequence[float], now: datetime) -> None:
        self.name = name
        self.samples = tuple(float(sample) for sample in samples)
        self.now = now

    def _age(self, point: Value) -> float:
        if isinstance(point, Interval):
            age = point.seconds
        elif isinstance(point, Timestamp):
            age = (self.now - point.at).total_seconds()
        else:
            raise TypeError("a window bound is a timeinterval or a timestamp")
        if not math.isfinite(age):
            raise ValueError("the time window is not finite")
        return age

    def _window(self, start: Value, end: Value | None) -> tuple[list[float], float]:
        ages = sorted((0.0, self._age(start)) if end is None else (self._age(start), self._age(end)))
        low, high = ages
        found = [s for i, s in enumerate(self.samples) if low <= i * SAMPLE_PERIOD_SECONDS < high]
        expected = math.ceil((high - low) / SAMPLE_PERIOD_SECONDS - 1e-9)
        percent = 100.0 if expected <= 0 else min(100.0, 100.0 * len(found) / expected)
        return found, percent

    def get_sample_count(self, count: float) -> Vec:
        if not count >= 0:
            raise ValueError(f"GetSample: the sample count must be 0 or more, not {format_double(count)}")
        return Vec(self.samples[: int(min(count, len(self.samples)))])

    def get_sample_window(self, start: Value, end: Value | None, required_percent: float | None) -> Vec:
        found, percent = self._window(start, end)
        if required_percent is not None and percent < required_percent:
            raise FormulaError(
                f"Insufficient data from data set: ${self.name} wanted {format_double(required_percent)}%, "
                f"received {format_double(float(math.floor(percent)))}%",
                code=INSUFFICIENT_SAMPLES,
            )
        return Vec(tuple(found))

    def sample_percent(self, start: Value, end: Value | None) -> float:
        return self._window(start, end)[1]

    def count(self) -> float:
        return float(len(self.samples))

    def history_begin_time(self) -> Timestamp:
        oldest = max(0, len(self.samples) - 1) * SAMPLE_PERIOD_SECONDS
        return Timestamp(self.now - timedelta(seconds=oldest))

    @staticmethod
    def sample_period() -> Interval:
        return Interval(SAMPLE_PERIOD_SECONDS)
