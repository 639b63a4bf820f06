"""`reconciler status`: how each pool stands now — state, refresh phase, nodes, errors.

The states come from the same plan `apply` would act on, so status and plan never disagree. Exit
status 0, or 1 on a config problem or an account that could not be observed (its pools are listed as
`unreachable`, so monitoring sees them).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from reconciler.commands import cluster_view
from reconciler.commands.common import (
    EXIT_ERROR,
    EXIT_OK,
    check_output,
    load,
    observe_config,
    report_unreachable,
    run,
)
from reconciler.plan.diff import make_plan
from reconciler.plan.render import status_json, status_text


def status_command(config_paths: list[Path], output: str) -> int:
    async def body() -> int:
        check_output(output)
        config = load(config_paths)
        snapshot, clusters = await asyncio.gather(observe_config(config), cluster_view.observe_config(config))
        plan = make_plan(config, snapshot, now=snapshot.observed_at)
        if output == "json":
            data = {**status_json(plan.statuses), **clusters.status_json()}
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(status_text(plan.statuses) + clusters.status_text())
        return EXIT_ERROR if report_unreachable(snapshot) | clusters.report() else EXIT_OK

    return run(body)
