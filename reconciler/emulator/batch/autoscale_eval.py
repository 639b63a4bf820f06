"""Running a parsed autoscale formula: name resolution, the static checks the service makes before it runs
anything, and the interpreter itself."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime

from reconciler.emulator.batch.autoscale_errors import EVALUATION_FAILED, FormulaError
from reconciler.emulator.batch.autoscale_functions import FUNCTIONS, CallContext, Stop
from reconciler.emulator.batch.autoscale_lexer import Token
from reconciler.emulator.batch.autoscale_parser import (
    Binary,
    Call,
    Expr,
    Member,
    MethodCall,
    Name,
    Number,
    Statement,
    String,
    Ternary,
    Unary,
    left_spine,
    parse,
)
from reconciler.emulator.batch.autoscale_samples import History
from reconciler.emulator.batch.autoscale_values import (
    INTERVALS,
    Interval,
    Timestamp,
    Value,
    binary,
    type_name,
)

DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
DEDICATED = "$TargetDedicatedNodes"
LOW_PRIORITY = "$TargetLowPriorityNodes"
DEALLOCATION = "$NodeDeallocationOption"
ALIASES = {"$TargetDedicated": DEDICATED, "$TargetLowPriority": LOW_PRIORITY}
CURRENT = {
    "$CurrentDedicatedNodes": "CurrentDedicatedNodes",
    "$CurrentDedicated": "CurrentDedicatedNodes",
    "$CurrentLowPriorityNodes": "CurrentLowPriorityNodes",
    "$CurrentLowPriority": "CurrentLowPriorityNodes",
}
# Sampled service variables, named as `AutoScaleInputs.samples` keys them: without `$`.
METRICS = frozenset(
    {
        "CPUPercent", "WallClockSeconds", "MemoryBytes", "DiskBytes", "DiskReadBytes", "DiskWriteBytes",
        "DiskReadOps", "DiskWriteOps", "NetworkInBytes", "NetworkOutBytes", "SampleNodeCount",
        "ActiveTasks", "RunningTasks", "PendingTasks", "SucceededTasks", "FailedTasks",
        "PreemptedNodeCount", "CurrentDedicatedNodes", "CurrentLowPriorityNodes",
    }
)  # fmt: skip
WRITABLE = frozenset({DEDICATED, LOW_PRIORITY, DEALLOCATION, *ALIASES})
READ_ONLY = frozenset({*(f"${m}" for m in METRICS), *CURRENT, *INTERVALS})


def metric_of(name: str) -> str | None:
    """The metric a `$Name` reads samples of, or None if it is not a sampled service variable."""
    if name in CURRENT:
        return CURRENT[name]
    return name[1:] if name.startswith("$") and name[1:] in METRICS else None


@functools.lru_cache(maxsize=4096)
def check(formula: str) -> tuple[Statement, ...]:
    """Parse a formula and make the checks the service makes before running it: every name read is a
    service variable, a constant or a variable assigned by an earlier statement; no read-only variable is
    assigned. The language has no loops, so this is exact. Cached: every pool re-runs its formula each
    evaluation interval, and parsing is most of a run's cost."""
    statements = parse(formula)
    assigned: set[str] = set()
    for statement in statements:
        _check_expr(statement.expr, assigned)
        if statement.target is not None:
            name = statement.target.text
            if name in READ_ONLY:
                raise statement.target.error(f"cannot assign to read-only variable '{name}'")
            assigned.add(name)
    return tuple(statements)


