"""Dask cluster models: dask-cloudprovider's AzureVMCluster options, defaults and constraints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.spec.cluster import Cluster, parse_arm_id, validate_cluster_name
from reconciler.spec.config import Config
from reconciler.spec.dask_config import BUILTIN_DEFAULTS

SUB = "11111111-2222-3333-4444-555555555555"
NET = f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network"
REQUIRED = {
    "location": "japaneast",
    "resource_group": "rg-dask",
    "vnet": "vnet-dask",
    "security_group": "nsg",
}


def cluster(**fields: Any) -> dict[str, Any]:
    return {**REQUIRED, **fields}


def errors(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Cluster.model_validate(data)
    return {".".join(str(p) for p in err["loc"]): err["msg"] for err in caught.value.errors()}


def test_only_the_required_keys_give_dask_cloudprovider_defaults() -> None:
    c = Cluster.model_validate(REQUIRED)
    assert c.public_ingress is True
    assert c.vm_size == "Standard_DS1_v2"
    assert c.scheduler_vm_size is None
    assert c.effective_scheduler_vm_size == "Standard_DS1_v2"
    assert c.disk_size == 50
    assert c.vm_image.model_dump() == {
        "publisher": "Canonical",
        "offer": "UbuntuServer",
        "sku": "18.04-LTS",
        "version": "latest",
        "id": None,
    }
    assert (c.bootstrap, c.auto_shutdown) == (True, True)
    assert (c.docker_image, c.docker_args) == ("daskdev/dask:latest", "")
    assert c.marketplace_plan is None
    assert (c.n_workers, c.worker_class) == (0, "dask.distributed.Nanny")
    assert c.worker_options == c.scheduler_options == c.extra_vm_options == c.env_vars == {}
    assert c.extra_bootstrap == []
    assert (c.spot.enabled, c.spot.eviction_policy, c.spot.max_price) == (False, "Delete", -1)
    assert c.adopt_dask_cloudprovider_orphans is False
    assert c.rollout.max_unavailable == 1
    assert c.health_probe is None
    assert c.suspend is False
    assert c.subscription_id is None


def test_model_defaults_agree_with_the_dask_config_reader() -> None:
    c = Cluster.model_validate(REQUIRED)
    for key, value in BUILTIN_DEFAULTS.items():
        got = getattr(c, key)
        assert (got.model_dump(exclude={"id"}) if key == "vm_image" else got) == value, key


def test_missing_required_keys_say_where_they_may_come_from() -> None:
    assert errors({}) == {
        "location": "required (set it here or in dask config cloudprovider.azure.location)",
        "resource_group": "required (set it here or in dask config cloudprovider.azure.resource_group)",
        "vnet": "required (set it here or in dask config cloudprovider.azure.azurevm.vnet)",
        "security_group": "required (set it here or in dask config "
        "cloudprovider.azure.azurevm.security_group)",
    }


def test_a_full_cluster_validates() -> None:
    c = Cluster.model_validate(
        cluster(
            subscription_id=SUB.upper(),
            subnet="snet-workers",
            public_ingress=False,
            vm_size="Standard_NC12s_v3",
            scheduler_vm_size="Standard_D4s_v3",
            disk_size=1023,
            vm_image={
                "publisher": "microsoft-dsvm",
                "offer": "ubuntu-hpc",
                "sku": "2204",
                "version": "22.4.1",
            },
            bootstrap=False,
            docker_image="rapidsai/rapidsai:cuda11.0-runtime-ubuntu18.04-py3.9",
            docker_args="--gpus all",
            marketplace_plan={
                "publisher": "nvidia",
                "name": "ngc-base-version-21-02-2",
                "product": "ngc_azure_17_11",
            },
            extra_vm_options={"identity": {"type": "UserAssigned"}},
            n_workers=4,
            worker_class="dask_cuda.CUDAWorker",
            worker_options={"nthreads": 2},
            scheduler_options={"idle_timeout": "1h"},
            env_vars={"EXTRA_PIP_PACKAGES": "s3fs"},
            extra_bootstrap=["apt-get install -y nfs-common"],
            spot={"enabled": True, "eviction_policy": "deallocate", "max_price": 0.25},
            adopt_dask_cloudprovider_orphans=True,
            rollout={"max_unavailable": 2},
            health_probe={"address": "10.0.0.4", "port": 8786, "timeout": "3s"},
            suspend=True,
        )
    )
    assert c.subscription_id == SUB
    assert c.spot.eviction_policy == "Deallocate"
    assert c.health_probe is not None
    assert c.health_probe.timeout == timedelta(seconds=3)
    assert c.effective_scheduler_vm_size == "Standard_D4s_v3"


def test_location_is_a_region_name() -> None:
    assert Cluster.model_validate(cluster(location="JapanEast")).location == "japaneast"
    assert errors(cluster(location="Japan East")) == {
        "location": "must be an Azure region name like japaneast (az account list-locations)"
    }


def test_resource_group_rules() -> None:
    assert "resource group name is 1 to 90" in errors(cluster(resource_group="rg dask"))["resource_group"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("vnet", "vnet-dask"),
        ("vnet", f"{NET}/virtualNetworks/hub"),
        ("subnet", "snet-1"),
        ("subnet", f"{NET}/virtualNetworks/vnet-dask/subnets/snet-1"),
        ("security_group", "nsg.dask_1"),
        ("security_group", f"{NET}/networkSecurityGroups/nsg-dask"),
    ],
)
def test_network_keys_take_a_name_or_an_arm_id(key: str, value: str) -> None:
    assert getattr(Cluster.model_validate(cluster(**{key: value})), key) == value


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "vnet",
            f"{NET}/networkSecurityGroups/nsg",
            "must be a virtual network name or an ARM id of the form "
            "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<name>",
        ),
        (
            "vnet",
            "-vnet",
            "must be a virtual network name (letters, digits, '_', '.', '-'; at most 80) or an ARM id",
        ),
        (
            "subnet",
            f"{NET}/virtualNetworks/vnet-dask",
            "must be a subnet name or an ARM id of the form "
            "/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<name>/"
            "subnets/<name>",
        ),
        (
            "security_group",
            "nsg dask",
            "must be a network security group name (letters, digits, '_', '.', '-'; at most 80) or an ARM id",
        ),
    ],
)
def test_network_key_errors(key: str, value: str, message: str) -> None:
    assert errors(cluster(**{key: value})) == {key: message}


def test_subnet_must_belong_to_the_vnet() -> None:
    subnet = f"{NET}/virtualNetworks/other/subnets/snet-1"
    assert errors(cluster(subnet=subnet)) == {
        "subnet": "is a subnet of virtual network 'other', not of vnet 'vnet-dask'"
    }
    vnet = f"/subscriptions/{SUB}/resourceGroups/rg-other/providers/Microsoft.Network/virtualNetworks/other"
    assert list(errors(cluster(vnet=vnet, subnet=subnet))) == ["subnet"]
    assert (
        Cluster.model_validate(cluster(vnet=f"{NET}/virtualNetworks/other", subnet=subnet)).subnet == subnet
    )


@pytest.mark.parametrize("size", ["Standard_D4s_v3", "standard_d4s_v3", "Basic_A1", "Standard_M416-208s_v2"])
def test_vm_sizes(size: str) -> None:
    assert Cluster.model_validate(cluster(vm_size=size, scheduler_vm_size=size)).vm_size == size


def test_bad_vm_size() -> None:
    assert errors(cluster(vm_size="D4s_v3", scheduler_vm_size="large")) == {
        "vm_size": "must be an Azure VM size like Standard_D4s_v3",
        "scheduler_vm_size": "must be an Azure VM size like Standard_D4s_v3",
    }


def test_disk_size_bounds() -> None:
    assert errors(cluster(disk_size=1024)) == {"disk_size": "must be between 1 and 1023 (got 1024)"}
    assert errors(cluster(disk_size=0)) == {"disk_size": "must be between 1 and 1023 (got 0)"}
    assert Cluster.model_validate(cluster(disk_size=1)).disk_size == 1


def test_vm_image_keys_not_given_keep_the_default() -> None:
    image = Cluster.model_validate(cluster(vm_image={"sku": "19.04"})).vm_image
    assert (image.publisher, image.offer, image.sku, image.version) == (
        "Canonical",
        "UbuntuServer",
        "19.04",
        "latest",
    )


def test_vm_image_by_id() -> None:
    image_id = (
        f"/subscriptions/{SUB}/resourceGroups/rg-img/providers/Microsoft.Compute/galleries/g/images/dask"
    )
    image = Cluster.model_validate(cluster(vm_image={"id": image_id})).vm_image
    assert (image.id, image.publisher, image.sku) == (image_id, None, None)
    assert errors(cluster(vm_image={"id": image_id, "sku": "22_04-lts"})) == {
        "vm_image.sku": "not with id: an image id names the image by itself"
    }
    assert errors(cluster(vm_image={"id": "my-image"}))["vm_image.id"].startswith(
        "must be the ARM id of an image"
    )
    network_id = f"{NET}/virtualNetworks/v"
    assert list(errors(cluster(vm_image={"id": network_id}))) == ["vm_image.id"]


def test_vm_image_version_and_blank_fields() -> None:
    assert errors(cluster(vm_image={"version": "newest"})) == {
        "vm_image.version": "must be 'latest' or Major.Minor.Build like 1.2.3"
    }
    assert errors(cluster(vm_image={"sku": " "})) == {"vm_image.sku": "must not be empty"}
    assert list(errors(cluster(vm_image={"image": "x"}))) == ["vm_image.image"]


def test_marketplace_plan_needs_all_three_fields() -> None:
    found = errors(cluster(marketplace_plan={"publisher": "nvidia", "name": ""}))
    assert found == {
        "marketplace_plan.name": "must not be empty",
        "marketplace_plan.product": "Field required",
    }


def test_n_workers_is_not_negative() -> None:
    assert errors(cluster(n_workers=-1)) == {"n_workers": "must be at least 0 (got -1)"}


def test_docker_image_and_worker_class_are_one_word() -> None:
    assert errors(cluster(docker_image="dask dev", worker_class="")) == {
        "docker_image": "must be one word without spaces",
        "worker_class": "must be one word without spaces",
    }


def test_env_var_names() -> None:
    assert errors(cluster(env_vars={"GOOD_1": "x", "1BAD": "y"})) == {
        "env_vars.1BAD": "an environment variable name is letters, digits and '_', not starting with a digit"
    }
    assert list(errors(cluster(env_vars={"A": 1}))) == ["env_vars.A"]


def test_extra_bootstrap_is_a_list_of_strings() -> None:
    assert list(errors(cluster(extra_bootstrap="apt-get update"))) == ["extra_bootstrap"]


@pytest.mark.parametrize(
    "key",
    ["os_profile", "osProfile", "hardware_profile", "storage_profile", "network_profile", "location", "tags"],
)
def test_extra_vm_options_cannot_set_what_the_reconciler_sets(key: str) -> None:
    assert errors(cluster(extra_vm_options={key: {}})) == {
        f"extra_vm_options.{key}": "is set by the reconciler from the cluster's own keys; "
        "it cannot be given here"
    }


@pytest.mark.parametrize("key", ["priority", "eviction_policy", "billingProfile"])
def test_extra_vm_options_cannot_bypass_spot(key: str) -> None:
    assert errors(cluster(extra_vm_options={key: "Spot"})) == {
        f"extra_vm_options.{key}": "is set from spot (enabled, eviction_policy, max_price); declare it there"
    }


def test_extra_vm_options_plan_only_clashes_with_a_marketplace_plan() -> None:
    plan = {"publisher": "nvidia", "name": "n", "product": "p"}
    assert Cluster.model_validate(cluster(extra_vm_options={"plan": plan})).extra_vm_options == {"plan": plan}
    assert list(errors(cluster(extra_vm_options={"plan": plan}, marketplace_plan=plan))) == [
        "extra_vm_options.plan"
    ]


def test_spot_rules() -> None:
    assert errors(cluster(spot={"max_price": 0})) == {
        "spot.max_price": "must be -1 (pay up to the on-demand price) or a price above 0 (got 0.0)"
    }
    assert list(errors(cluster(spot={"max_price": -2}))) == ["spot.max_price"]
    found = errors(cluster(spot={"eviction_policy": "Stop"}))
    assert list(found) == ["spot.eviction_policy"]
    assert "Delete, Deallocate" in found["spot.eviction_policy"]


def test_rollout_and_health_probe_rules() -> None:
    assert errors(cluster(rollout={"max_unavailable": 0})) == {
        "rollout.max_unavailable": "must be at least 1 (got 0)"
    }
    assert errors(cluster(health_probe={"port": 0, "timeout": "0s"})) == {
        "health_probe.port": "must be between 1 and 65535 (got 0)",
        "health_probe.timeout": "must be above zero (got 0s)",
    }
    probe = Cluster.model_validate(cluster(health_probe={})).health_probe
    assert probe is not None
    assert (probe.address, probe.port, probe.timeout) == (None, 8786, timedelta(seconds=5))


def test_unknown_cluster_key_is_an_error() -> None:
    assert errors(cluster(worker_count=3)) == {"worker_count": "Extra inputs are not permitted"}


@pytest.mark.parametrize("name", ["a", "dask", "dask-prod-01", "d" * 40])
def test_good_cluster_names(name: str) -> None:
    assert validate_cluster_name(name) is None


@pytest.mark.parametrize("name", ["", "Dask", "dask_prod", "1dask", "dask-", "d" * 41, "dask.prod"])
def test_bad_cluster_names(name: str) -> None:
    assert validate_cluster_name(name) is not None


def test_cluster_name_errors_are_placed_at_the_key() -> None:
    with pytest.raises(ValidationError) as caught:
        Config.model_validate({"clusters": {"Dask_Prod": REQUIRED, "ok": {**REQUIRED, "n_workers": -1}}})
    found = {err["loc"]: err["msg"] for err in caught.value.errors()}
    assert set(found) == {("clusters", "Dask_Prod"), ("clusters", "ok", "n_workers")}
    assert found[("clusters", "Dask_Prod")].startswith("a cluster name is used in Azure resource names")


def test_parse_arm_id() -> None:
    parsed = parse_arm_id(f"{NET}/virtualNetworks/hub/subnets/snet-1")
    assert parsed is not None
    assert (parsed.subscription_id, parsed.resource_group, parsed.namespace) == (
        SUB,
        "rg-net",
        "Microsoft.Network",
    )
    assert (parsed.types, parsed.names, parsed.name) == (
        ("virtualNetworks", "subnets"),
        ("hub", "snet-1"),
        "snet-1",
    )
    assert parsed.is_a("microsoft.network", "VirtualNetworks", "Subnets")
    assert not parsed.is_a("Microsoft.Network", "virtualNetworks")
    assert parse_arm_id("vnet-dask") is None
    assert parse_arm_id(f"/subscriptions/{SUB}/resourceGroups/rg") is None


def test_required_keys_are_reported_as_missing_for_the_loader() -> None:
    with pytest.raises(ValidationError) as caught:
        Cluster.model_validate({k: v for k, v in REQUIRED.items() if k != "vnet"})
    [error] = caught.value.errors()
    assert (error["type"], error["loc"]) == ("missing", ("vnet",))
