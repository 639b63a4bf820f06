"""Plan and status output: the JSON schema, the text lines, and no secret value anywhere."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

from plan_env import NOW, config, observed_from, quota_error, snapshot, spec

from reconciler.plan.actions import Plan
from reconciler.plan.diff import make_plan
from reconciler.plan.render import plan_json, plan_text, status_json, status_text
from reconciler.spec.config import Config
from reconciler.spec.loader import load_config

ACR_VALUE = "acr-PASSWORD-value-42"

REGISTRY_POOL = """
accounts:
  demo: {batch_url: "https://demo.japaneast.batch.azure.com"}
pools:
  p1:
    account: demo
    vm_size: standard_d2s_v3
    target_dedicated_nodes: 1
    virtual_machine_configuration:
      image_reference: {publisher: microsoft-azure-batch, offer: ubuntu-server-container, sku: 20-04-lts}
      node_agent_sku_id: batch.node.ubuntu 20.04
      container_configuration:
        type: dockerCompatible
        container_registries:
          - {registry_server: myacr.azurecr.io, username: puller, password: "${env:ACR_PW}"}
"""


def load_registry(tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(REGISTRY_POOL), encoding="utf-8")
    return load_config([path], env={"ACR_PW": ACR_VALUE})


def outputs(plan: Plan) -> str:
    return (
        plan_text(plan)
        + json.dumps(plan_json(plan))
        + status_text(plan.statuses)
        + json.dumps(status_json(plan.statuses))
    )


def test_registry_password_shows_as_its_reference_in_a_create(tmp_path: Path) -> None:
    loaded = load_registry(tmp_path)
    registry = loaded.pools["p1"].virtual_machine_configuration.container_configuration
    assert registry is not None
    assert registry.container_registries is not None
    password = registry.container_registries[0].password
    assert password is not None
    assert password.reveal() == ACR_VALUE
    plan = make_plan(loaded, snapshot(), now=NOW)
    shown = outputs(plan)
    assert "${env:ACR_PW}" in plan_text(plan)
    assert ACR_VALUE not in shown


def test_changed_registry_password_shows_the_new_reference(tmp_path: Path) -> None:
    loaded = load_registry(tmp_path)
    desired = loaded.pools["p1"]
    old = load_config([_rewrite(tmp_path, "ACR_OLD")], env={"ACR_OLD": "older-value-1"}).pools["p1"]
    plan = make_plan(loaded, snapshot(observed_from(old)), now=NOW)
    (action,) = plan.actions
    assert [(c.path, c.new) for c in action.changes] == [("virtual_machine_configuration", "(${env:ACR_PW})")]
    text = plan_text(plan)
    assert "virtual_machine_configuration: (not returned by the service) → (${env:ACR_PW}) [recreate]" in text
    assert ACR_VALUE not in outputs(plan)
    assert desired.canonical() != old.canonical()


def _rewrite(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "old.yaml"
    path.write_text(textwrap.dedent(REGISTRY_POOL).replace("ACR_PW", name), encoding="utf-8")
    return path


def test_plan_json_schema() -> None:
    observed = observed_from(spec(target_dedicated_nodes=2))
    orphan = observed_from(spec(), pool_id="old")
    plan = make_plan(config({"p1": spec(target_dedicated_nodes=3)}), snapshot(observed, orphan), now=NOW)
    data = plan_json(plan)
    assert set(data) == {"version", "in_sync", "summary", "actions", "held", "pools"}
    assert data["version"] == 1
    assert data["in_sync"] is False
    assert data["summary"] == {
        "actions": 2,
        "held": 1,
        "by_kind": {"patch": 1, "resize": 1},
        "in_sync_pools": 0,
    }
    resize = data["actions"][1]
    assert resize == {
        "kind": "resize",
        "account": "demo",
        "pool_id": "p1",
        "reason": "size differs from the spec",
        "changes": [{"path": "target_dedicated_nodes", "old": 2, "new": 3, "rule": "scale"}],
    }
    assert data["held"][0]["held_because"] == "safety.prune is off"
    assert [(p["pool_id"], p["state"]) for p in data["pools"]] == [("p1", "drifted"), ("old", "orphaned")]
    json.dumps(data)


def test_plan_text_lines() -> None:
    observed = observed_from(spec(target_dedicated_nodes=2))
    plan = make_plan(config({"p1": spec(target_dedicated_nodes=3)}), snapshot(observed), now=NOW)
    text = plan_text(plan)
    assert "resize            demo/p1: size differs from the spec" in text
    assert "      target_dedicated_nodes: 2 → 3 [scale]" in text
    assert text.splitlines()[-1] == "Plan: 2 action(s) (1 patch, 1 resize), 0 held, 0 pool(s) in sync."


def test_in_sync_summary() -> None:
    desired = spec()
    plan = make_plan(config({"p1": desired}), snapshot(observed_from(desired)), now=NOW)
    assert plan_text(plan) == "No changes: 1 pool(s) observed, 1 in sync.\n"


def test_status_rows_carry_nodes_errors_and_times() -> None:
    desired = spec(target_dedicated_nodes=4)
    observed = quota_error(observed_from(desired), current=1)
    observed = replace(observed, refresh_requested_at=None)
    plan = make_plan(config({"p1": desired}), snapshot(observed), now=NOW)
    (row,) = status_json(plan.statuses)["pools"]
    assert row["state"] == "degraded"
    assert row["nodes"] == {"dedicated": {"idle": 1}, "low_priority": {}}
    assert row["target"] == {"dedicated": 4, "low_priority": 0}
    assert row["resize_errors"][0]["code"] == "AccountCoreQuotaReached"
    assert row["created"] == observed.creation_time.isoformat()  # type: ignore[union-attr]
    text = status_text(plan.statuses)
    header, line = text.splitlines()[:2]
    assert header.split()[:3] == ["ACCOUNT", "POOL", "STATE"]
    assert line.split()[:4] == ["demo", "p1", "degraded", "steady"]
    assert "AccountCoreQuotaReached" in line