def _check_expr(expr: Expr, assigned: set[str]) -> None:
    match expr:
        case Name(name=name, token=token):
            known = name in assigned or name in WRITABLE or name in INTERVALS or name in DEALLOCATION_OPTIONS
            if metric_of(name) is not None and name not in CURRENT:
                raise token.error(f"'{name}' is a sampled variable: read it with {name}.GetSample(...)")
            if not known and name not in CURRENT:
                raise token.error(f"undefined variable '{name}'")
        case MethodCall(target=Name(name=name, token=token), args=args):
            if metric_of(name) is None:
                raise token.error(f"'{name}' has no method; only sampled service variables do")
            for arg in args:
                _check_expr(arg, assigned)
        case MethodCall(token=token):
            raise token.error("methods apply to sampled service variables only")
        case Unary(operand=operand) | Member(target=operand):
            _check_expr(operand, assigned)
        case Binary():
            first, spine = left_spine(expr)
            _check_expr(first, assigned)
            for node in spine:
                _check_expr(node.right, assigned)
        case Ternary(condition=condition, then=then, otherwise=otherwise):
            for part in (condition, then, otherwise):
                _check_expr(part, assigned)
        case Call(args=args):
            for arg in args:
                _check_expr(arg, assigned)
        case Number() | String():
            pass


class Interpreter:
    """One run of a formula over one pool's inputs; `variables` ends with the user variables' final values."""

    def __init__(
        self,
        *,
        targets: Mapping[str, float],
        current: Mapping[str, float],
        samples: Mapping[str, Sequence[float]],
        now: datetime,
        seed: str,
    ) -> None:
        self.system: dict[str, Value] = dict(targets)
        self.aliases: dict[str, Value] = {}
        self.alias_tokens: dict[str, Token] = {}
        self.assigned: dict[str, Token] = {}
        self.current = current
        self.samples = samples
        self.now = now
        self.context = CallContext(now, seed)
        self.variables: dict[str, Value] = {}
        self.deallocation: str | None = None

    def run(self, statements: Sequence[Statement]) -> None:
        try:
            for statement in statements:
                value = self.eval(statement.expr)
                if statement.target is not None:
                    self.assign(statement.target, value)
        except Stop:
            return

    def assign(self, target: Token, value: Value) -> None:
        name = target.text
        if name == DEALLOCATION:
            option = value.lower() if isinstance(value, str) else None
            if option not in DEALLOCATION_OPTIONS:
                raise _fail(
                    target, f"$NodeDeallocationOption must be one of {', '.join(DEALLOCATION_OPTIONS)}"
                )
            self.deallocation = option
        elif name in (DEDICATED, LOW_PRIORITY):
            self.system[name] = value
            self.assigned[name] = target
        elif name in ALIASES:
            self.aliases[name] = value
            self.alias_tokens[name] = target
        else:
            self.variables[name] = value

    def final_target(self, name: str) -> Value:
        """The value a node target ends with: the full name wins over its alias when both are set."""
        if name in self.assigned:
            return self.system[name]
        return self.aliases.get(_alias_of(name), self.system[name])

    def assigned_at(self, name: str) -> Token | None:
        """Where the statement that set a node target's final value starts."""
        return self.assigned.get(name) or self.alias_tokens.get(_alias_of(name))

    def eval(self, expr: Expr) -> Value:
        try:
            return self._eval(expr)
        except (Stop, FormulaError):
            raise
        except (ArithmeticError, ValueError, TypeError) as error:
            token = expr.token
            raise _fail(token, str(error)) from None

    def _eval(self, expr: Expr) -> Value:
        match expr:
            case Number(value=value):
                return value
            case String(value=value):
                return value
            case Name(name=name):
                return self.lookup(name)
            case Unary(op=op, operand=operand, token=token):
                inner = self.eval(operand)
                if isinstance(inner, float):
                    return -inner if op == "-" else float(not inner)
                if isinstance(inner, Interval) and op == "-":
                    return Interval(-inner.seconds)
                raise _fail(token, f"operator '{op}' is not defined for a {type_name(inner)}")
            case Binary():
                first, spine = left_spine(expr)
                result = self.eval(first)
                for node in spine:
                    result = self._apply(node, result)
                return result
            case Ternary(condition=condition, then=then, otherwise=otherwise, token=token):
                test = self.eval(condition)
                if not isinstance(test, float):
                    raise _fail(token, f"the condition of '?:' must be a double, not a {type_name(test)}")
                return self.eval(then if test else otherwise)
            case Call(function=function, args=args):
                return FUNCTIONS[function](self.context, [self.eval(arg) for arg in args])
            case Member(target=target, name=name, token=token):
                stamp = self.eval(target)
                if not isinstance(stamp, Timestamp):
                    raise _fail(token, f"'.{name}' applies to a timestamp, not a {type_name(stamp)}")
                return _timestamp_field(stamp, name)
            case MethodCall(target=Name(name=name), method=method, args=args, token=token):
                metric = metric_of(name)
                assert metric is not None
                history = History(metric, self.samples.get(metric, ()), self.now)
                try:
                    return _call_method(history, method, [self.eval(arg) for arg in args])
                except FormulaError as error:
                    if error.line is not None:
                        raise
                    raise FormulaError(
                        error.detail, code=error.code, line=token.line, column=token.column
                    ) from None
        raise _fail(expr.token, "unsupported expression")

    def _apply(self, node: Binary, left: Value) -> Value:
        """`left node.op node.right`, short-circuiting `&&` and `||` as C does."""
        op = node.op
        if op in ("&&", "||") and isinstance(left, float) and (bool(left) if op == "||" else not left):
            return 1.0 if op == "||" else 0.0
        right = self.eval(node.right)
        try:
            return self._binary(op, left, right, node.token)
        except (ArithmeticError, ValueError) as error:
            raise _fail(node.token, str(error)) from None

    def _binary(self, op: str, left: Value, right: Value, token: Token) -> Value:
        result = binary(op, left, right)
        if result is None:
            raise _fail(token, f"operator '{op}' is not defined for {type_name(left)} and {type_name(right)}")
        return result

    def lookup(self, name: str) -> Value:
        if name in self.variables:
            return self.variables[name]
        if name in (DEDICATED, LOW_PRIORITY):
            return self.system[name]
        if name in ALIASES:
            return self.aliases.get(name, self.system[ALIASES[name]])
        if name == DEALLOCATION:
            return self.deallocation or DEALLOCATION_OPTIONS[0]
        if name in CURRENT:
            return float(self.current[CURRENT[name]])
        if name in INTERVALS:
            return Interval(INTERVALS[name])
        return name  # a deallocation option keyword; `check` has rejected every other name


