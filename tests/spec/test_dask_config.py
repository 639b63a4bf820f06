"""Cluster defaults come from the dask config exactly where and how dask-cloudprovider finds them."""

from __future__ import annotations

import copy
from pathlib import Path

import dask.config
import pytest

from reconciler.spec.dask_config import BUILTIN_DEFAULTS, cluster_defaults, config_paths

FULL = """
cloudprovider:
  azure:
    location: japaneast
    resource_group: rg-dask
    subscription_id: 11111111-2222-3333-4444-555555555555
    azurevm:
      vnet: vnet-dask
      subnet: snet-workers
      security_group: nsg-dask
      public_ingress: false
      vm_size: Standard_D8s_v3
      scheduler_vm_size: Standard_D4s_v3
      disk_size: 200
      docker_image: ghcr.io/dask/dask:2024.6.0
      bootstrap: false
      auto_shutdown: false
      marketplace_plan: {name: plan, publisher: pub, product: prod}
      extra_vm_options: {identity: {type: SystemAssigned}}
"""


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_yaml_in_a_config_dir_supplies_azure_and_azurevm_keys(tmp_path: Path) -> None:
    _write(tmp_path, "cloudprovider.yaml", FULL)
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {
        "location": "japaneast",
        "resource_group": "rg-dask",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "vnet": "vnet-dask",
        "subnet": "snet-workers",
        "security_group": "nsg-dask",
        "public_ingress": False,
        "vm_size": "Standard_D8s_v3",
        "scheduler_vm_size": "Standard_D4s_v3",
        "disk_size": 200,
        "docker_image": "ghcr.io/dask/dask:2024.6.0",
        "bootstrap": False,
        "auto_shutdown": False,
        "marketplace_plan": {"name": "plan", "publisher": "pub", "product": "prod"},
        "extra_vm_options": {"identity": {"type": "SystemAssigned"}},
    }


def test_every_key_found_is_a_cluster_key(tmp_path: Path) -> None:
    from reconciler.spec.cluster import Cluster

    _write(tmp_path, "full.yaml", FULL)
    found = cluster_defaults(env={}, paths=[str(tmp_path)])
    cluster = Cluster.model_validate(found)
    assert {key: getattr(cluster, key) for key in ("vnet", "disk_size", "auto_shutdown")} == {
        "vnet": "vnet-dask",
        "disk_size": 200,
        "auto_shutdown": False,
    }


def test_environment_variables_override_yaml_and_are_parsed_like_dask_does(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "cloudprovider: {azure: {resource_group: from-yaml, azurevm: {vnet: v1}}}")
    env = {
        "DASK_CLOUDPROVIDER__AZURE__RESOURCE_GROUP": "rg-from-env",
        "DASK_CLOUDPROVIDER__AZURE__AZUREVM__DISK_SIZE": "128",
        "DASK_CLOUDPROVIDER__AZURE__AZUREVM__PUBLIC_INGRESS": "False",
        "UNRELATED": "x",
    }
    assert cluster_defaults(env=env, paths=[str(tmp_path)]) == {
        "resource_group": "rg-from-env",
        "vnet": "v1",
        "disk_size": 128,
        "public_ingress": False,
    }


def test_hyphenated_keys_are_the_same_keys(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "cloudprovider: {azure: {resource-group: rg, azurevm: {security-group: nsg}}}")
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {
        "resource_group": "rg",
        "security_group": "nsg",
    }


def test_builtin_defaults_and_nulls_are_left_to_the_model(tmp_path: Path) -> None:
    # What dask-cloudprovider copies into ~/.config/dask on import: nulls and its own defaults.
    _write(
        tmp_path,
        "cloudprovider.yaml",
        """
cloudprovider:
  azure:
    location: null
    resource_group: null
    azurevm:
      vnet: null
      public_ingress: true
      vm_size: Standard_DS1_v2
      disk_size: 50
      docker_image: daskdev/dask:latest
      vm_image: {publisher: Canonical, offer: UbuntuServer, sku: 18.04-LTS, version: latest}
      bootstrap: true
      auto_shutdown: true
      marketplace_plan: null
      extra_vm_options: {}
""",
    )
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {}


