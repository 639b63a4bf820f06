"""One cluster pass in its own process, for the crash test: `python reconcile_once.py CONFIG.json SCALE`.

Prints one JSON line summarising the pass, so a run that is not killed can be checked too.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from reconciler.azure.clients import AzureClients
from reconciler.engine.clusters import ClusterEngine
from reconciler.engine.wait import Pacing
from reconciler.spec.config import Config


async def main(config: Config, time_scale: float) -> int:
    async with AzureClients(config, caller="cluster-crash-test") as clients:
        done = await ClusterEngine(clients, pacing=Pacing(time_scale=time_scale)).reconcile(config)
    print(json.dumps({"ok": done.ok, "created": [name for r in done.results for name in r.created]}))
    return 0 if done.ok else 1


if __name__ == "__main__":
    loaded = Config.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    sys.exit(asyncio.run(main(loaded, float(sys.argv[2]))))
