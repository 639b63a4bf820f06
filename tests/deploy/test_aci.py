"""deploy/aci/container-group.yaml: the fields ACI needs, every key known to the ACI API, a valid config.

ARM ignores properties it does not know, so a misspelt `livenessprobe` would deploy a group without a
probe and no error. The keys are therefore checked against the Container Instances API models of
Microsoft's SDK: the YAML is deserialized into a `ContainerGroup` and serialized back, and a key that
does not survive the round trip is one the API does not have.
"""

from __future__ import annotations

import base64
import importlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_env import BIN, ROOT

GROUP = ROOT / "deploy" / "aci" / "container-group.yaml"
README = ROOT / "deploy" / "aci" / "README.md"


def group() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(GROUP.read_text())
    return loaded


def container() -> dict[str, Any]:
    (only,) = group()["properties"]["containers"]
    properties: dict[str, Any] = only["properties"]
    return properties


def aci_models() -> Any:
    try:
        return importlib.import_module("azure.mgmt.containerinstance.models")
    except ImportError:
        pytest.fail("azure-mgmt-containerinstance is not installed: pip install azure-mgmt-containerinstance")


def leaves(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        return {
            leaf for key, item in value.items() for leaf in leaves(item, f"{path}.{key}" if path else key)
        }
    if isinstance(value, list):
        return {leaf for index, item in enumerate(value) for leaf in leaves(item, f"{path}[{index}]")}
    return {path}


def unknown_keys(document: dict[str, Any]) -> set[str]:
    body = {key: value for key, value in document.items() if key not in ("apiVersion", "name", "type")}
    model = aci_models().ContainerGroup.deserialize(body)
    return leaves(body) - leaves(model.serialize())


def test_every_key_is_known_to_the_aci_api() -> None:
    assert unknown_keys(group()) == set()


def test_a_misspelt_key_is_caught() -> None:
    document = group()
    properties = document["properties"]["containers"][0]["properties"]
    properties["livenessprobe"] = properties.pop("livenessProbe")
    assert any(".livenessprobe." in key for key in unknown_keys(document))


def test_top_level() -> None:
    document = group()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", document["apiVersion"])
    assert document["type"] == "Microsoft.ContainerInstance/containerGroups"
    assert document["location"]
    assert document["properties"]["osType"] == "Linux"
    assert document["properties"]["restartPolicy"] == "Always"


def test_user_assigned_identity_signs_in_and_pulls() -> None:
    document = group()
    identity = document["identity"]
    assert identity["type"] == "UserAssigned"
    (resource_id,) = identity["userAssignedIdentities"]
    assert "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" in resource_id
    assert identity["userAssignedIdentities"][resource_id] == {}
    (registry,) = document["properties"]["imageRegistryCredentials"]
    assert registry["identity"] == resource_id
    names = {variable["name"] for variable in container()["environmentVariables"]}
    assert "AZURE_CLIENT_ID" in names


def test_container_resources_ports_and_probes() -> None:
    properties = container()
    assert properties["image"]
    requests = properties["resources"]["requests"]
    assert 0 < float(requests["cpu"]) <= 1
    assert 0 < float(requests["memoryInGB"]) <= 1.5
    assert {"port": 9464, "protocol": "TCP"} in properties["ports"]
    assert {"port": 9464, "protocol": "TCP"} in group()["properties"]["ipAddress"]["ports"]
    liveness = properties["livenessProbe"]["httpGet"]
    readiness = properties["readinessProbe"]["httpGet"]
    assert (liveness["path"], liveness["port"]) == ("/healthz", 9464)
    assert (readiness["path"], readiness["port"]) == ("/readyz", 9464)
    assert "command" not in properties, "the image's ENTRYPOINT and CMD are the command"


def test_config_comes_from_a_secret_volume() -> None:
    properties = container()
    (mount,) = properties["volumeMounts"]
    assert mount == {"name": mount["name"], "mountPath": "/etc/reconciler", "readOnly": True}
    (volume,) = [v for v in group()["properties"]["volumes"] if v["name"] == mount["name"]]
    assert set(volume["secret"]) == {"config.yaml"}


def test_the_mounted_config_validates_and_binds_beyond_loopback(tmp_path: Path) -> None:
    """The example config in the secret volume is one `reconciler validate` accepts, with the env the
    container gets, and it listens where the probes and Prometheus can reach it."""
    (volume,) = group()["properties"]["volumes"]
    config = tmp_path / "config.yaml"
    config.write_bytes(base64.b64decode(volume["secret"]["config.yaml"], validate=True))
    env = {v["name"]: v.get("value", "x") for v in container()["environmentVariables"]}
    env["AZURE_CLIENT_ID"] = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    env["PATH"] = "/usr/bin:/bin"
    result = subprocess.run(
        [str(BIN / "reconciler"), "validate", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    settings = yaml.safe_load(config.read_text())
    assert settings["metrics"]["address"] == "0.0.0.0"
    assert settings["metrics"]["port"] == 9464
    assert settings["azure"]["auth"]["method"] == "managed_identity"


@pytest.mark.parametrize(
    "needle",
    [
        "az container create",
        "Virtual Machine Contributor",
        "Network Contributor",
        "az role assignment create",
    ],
)
def test_walkthrough_covers(needle: str) -> None:
    assert needle in README.read_text()
