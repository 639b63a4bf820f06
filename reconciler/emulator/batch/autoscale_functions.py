"""Built-in functions of the autoscale formula language, with the service's signatures.

Functions documented as taking a doubleVecList accept any mix of doubles and doubleVecs and flatten them
(`avg(v, 7)` is `avg(1, 2, 3, 7)` for `v = [1, 2, 3]`). `lg`, `ln`, `log`, `ceil`, `floor` and `round` are
per component on a list and plain on a single double. `rand()` is seeded from the formula and the evaluation
time, so evaluating the same formula at the same simulated instant gives the same result.
`percentile(v, p)` uses the nearest-rank method; `round` rounds half to even as .NET's Math.Round does.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from reconciler.emulator.batch.autoscale_values import Timestamp, Value, Vec, type_name


class Stop(Exception):
    """Raised by `stop()`: the run ends and keeps what it assigned so far."""


class CallContext:
    def __init__(self, now: datetime, seed: str) -> None:
        self.now = now
        self.random = random.Random(seed)


Function = Callable[[CallContext, Sequence[Value]], Value]


def _flatten(name: str, args: Sequence[Value]) -> list[float]:
    values: list[float] = []
    for arg in args:
        if isinstance(arg, float):
            values.append(arg)
        elif isinstance(arg, Vec):
            values.extend(arg.items)
        else:
            raise TypeError(f"{name}() takes doubles and doubleVecs, not a {type_name(arg)}")
    return values


def _nonempty(name: str, args: Sequence[Value]) -> list[float]:
    values = _flatten(name, args)
    if not values:
        raise ValueError(f"{name}() of an empty list")
    return values


def _arity(name: str, args: Sequence[Value], count: int) -> None:
    if len(args) != count:
        raise TypeError(f"{name}() takes {count} argument{'s' if count != 1 else ''}, not {len(args)}")


def _log(fn: Callable[[float], float]) -> Callable[[float], float]:
    def log(x: float) -> float:
        if math.isnan(x) or x < 0:
            return math.nan
        if x == 0:
            return -math.inf
        return math.inf if math.isinf(x) else fn(x)

    return log


def _integral(fn: Callable[[float], int]) -> Callable[[float], float]:
    return lambda x: x if not math.isfinite(x) else float(fn(x))


def _componentwise(name: str, fn: Callable[[float], float]) -> Function:
    def apply(_: CallContext, args: Sequence[Value]) -> Value:
        if len(args) == 1 and isinstance(args[0], float):
            return fn(args[0])
        return Vec(tuple(fn(x) for x in _flatten(name, args)))

    return apply


def _time(ctx: CallContext, args: Sequence[Value]) -> Value:
    if not args:
        return Timestamp(ctx.now)
    _arity("time", args, 1)
    text = args[0]
    if not isinstance(text, str):
        raise TypeError(f"time() takes a string, not a {type_name(text)}")
    if not text.strip():
        return Timestamp(ctx.now)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"time(): '{text}' is neither a W3C-DTF nor an RFC 1123 date") from None
    return Timestamp(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def _percentile(_: CallContext, args: Sequence[Value]) -> Value:
    _arity("percentile", args, 2)
    vector, p = args
    if not isinstance(vector, Vec | float) or not isinstance(p, float):
        raise TypeError("percentile() takes a doubleVec and a double")
    values = sorted(_nonempty("percentile", [vector]))
    if not 0 <= p <= 100:
        raise ValueError(f"percentile(): the percentile must be between 0 and 100, not {p}")
    rank = math.ceil(p / 100 * len(values))
    return values[max(0, rank - 1)]


def _val(_: CallContext, args: Sequence[Value]) -> Value:
    _arity("val", args, 2)
    vector, index = args
    if not isinstance(vector, Vec) or not isinstance(index, float):
        raise TypeError("val() takes a doubleVec and a double")
    if not (math.isfinite(index) and 0 <= index < len(vector.items)):
        raise ValueError(f"val(): index {index:g} is outside a doubleVec of length {len(vector.items)}")
    return vector.items[int(index)]


def _rand(ctx: CallContext, args: Sequence[Value]) -> Value:
    _arity("rand", args, 0)
    return ctx.random.random()


def _stop(_: CallContext, args: Sequence[Value]) -> Value:
    _arity("stop", args, 0)
    raise Stop


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _reducer(name: str, fn: Callable[[list[float]], float], allow_empty: bool = False) -> Function:
    def apply(_: CallContext, args: Sequence[Value]) -> Value:
        values = _flatten(name, args) if allow_empty else _nonempty(name, args)
        return float(fn(values))

    return apply


FUNCTIONS: dict[str, Function] = {
    "avg": _reducer("avg", lambda v: sum(v) / len(v)),
    "len": _reducer("len", len, allow_empty=True),
    "max": _reducer("max", max),
    "min": _reducer("min", min),
    "norm": _reducer("norm", lambda v: math.hypot(*v), allow_empty=True),
    "range": _reducer("range", lambda v: max(v) - min(v)),
    "std": _reducer("std", _std),
    "sum": _reducer("sum", sum, allow_empty=True),
    "lg": _componentwise("lg", _log(math.log2)),
    "ln": _componentwise("ln", _log(math.log)),
    "log": _componentwise("log", _log(math.log10)),
    "ceil": _componentwise("ceil", _integral(math.ceil)),
    "floor": _componentwise("floor", _integral(math.floor)),
    "round": _componentwise("round", _integral(round)),
    "percentile": _percentile,
    "rand": _rand,
    "stop": _stop,
    "time": _time,
    "val": _val,
}
