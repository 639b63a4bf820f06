"""`reconciler gc --dask-cloudprovider`: remove what dask-cloudprovider's `AzureVMCluster` left behind.

An `AzureVMCluster` whose Python process died leaves VMs, NICs, public IPs and disks tagged
`creator: dask-cloudprovider`, billing until someone deletes them. They are not ours, so the reconciler
only reports them; this command is the explicit request to delete them. It looks in the resource groups
of the declared clusters only, lists what it found, and deletes only with `--yes` (VMs first, then NICs,
public IPs, disks). Exit status: 0 nothing left (or all deleted), 2 leftovers found but kept (no
`--yes`), 1 an error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from reconciler.azure.clients import AzureClients
from reconciler.azure.clusters import ForeignResource, observe_clusters
from reconciler.commands.common import CLI_CALLER, EXIT_CHANGES, EXIT_ERROR, EXIT_OK, CommandError, load, run
from reconciler.engine.clusters import ClusterEngine
from reconciler.spec.config import Config


def gc_command(config_paths: list[Path], dask_cloudprovider: bool, yes: bool) -> int:
    async def body() -> int:
        if not dask_cloudprovider:
            raise CommandError("nothing to collect: name what, e.g. --dask-cloudprovider")
        config = load(config_paths)
        async with AzureClients(config, caller=CLI_CALLER) as clients:
            return await collect_dask_cloudprovider(ClusterEngine(clients), config, yes=yes)

    return run(body)


async def collect_dask_cloudprovider(
    engine: ClusterEngine, config: Config, *, yes: bool, out: TextIO | None = None
) -> int:
    """List (and with `yes`, delete) the dask-cloudprovider leftovers in the clusters' resource groups."""
    out = out or sys.stdout
    if not config.clusters:
        out.write("no clusters declared: no resource group to look in\n")
        return EXIT_OK
    snapshot = await observe_clusters(engine.clients, config)
    for subscription, problem in sorted(snapshot.errors.items()):
        print(f"error: subscription {subscription}: {problem.describe()}", file=sys.stderr)
    if snapshot.errors:
        return EXIT_ERROR
    found: dict[str, tuple[str, ForeignResource]] = {}
    for name, cluster in config.clusters.items():
        subscription = cluster.subscription_id or config.azure.subscription_id or ""
        observed = snapshot.clusters.get(name)
        for resource in observed.dask_cloudprovider if observed is not None else ():
            found.setdefault(resource.id.lower(), (subscription, resource))
    if not found:
        out.write("no dask-cloudprovider leftovers\n")
        return EXIT_OK
    for _, resource in sorted(found.values(), key=lambda item: (item[1].resource_group, item[1].name)):
        out.write(
            f"dask-cloudprovider {resource.kind} {resource.name} (resource group {resource.resource_group})\n"
        )
    if not yes:
        out.write(f"{len(found)} leftover(s) kept; run again with --yes to delete them\n")
        return EXIT_CHANGES
    failed = 0
    for subscription in sorted({s for s, _ in found.values()}):
        outcomes = await engine.delete_foreign(
            subscription, [r for s, r in found.values() if s == subscription]
        )
        for outcome in outcomes:
            out.write(f"{'deleted' if outcome.ok else 'FAILED'}: {outcome.step[len('delete ') :]}")
            out.write(f" ({outcome.detail})\n" if not outcome.ok else "\n")
            failed += not outcome.ok
    return EXIT_ERROR if failed else EXIT_OK
