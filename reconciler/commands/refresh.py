"""`reconciler refresh POOL... [--wait]`: request a rebuild now, and with `--wait` carry it out.

The request is written into the pool (`reconciler.refresh-requested-at`), not kept here: the daemon, a
second admin or this command run again all see it and finish it. A request still pending is kept, so
running the command again after an interruption continues the same refresh instead of starting another.
With `--wait` the command runs the level-triggered cycle itself and prints a line per phase; it stops
when every pool is built from its spec after the request (exit 0) or a pool cannot get there (exit 1).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from reconciler.azure import operations
from reconciler.azure.clients import AzureClients
from reconciler.azure.observe import observe
from reconciler.azure.snapshot import Snapshot
from reconciler.commands.apply import command_logging, pacing, print_phase
from reconciler.commands.common import CLI_CALLER, EXIT_ERROR, EXIT_OK, CommandError, load, run
from reconciler.engine.cycle import CycleResult, Outcome
from reconciler.engine.executor import Engine
from reconciler.spec.config import Config


def _declared(config: Config, pools: list[str]) -> list[str]:
    """The config's spelling of each pool id; any id not declared is an error, all named at once."""
    by_folded = {pool_id.casefold(): pool_id for pool_id in config.pools}
    unknown = [p for p in pools if p.casefold() not in by_folded]
    if unknown:
        raise CommandError("\n".join(f"{p}: not declared in the config" for p in unknown))
    return list(dict.fromkeys(by_folded[p.casefold()] for p in pools))


async def _follow(engine: Engine, config: Config, pool_id: str) -> CycleResult:
    desired = config.pools[pool_id]
    while True:
        async with engine.limits.refresh(desired.account):
            result = await engine.runner(desired.account, pool_id, desired).run()
        if result.outcome is not Outcome.WAITING:
            return result
        print(f"{pool_id}: {result.detail}", flush=True)


def refresh_command(config_paths: list[Path], pools: list[str], wait: bool) -> int:
    async def body() -> int:
        config = load(config_paths)
        with command_logging():
            return await _refresh(config, _declared(config, pools), wait)

    return run(body)


async def _refresh(config: Config, pool_ids: list[str], wait: bool) -> int:
    accounts = sorted({config.pools[p].account for p in pool_ids})
    async with AzureClients(config, caller=CLI_CALLER) as clients:
        snapshot = await observe(clients, accounts)
        _check(config, pool_ids, snapshot)
        for pool_id in pool_ids:
            await _request(clients, config.pools[pool_id].account, pool_id, snapshot)
        if not wait:
            return EXIT_OK
        engine = Engine(clients, pacing=pacing(), observers=[print_phase])
        results = await asyncio.gather(*(_follow(engine, config, p) for p in pool_ids))
    for result in results:
        print(f"{result.pool_id}: {result.outcome.value}: {result.detail}", flush=True)
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


def _check(config: Config, pool_ids: list[str], snapshot: Snapshot) -> None:
    """Refuse, naming every problem at once, before anything is written."""
    problems: list[str] = []
    for pool_id in pool_ids:
        account = config.pools[pool_id].account
        error = snapshot.errors.get(account)
        if error is not None:
            problems.append(f"{pool_id}: account {account} unreachable: {error.describe()}")
            continue
        observed = snapshot.pool(account, pool_id)
        if observed is not None and not observed.managed:
            hint = (
                "; `reconciler apply` adopts it while it matches the spec"
                if config.pools[pool_id].adopt
                else ""
            )
            problems.append(f"{pool_id}: exists without reconciler.managed-by; never touched{hint}")
    if problems:
        raise CommandError("\n".join(problems))


async def _request(clients: AzureClients, account: str, pool_id: str, snapshot: Snapshot) -> None:
    observed = snapshot.pool(account, pool_id)
    if observed is None:
        print(f"{pool_id}: absent; it will be created", flush=True)
        return
    if observed.state == "deleting":
        print(f"{pool_id}: being deleted; it will be created again", flush=True)
        return
    if observed.refresh_pending and observed.refresh_requested_at is not None:
        print(f"{pool_id}: refresh already requested at {_iso(observed.refresh_requested_at)}", flush=True)
        return
    at = operations.request_time(observed, datetime.now(UTC))
    try:
        await operations.request_refresh(clients, account, pool_id, at, observed=observed)
    except operations.OperationFailed as failed:
        raise CommandError(f"{pool_id}: cannot request the refresh: {failed}") from None
    print(f"{pool_id}: refresh requested at {_iso(at)}", flush=True)


def _iso(moment: datetime) -> str:
    return operations.iso_utc(moment)
