"""`reconciler validate` and `reconciler schema`, through the CLI as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

import reconciler.spec.loader
from reconciler.cli import app
from reconciler.spec.base import SpecModel
from reconciler.spec.commands import REGENERATE, SCHEMA_DIALECT, config_schema, schema_text
from reconciler.spec.durations import Duration, parse_duration

ROOT = Path(__file__).resolve().parents[2]
BAD = Path(__file__).parent / "data" / "bad_resize_timeout.yaml"
BAD_LINE = f"{BAD}:19:21: pools.p_id1.resize_timeout: must be at least 5 minutes (got PT2M)"

GOOD = """\
accounts:
  prod:
    batch_url: https://prodbatch.japaneast.batch.azure.com
    auth: {method: shared_key, key: "${env:BATCH_KEY}"}
pools:
  p1:
    account: prod
    vm_size: standard_d4s_v3
    target_dedicated_nodes: 1
    virtual_machine_configuration:
      image_reference: {publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: "2204", version: latest}
      node_agent_sku_id: batch.node.ubuntu 22.04
"""


@pytest.fixture(autouse=True)
def _own_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The commands read the process environment; give them one without a user's dask config."""
    for name in [n for n in os.environ if n.startswith("DASK_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_validate_ok_prints_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK: 1 pool, 0 clusters, 1 account ({path})\n"


def test_validate_summary_counts_in_plural(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD + GOOD.split("pools:\n")[1].replace("  p1:", "  p2:"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"OK: 2 pools, 0 clusters, 1 account ({path})\n"


def test_validate_bad_prints_the_line_and_exits_1() -> None:
    result = CliRunner().invoke(app, ["validate", str(BAD)])
    assert result.exit_code == 1
    assert result.stderr == BAD_LINE + "\n"
    assert result.stdout == ""


def test_validate_reports_a_problem_in_each_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("pools:\n  p1: {vm_size: [a}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.yaml"), str(broken)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{broken}:2:19: YAML syntax: expected ',' or ']', but got '}}' (while parsing a flow sequence)",
        f"{tmp_path / 'nope.yaml'}:1:1: no such file or directory",
    ]


def test_validate_never_shows_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("hunter2 in a message")

    monkeypatch.setattr(reconciler.spec.loader, "load_config", broken)
    result = CliRunner().invoke(app, ["validate", str(BAD)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output
    assert result.stderr == f"{BAD}: cannot be validated: internal error (RuntimeError)\n"


def test_validate_as_a_real_process() -> None:
    script = Path(sys.executable).parent / "reconciler"
    done = subprocess.run(
        [str(script), "validate", str(BAD)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [BAD_LINE]
    assert done.stdout == ""


def test_schema_to_stdout_is_draft_2020_12() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"]
    assert {"accounts", "pools", "clusters", "defaults"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_schema_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(app, ["schema", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text() == schema_text()


def test_schema_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "-o", str(tmp_path / "missing" / "schema.json")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{tmp_path / 'missing' / 'schema.json'}: cannot write: ")


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "config" / "reconciler.schema.json").read_text()
    assert committed == schema_text(), f"config/reconciler.schema.json is stale: run `{REGENERATE}`"


def _schema_problems(document: object) -> list[str]:
    """What an editor would flag, with `X | None` unions reduced to what is wrong with the X."""
    validator = jsonschema.Draft202012Validator(json.loads(schema_text()))
    leaves = [leaf for error in validator.iter_errors(document) for leaf in _leaves(error)]
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in leaves if e.validator != "type"
    )


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    return [leaf for sub in error.context for leaf in _leaves(sub)] if error.context else [error]


def test_example_passes_the_editor_schema_with_keys_from_defaults() -> None:
    example = YAML(typ="safe", pure=True).load((ROOT / "config" / "example.yaml").read_text())
    assert _schema_problems(example) == []


def test_schema_requires_no_key_a_pool_can_inherit_but_keeps_list_items_strict() -> None:
    registry = {"identity_reference": {}}
    inherited_only = {
        "pools": {
            "p1": {
                "virtual_machine_configuration": {"container_configuration": {}},
                "start_task": {"container_settings": {"registry": registry}},
            }
        }
    }
    assert _schema_problems(inherited_only) == []
    in_lists = {
        "pools": {
            "p1": {
                "metadata": [{"name": "team"}],
                "virtual_machine_configuration": {
                    "container_configuration": {"container_registries": [registry]}
                },
            }
        }
    }
    assert _schema_problems(in_lists) == [
        "pools.p1.metadata.0: 'value' is a required property",
        "pools.p1.virtual_machine_configuration.container_configuration.container_registries.0"
        ".identity_reference: 'resource_id' is a required property",
    ]
    assert _schema_problems({"accounts": {"prod": {}}}) == [
        "accounts.prod: 'batch_url' is a required property"
    ]


@pytest.mark.filterwarnings("error")
def test_duration_defaults_appear_in_the_schema_as_iso_8601() -> None:
    class Timings(SpecModel):
        written: Duration = parse_duration("90s")
        computed: Duration = timedelta(hours=2)

    properties = Timings.model_json_schema()["properties"]
    assert (properties["written"]["default"], properties["computed"]["default"]) == ("PT1M30S", "PT2H")
    schedule = config_schema()["$defs"]["Schedule"]["properties"]
    assert (schedule["jitter"]["default"], schedule["reconcile_interval"]["default"]) == ("PT5S", "PT1M")
