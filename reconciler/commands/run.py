"""`reconciler run --config PATH`: the daemon, until SIGTERM or SIGINT (exit 0); SIGHUP reloads.

The config is loaded before anything else starts: a daemon that cannot read its config says why in one
line per problem (exit 1) instead of starting with nothing to keep.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.commands.common import EXIT_ERROR, CommandError, load
from reconciler.daemon import logs
from reconciler.daemon.app import Daemon
from reconciler.engine.wait import Pacing


def run_command(
    config_paths: Sequence[Path],
    *,
    metrics_port: int | None = None,
    log_format: logs.Format | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the daemon; `metrics_port` overrides the config's (0 picks a free port, logged at start)."""
    try:
        config = load(config_paths, env=env)
        pacing = Pacing.from_env(env)
    except (CommandError, ValueError) as exc:
        for line in str(exc).splitlines() or ["failed"]:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    logs.configure(logs.level_name(config.logging.level, env), log_format or config.logging.format)
    daemon = Daemon(config_paths, config, env=env, metrics_port=metrics_port, pacing=pacing)
    try:
        return asyncio.run(daemon.run())
    except OSError as exc:
        print(f"error: cannot listen on {config.metrics.address}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reconciler run", description=__doc__)
    parser.add_argument(
        "--config", "-c", action="append", type=Path, required=True, help="config file or directory"
    )
    parser.add_argument("--metrics-port", type=int, default=None, help="override metrics.port (0: any free)")
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default=None)
    args = parser.parse_args(argv)
    return run_command(args.config, metrics_port=args.metrics_port, log_format=args.log_format)


if __name__ == "__main__":
    sys.exit(main())
