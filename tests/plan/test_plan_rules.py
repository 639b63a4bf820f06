"""The field classes against Microsoft's own API description, and the plan package's purity."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from plan_env import observed_from, spec

from reconciler.azure import markers
from reconciler.plan import rules
from reconciler.plan.actions import ChangeRule
from reconciler.plan.rules import PATCH_ANY_TIME, SCALE, WHEN_EMPTY, desired_markers, patch_fields, rule_for
from reconciler.spec.pool import OWN_KEYS, Pool
from reconciler.spec.secrets import Secret

BATCH_SPEC = Path(__file__).parents[2].parent / "shared/azure-reference/batch-data-plane/BatchService.json"
NOT_MODELLED = {"certificate_references"}
PLAN_MODULES = ("actions", "rules", "hashing", "diff", "refresh", "status", "render")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def definitions() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(BATCH_SPEC.read_text(encoding="utf-8"))
    return loaded["definitions"]  # type: ignore[no-any-return]


def test_update_options_split_into_any_time_and_when_empty() -> None:
    properties = definitions()["BatchPoolUpdateOptions"]["properties"]
    for rest, schema in properties.items():
        field = snake(rest)
        if field in NOT_MODELLED:
            continue
        when_empty = "can be updated only when the pool is empty" in schema.get("description", "")
        assert (field in WHEN_EMPTY) == when_empty, field
        assert (field in PATCH_ANY_TIME) == (not when_empty), field


def test_replace_options_are_any_time() -> None:
    properties = definitions()["BatchPoolReplaceOptions"]["properties"]
    assert {snake(p) for p in properties} - NOT_MODELLED == PATCH_ANY_TIME


def test_every_azure_facing_field_is_classified() -> None:
    azure_facing = set(Pool.model_fields) - (OWN_KEYS - {"identity"})
    classified = PATCH_ANY_TIME | SCALE | WHEN_EMPTY | {"identity"}
    assert azure_facing == classified
    assert rule_for("identity") == ChangeRule.recreate
    assert rule_for("resize_timeout") == ChangeRule.scale
    assert rule_for("resize_timeout", autoscale=True) == ChangeRule.recreate


@pytest.mark.parametrize("module", PLAN_MODULES)
def test_plan_modules_do_no_io_and_read_no_clock(module: str) -> None:
    source = (Path(__file__).parents[2] / "reconciler" / "plan" / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {
        "os",
        "time",
        "asyncio",
        "aiohttp",
        "socket",
        "subprocess",
        "pathlib",
        "io",
        "random",
    }
    calls = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert not calls & {"now", "utcnow", "today", "open", "time", "monotonic", "sleep"}


def test_patch_fields_include_secret_only_changes() -> None:
    def pool(reference: str, command: str, nodes: int) -> Pool:
        registry = {
            "registry_server": "r.azurecr.io",
            "username": "u",
            "password": Secret("v", reference=reference),
        }
        machine = spec().virtual_machine_configuration.model_dump(mode="python", exclude_none=True)
        machine["container_configuration"] = {"type": "dockerCompatible", "container_registries": [registry]}
        return spec(
            virtual_machine_configuration=machine,
            start_task={"command_line": command},
            target_dedicated_nodes=nodes,
        )

    observed = observed_from(pool("${env:OLD}", "a", 1))
    assert patch_fields(pool("${env:NEW}", "b", 3), observed) == {
        "virtual_machine_configuration",
        "start_task",
    }
    assert patch_fields(pool("${env:OLD}", "a", 3), observed) == frozenset()
    assert patch_fields(pool("${env:OLD}", "a", 1), replace(observed, desired_view={})) >= {"vm_size"}


def test_every_marker_the_tool_writes_is_named_in_markers() -> None:
    assert markers.DELETION_PROTECTION == "reconciler.deletion-protection"
    assert markers.DELETION_PROTECTION in markers.ALL
    assert not hasattr(rules, "DELETION_PROTECTION")
    assert not hasattr(rules, "SECRET_DIGESTS")
    registry = {
        "registry_server": "r.azurecr.io",
        "username": "u",
        "password": Secret("v", reference="${env:PW}"),
    }
    machine = spec().virtual_machine_configuration.model_dump(mode="python", exclude_none=True)
    machine["container_configuration"] = {"type": "dockerCompatible", "container_registries": [registry]}
    everything = spec(deletion_protection=True, virtual_machine_configuration=machine)
    assert set(desired_markers(everything)) == markers.ALL - {markers.REFRESH_REQUESTED_AT}
