"""The shipped example must stay a valid config: the README points people at it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.spec.loader import load_config

EXAMPLE = Path(__file__).parent.parent.parent / "config" / "example.yaml"


def test_example_loads_without_any_environment_variable() -> None:
    config = load_config([EXAMPLE], env={})

    assert set(config.accounts) == {"prod", "analytics"}
    assert set(config.pools) == {"etl-fixed", "adhoc-autoscale", "ml-containers", "nightly-batch"}
    assert set(config.clusters) == {"research"}


def test_defaults_reach_every_pool() -> None:
    config = load_config([EXAMPLE], env={})

    assert {pool.task_slots_per_node for pool in config.pools.values()} == {4}


def test_nightly_refresh_is_declared_in_tokyo_time() -> None:
    refresh = load_config([EXAMPLE], env={}).pools["nightly-batch"].refresh

    assert (refresh.schedule, refresh.timezone) == ("0 2 * * *", "Asia/Tokyo")


def test_validate_command_accepts_the_example() -> None:
    result = CliRunner().invoke(app, ["validate", str(EXAMPLE)])

    assert result.exit_code == 0, result.output


def test_schema_comment_is_the_first_line() -> None:
    first = EXAMPLE.read_text().splitlines()[0]

    assert first == "# yaml-language-server: $schema=./reconciler.schema.json"
