"""deploy/grafana/reconciler.json: importable, complete, and every query valid PromQL over real metrics.

PromQL is parsed by promtool itself: each panel query, with the template variables substituted as
Grafana would, becomes a recording rule in a scratch rules file that `promtool check rules` must accept.
Whether the queries return data is the end-to-end test's job (test_dashboard_e2e.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_env import (
    dashboard,
    dashboard_panels,
    metric_names,
    panel_queries,
    require_tool,
    substitute,
    unknown_metrics,
)

ALL = {"instance": ".*", "account": ".*", "pool": ".*", "cluster": ".*"}
ONE = {"instance": "admin-vm:9464", "account": "prod", "pool": "etl-nightly", "cluster": "dask-research"}


def variables() -> dict[str, dict[str, object]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def test_importable_shape() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] == "reconciler"
    assert board["title"]
    assert "id" not in board or board["id"] is None, "an exported id would clash on import"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_datasource_is_a_variable_used_everywhere() -> None:
    source = variables()["datasource"]
    assert source["type"] == "datasource"
    assert source["query"] == "prometheus"
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize("name", ["instance", "account", "pool", "cluster"])
def test_template_variables_come_from_label_values(name: str) -> None:
    variable = variables()[name]
    assert variable["type"] == "query"
    assert variable["definition"] == variable["query"]["query"]  # type: ignore[index]
    assert re.fullmatch(rf"label_values\(.+, {name}\)", str(variable["definition"]))
    assert variable["includeAll"] is True
    assert variable["allValue"] == ".*"


def test_every_panel_has_queries() -> None:
    panels = dashboard_panels()
    assert len(panels) >= 15
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel tells an admin"


def all_exprs() -> list[tuple[str, str]]:
    board = dashboard()
    found: list[tuple[str, str]] = list(panel_queries({}))
    found += [(a["name"], a["expr"]) for a in board["annotations"]["list"] if "expr" in a]
    found += [(str(v["name"]), str(v["definition"])) for v in variables().values() if v["type"] == "query"]
    return found


def test_every_metric_is_in_the_contract() -> None:
    for where, expr in all_exprs():
        assert unknown_metrics(expr) == set(), where
        assert metric_names(expr), f"{where}: selects no reconciler metric"


def test_a_typo_would_be_caught() -> None:
    assert unknown_metrics('sum(reconciler_pool_node{pool=~"$pool"})') == {"reconciler_pool_node"}


REQUIRED = {
    "pools by status": r"reconciler_pools\{",
    "drift over time": r"reconciler_pools\{[^}]*status!~\"in_sync",
    "nodes by state per pool": r"by \(pool, state\) \(reconciler_pool_nodes",
    "refresh cycles": r"reconciler_refresh_total",
    "refresh phase durations": r"reconciler_refresh_duration_seconds",
    "current refresh phase": r"reconciler_pool_refresh_phase",
    "age of the last refresh": r"time\(\) - max by \(pool\) \(reconciler_pool_last_refresh_timestamp_seconds",
    "reconcile duration": r"reconciler_reconcile_duration_seconds_bucket",
    "reconcile errors": r"reconciler_reconcile_runs_total",
    "Azure calls": r"reconciler_azure_requests_total",
    "Azure errors": r"status=~\"5\.\.\|error\"",
    "Azure throttling": r"reconciler_azure_throttled_total",
    "cluster workers": r"reconciler_cluster_workers",
    "cluster target": r"reconciler_cluster_target_workers",
    "scheduler up": r"reconciler_cluster_scheduler_up",
    "config reload failures": r"reconciler_config_reloads_total|reconciler_config_last_reload_success",
}


@pytest.mark.parametrize(("topic", "pattern"), sorted(REQUIRED.items()))
def test_required_panels(topic: str, pattern: str) -> None:
    assert any(re.search(pattern, expr) for _, expr in panel_queries({})), topic


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("template", [ALL, ONE], ids=["all", "one"])
def test_substituted_queries_parse_with_promtool(template: dict[str, str], tmp_path: Path) -> None:
    queries = [*panel_queries(template)]
    queries += [
        (a["name"], substitute(a["expr"], template))
        for a in dashboard()["annotations"]["list"]
        if "expr" in a
    ]
    for _, expr in queries:
        assert "$" not in expr, f"a template variable left unsubstituted: {expr}"
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_rejects_a_broken_query(tmp_path: Path) -> None:
    """The parse check above can fail."""
    path = tmp_path / "broken.yaml"
    rule = {"record": "dashboard:broken", "expr": "sum by (pool) (rate(reconciler_refresh_total[5m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": [rule]}]}))
    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
