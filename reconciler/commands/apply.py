"""`reconciler apply`: one pass — observe, plan, show, ask, act, wait, summarise.

It acts through the same `reconcile_once` the daemon runs, so what `apply` does by hand is exactly what
the daemon would do on its next tick. Without `--yes` it asks on the terminal; with no terminal to ask on
it refuses rather than guess. Exit status 0 when every action ended well, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from reconciler.azure.clients import AzureClients
from reconciler.commands.cluster_view import ClusterApply
from reconciler.commands.common import (
    CLI_CALLER,
    EXIT_ERROR,
    EXIT_OK,
    CommandError,
    load,
    report_unreachable,
    run,
)
from reconciler.engine.cycle import CycleEvent
from reconciler.engine.executor import ActionResult, Engine
from reconciler.engine.reconcile import reconcile_once
from reconciler.engine.wait import Pacing
from reconciler.plan.actions import Plan
from reconciler.plan.render import plan_text, safe


class CurrentStderrLogger:
    """Writes each line to whatever `sys.stderr` is when the line is written.

    A logger bound during a command (a cycle runner's, an action's) can outlive it; one holding the
    stream it was created with would write into a stream its owner has since closed (a test's capture).
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


def current_stderr_logger(*_args: Any) -> CurrentStderrLogger:
    return CurrentStderrLogger()


@contextlib.contextmanager
def command_logging() -> Iterator[None]:
    """Engine logs to stderr, warnings and up, so stdout stays the command's own lines.

    The previous configuration comes back afterwards: a command run inside another program (a test)
    leaves that program's logging as it found it.
    """
    previous = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=current_stderr_logger,
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)


def print_phase(event: CycleEvent) -> None:
    """One line per phase a pool enters: `POOL: phase NAME`, for people and for scripts to follow."""
    if event.kind == "phase":
        print(f"{event.pool_id}: phase {event.phase}", flush=True)


def pacing() -> Pacing:
    try:
        return Pacing.from_env()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def summary_line(result: ActionResult) -> str:
    action = result.action
    return (
        f"{action.pool_id} ({action.account}): {action.kind.value} {result.outcome.value}"
        f" in {result.seconds:.0f}s: {safe(result.detail)}"
    )


def print_summary(results: Sequence[ActionResult], clusters: Sequence[tuple[str, bool]] = ()) -> None:
    for result in results:
        print(summary_line(result), flush=True)
    for line, _ in clusters:
        print(line, flush=True)
    failed = sum(1 for r in results if not r.ok) + sum(1 for _, ok in clusters if not ok)
    print(f"Applied: {len(results) + len(clusters) - failed} ok, {failed} not ok.", flush=True)


async def _ask(plan: Plan, yes: bool, clusters: str = "") -> bool:
    sys.stdout.write(plan_text(plan) + clusters)
    sys.stdout.flush()
    if yes:
        return True
    if not sys.stdin.isatty():
        print(
            "error: not applying: no terminal to ask on; pass --yes to apply without asking", file=sys.stderr
        )
        return False
    answer = await asyncio.to_thread(input, "Apply these changes? [y/N] ")
    return answer.strip().casefold() in ("y", "yes")


def apply_command(config_paths: list[Path], yes: bool) -> int:
    async def body() -> int:
        config = load(config_paths)
        refused = False

        async def approve(plan: Plan) -> bool:
            nonlocal refused
            refused = not await _ask(plan, yes, clusters.view.plan_text())
            if not refused:
                clusters.start()
            return not refused

        with command_logging():
            async with AzureClients(config, caller=CLI_CALLER) as clients:
                clusters = ClusterApply(clients, config, pacing())
                await clusters.observe()
                engine = Engine(clients, pacing=pacing(), observers=[print_phase])
                result = await reconcile_once(config, clients, engine=engine, approve=approve)
                if not result.plan.actions and clusters.pending:
                    await approve(result.plan)
                await clusters.finish()
        if not result.plan.actions and not clusters.pending:
            sys.stdout.write(plan_text(result.plan) + clusters.view.plan_text())
        elif not refused:
            print_summary(result.results, clusters.summary())
        else:
            print("Not applied.")
        unreachable = report_unreachable(result.snapshot) | clusters.view.report()
        if refused or unreachable or result.failures or not clusters.ok:
            return EXIT_ERROR
        return EXIT_OK

    return run(body)
