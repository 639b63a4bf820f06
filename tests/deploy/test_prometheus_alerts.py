"""deploy/prometheus: the alert rules and their unit tests, run by promtool; the example config too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_env import ROOT, metric_names, require_tool, unknown_metrics

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yaml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yaml"


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool")
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """A rule that no longer fires as its test expects is reported: the tests above prove something."""
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    text = ALERTS.read_text().replace('up{job="reconciler"} == 0', 'up{job="reconciler"} == 2')
    (tmp_path / ALERTS.name).write_text(text)
    result = promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "ReconcilerDown" in result.stdout + result.stderr


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a case where it fires and one where it stays quiet."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - fired == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"
    assert (fired | quiet) - names == set(), "tests of alerts that do not exist"


REQUIRED_ALERTS = {
    "ReconcilerDown": "up",
    "ReconcilerReconcileFailing": "reconciler_reconcile_runs_total",
    "ReconcilerNoSuccessfulReconcile": "reconciler_last_successful_reconcile_timestamp_seconds",
    "ReconcilerNightlyRefreshMissed": "reconciler_pool_last_refresh_timestamp_seconds",
    "ReconcilerRefreshStuck": "reconciler_pool_refresh_phase",
    "ReconcilerRefreshPhaseStuck": "reconciler_pool_refresh_phase",
    "ReconcilerPoolDegraded": "reconciler_pools",
    "ReconcilerDriftPersisting": "reconciler_pools",
    "ReconcilerAzureThrottled": "reconciler_azure_throttled_total",
    "ReconcilerConfigReloadFailing": "reconciler_config_last_reload_success",
    "ReconcilerClusterBelowTarget": "reconciler_cluster_target_workers",
    "ReconcilerClusterSchedulerDown": "reconciler_cluster_scheduler_up",
}
"""The situations the admins asked to be paged for, and the metric each alert must watch."""


@pytest.mark.parametrize(("alert", "metric"), sorted(REQUIRED_ALERTS.items()))
def test_required_alert_exists(alert: str, metric: str) -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert alert in by_name
    assert metric in by_name[alert]["expr"]


def test_alerts_use_only_contract_metrics() -> None:
    for rule in rules():
        assert unknown_metrics(rule["expr"]) == set(), rule["alert"]
        assert metric_names(rule["expr"]) or "up{" in rule["expr"], rule["alert"]


def test_every_alert_has_a_runbook_and_a_severity() -> None:
    for rule in rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        steps = [line for line in annotations["runbook"].splitlines() if line[:2] in {"1.", "2.", "3."}]
        assert len(steps) >= 2, f"{rule['alert']}: a runbook is numbered steps"
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule.get("for"), f"{rule['alert']}: an alert without `for` pages on one bad scrape"
