"""The request bodies and cloud-init a cluster's spec makes (pure), and extra_vm_options as Azure gets it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from cluster_env import LOCATION, RG, RecordedBodies, cluster_spec, config_of

from reconciler.azure.clusters import ObservedCluster, placement, scheduler_name, worker_name
from reconciler.emulator import Emulator
from reconciler.engine.clusters import ClusterEngine
from reconciler.plan.cloud_init import (
    MAX_CUSTOM_DATA,
    CustomDataTooLarge,
    Role,
    custom_data,
    render_cloud_init,
)
from reconciler.plan.cluster_bodies import (
    ClusterBodyError,
    merge_extra_vm_options,
    nic_body,
    role_spec_hash,
    vm_body,
)
from reconciler.plan.clusters import ClusterState, plan_cluster
from reconciler.spec.cluster import Cluster

SUB = "11111111-2222-3333-4444-555555555555"
IDENTITY_ID = (
    f"/subscriptions/{SUB}/resourcegroups/my_rg/providers/Microsoft.ManagedIdentity"
    "/userAssignedIdentities/dask-cloudprovider-identity"
)


def spec(**overrides: Any) -> Cluster:
    return Cluster.model_validate(cluster_spec(**overrides))


def body(cluster: Cluster, role: Role = "worker", ip: str | None = "10.5.1.4") -> dict[str, Any]:
    name = worker_name("c1", 0) if role == "worker" else scheduler_name("c1")
    return vm_body(
        "c1",
        cluster,
        role,
        name,
        placement(cluster, SUB),
        scheduler_ip=ip,
        admin_password="pw-Aa1!",
    )


def test_identity_written_as_dask_cloudprovider_documents_lands_in_the_vm_body() -> None:
    snake = {"type": "UserAssigned", "user_assigned_identities": {IDENTITY_ID: {}}}
    camel = {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY_ID: {}}}
    for identity in (snake, camel):
        built = body(spec(extra_vm_options={"identity": identity}))
        assert built["identity"] == camel
        assert "identity" not in built["properties"]


def test_other_extra_vm_options_go_under_properties_and_zones_stay_on_top() -> None:
    built = body(spec(extra_vm_options={"security_profile": {"encryption_at_host": True}, "zones": ["1"]}))
    assert built["properties"]["securityProfile"] == {"encryptionAtHost": True}
    assert built["zones"] == ["1"]


@pytest.mark.parametrize(
    "options",
    [
        {"properties": {"osProfile": {"computerName": "x"}}},
        {"properties": {"network_profile": {}}},
        {"properties": {"priority": "Spot"}},
    ],
)
def test_extra_vm_options_that_clash_under_properties_are_an_error(options: dict[str, Any]) -> None:
    cluster = spec(spot={"enabled": True})
    with pytest.raises(ClusterBodyError, match="set by the reconciler"):
        body(cluster.model_copy(update={"extra_vm_options": options}))


def test_clashing_top_level_keys_are_refused_by_the_spec_and_by_the_body() -> None:
    with pytest.raises(ValueError, match="extra_vm_options"):
        spec(extra_vm_options={"os_profile": {}})
    with pytest.raises(ClusterBodyError, match=r"extra_vm_options\.location"):
        merge_extra_vm_options({"location": "x", "properties": {}}, {"location": "y"})


def test_a_clash_is_a_planning_error_that_changes_nothing() -> None:
    cluster = spec().model_copy(update={"extra_vm_options": {"properties": {"hardwareProfile": {}}}})
    plan = plan_cluster("c1", cluster, ObservedCluster(name="c1"), prune=False)
    assert plan.state is ClusterState.error
    assert plan.steps == ()
    assert "extra_vm_options.properties.hardwareProfile" in (plan.problem or "")


def test_spot_workers_and_an_on_demand_scheduler() -> None:
    cluster = spec(spot={"enabled": True, "eviction_policy": "Deallocate", "max_price": 0.1})
    worker = body(cluster)["properties"]
    assert (worker["priority"], worker["evictionPolicy"], worker["billingProfile"]) == (
        "Spot",
        "Deallocate",
        {"maxPrice": 0.1},
    )
    assert "priority" not in body(cluster, "scheduler", None)["properties"]


def test_vm_body_sizes_disk_image_plan_and_nic() -> None:
    plan = {"publisher": "nvidia", "name": "ngc-base-version-23_03_0", "product": "ngc_azure_17_11"}
    cluster = spec(scheduler_vm_size="Standard_D8s_v3", disk_size=128, marketplace_plan=plan)
    scheduler = body(cluster, "scheduler", None)
    properties = scheduler["properties"]
    assert properties["hardwareProfile"] == {"vmSize": "Standard_D8s_v3"}
    assert body(cluster)["properties"]["hardwareProfile"] == {"vmSize": "Standard_DS1_v2"}
    assert properties["storageProfile"]["osDisk"]["diskSizeGB"] == 128
    assert properties["storageProfile"]["osDisk"]["name"] == "c1-dask-scheduler-osdisk"
    assert properties["storageProfile"]["osDisk"]["deleteOption"] == "Delete"
    assert properties["storageProfile"]["imageReference"] == {
        "publisher": "nvidia",
        "offer": "ngc_azure_17_11",
        "sku": "ngc-base-version-23_03_0",
        "version": "latest",
    }
    assert scheduler["plan"] == plan
    (nic,) = properties["networkProfile"]["networkInterfaces"]
    assert nic["id"].endswith(
        f"/resourceGroups/{RG}/providers/Microsoft.Network/networkInterfaces/c1-dask-scheduler-nic"
    )
    assert nic["properties"]["deleteOption"] == "Detach"
    assert (
        body(cluster)["properties"]["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"]
        == "Delete"
    )
    assert scheduler["tags"]["reconciler.role"] == "scheduler"
    assert scheduler["tags"]["reconciler.cluster"] == "c1"


def test_nic_body_places_the_nic_in_the_subnet_with_the_nsg_and_the_scheduler_ip() -> None:
    cluster = spec()
    where = placement(cluster, SUB)
    subnet = f"{where.vnet_id}/subnets/workers"
    built = nic_body("c1", cluster, "scheduler", where, subnet, with_public_ip=True)
    config = built["properties"]["ipConfigurations"][0]["properties"]
    assert config["subnet"] == {"id": subnet}
    assert config["publicIPAddress"]["id"].endswith("/publicIPAddresses/c1-dask-scheduler-ip")
    assert built["properties"]["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/dask-nsg")
    assert (
        "publicIPAddress"
        not in nic_body("c1", cluster, "worker", where, subnet)["properties"]["ipConfigurations"][0][
            "properties"
        ]
    )


def test_spec_hash_per_role() -> None:
    base = spec()
    assert role_spec_hash(base, "worker") == role_spec_hash(
        spec(n_workers=9, rollout={"max_unavailable": 3}), "worker"
    )
    assert role_spec_hash(base, "worker") != role_spec_hash(spec(vm_size="Standard_D4s_v3"), "worker")
    assert role_spec_hash(base, "scheduler") == role_spec_hash(
        spec(vm_size="Standard_D4s_v3", scheduler_vm_size="Standard_DS1_v2"), "scheduler"
    )
    assert role_spec_hash(base, "scheduler") != role_spec_hash(spec(public_ingress=False), "scheduler")
    assert role_spec_hash(base, "worker") == role_spec_hash(spec(public_ingress=False), "worker")


def test_cloud_init_without_bootstrap_runs_extra_lines_and_the_scheduler_with_options() -> None:
    cluster = spec(
        bootstrap=False,
        auto_shutdown=False,
        extra_bootstrap=["echo 'quoted' \"twice\" > /tmp/x"],
        scheduler_options={"idle_timeout": "1h", "dashboard": True, "show": False},
        docker_args="--shm-size 2g",
        docker_image="ghcr.io/dask/dask:2024.1.0",
    )
    boot = yaml.safe_load(render_cloud_init(cluster, "scheduler"))
    assert "packages" not in boot
    assert boot["runcmd"] == [
        "echo 'quoted' \"twice\" > /tmp/x",
        [
            "docker",
            "run",
            "--net=host",
            "-e",
            "EXTRA_PIP_PACKAGES=s3fs",
            "--shm-size",
            "2g",
            "ghcr.io/dask/dask:2024.1.0",
            "dask",
            "scheduler",
            "--idle-timeout",
            "1h",
            "--dashboard",
            "--no-show",
        ],
    ]


def test_worker_resources_become_one_argument() -> None:
    cluster = spec(worker_options={"resources": {"GPU": 1, "MEM": "10e9"}})
    boot = yaml.safe_load(render_cloud_init(cluster, "worker", "10.0.0.9"))
    assert boot["runcmd"][-2][-2:] == ["--resources", "GPU=1 MEM=10e9"]


def test_worker_class_becomes_dask_worker_flags() -> None:
    plain = yaml.safe_load(
        render_cloud_init(spec(worker_class="dask.distributed.Worker"), "worker", "10.0.0.9")
    )
    assert plain["runcmd"][-2][-5:] == ["worker", "tcp://10.0.0.9:8786", "--no-nanny", "--nthreads", "2"]
    custom = yaml.safe_load(
        render_cloud_init(spec(worker_class="dask_cuda.CUDAWorker"), "worker", "10.0.0.9")
    )
    assert custom["runcmd"][-2][-4:-2] == ["--worker-class", "dask_cuda.CUDAWorker"]


def test_custom_data_over_azures_limit_is_a_clear_config_error() -> None:
    fits = spec(extra_bootstrap=["true"])
    assert len(custom_data(fits, "scheduler")) <= MAX_CUSTOM_DATA
    assert base64.b64decode(custom_data(fits, "scheduler")).startswith(b"#cloud-config")
    huge = spec(extra_bootstrap=["echo " + "x" * 70_000])
    with pytest.raises(
        CustomDataTooLarge, match=r"cluster c1: the scheduler's cloud-init is \d+ base64 characters"
    ):
        custom_data(huge, "scheduler", name="c1")
    plan = plan_cluster("c1", huge, ObservedCluster(name="c1"), prune=False)
    assert plan.state is ClusterState.error
    assert "above Azure's limit of 87380" in (plan.problem or "")
    assert plan.steps == ()


async def test_identity_reaches_the_emulated_vm(
    emu: Emulator,
    compute: Any,
    subnet_id: str,
    recorder: RecordedBodies,
    engine_for: Callable[..., ClusterEngine],
) -> None:
    identity_id = IDENTITY_ID.replace(SUB, emu.ctx.subscription_id)
    extra = {"identity": {"type": "UserAssigned", "user_assigned_identities": {identity_id: {}}}}
    config = config_of(emu, {"c1": cluster_spec(n_workers=1, extra_vm_options=extra, location=LOCATION)})

    assert (await engine_for(config).reconcile(config)).ok

    sent = recorder.vm_puts["c1-dask-worker-0000"]
    assert sent["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}
    vm = await compute.virtual_machines.get(RG, "c1-dask-scheduler")
    assert vm.identity.type == "UserAssigned"
    assert list(vm.identity.user_assigned_identities) == [identity_id]
    assert subnet_id
