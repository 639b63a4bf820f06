"""The Batch autoscale formula language: what `enableautoscale`, `evaluateautoscale` and every periodic
autoscale run of the emulator compute.

A real subset of the service's language (learn.microsoft.com, "Create a formula to automatically scale
compute nodes in a Batch pool"): `;`-separated assignments, the documented types, operators and functions,
the read-write variables `$TargetDedicatedNodes`, `$TargetLowPriorityNodes` (aliases `$TargetDedicated`,
`$TargetLowPriority`; the full name wins when both are set) and `$NodeDeallocationOption`, the read-only
`$CurrentDedicatedNodes`/`$CurrentLowPriorityNodes`, and the sampled metrics read through `GetSample` and its
siblings (sampling semantics in `autoscale_samples`). Anything else is a `FormulaError` naming the construct
and its line and column, so an admin trying a formula offline sees what Azure would refuse.

`results` is printed as the service prints `AutoScaleRun.results`: both node targets and the deallocation
option first (`$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue`), then each
user variable's final value ordered by name, under the name as written (`$curTime`, `totalNodes`).
Unassigned targets keep the pool's current targets. A target becomes a node count by truncation toward zero
(the service's examples add `0.5`, or `3` before dividing by 4, to round) and never goes below zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciler.emulator.batch.autoscale_errors import (
    EVALUATION_FAILED,
    INSUFFICIENT_SAMPLES,
    INVALID_FORMULA,
    FormulaError,
)
from reconciler.emulator.batch.autoscale_eval import (
    DEALLOCATION,
    DEALLOCATION_OPTIONS,
    DEDICATED,
    LOW_PRIORITY,
    METRICS,
    Interpreter,
    check,
)
from reconciler.emulator.batch.autoscale_samples import SAMPLE_PERIOD_SECONDS
from reconciler.emulator.batch.autoscale_values import format_value, type_name

__all__ = [
    "DEALLOCATION_OPTIONS",
    "EVALUATION_FAILED",
    "INSUFFICIENT_SAMPLES",
    "INVALID_FORMULA",
    "METRICS",
    "SAMPLE_PERIOD_SECONDS",
    "AutoScaleInputs",
    "AutoScaleOutcome",
    "FormulaError",
    "evaluate",
    "validate",
]

MAX_TARGET_NODES = 2**31 - 1


@dataclass(frozen=True)
class AutoScaleInputs:
    """What one run sees of its pool. `samples` is keyed by metric name without `$` ("PendingTasks"),
    each history most recent first at one sample per 30 s; a metric left out has no samples yet."""

    current_dedicated: int
    current_low_priority: int
    target_dedicated: int
    target_low_priority: int
    samples: Mapping[str, Sequence[float]]
    now: datetime


@dataclass(frozen=True)
class AutoScaleOutcome:
    target_dedicated: int
    target_low_priority: int
    node_deallocation_option: str | None  # None when the formula leaves it to the service's default
    results: str


def validate(formula: str) -> None:
    """Raise `FormulaError` if the service would refuse `formula` before running it (bad syntax,
    unsupported construct, unknown or read-only variable)."""
    check(formula)


def evaluate(formula: str, inputs: AutoScaleInputs) -> AutoScaleOutcome:
    statements = check(formula)
    interpreter = Interpreter(
        targets={DEDICATED: float(inputs.target_dedicated), LOW_PRIORITY: float(inputs.target_low_priority)},
        current={
            "CurrentDedicatedNodes": float(inputs.current_dedicated),
            "CurrentLowPriorityNodes": float(inputs.current_low_priority),
        },
        samples=inputs.samples,
        now=inputs.now,
        seed=f"{formula}\n{inputs.now.isoformat()}",
    )
    interpreter.run(statements)
    dedicated = _node_count(interpreter, DEDICATED)
    low_priority = _node_count(interpreter, LOW_PRIORITY)
    option = interpreter.deallocation
    parts = [
        f"{DEDICATED}={dedicated}",
        f"{LOW_PRIORITY}={low_priority}",
        f"{DEALLOCATION}={option or DEALLOCATION_OPTIONS[0]}",
    ]
    for name in sorted(interpreter.variables, key=lambda n: (n.lstrip("$").casefold(), n)):
        parts.append(f"{name}={format_value(interpreter.variables[name])}")
    return AutoScaleOutcome(dedicated, low_priority, option, ";".join(parts))


def _node_count(interpreter: Interpreter, name: str) -> int:
    value = interpreter.final_target(name)
    token = interpreter.assigned_at(name)
    where = {"line": token.line, "column": token.column} if token else {}
    if not isinstance(value, float):
        raise FormulaError(
            f"{name} must be a double, not a {type_name(value)}", code=EVALUATION_FAILED, **where
        )
    if math.isnan(value) or value > MAX_TARGET_NODES:
        message = f"{name} evaluated to {format_value(value)}, which is not a node count"
        raise FormulaError(message, code=EVALUATION_FAILED, **where)
    return 0 if value < 0 else int(value)
