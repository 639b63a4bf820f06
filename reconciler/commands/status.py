"""`reconciler status`: how each pool stands now — state, refresh phase, nodes, errors.

The states come from the same plan `apply` would act on, so status and plan never disagree. Exit
status 0, or 1 on a config problem or an account that could not be observed (its pools are listed as
`unreachable`, so monitoring sees them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from reconciler.commands.common import EXIT_ERROR, EXIT_OK, plan_now, report_unreachable, run, write_json
from reconciler.plan.render import status_json, status_text


def status_command(config_paths: list[Path], output: str) -> int:
    async def body() -> int:
        plan, snapshot, clusters = await plan_now(config_paths, output)
        if output == "json":
            write_json({**status_json(plan.statuses), **clusters.status_json()})
        else:
            sys.stdout.write(status_text(plan.statuses) + clusters.status_text())
        return EXIT_ERROR if report_unreachable(snapshot) | clusters.report() else EXIT_OK

    return run(body)
