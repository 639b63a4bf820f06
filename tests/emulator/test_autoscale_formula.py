"""The autoscale formula language against the service's documented examples and its error cases, then
inside the emulator through the real aio SDK client."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.batch import models
from azure.core.exceptions import HttpResponseError
from emulator_env import new_pool
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.emulator import Emulator
from reconciler.emulator.batch.autoscale import (
    EVALUATION_FAILED,
    INSUFFICIENT_SAMPLES,
    INVALID_FORMULA,
    AutoScaleInputs,
    FormulaError,
    evaluate,
    validate,
)

# A Thursday, 19:18:47.805 UTC: the instant of the documentation's sample run.
DOC_NOW = datetime(2016, 10, 13, 19, 18, 47, 805000, tzinfo=UTC)


def inputs(
    samples: Mapping[str, Sequence[float]] | None = None,
    *,
    current: tuple[int, int] = (0, 0),
    target: tuple[int, int] = (0, 0),
    now: datetime = DOC_NOW,
) -> AutoScaleInputs:
    return AutoScaleInputs(current[0], current[1], target[0], target[1], samples or {}, now)


BAD, RUN = INVALID_FORMULA, EVALUATION_FAILED


def fails(formula: str, data: AutoScaleInputs | None = None) -> FormulaError:
    with pytest.raises(FormulaError) as caught:
        evaluate(formula, data or inputs())
    return caught.value


PENDING_TASKS = """startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;"""  # noqa: E501 - the documented formula, verbatim


def test_pending_tasks_example_starts_with_one_node_until_enough_samples_exist() -> None:
    outcome = evaluate(PENDING_TASKS, inputs({"PendingTasks": [40, 40, 40]}))

    assert outcome.target_dedicated == 1
    assert outcome.node_deallocation_option == "taskcompletion"
    assert outcome.results == (
        "$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion;"
        "maxNumberofVMs=25;pendingTaskSamplePercent=50;pendingTaskSamples=1;startingNumberOfVMs=1"
    )


def test_pending_tasks_example_follows_the_average_and_caps_at_25() -> None:
    # 180 s hold six samples; the seventh is older and must not count.
    assert evaluate(PENDING_TASKS, inputs({"PendingTasks": [9, 8, 7, 5, 4, 3, 1000]})).target_dedicated == 6
    assert evaluate(PENDING_TASKS, inputs({"PendingTasks": [90] * 6})).target_dedicated == 25


CPU_BASED = """$totalDedicatedNodes =
    (min($CPUPercent.GetSample(TimeInterval_Minute * 10)) > 0.7) ?
    ($CurrentDedicatedNodes * 1.1) : $CurrentDedicatedNodes;
$totalDedicatedNodes =
    (avg($CPUPercent.GetSample(TimeInterval_Minute * 60)) < 0.2) ?
    ($CurrentDedicatedNodes * 0.9) : $totalDedicatedNodes;
