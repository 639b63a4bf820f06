"""Values of the autoscale formula language, its operator table, and how results print them.

The operator table is the documented one and nothing more (`timestamp - timeinterval` is absent there, so
it is an error here too): a formula the emulator accepts should be one the service accepts. Doubles follow
IEEE rules as the service's .NET doubles do (`1/0` is infinity, `ln(0)` is -infinity); only turning such a
value into a node count fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.emulator.batch.autoscale_errors import EVALUATION_FAILED, FormulaError


@dataclass(frozen=True)
class Vec:
    items: tuple[float, ...]


@dataclass(frozen=True)
class Interval:
    seconds: float


@dataclass(frozen=True)
class Timestamp:
    at: datetime


Value = float | str | Vec | Interval | Timestamp

INTERVALS = {
    "TimeInterval_Zero": 0.0,
    "TimeInterval_100ns": 1e-7,
    "TimeInterval_Microsecond": 1e-6,
    "TimeInterval_Millisecond": 1e-3,
    "TimeInterval_Second": 1.0,
    "TimeInterval_Minute": 60.0,
    "TimeInterval_Hour": 3600.0,
    "TimeInterval_Day": 86400.0,
    "TimeInterval_Week": 7 * 86400.0,
    "TimeInterval_Year": 365 * 86400.0,
}


def type_name(value: Value) -> str:
    match value:
        case float():
            return "double"
        case str():
            return "string"
        case Vec():
            return "doubleVec"
        case Interval():
            return "timeinterval"
        case Timestamp():
            return "timestamp"


def evaluation_error(message: str, line: int, column: int) -> FormulaError:
    return FormulaError(message, code=EVALUATION_FAILED, line=line, column=column)


def divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    try:
        return a / b
    except OverflowError:
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def shift(at: datetime, seconds: float) -> Timestamp:
    if not math.isfinite(seconds):
        raise ValueError("the time interval is not finite")
    return Timestamp(at + timedelta(seconds=seconds))


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": divide,
}
_COMPARE: dict[str, Callable[[float | str | datetime, float | str | datetime], bool]] = {
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def binary(op: str, left: Value, right: Value) -> Value | None:
    """The documented result of `left op right`, or None when the table has no such row."""
    if op in _COMPARE:
        pairs = (
            (left, right)
            if isinstance(left, float | str) and type(left) is type(right)
            else (left.at, right.at)
            if isinstance(left, Timestamp) and isinstance(right, Timestamp)
            else (left.seconds, right.seconds)
            if isinstance(left, Interval) and isinstance(right, Interval)
            else None
        )
        return None if pairs is None else float(_COMPARE[op](*pairs))
    if op in ("&&", "||"):
        if isinstance(left, float) and isinstance(right, float):
            return float(bool(left) and bool(right)) if op == "&&" else float(bool(left) or bool(right))
        return None
    arith = _ARITH[op]
    match left, right:
        case float(), float():
            return arith(left, right)
        case Vec(), float():
            return Vec(tuple(arith(a, right) for a in left.items))
        case Vec(), Vec() if len(left.items) == len(right.items):
            return Vec(tuple(arith(a, b) for a, b in zip(left.items, right.items, strict=True)))
        case float(), Interval() if op == "*":
            return Interval(left * right.seconds)
        case Interval(), float() if op in ("*", "/"):
            return Interval(arith(left.seconds, right))
        case Interval(), Interval() if op in ("+", "-"):
            return Interval(arith(left.seconds, right.seconds))
        case Interval(), Timestamp() if op == "+":
            return shift(right.at, left.seconds)
        case Timestamp(), Interval() if op == "+":
            return shift(left.at, right.seconds)
        case Timestamp(), Timestamp() if op == "-":
            return Interval((left.at - right.at).total_seconds())
    return None


def format_double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_interval(seconds: float) -> str:
    """A .NET TimeSpan's constant format, `[-][d.]hh:mm:ss[.fffffff]`, as the service prints intervals."""
    if not math.isfinite(seconds):
        return format_double(seconds)
    sign = "-" if seconds < 0 else ""
    ticks = round(abs(seconds) * 10_000_000)
    days, ticks = divmod(ticks, 86400 * 10_000_000)
    whole, fraction = divmod(ticks, 10_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{f'{days}.' if days else ''}{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{text}.{fraction:07d}" if fraction else text


def format_value(value: Value) -> str:
    match value:
        case float():
            return format_double(value)
        case str():
            return value
        case Vec():
            return "[" + ",".join(format_double(item) for item in value.items) + "]"
        case Interval():
            return format_interval(value.seconds)
        case Timestamp():
            at = value.at.astimezone(UTC)
            return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
