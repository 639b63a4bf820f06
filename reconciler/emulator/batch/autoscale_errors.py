"""The one exception the autoscale formula language raises.

The data plane turns it into the service's error shapes: a 400 for `enableautoscale`/`evaluateautoscale`
with a formula that does not parse, or an `AutoScaleRun.error` when a periodic run fails. So it carries the
service's error code and the `Message` value the service puts in `values`, not just a string.
"""

from __future__ import annotations

# Codes the service uses: a formula it cannot compile, a run that fails, and GetSample's percent guard.
INVALID_FORMULA = "InvalidAutoScaleFormula"
EVALUATION_FAILED = "AutoScalingFormulaEvaluationError"
INSUFFICIENT_SAMPLES = "InsufficientSampleData"


class FormulaError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: str = INVALID_FORMULA,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.detail = message
        self.code = code
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line is not None else ""
        self.message = f"{message}{where}"
        super().__init__(self.message)

    @property
    def values(self) -> list[dict[str, str]]:
        """The error's `values` as the service lists them (name/value pairs)."""
        return [{"name": "Message", "value": self.message}]