$TargetDedicatedNodes = min(400, $totalDedicatedNodes)"""


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        ([0.9] * 120, 22),  # busy: 110 % of 20
        ([0.1] * 120, 18),  # idle for an hour: 90 % of 20
        ([0.5] * 120, 20),  # neither
    ],
)
def test_cpu_example_grows_and_shrinks_with_usage(cpu: list[float], expected: int) -> None:
    outcome = evaluate(CPU_BASED, inputs({"CPUPercent": cpu}, current=(20, 0), target=(20, 0)))
    assert outcome.target_dedicated == expected


def test_cpu_example_with_a_percent_guard_fails_on_missing_history() -> None:
    guarded = "$cpu = avg($CPUPercent.GetSample(TimeInterval_Minute * 10, 95));\n$TargetDedicatedNodes = 1"

    assert evaluate(guarded, inputs({"CPUPercent": [0.5] * 20})).target_dedicated == 1
    error = fails(guarded, inputs({"CPUPercent": [0.5] * 18}))  # the documented 90 %
    assert error.code == INSUFFICIENT_SAMPLES
    assert error.message == (
        "Insufficient data from data set: $CPUPercent wanted 95%, received 90% at line 1, column 24"
    )
    relaxed = guarded.replace("95", "80")
    assert evaluate(relaxed, inputs({"CPUPercent": [0.5] * 18})).target_dedicated == 1


TIME_BASED = """$curTime = time();
$workHours = $curTime.hour >= 8 && $curTime.hour < 18;
$isWeekday = $curTime.weekday >= 1 && $curTime.weekday <= 5;
$isWorkingWeekdayHour = $workHours && $isWeekday;
$TargetDedicatedNodes = $isWorkingWeekdayHour ? 20:10;"""


def test_time_based_example_prints_results_as_the_documented_run() -> None:
    outcome = evaluate(TIME_BASED, inputs())

    assert outcome.results == (
        "$TargetDedicatedNodes=10;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;"
        "$curTime=2016-10-13T19:18:47.805Z;$isWeekday=1;$isWorkingWeekdayHour=0;$workHours=0"
    )
    assert outcome.node_deallocation_option is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), 20),  # Monday morning
        (datetime(2026, 11, 22, 9, 0, tzinfo=UTC), 10),  # Sunday: weekday 0
        (datetime(2026, 11, 28, 9, 0, tzinfo=UTC), 10),  # Saturday: weekday 6
    ],
)
def test_time_based_example_reads_the_weekday_as_the_service_numbers_it(now: datetime, expected: int) -> None:
    assert evaluate(TIME_BASED, inputs(now=now)).target_dedicated == expected


TASK_BASED = """// Get pending tasks for the past 15 minutes.
$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 15);
// If we have fewer than 70 percent data points, we use the last sample point,
// otherwise we use the maximum of last sample point and the history average.
$tasks = $samples < 70 ? max(0,$PendingTasks.GetSample(1)) : max( $PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 15)));
// If number of pending tasks is not 0, set targetVM to pending tasks, otherwise
// half of current dedicated.
$targetVMs = $tasks > 0? $tasks:max(0, $TargetDedicatedNodes/2);
// The pool size is capped at 20, if target VM value is more than that, set it
// to 20. This value should be adjusted according to your use case.
$TargetDedicatedNodes = max(0, min($targetVMs, 20));
// Set node deallocation mode - let running tasks finish before removing a node
$NodeDeallocationOption = taskcompletion;"""  # noqa: E501 - the documented formula, verbatim


def test_task_based_example_with_comments_and_line_breaks() -> None:
    assert evaluate(TASK_BASED, inputs({"PendingTasks": [7]})).target_dedicated == 7
    assert evaluate(TASK_BASED, inputs({"PendingTasks": [3] + [12] * 29})).target_dedicated == 11
    assert evaluate(TASK_BASED, inputs({"PendingTasks": [50] * 30})).target_dedicated == 20
    # No pending work: half the current target, truncated (5 / 2 = 2.5 -> 2).
    assert evaluate(TASK_BASED, inputs({"PendingTasks": [0] * 30}, target=(5, 0))).target_dedicated == 2


PARALLEL_TASKS = """$samples = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 15);
$tasks = $samples < 70 ? max(0,$ActiveTasks.GetSample(1)) : max( $ActiveTasks.GetSample(1),avg($ActiveTasks.GetSample(TimeInterval_Minute * 15)));
$cores = $TargetDedicatedNodes * 4;
$extraVMs = (($tasks - $cores) + 3) / 4;
$targetVMs = ($TargetDedicatedNodes + $extraVMs);
$TargetDedicatedNodes = max(0,min($targetVMs,3));
$NodeDeallocationOption = taskcompletion;"""  # noqa: E501 - the documented formula, verbatim


def test_parallel_tasks_example_rounds_up_by_adding_three_before_dividing() -> None:
    assert evaluate(PARALLEL_TASKS, inputs({"ActiveTasks": [5]}, target=(1, 0))).target_dedicated == 2
    assert evaluate(PARALLEL_TASKS, inputs({"ActiveTasks": [4]}, target=(1, 0))).target_dedicated == 1
    assert evaluate(PARALLEL_TASKS, inputs({"ActiveTasks": [400]}, target=(1, 0))).target_dedicated == 3


INITIAL_SIZE = """
    $TargetDedicatedNodes = 4;
    lifespan         = time() - time("Thu, 13 Oct 2016 19:00:00 GMT");
    span             = TimeInterval_Minute * 60;
    startup          = TimeInterval_Minute * 10;
    ratio            = 50;

    $TargetDedicatedNodes = (lifespan > startup ? (max($RunningTasks.GetSample(span, ratio), $ActiveTasks.GetSample(span, ratio)) == 0 ? 0 : $TargetDedicatedNodes) : 4);
    """  # noqa: E501 - the documented formula, verbatim


def test_initial_size_example_parses_an_rfc1123_time_and_compares_intervals() -> None:
    busy = {"RunningTasks": [1] * 120, "ActiveTasks": [0] * 120}
    idle = {"RunningTasks": [0] * 120, "ActiveTasks": [0] * 120}

    assert (
        evaluate(INITIAL_SIZE, inputs(idle, now=datetime(2016, 10, 13, 19, 5, tzinfo=UTC))).target_dedicated
        == 4
    )
    assert evaluate(INITIAL_SIZE, inputs(busy)).target_dedicated == 4
    outcome = evaluate(INITIAL_SIZE, inputs(idle))
    assert outcome.target_dedicated == 0
    assert "lifespan=00:18:47.8050000;ratio=50;span=01:00:00;startup=00:10:00" in outcome.results
    assert fails(INITIAL_SIZE, inputs({"RunningTasks": [0] * 50})).code == INSUFFICIENT_SAMPLES


def test_preempted_nodes_example_sets_both_targets() -> None:
    formula = """maxNumberofVMs = 25;
