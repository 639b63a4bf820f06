"""What every Azure-facing command does first: load the config, open the clients, observe.

A user's mistake (bad YAML, an unknown account, credentials that cannot work) ends the command with one
clear line per problem on stderr and exit status 1, never a traceback: a traceback could print config
values, and it tells an admin less than the line does.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from reconciler.azure.clients import AzureClients
from reconciler.azure.errors import ConfigurationError
from reconciler.azure.observe import observe
from reconciler.azure.snapshot import Snapshot
from reconciler.plan.actions import Plan
from reconciler.plan.diff import make_plan
from reconciler.spec.config import Config
from reconciler.spec.errors import ConfigError
from reconciler.spec.loader import load_config

if TYPE_CHECKING:
    from reconciler.commands.cluster_view import ClusterView

T = TypeVar("T")
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_CHANGES: Final = 2
OUTPUTS: Final = ("text", "json")
CLI_CALLER: Final = "reconciler-cli"


class CommandError(Exception):
    """Ends a command with exit status 1 and this message as its one line on stderr."""


def error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def load(paths: Iterable[Path], *, env: Mapping[str, str] | None = None) -> Config:
    """The config, or a `CommandError` carrying every problem, one per line."""
    try:
        return load_config(list(paths), env=env)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot read the config: {exc.strerror or exc}") from None


def check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise CommandError(f"--output must be text or json (got {output!r})")
    return output


async def observe_config(
    config: Config, accounts: Iterable[str] | None = None, *, caller: str = CLI_CALLER
) -> Snapshot:
    """One snapshot of the given declared accounts (default: all), clients closed afterwards."""
    async with AzureClients(config, caller=caller) as clients:
        return await observe(clients, accounts)


async def plan_now(config_paths: Iterable[Path], output: str) -> tuple[Plan, Snapshot, ClusterView]:
    """What `plan` and `status` show: the pools' plan and the clusters' view, each observed once."""
    from reconciler.commands import cluster_view  # it imports this module

    check_output(output)
    config = load(config_paths)
    snapshot, clusters = await asyncio.gather(observe_config(config), cluster_view.observe_config(config))
    return make_plan(config, snapshot, now=snapshot.observed_at), snapshot, clusters


def write_json(data: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def run(command: Callable[[], Awaitable[int] | int]) -> int:
    """Run a command body, turning user-caused failures into one-line errors and exit status 1."""
    try:
        result = command()
        if isinstance(result, int):
            return result
        return asyncio.run(_awaited(result))
    except CommandError as exc:
        for line in str(exc).splitlines() or ["failed"]:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigurationError as exc:
        return error(str(exc))
    except KeyboardInterrupt:
        return error("interrupted")


async def _awaited(result: Awaitable[T]) -> T:
    return await result


def report_unreachable(snapshot: Snapshot) -> bool:
    """Name each account that could not be observed on stderr; True when there was one."""
    for account, problem in sorted(snapshot.errors.items()):
        print(f"error: account {account}: unreachable: {problem.describe()}", file=sys.stderr)
    return bool(snapshot.errors)
