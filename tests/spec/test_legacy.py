"""`import-legacy`: legacy JSON pool definitions become config YAML that validates and holds no password."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.spec.legacy import (
    PLACEHOLDER_BATCH_URL,
    LegacyError,
    convert,
    dump,
    env_name,
    read_legacy,
    snake,
)

DATA = Path(__file__).parent.parent / "data" / "legacy"
PASSWORD = "S3cr3t-Registry-Pa55word"
VARIABLE = "ACR_MYREG_AZURECR_IO_PASSWORD"
BATCH_URL = "https://prodbatch.japaneast.batch.azure.com"

IMAGE_JAMMY = {
    "publisher": "canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts",
    "version": "latest",
}
ENCRYPTION = {"targets": ["osdisk", "temporarydisk"]}
EXPECTED_POOLS: dict[str, Any] = {
    "p_nightly": {
        "account": "prod",
        "vm_size": "standard_d4s_v3",
        "target_dedicated_nodes": 2,
        "virtual_machine_configuration": {
            "image_reference": IMAGE_JAMMY,
            "node_agent_sku_id": "batch.node.ubuntu 22.04",
            "disk_encryption_configuration": ENCRYPTION,
        },
    },
    "p_adhoc": {
        "account": "prod",
        "vm_size": "standard_e8s_v3",
        "enable_auto_scale": True,
        "auto_scale_formula": (
            "$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);\n"
            "$tasks = $samples < 70 ? max(0, $PendingTasks.GetSample(1)) : "
            "max($PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 5)));\n"
            "$TargetDedicatedNodes = min(10, $tasks / 4);\n"
            "$NodeDeallocationOption = taskcompletion;"
        ),
        "auto_scale_evaluation_interval": "PT15M",
        "virtual_machine_configuration": {
            "image_reference": IMAGE_JAMMY,
            "node_agent_sku_id": "batch.node.ubuntu 22.04",
            "disk_encryption_configuration": ENCRYPTION,
        },
    },
    "p_container": {
        "account": "prod",
        "vm_size": "standard_d8s_v3",
        "target_dedicated_nodes": 1,
        "virtual_machine_configuration": {
            "image_reference": {
                "publisher": "microsoft-azure-batch",
                "offer": "ubuntu-server-container",
                "sku": "20-04-lts",
                "version": "latest",
            },
            "node_agent_sku_id": "batch.node.ubuntu 20.04",
            "container_configuration": {
                "type": "dockerCompatible",
                "container_image_names": ["myreg.azurecr.io/etl/worker:2024.06"],
                "container_registries": [
                    {
                        "registry_server": "myreg.azurecr.io",
                        "username": "myreg",
                        "password": f"${{env:{VARIABLE}}}",
                    }
                ],
            },
            "disk_encryption_configuration": ENCRYPTION,
        },
    },
}
EXPECTED_DEFAULTS: dict[str, Any] = {
    "start_task": {
        "command_line": "/bin/bash -c 'sudo apt-get update && sudo apt-get install -y nfs-common "
        "&& mkdir -p /mnt/batch/shared'",
        "environment_settings": [
            {"name": "HTTPS_PROXY", "value": "http://proxy.corp.example:3128"},
            {"name": "NO_PROXY", "value": "169.254.169.254,.batch.azure.com"},
        ],
        "user_identity": {"auto_user": {"scope": "pool", "elevation_level": "admin"}},
        "max_task_retry_count": 2,
        "wait_for_success": True,
    },
    "network_configuration": {
        "subnet_id": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-network"
        "/providers/Microsoft.Network/virtualNetworks/vnet-batch/subnets/snet-pools",
        "dynamic_vnet_assignment_scope": "none",
        "public_ip_address_configuration": {"provision": "nopublicipaddresses"},
    },
    "task_slots_per_node": 4,
    "task_scheduling_policy": {"node_fill_type": "pack"},
}


def _plain(text: str) -> Any:
    return json.loads(json.dumps(YAML(typ="safe").load(text)))


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["import-legacy", *args])


@pytest.mark.parametrize("source", ["pools.json", "pools_cnet.json"])
def test_round_trip_through_the_cli_validates_and_holds_no_password(tmp_path: Path, source: str) -> None:
    out = tmp_path / "pools.yaml"
    result = _run(str(DATA / source), "-o", str(out), "--account", "prod", "--batch-url", BATCH_URL)

    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert PASSWORD not in text
    assert PASSWORD not in result.stdout
    assert PASSWORD not in result.stderr
    assert VARIABLE in result.stderr
    assert text.startswith(f"# Converted from the legacy pool definitions in {source}.")

    document = _plain(text)
    assert document["accounts"] == {"prod": {"batch_url": BATCH_URL, "auth": {"method": "default"}}}
    assert document["defaults"] == {"pool": EXPECTED_DEFAULTS}
    assert document["pools"] == EXPECTED_POOLS

    from reconciler.spec.loader import load_config

    config = load_config([out], env={VARIABLE: "from-the-environment"})
    assert set(config.pools) == {"p_nightly", "p_adhoc", "p_container"}
    assert config.pools["p_nightly"].task_slots_per_node == 4
    assert config.pools["p_adhoc"].target_dedicated_nodes is None


def test_yaml_goes_to_stdout_without_output_and_placeholder_url_still_validates() -> None:
    result = _run(str(DATA / "pools.json"))

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.stdout
    assert PASSWORD not in result.stderr
    document = _plain(result.stdout)
    assert document["accounts"]["default"]["batch_url"] == PLACEHOLDER_BATCH_URL
    assert "# TODO" in result.stdout
    assert "--batch-url" in result.stderr
    assert {pool["account"] for pool in document["pools"].values()} == {"default"}


def test_bad_json_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    source = tmp_path / "broken.json"
    source.write_text('{\n  "p1": {"vmSize": "standard_d2s_v3",}\n}\n')

    result = _run(str(source))

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{source}:2:38: invalid JSON:")
    assert result.stdout == ""


def test_a_result_that_does_not_validate_exits_1_and_points_into_the_output(tmp_path: Path) -> None:
    source = tmp_path / "bad.json"
    source.write_text(
        json.dumps(
            {
                "p1": {
                    "vmSize": "standard_d2s_v3",
                    "targetDedicatedNodes": 1,
                    "resizeTimeout": "PT2M",
                    "virtualMachineConfiguration": {
                        "imageReference": IMAGE_JAMMY,
                        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
                    },
                }
            }
        )
    )
    out = tmp_path / "bad.yaml"

    result = _run(str(source), "-o", str(out), "--batch-url", BATCH_URL)

    assert result.exit_code == 1
    line = next(n for n, text in enumerate(out.read_text().splitlines(), 1) if "resize_timeout" in text)
    assert f"{out}:{line}:" in result.stderr
    assert "pools.p1.resize_timeout" in result.stderr


def test_not_an_object_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "list.json"
    source.write_text("[1, 2]")
    result = _run(str(source))
    assert result.exit_code == 1
    assert "expected an object" in result.stderr


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "nope.json"))
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "cannot read" in result.stderr


@pytest.mark.parametrize(
    ("camel", "expected"),
    [
        ("nodeAgentSKUId", "node_agent_sku_id"),
        ("publicIPAddressConfiguration", "public_ip_address_configuration"),
        ("dynamicVNetAssignmentScope", "dynamic_vnet_assignment_scope"),
        ("dynamicCNetAssignmentScope", "dynamic_vnet_assignment_scope"),
        ("ephemeralOSDiskSettings", "ephemeral_os_disk_settings"),
        ("diskSizeGB", "disk_size_gb"),
        ("vTpmEnabled", "v_tpm_enabled"),
        ("userName", "username"),
        ("targetDedicatedNodes", "target_dedicated_nodes"),
        ("common-config", "common_config"),
        ("vmSize", "vm_size"),
    ],
)
def test_snake_case_of_rest_names(camel: str, expected: str) -> None:
    assert snake(camel) == expected


def test_env_name_squeezes_anything_but_letters_and_digits() -> None:
    assert env_name("ACR", "myreg.azurecr.io", "password") == VARIABLE
    assert env_name("p-1", "user accounts[0]", "password") == "P_1_USER_ACCOUNTS_0_PASSWORD"


def _registry(server: str, user: str, password: str) -> dict[str, Any]:
    return {
        "vmSize": "standard_d2s_v3",
        "targetDedicatedNodes": 1,
        "virtualMachineConfiguration": {
            "containerConfiguration": {
                "type": "dockerCompatible",
                "containerRegistries": [{"registryServer": server, "username": user, "password": password}],
            }
        },
    }


def _password_of(document: Any, pool: str) -> str:
    vmc = document["pools"][pool]["virtual_machine_configuration"]
    value: str = vmc["container_configuration"]["container_registries"][0]["password"]
    return value


def test_one_variable_per_registry_login_and_distinct_logins_get_distinct_names() -> None:
    legacy = {
        "a": _registry("myreg.azurecr.io", "myreg", "pw-one"),
        "b": _registry("myreg.azurecr.io", "myreg", "pw-one"),
        "c": _registry("myreg.azurecr.io", "robot", "pw-two"),
        "d": _registry("myreg.azurecr.io", "myreg", "pw-rotated"),
        "e": _registry("docker.io", "me", "pw-three"),
    }
    conversion = convert(legacy, "prod")

    names = {ref.name: ref.used_by for ref in conversion.secrets}
    assert names == {
        VARIABLE: ["a", "b"],
        "ACR_MYREG_AZURECR_IO_ROBOT_PASSWORD": ["c"],
        "ACR_MYREG_AZURECR_IO_MYREG_PASSWORD": ["d"],
        "REGISTRY_DOCKER_IO_PASSWORD": ["e"],
    }
    document = _plain(dump(conversion, "x.json"))
    assert _password_of(document, "a") == _password_of(document, "b") == f"${{env:{VARIABLE}}}"
    text = dump(conversion, "x.json")
    for secret in ("pw-one", "pw-two", "pw-rotated", "pw-three"):
        assert secret not in text
        assert all(secret not in f"{ref}" for ref in conversion.secrets)


def test_other_secrets_become_references_too() -> None:
    legacy = {
        "p1": {
            "vmSize": "standard_d2s_v3",
            "targetDedicatedNodes": 1,
            "userAccounts": [{"name": "svc", "password": "user-pw", "elevationLevel": "admin"}],
            "startTask": {
                "commandLine": "run.sh",
                "environmentSettings": [
                    {"name": "DB_PASSWORD", "value": "db-pw"},
                    {"name": "STORAGE_ACCOUNT_KEY", "value": "storage-key"},
                    {"name": "LOG_LEVEL", "value": "debug"},
                ],
                "resourceFiles": [
                    {"httpUrl": "https://st.blob.core.windows.net/c/run.sh?sv=2022&sig=sas-signature"},
                    {"httpUrl": "https://example.com/public.sh"},
                ],
            },
            "virtualMachineConfiguration": {
                "extensions": [
                    {
                        "name": "agent",
                        "publisher": "Contoso",
                        "type": "Agent",
                        "settings": {"workspaceId": "abc"},
                        "protectedSettings": {"workspaceKey": "workspace-key-value"},
                    }
                ]
            },
            "mountConfiguration": [
                {"azureFileShareConfiguration": {"accountName": "st", "accountKey": "key-value"}}
            ],
        }
    }
    conversion = convert(legacy, "prod")
    text = dump(conversion, "x.json")
    for secret in ("user-pw", "key-value", "sas-signature", "workspace-key-value", "db-pw", "storage-key"):
        assert secret not in text
    assert "value: debug" in text
    assert "https://example.com/public.sh" in text
    assert "workspaceId: abc" in text
    assert {ref.name for ref in conversion.secrets} == {
        "USER_SVC_PASSWORD",
        "P1_AZURE_FILE_SHARE_CONFIGURATION_ACCOUNT_KEY",
        "P1_RESOURCE_FILES_0_HTTP_URL",
        "P1_WORKSPACEKEY",
        "DB_PASSWORD",
        "STORAGE_ACCOUNT_KEY",
    }


def test_a_password_already_given_as_a_reference_is_kept() -> None:
    conversion = convert({"a": _registry("r.azurecr.io", "u", "${env:MY_OWN}")}, "prod")
    assert conversion.secrets == []
    assert _password_of(_plain(dump(conversion, "x.json")), "a") == "${env:MY_OWN}"


def test_autoscale_rules_follow_the_legacy_script() -> None:
    legacy = {
        "common-config": {"enableAutoScale": True, "taskSlotsPerNode": 2},
        "auto": {
            "vmSize": "standard_d2s_v3",
            "enableAutoScale": True,
            "targetDedicatedNodes": 3,
            "targetLowPriorityNodes": 1,
            "autoScaleFormula": "$TargetDedicatedNodes = 1;",
            "autoScaleEvaluationInterval": 10,
        },
        "fixed": {
            "vmSize": "standard_d2s_v3",
            "targetDedicatedNodes": 3,
            "autoScaleFormula": "$TargetDedicatedNodes = 9;",
        },
    }
    conversion = convert(legacy, "prod")
    document = _plain(dump(conversion, "x.json"))

    assert document["defaults"] == {"pool": {"task_slots_per_node": 2}}
    assert document["pools"]["auto"] == {
        "account": "prod",
        "vm_size": "standard_d2s_v3",
        "enable_auto_scale": True,
        "auto_scale_formula": "$TargetDedicatedNodes = 1;",
        "auto_scale_evaluation_interval": "PT10M",
    }
    assert document["pools"]["fixed"] == {
        "account": "prod",
        "vm_size": "standard_d2s_v3",
        "target_dedicated_nodes": 3,
    }
    notes = "\n".join(conversion.notes)
    assert "read as minutes" in notes
    assert "auto_scale_formula dropped" in notes


def test_unknown_keys_are_converted_and_user_names_are_kept() -> None:
    legacy = {
        "p1": {
            "vmSize": "standard_d2s_v3",
            "someFutureProperty": {"innerValue": 1},
            "resourceTags": {"costCenter": "1234"},
            "metadata": [{"name": "ownerTeam", "value": "data"}],
        }
    }
    pool = _plain(dump(convert(legacy, "prod"), "x.json"))["pools"]["p1"]
    assert pool["some_future_property"] == {"inner_value": 1}
    assert pool["resource_tags"] == {"costCenter": "1234"}
    assert pool["metadata"] == [{"name": "ownerTeam", "value": "data"}]


def test_wrong_shapes_raise_legacy_error(tmp_path: Path) -> None:
    with pytest.raises(LegacyError, match="pool 'p1' must be an object"):
        convert({"p1": 3}, "prod")
    with pytest.raises(LegacyError, match="'common-config' must be an object"):
        convert({"common-config": []}, "prod")
    source = tmp_path / "x.json"
    source.write_bytes(b"\xff\xfe")
    with pytest.raises(LegacyError, match="not UTF-8"):
        read_legacy(source)