$TargetDedicatedNodes = min(maxNumberofVMs, $PreemptedNodeCount.GetSample(180 * TimeInterval_Second));
$TargetLowPriorityNodes = min(maxNumberofVMs , maxNumberofVMs - $TargetDedicatedNodes);
$NodeDeallocationOption = taskcompletion;"""

    outcome = evaluate(formula, inputs({"PreemptedNodeCount": [3, 2, 2, 1, 1, 0]}))

    assert (outcome.target_dedicated, outcome.target_low_priority) == (0, 25)
    assert outcome.results.startswith(
        "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=25;$NodeDeallocationOption=taskcompletion;"
    )


def test_a_one_line_formula_prints_as_the_service_does() -> None:
    assert evaluate("$TargetDedicatedNodes=3", inputs()).results == (
        "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    )


def test_look_back_range_returns_the_documented_ten_samples_most_recent_first() -> None:
    formula = (
        "$runningTasksSample = $RunningTasks.GetSample(1 * TimeInterval_Minute, 6 * TimeInterval_Minute);"
    )
    outcome = evaluate(formula, inputs({"RunningTasks": list(range(20))}))

    assert outcome.results.endswith("$runningTasksSample=[2,3,4,5,6,7,8,9,10,11]")


def test_sample_methods() -> None:
    formula = """n = $PendingTasks.Count();
p = $PendingTasks.GetSamplePeriod();
b = $PendingTasks.HistoryBeginTime();
half = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 2);
since = $PendingTasks.GetSample(time() + -1 * TimeInterval_Minute);
last = val($PendingTasks.GetSample(2), 1);
pct = percentile($PendingTasks.GetSample(3), 50)"""
    outcome = evaluate(formula, inputs({"PendingTasks": [4, 3, 9]}))

    assert outcome.results.split(";")[3:] == [
        "b=2016-10-13T19:17:47.805Z",
        "half=75",
        "last=3",
        "n=3",
        "p=00:00:30",
        "pct=4",
        "since=[4,3]",
    ]


def test_node_targets_truncate_clamp_and_honour_aliases() -> None:
    assert (
        evaluate("$TargetDedicatedNodes = 2.99; $TargetLowPriorityNodes = -4", inputs()).target_dedicated == 2
    )
    assert evaluate("$TargetLowPriorityNodes = -4", inputs(target=(0, 3))).target_low_priority == 0
    assert evaluate("$TargetDedicated = 7", inputs()).target_dedicated == 7
    assert evaluate("$TargetDedicatedNodes = 5; $TargetDedicated = 7", inputs()).target_dedicated == 5
    unchanged = evaluate("$x = 1", inputs(current=(2, 1), target=(3, 4)))
    assert (unchanged.target_dedicated, unchanged.target_low_priority) == (3, 4)


def test_functions_over_double_vec_lists() -> None:
    formula = """v = $PendingTasks.GetSample(3);