def _alias_of(name: str) -> str:
    return next(alias for alias, full in ALIASES.items() if full == name)


def _fail(token: Token, message: str) -> FormulaError:
    return FormulaError(message, code=EVALUATION_FAILED, line=token.line, column=token.column)


def _timestamp_field(value: Timestamp, name: str) -> float:
    at = value.at
    if name == "weekday":
        return float(at.isoweekday() % 7)  # .NET DayOfWeek: Sunday is 0, Monday 1
    return float(getattr(at, name))


def _call_method(history: History, method: str, args: list[Value]) -> Value:
    windows = (Interval, Timestamp)
    kinds = [type_name(arg) for arg in args]
    if method == "GetSample":
        match args:
            case [float() as count]:
                return history.get_sample_count(count)
            case [Interval() | Timestamp() as start]:
                return history.get_sample_window(start, None, None)
            case [Interval() | Timestamp() as start, float() as percent]:
                return history.get_sample_window(start, None, percent)
            case [Interval() | Timestamp() as start, Interval() | Timestamp() as end]:
                return history.get_sample_window(start, end, None)
            case [Interval() | Timestamp() as start, Interval() | Timestamp() as end, float() as percent]:
                return history.get_sample_window(start, end, percent)
    elif method == "GetSamplePercent":
        if 1 <= len(args) <= 2 and all(isinstance(arg, windows) for arg in args):
            return history.sample_percent(args[0], args[1] if len(args) == 2 else None)
    elif not args:
        if method == "Count":
            return history.count()
        if method == "HistoryBeginTime":
            return history.history_begin_time()
        return history.sample_period()
    raise TypeError(f"{method}() does not take ({', '.join(kinds)})")