def test_partial_vm_image_is_laid_over_the_builtin_image(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "cloudprovider: {azure: {azurevm: {vm_image: {sku: 22_04-lts, offer: x}}}}")
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {
        "vm_image": {**BUILTIN_DEFAULTS["vm_image"], "sku": "22_04-lts", "offer": "x"}
    }


def test_an_image_id_is_not_mixed_with_the_builtin_marketplace_image(tmp_path: Path) -> None:
    image = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/dask"
    _write(tmp_path, "a.yaml", f"cloudprovider: {{azure: {{azurevm: {{vm_image: {{id: '{image}'}}}}}}}}")
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {"vm_image": {"id": image}}


def test_options_dask_cloudprovider_never_reads_from_config_are_ignored(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a.yaml",
        "cloudprovider: {azure: {azurevm: {n_workers: 4, extra_options: {a: 1}}, vnet: wrong-level}}",
    )
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {}


def test_default_search_path_honours_dask_config_and_home_from_env(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write(home / ".config" / "dask", "a.yaml", "cloudprovider: {azure: {location: from-home}}")
    extra = _write(
        tmp_path / "extra", "b.yaml", "cloudprovider: {azure: {azurevm: {vnet: from-dask-config}}}"
    )
    env = {"HOME": str(home), "DASK_CONFIG": str(extra.parent), "DASK_ROOT_CONFIG": str(tmp_path / "none")}
    assert config_paths(env)[-1] == str(extra.parent)
    assert cluster_defaults(env=env) == {"location": "from-home", "vnet": "from-dask-config"}


def test_a_later_path_wins(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "one", "a.yaml", "cloudprovider: {azure: {location: first, resource_group: rg}}"
    )
    second = _write(tmp_path / "two", "a.yaml", "cloudprovider: {azure: {location: second}}")
    assert cluster_defaults(env={}, paths=[str(first.parent), str(second.parent)]) == {
        "location": "second",
        "resource_group": "rg",
    }


def test_a_malformed_section_yields_nothing_rather_than_crashing(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "cloudprovider: {azure: just-a-string}")
    assert cluster_defaults(env={}, paths=[str(tmp_path)]) == {}


def test_global_dask_config_is_neither_read_nor_changed(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "cloudprovider: {azure: {location: from-file}}")
    before = copy.deepcopy(dask.config.config)
    with dask.config.set({"cloudprovider.azure.resource_group": "from-global"}):
        result = cluster_defaults(
            env={"DASK_CLOUDPROVIDER__AZURE__AZUREVM__VNET": "v"}, paths=[str(tmp_path)]
        )
        assert dask.config.get("cloudprovider.azure.location", default=None) is None
    assert result == {"location": "from-file", "vnet": "v"}
    assert dask.config.config == before


@pytest.mark.parametrize("value", ["None", "null"])
def test_null_from_environment_is_skipped(tmp_path: Path, value: str) -> None:
    assert cluster_defaults(env={"DASK_CLOUDPROVIDER__AZURE__LOCATION": value}, paths=[]) == {}


def test_load_config_fills_clusters_from_dask_config_and_the_cluster_wins(tmp_path: Path) -> None:
    from reconciler.spec.loader import load_config

    dask_dir = tmp_path / "dask"
    _write(
        dask_dir, "azure.yaml", "cloudprovider: {azure: {location: japaneast, azurevm: {vnet: vnet-dask}}}"
    )
    config_file = _write(
        tmp_path,
        "reconciler.yaml",
        "clusters:\n  research:\n    vnet: vnet-own\n    n_workers: 2\n",
    )
    env = {
        "DASK_CONFIG": str(dask_dir),
        "DASK_ROOT_CONFIG": str(tmp_path / "none"),
        "HOME": str(tmp_path / "home"),
        "DASK_CLOUDPROVIDER__AZURE__RESOURCE_GROUP": "rg-dask",
        "DASK_CLOUDPROVIDER__AZURE__SUBSCRIPTION_ID": "11111111-2222-3333-4444-555555555555",
        "DASK_CLOUDPROVIDER__AZURE__AZUREVM__SECURITY_GROUP": "nsg-dask",
    }

    cluster = load_config([config_file], env=env).clusters["research"]

    assert (cluster.location, cluster.resource_group, cluster.security_group) == (
        "japaneast",
        "rg-dask",
        "nsg-dask",
    )
    assert cluster.vnet == "vnet-own"
    assert cluster.n_workers == 2