a = avg(v, 7); l = len(v, 1, v); s = sum(v); r = range(v); sd = std(2, 4, 4, 4, 5, 5, 7, 9);
nm = norm(3, 4); lo = lg(8); le = ln(1); lt = log(1000); lv = log(v);
c = ceil(1.2); f = floor(-1.2); rd = round(2.5); rv = round(v / 2)"""
    outcome = evaluate(formula, inputs({"PendingTasks": [1, 10, 100]}))
    values = dict(part.split("=", 1) for part in outcome.results.split(";")[3:])

    assert values == {
        "a": "29.5",
        "c": "2",
        "f": "-2",
        "l": "7",
        "le": "0",
        "lo": "3",
        "lt": "3",
        "lv": "[0,1,2]",
        "nm": "5",
        "r": "99",
        "rd": "2",
        "rv": "[0,5,50]",
        "s": "111",
        "sd": "2.138089935299395",
        "v": "[1,10,100]",
    }


def test_operators_follow_the_documented_table() -> None:
    formula = """a = 1 + 2 * 3 - 4 / 2; b = !0 && (1 || 0); c = -TimeInterval_Hour < TimeInterval_Zero;
d = "abc" < "abd"; e = 2 * TimeInterval_Minute == TimeInterval_Minute * 2; g = 1 ? 0 ? 5 : 6 : 7;
h = (time() + TimeInterval_Day) - time(); i = 1 != 1"""
    values = dict(part.split("=", 1) for part in evaluate(formula, inputs()).results.split(";")[3:])

    assert values == {"a": "5", "b": "1", "c": "1", "d": "1", "e": "1", "g": "6", "h": "1.00:00:00", "i": "0"}


def test_long_operator_chains_are_walked_without_recursion() -> None:
    # 8 KB allows thousands of operands in a row; a recursive walk would hit Python's recursion limit.
    assert evaluate("x = " + "1 + " * 2000 + "1", inputs()).results.endswith(";x=2001")
    assert evaluate("x = " + "2 * 3 - " * 1000 + "1", inputs()).results.endswith(";x=-5989")
    assert evaluate("x = " + "0 && " * 1500 + "1", inputs()).results.endswith(";x=0")


def test_stop_ends_the_run_keeping_earlier_assignments() -> None:
    outcome = evaluate("$TargetDedicatedNodes = 4; stop(); $TargetDedicatedNodes = 9; x = 1", inputs())

    assert outcome.target_dedicated == 4
    assert "x=" not in outcome.results


def test_rand_is_repeatable_for_the_same_formula_and_instant() -> None:
    formula = "x = rand()"
    first = evaluate(formula, inputs()).results
    assert evaluate(formula, inputs()).results == first
    assert evaluate(formula, inputs(now=DOC_NOW + timedelta(seconds=1))).results != first


@pytest.mark.parametrize(
    ("formula", "code", "message"),
    [
        (
            "$TargetDedicatedNodes = 1;\n  x = foo(2)",
            BAD,
            "unsupported function 'foo' at line 2, column 7",
        ),
        ("x = abs(-1)", BAD, "unsupported function 'abs' at line 1, column 5"),
        ("x = 7 % 2", BAD, "unsupported operator '%' at line 1, column 7"),
        ("x = 2 ** 3", BAD, "unsupported operator '**' at line 1, column 7"),
        ("x = $PendingTasks.Median()", BAD, "unsupported method 'Median' at line 1, column 19"),
        ("x = time().month2", BAD, "unsupported member 'month2' at line 1, column 12"),
        ("x = y + 1", BAD, "undefined variable 'y' at line 1, column 5"),
        ("x = 1 ? 2 : $Bogus", BAD, "undefined variable '$Bogus' at line 1, column 13"),
        (
            "$PendingTasks = 3",
            BAD,
            "cannot assign to read-only variable '$PendingTasks' at line 1, column 1",
        ),
        ("x = $ActiveTasks * 2", BAD, "'$ActiveTasks' is a sampled variable"),
        ("x = (1 + 2", BAD, "expected ')' but found end of formula at line 1, column 11"),
        ("x = 1 y = 2", BAD, "expected ';' but found 'y' at line 1, column 7"),
        ("x + 1", BAD, "expected an assignment 'name = expression' at line 1, column 1"),
        ('x = "open', BAD, "unterminated string at line 1, column 5"),
        ("x = 1 /* open", BAD, "unterminated comment at line 1, column 7"),
        ("x = 12abc", BAD, "malformed number '12a' at line 1, column 5"),
        ("x = 1 @ 2", BAD, "unexpected character '@' at line 1, column 7"),
        (
            "x = time() - TimeInterval_Hour",
            RUN,
            "operator '-' is not defined for timestamp and timeinterval",
        ),
        (
            "x = 1 + TimeInterval_Hour",
            RUN,
            "operator '+' is not defined for double and timeinterval",
        ),
        ("x = 1 ? 2 : 3; y = x.hour", RUN, "'.hour' applies to a timestamp, not a double"),
        (
            "x = avg($PendingTasks.GetSample(5))",
            RUN,
            "avg() of an empty list at line 1, column 5",
        ),
        ("x = val($PendingTasks.GetSample(1), 3)", RUN, "val(): index 3 is outside"),
        ('x = time("yesterday")', RUN, "neither a W3C-DTF nor an RFC 1123 date"),
        ('x = $PendingTasks.GetSample("a")', RUN, "GetSample() does not take (string)"),
        ("$NodeDeallocationOption = 2", RUN, "$NodeDeallocationOption must be one of"),
        (
            "$TargetDedicatedNodes = 1 / 0",
            RUN,
            "evaluated to Infinity, which is not a node count",
        ),
        ("$TargetDedicatedNodes = time()", RUN, "must be a double, not a timestamp at line 1"),
        ("x = " + "(" * 100 + "1" + ")" * 100, BAD, "nested deeper than"),
        ("x = 1;" * 101, BAD, "at most 100 statements"),
        ("x = time()" + ".hour" * 65, BAD, "more than 64 '.' in a row"),
        ("x = " + "-" * 65 + "1", BAD, "nested deeper than 64 levels"),
        ("x = 1;" + " " * 8192, BAD, "at most 8192 bytes"),
    ],
)
def test_errors_name_the_construct_and_where_it_is(formula: str, code: str, message: str) -> None:
    error = fails(formula)

    assert error.code == code
    assert message in error.message
    assert error.values == [{"name": "Message", "value": error.message}]


def test_validate_rejects_without_running() -> None:
    validate("$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Minute * 5, 100))")
    with pytest.raises(FormulaError, match="unsupported function 'sqrt'"):
        validate("x = 1 ? 2 : sqrt(4)")


_TOKENS = [
    "$TargetDedicatedNodes", "$TargetLowPriorityNodes", "$NodeDeallocationOption", "$PendingTasks",
    "$CPUPercent", "$CurrentDedicatedNodes", "x", "$y", "requeue", "TimeInterval_Minute", "GetSample",
    "GetSamplePercent", "Count", "HistoryBeginTime", "hour", "weekday", "avg", "max", "val", "time",
    "percentile", "ln", "round", "stop", "rand", "foo", "0", "1", "2.5", "1e308", "-1", '"s"',
    '"Fri, 17 Feb 2017 00:00:00 GMT"',
    "=", "==", "!=", "<", ">=", "+", "-", "*", "/", "%", "!", "&&", "||", "?", ":", "(", ")", ",", ".",
    ";", "\n", "//", "/*", "*/", "@", "[", "'",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=40), st.integers(0, 3), st.integers(0, 200))
def test_token_soup_raises_only_formula_errors(tokens: list[str], separator: int, samples: int) -> None:
    formula = [" ", "", "\n", "  "][separator].join(tokens)
    data = inputs({"PendingTasks": [float(i % 7) for i in range(samples)], "CPUPercent": [0.5] * samples})
    try:
        outcome = evaluate(formula, data)
    except FormulaError:
        return
    assert outcome.target_dedicated >= 0
    assert outcome.target_low_priority >= 0
    assert outcome.results.startswith("$TargetDedicatedNodes=")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_raises_only_formula_errors(formula: str) -> None:
    with contextlib.suppress(FormulaError):
        evaluate(formula, inputs({"PendingTasks": [1.0, 2.0]}))


_ATOMS = st.sampled_from(
    [
        "0", "1", "2.5", "1e308", "-3", '"s"', "TimeInterval_Minute", "TimeInterval_Zero", "time()",
        "$CurrentDedicatedNodes", "$TargetDedicatedNodes", "$PendingTasks.GetSample(3)",
        "$PendingTasks.GetSample(TimeInterval_Minute * 5)", "$CPUPercent.GetSamplePercent(TimeInterval_Hour)",
        "$PendingTasks.HistoryBeginTime()", "$PendingTasks.GetSamplePeriod()", "taskcompletion",
    ]
)  # fmt: skip
_FUNCTIONS = ["avg", "len", "lg", "ln", "log", "max", "min", "norm", "range", "std", "sum", "ceil", "floor",
              "round", "percentile", "val", "time", "rand"]  # fmt: skip
_EXPRESSIONS = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "<", "==", "&&", "||"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(st.sampled_from(["-", "!"]), inner).map(lambda t: f"{t[0]}{t[1]}"),
        st.tuples(st.sampled_from(_FUNCTIONS), st.lists(inner, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        inner.map(lambda e: f"({e}).hour"),
    ),
    max_leaves=12,
)


_TARGETS = ["x", "$TargetDedicatedNodes", "$TargetLowPriority", "$NodeDeallocationOption"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(_TARGETS), _EXPRESSIONS),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 150),
)  # fmt: skip
def test_well_formed_formulas_raise_only_formula_errors(
    statements: list[tuple[str, str]], samples: int
) -> None:
    formula = ";\n".join(f"{target} = {expr}" for target, expr in statements)
    data = inputs({"PendingTasks": [float(i % 5) for i in range(samples)], "CPUPercent": [0.25] * samples})
    try:
        outcome = evaluate(formula, data)
    except FormulaError:
        return
    assert outcome.target_dedicated >= 0


# ---- the language inside the emulator, through the real aio SDK client ----

FIVE_MINUTES = timedelta(minutes=5)


async def _pool_with_waiting_tasks(client: Any, pool_id: str, tasks: int) -> None:
    await client.create_pool(new_pool(pool_id))
    await client.create_job(
        models.BatchJobCreateOptions(id=f"{pool_id}-job", pool_info=models.BatchPoolInfo(pool_id=pool_id))
    )
    for i in range(tasks):
        task = models.BatchTaskCreateOptions(id=f"t{i}", command_line="sleep 3600")
        await client.create_task(f"{pool_id}-job", task)


async def test_periodic_runs_scale_a_pool_to_its_pending_tasks(emulator: Emulator, batch_client: Any) -> None:
    await _pool_with_waiting_tasks(batch_client, "scaled", tasks=3)
    formula = "$TargetDedicatedNodes = min(10, max(0, $PendingTasks.GetSample(1)));\n"
    formula += "$NodeDeallocationOption = taskcompletion"
    await batch_client.enable_pool_auto_scale(
        "scaled",
        models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula=formula, auto_scale_evaluation_interval=FIVE_MINUTES
        ),
    )

    pool = await batch_client.get_pool("scaled")
    assert pool.target_dedicated_nodes == 3
    assert pool.auto_scale_run.results == (
        "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion"
    )

    for i in range(3, 5):
        await batch_client.create_task(
            "scaled-job", models.BatchTaskCreateOptions(id=f"t{i}", command_line="sleep 3600")
        )
    emulator.clock.advance(FIVE_MINUTES.total_seconds())

    pool = await batch_client.get_pool("scaled")
    assert pool.target_dedicated_nodes == 5
    assert pool.auto_scale_run.results.startswith("$TargetDedicatedNodes=5;")


async def test_evaluate_reports_pending_tasks_from_the_emulator(batch_client: Any) -> None:
    await _pool_with_waiting_tasks(batch_client, "evaluated", tasks=4)
    await batch_client.enable_pool_auto_scale(
        "evaluated",
        models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 0", auto_scale_evaluation_interval=FIVE_MINUTES
        ),
    )

    formula = "pending = $PendingTasks.GetSample(1); $TargetDedicatedNodes = val(pending, 0) / 2"
    run = await batch_client.evaluate_pool_auto_scale(
        "evaluated", models.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=formula)
    )

    assert run.results == (
        "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;pending=[4]"
    )
    assert run.error is None


async def test_unsupported_constructs_are_a_400_naming_them(batch_client: Any) -> None:
    await _pool_with_waiting_tasks(batch_client, "refused", tasks=0)

    with pytest.raises(HttpResponseError) as caught:
        await batch_client.enable_pool_auto_scale(
            "refused",
            models.BatchPoolEnableAutoScaleOptions(
                auto_scale_formula="$TargetDedicatedNodes = 1;\nx = sqrt(4)"
            ),
        )

    assert caught.value.status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == INVALID_FORMULA
    assert "unsupported function 'sqrt' at line 2, column 5" in str(caught.value)
    assert not (await batch_client.get_pool("refused")).enable_auto_scale


async def test_a_failing_run_is_reported_on_the_pool_not_applied(batch_client: Any) -> None:
    await _pool_with_waiting_tasks(batch_client, "starved", tasks=2)
    guarded = "$TargetDedicatedNodes = avg($PendingTasks.GetSample(TimeInterval_Minute * 60, 90))"

    await batch_client.enable_pool_auto_scale(
        "starved",
        models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula=guarded, auto_scale_evaluation_interval=FIVE_MINUTES
        ),
    )

    pool = await batch_client.get_pool("starved")
    assert pool.target_dedicated_nodes == 0
    assert pool.auto_scale_run.results is None
    assert pool.auto_scale_run.error.code == INSUFFICIENT_SAMPLES
    assert "Insufficient data from data set: $PendingTasks wanted 90%" in pool.auto_scale_run.error.message


async def _add_tasks(client: Any, job_id: str, first: int, count: int) -> None:
    tasks = [
        models.BatchTaskCreateOptions(id=f"t{i}", command_line="sleep 3600")
        for i in range(first, first + count)
    ]
    await client.create_task_collection(job_id, models.BatchTaskGroup(task_values=tasks))


async def test_samples_are_the_pools_own_history_one_per_30_seconds(
    emulator: Emulator, batch_client: Any
) -> None:
    await _pool_with_waiting_tasks(batch_client, "sampled", tasks=0)
    await batch_client.enable_pool_auto_scale(
        "sampled",
        models.BatchPoolEnableAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes = 0", auto_scale_evaluation_interval=FIVE_MINUTES
        ),
    )

    async def evaluate_now(formula: str) -> str:
        run = await batch_client.evaluate_pool_auto_scale(
            "sampled", models.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula=formula)
        )
        assert run.error is None
        return str(run.results).removeprefix(
            "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;"
        )

    percent = "pct = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 10); $TargetDedicatedNodes = 0"
    assert await evaluate_now(percent) == "pct=5"  # 1 of the 20 samples ten minutes hold: the pool is new
    emulator.clock.advance(120)
    assert await evaluate_now(percent) == "pct=25"

    emulator.clock.advance(170)  # 290 s after creation
    await _add_tasks(batch_client, "sampled-job", 0, 10)
    emulator.clock.advance(150)  # 440 s
    await _add_tasks(batch_client, "sampled-job", 10, 10)
    emulator.clock.advance(160)  # 600 s: 21 samples, at 600, 570, ... 0 s

    formula = """all = $PendingTasks.GetSample(21);
avg5 = avg($PendingTasks.GetSample(TimeInterval_Minute * 5));
pct10 = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 10);
pct15 = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 15);
running = max($RunningTasks.GetSample(TimeInterval_Minute * 10));
$TargetDedicatedNodes = 0"""
    history = [20.0] * 6 + [10.0] * 5 + [0.0] * 10  # ticks 600..450, 420..300, 270..0
    results = dict(part.split("=", 1) for part in (await evaluate_now(formula)).split(";"))
    assert results["all"] == "[" + ",".join(f"{v:g}" for v in history) + "]"
    assert results["avg5"] == "16"  # (6 * 20 + 4 * 10) / 10, not the current 20
    assert (results["pct10"], results["pct15"]) == ("100", "70")
    assert results["running"] == "0"
