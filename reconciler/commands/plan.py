"""`reconciler plan`: what a pass would change and why, without changing anything.

Exit status as `terraform plan -detailed-exitcode`: 0 in sync, 2 changes pending (withheld ones
included: the config and Azure still differ), 1 an error — a config problem or an account that could
not be observed, since a plan without it could not be trusted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reconciler.commands.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    plan_now,
    report_unreachable,
    run,
    write_json,
)
from reconciler.plan.render import plan_json, plan_text


def plan_command(config_paths: list[Path], output: str) -> int:
    async def body() -> int:
        plan, snapshot, clusters = await plan_now(config_paths, output)
        if output == "json":
            write_json({**plan_json(plan), **clusters.plan_json()})
        else:
            sys.stdout.write(plan_text(plan) + clusters.plan_text())
        if report_unreachable(snapshot) | clusters.report():
            return EXIT_ERROR
        return EXIT_OK if plan.in_sync and clusters.in_sync else EXIT_CHANGES

    return run(body)
