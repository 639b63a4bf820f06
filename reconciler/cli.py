"""The `reconciler` command: thin commands over the spec, emulator and engine packages.

Imports of the heavier packages happen inside each command so that `reconciler --help` and
`reconciler validate` start fast and never load what they do not use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from reconciler import __version__

app = typer.Typer(
    name="reconciler",
    help="Keep Azure Batch pools and Dask clusters on Azure VMs as a YAML file declares them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reconciler {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Keep Azure Batch pools and Dask clusters on Azure VMs as a YAML file declares them."""


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Config files or directories.", show_default=False)],
) -> None:
    """Check config files; print one line per problem (FILE:LINE:COL: field: message)."""
    from reconciler.spec.commands import validate_command

    raise typer.Exit(validate_command(paths))


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.")] = None,
) -> None:
    """Print the JSON Schema of the config file (for editors through yaml-language-server)."""
    from reconciler.spec.commands import schema_command

    raise typer.Exit(schema_command(output))


@app.command("import-legacy")
def import_legacy(
    source: Annotated[Path, typer.Argument(help="A legacy JSON pool-definition file.", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML to FILE.")] = None,
    account: Annotated[
        str, typer.Option(help="Name of the account the imported pools are placed in.")
    ] = "default",
    batch_url: Annotated[
        str | None,
        typer.Option(help="URL of that Batch account; without it a placeholder is written for you to edit."),
    ] = None,
) -> None:
    """Convert a legacy JSON pool-definition file into config YAML (passwords become ${env:...})."""
    from reconciler.spec.legacy import import_legacy_command

    raise typer.Exit(import_legacy_command(source, output, account, batch_url))


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP Batch data plane and admin API.")] = 8777,
    arm_port: Annotated[int, typer.Option(help="Port of the HTTPS face: ARM, identity, Batch.")] = 8778,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account",
            help="Batch account NAME[=KEY]; repeatable. Default: one account 'demo'. KEY defaults to the "
            "emulator-only well-known key, printed at start-up and written to the connection file.",
        ),
    ] = None,
    time_scale: Annotated[
        float, typer.Option(help="Simulated time runs N times faster than wall time.")
    ] = 1.0,
    state_file: Annotated[Path | None, typer.Option(help="Persist state here across restarts.")] = None,
    connection_file: Annotated[
        Path | None, typer.Option(help="Write endpoints, keys and credentials here once listening.")
    ] = None,
) -> None:
    """Run the local Azure emulator (Batch data plane, ARM for Batch/Compute/Network, token endpoint)."""
    from reconciler.emulator.command import emulator_command

    raise typer.Exit(
        emulator_command(
            host=host,
            port=port,
            arm_port=arm_port,
            accounts=account or [],
            time_scale=time_scale,
            state_file=state_file,
            connection_file=connection_file,
        )
    )


ConfigOption = Annotated[
    list[Path],
    typer.Option(
        "--config",
        "-c",
        envvar="RECONCILER_CONFIG",
        help="Config file or directory; repeatable (default: /etc/reconciler/config.yaml).",
    ),
]
OutputOption = Annotated[str, typer.Option("--output", "-o", help="text or json.")]
DEFAULT_CONFIG = [Path("/etc/reconciler/config.yaml")]


@app.command()
def plan(config: ConfigOption = DEFAULT_CONFIG, output: OutputOption = "text") -> None:
    """Show what would change and why. Exit 0 in sync, 2 changes pending, 1 error."""
    from reconciler.commands.plan import plan_command

    raise typer.Exit(plan_command(config, output))


@app.command()
def apply(
    config: ConfigOption = DEFAULT_CONFIG,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Act without asking.")] = False,
) -> None:
    """One pass: observe, plan, act, and wait for the actions to finish or reach their deadlines."""
    from reconciler.commands.apply import apply_command

    raise typer.Exit(apply_command(config, yes))


@app.command()
def refresh(
    pools: Annotated[list[str], typer.Argument(help="Pool ids to refresh.", show_default=False)],
    config: ConfigOption = DEFAULT_CONFIG,
    wait: Annotated[bool, typer.Option("--wait", help="Carry the refresh out now and follow it.")] = False,
) -> None:
    """Request a refresh (drain, delete, recreate) of pools; with --wait carry it out."""
    from reconciler.commands.refresh import refresh_command

    raise typer.Exit(refresh_command(config, pools, wait))


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, output: OutputOption = "text") -> None:
    """Per pool: in sync, drifted, refreshing, degraded, suspended or unmanaged, with nodes and errors."""
    from reconciler.commands.status import status_command

    raise typer.Exit(status_command(config, output))


@app.command()
def export(
    account: Annotated[str, typer.Option("--account", help="Declared account whose pools to export.")],
    config: ConfigOption = DEFAULT_CONFIG,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML to FILE.")] = None,
) -> None:
    """Write existing pools as config YAML that validates and plans as in sync (adopting old pools)."""
    from reconciler.commands.export import export_command

    raise typer.Exit(export_command(config, account, output))


@app.command()
def run(
    config: ConfigOption = DEFAULT_CONFIG,
    metrics_port: Annotated[
        int | None, typer.Option(help="Override metrics.port (0 picks a free port, logged at start).")
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="auto, json or console.")] = None,
) -> None:
    """Run the daemon: reconcile on a schedule, refresh pools nightly, serve /metrics; SIGHUP reloads."""
    from reconciler.commands.run import run_command
    from reconciler.daemon.logs import Format

    if log_format not in (None, "auto", "json", "console"):
        raise typer.BadParameter("must be auto, json or console", param_hint="--log-format")
    raise typer.Exit(
        run_command(config, metrics_port=metrics_port, log_format=cast(Format | None, log_format))
    )


@app.command()
def gc(
    config: ConfigOption = DEFAULT_CONFIG,
    dask_cloudprovider: Annotated[
        bool,
        typer.Option(
            "--dask-cloudprovider", help="Remove what dask-cloudprovider's AzureVMCluster left behind."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    """Report, and with --dask-cloudprovider remove, leftover cluster resources."""
    from reconciler.commands.gc import gc_command

    raise typer.Exit(gc_command(config, dask_cloudprovider, yes))


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop by itself after N seconds (default: until Ctrl-C).")
    ] = None,
    time_scale: Annotated[
        float, typer.Option(help="Simulated time runs N times faster than wall time.")
    ] = 120.0,
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics (0 picks a free one).")] = 9464,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Demo config to run.")] = None,
) -> None:
    """The daemon against an in-process Azure emulator: create, drift correction, a full refresh cycle."""
    from reconciler.commands.demo import demo_command

    raise typer.Exit(demo_command(duration, time_scale, metrics_port, config=config))


def main() -> None:
    app()
