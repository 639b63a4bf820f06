"""`reconciler plan`: what a pass would change and why, without changing anything.

Exit status as `terraform plan -detailed-exitcode`: 0 in sync, 2 changes pending (withheld ones
included: the config and Azure still differ), 1 an error — a config problem or an account that could
not be observed, since a plan without it could not be trusted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from reconciler.commands import cluster_view
from reconciler.commands.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    check_output,
    load,
    observe_config,
    report_unreachable,
    run,
)
from reconciler.plan.diff import make_plan
from reconciler.plan.render import plan_json, plan_text


def plan_command(config_paths: list[Path], output: str) -> int:
    async def body() -> int:
        check_output(output)
        config = load(config_paths)
        snapshot, clusters = await asyncio.gather(observe_config(config), cluster_view.observe_config(config))
        plan = make_plan(config, snapshot, now=snapshot.observed_at)
        if output == "json":
            data = {**plan_json(plan), **clusters.plan_json()}
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(plan_text(plan) + clusters.plan_text())
        if report_unreachable(snapshot) | clusters.report():
            return EXIT_ERROR
        return EXIT_OK if plan.in_sync and clusters.in_sync else EXIT_CHANGES

    return run(body)
