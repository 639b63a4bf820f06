"""Every constraint of the pool model, with the exact message and location a user will see."""

from __future__ import annotations

import copy
import itertools
import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from reconciler.spec.durations import Duration, DurationValue, describe, to_iso8601
from reconciler.spec.pool import Pool, validate_pool_id
from reconciler.spec.pool_refresh import RefreshPolicy
from reconciler.spec.secrets import MASK, Secret

RG = "/subscriptions/sub/resourceGroups/rg/providers"
SUBNET = f"{RG}/Microsoft.Network/virtualNetworks/vnet/subnets/batch"
IDENTITY = f"{RG}/Microsoft.ManagedIdentity/userAssignedIdentities/id1"

Loc = tuple[int | str, ...]


def base(**extra: Any) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "account": "prod",
        "vm_size": "standard_d2s_v3",
        "virtual_machine_configuration": {
            "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
            "node_agent_sku_id": "batch.node.ubuntu 22.04",
        },
        "target_dedicated_nodes": 1,
    }
    pool.update(extra)
    return pool


def with_path(path: str, value: Any, pool: dict[str, Any] | None = None) -> dict[str, Any]:
    """`pool` with `value` set at a dotted path, creating dicts and using ints as list indexes."""
    data = copy.deepcopy(pool if pool is not None else base())
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = data
    for part, after in itertools.pairwise(parts):
        if isinstance(part, str) and part not in target:
            target[part] = [] if isinstance(after, int) else {}
        if isinstance(part, int) and len(target) <= part:
            target.append({})
        target = target[part]
    last = parts[-1]
    if isinstance(last, int) and len(target) <= last:
        target.append(value)
    else:
        target[last] = value
    return data


def problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    with pytest.raises(ValidationError) as caught:
        Pool.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def only_problem(data: dict[str, Any]) -> tuple[Loc, str]:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


# durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT15M", timedelta(minutes=15)),
        ("P1D", timedelta(days=1)),
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("pt2m", timedelta(minutes=2)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("900", timedelta(seconds=900)),
        (900, timedelta(seconds=900)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_duration_spellings(text: object, expected: timedelta) -> None:
    parsed = TypeAdapter(Duration).validate_python(text)
    assert parsed == expected
    assert isinstance(parsed, DurationValue)


@pytest.mark.parametrize("text", ["", "P", "PT", "1x", "m", "P1Y", "1h30", "-5", "5 m", True, 1.5])
def test_duration_rejects_other_text(text: object) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Duration).validate_python(text)
    message = caught.value.errors()[0]["msg"]
    assert message.startswith(
        "must be a duration like PT15M, P1D, 90s, 15m, 2h, 1d, 1h30m or integer seconds"
    )


def test_duration_negative_seconds() -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Duration).validate_python(-5)
    assert caught.value.errors()[0]["msg"] == "must not be negative (got -5)"


def test_duration_too_long_is_a_validation_error() -> None:
    for text in (86_400_000_000_000, "9" * 400 + "s", "P9999999999D"):
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(Duration).validate_python(text)
        assert caught.value.errors()[0]["msg"].startswith("is too long to be a duration (got ")


def test_negative_timedelta_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Duration).validate_python(timedelta(minutes=-5))
    assert caught.value.errors()[0]["msg"] == "must not be negative (got -PT5M)"


def test_duration_keeps_its_text_and_dumps_iso() -> None:
    parsed = TypeAdapter(Duration).validate_python("1h30m")
    assert describe(parsed) == "1h30m"
    assert describe(timedelta(minutes=90)) == "PT1H30M"
    assert TypeAdapter(Duration).dump_python(parsed, mode="json") == "PT1H30M"
    assert to_iso8601(timedelta(0)) == "PT0S"
    assert to_iso8601(timedelta(days=2, microseconds=500000)) == "P2DT0.5S"


def test_duration_json_schema_is_a_string_pattern_or_seconds() -> None:
    schema = TypeAdapter(Duration).json_schema()
    assert schema["type"] == ["string", "integer"]
    assert "pattern" in schema
    assert "ISO 8601" in schema["description"]


# pool ids


@pytest.mark.parametrize("pool_id", ["p1", "P_id-1", "a" * 64])
def test_valid_pool_ids(pool_id: str) -> None:
    assert validate_pool_id(pool_id) is None


@pytest.mark.parametrize("pool_id", ["", "a" * 65, "pool.1", "pool 1", "プール"])
def test_invalid_pool_ids(pool_id: str) -> None:
    assert validate_pool_id(pool_id) == f"a pool id is 1 to 64 letters, digits, '-' or '_' (got {pool_id!r})"


def test_create_body_refuses_an_invalid_id() -> None:
    with pytest.raises(ValueError, match="a pool id is 1 to 64"):
        Pool.model_validate(base()).to_batch_json("bad id")


# sizes and timeouts


@pytest.mark.parametrize(("text", "shown"), [("PT2M", "PT2M"), ("4m", "4m"), (60, "60"), ("299", "299")])
def test_resize_timeout_minimum_echoes_the_text(text: object, shown: str) -> None:
    assert only_problem(base(resize_timeout=text)) == (
        ("resize_timeout",),
        f"must be at least 5 minutes (got {shown})",
    )


def test_resize_timeout_of_five_minutes_is_accepted() -> None:
    assert Pool.model_validate(base(resize_timeout="5m")).resize_timeout == timedelta(minutes=5)


def autoscale(**extra: Any) -> dict[str, Any]:
    data = base(enable_auto_scale=True, auto_scale_formula="$TargetDedicatedNodes = 1;")
    del data["target_dedicated_nodes"]
    data.update(extra)
    return data


@pytest.mark.parametrize("text", ["PT4M", "4m59s", "169h", "P8D"])
def test_autoscale_interval_bounds(text: str) -> None:
    assert only_problem(autoscale(auto_scale_evaluation_interval=text)) == (
        ("auto_scale_evaluation_interval",),
        f"must be between 5 minutes and 168 hours (got {text})",
    )


@pytest.mark.parametrize("text", ["PT5M", "168h", "P7D"])
def test_autoscale_interval_inside_bounds(text: str) -> None:
    Pool.model_validate(autoscale(auto_scale_evaluation_interval=text))


@pytest.mark.parametrize("key", ["target_dedicated_nodes", "target_low_priority_nodes"])
def test_autoscale_forbids_fixed_targets(key: str) -> None:
    assert only_problem(autoscale(**{key: 2})) == (
        (key,),
        "must not be set with enable_auto_scale: true (the auto_scale_formula sets the size)",
    )


def test_autoscale_requires_a_formula() -> None:
    data = autoscale()
    del data["auto_scale_formula"]
    assert only_problem(data) == (("auto_scale_formula",), "is required with enable_auto_scale: true")


def test_fixed_size_forbids_a_formula() -> None:
    assert only_problem(base(auto_scale_formula="$TargetDedicatedNodes = 1;")) == (
        ("auto_scale_formula",),
        "must not be set unless enable_auto_scale is true "
        "(or drop target_dedicated_nodes/target_low_priority_nodes and enable it)",
    )


def test_fixed_size_forbids_an_interval() -> None:
    assert only_problem(base(auto_scale_evaluation_interval="PT15M")) == (
        ("auto_scale_evaluation_interval",),
        "must not be set unless enable_auto_scale is true",
    )


def test_fixed_size_needs_a_target() -> None:
    data = base()
    del data["target_dedicated_nodes"]
    assert only_problem(data) == (
        ("target_dedicated_nodes",),
        "is required (or target_low_priority_nodes) unless enable_auto_scale is true",
    )
    assert Pool.model_validate(base(target_dedicated_nodes=None, target_low_priority_nodes=3))


def test_autoscale_pool_is_accepted() -> None:
    pool = Pool.model_validate(autoscale(auto_scale_evaluation_interval="15m"))
    assert pool.enable_auto_scale
    assert pool.target_dedicated_nodes is None


@pytest.mark.parametrize(
    ("path", "value", "loc", "message"),
    [
        ("target_dedicated_nodes", -1, ("target_dedicated_nodes",), "must be at least 0 (got -1)"),
        ("target_low_priority_nodes", -3, ("target_low_priority_nodes",), "must be at least 0 (got -3)"),
        ("task_slots_per_node", 0, ("task_slots_per_node",), "must be between 1 and 256 (got 0)"),
        ("task_slots_per_node", 257, ("task_slots_per_node",), "must be between 1 and 256 (got 257)"),
        (
            "start_task.max_task_retry_count",
            -2,
            ("start_task", "max_task_retry_count"),
            "must be at least -1 (got -2)",
        ),
    ],
)
def test_numeric_bounds(path: str, value: int, loc: Loc, message: str) -> None:
    data = with_path(path, value)
    if path.startswith("start_task"):
        data["start_task"]["command_line"] = "true"
    assert only_problem(data) == (loc, message)


def test_numeric_bounds_inclusive() -> None:
    data = base(target_dedicated_nodes=0, target_low_priority_nodes=0, task_slots_per_node=256)
    data["start_task"] = {"command_line": "true", "max_task_retry_count": -1}
    pool = Pool.model_validate(data)
    assert pool.task_slots_per_node == 256
    assert pool.start_task is not None
    assert pool.start_task.max_task_retry_count == -1


# enums


ENUMS = [
    ("task_scheduling_policy.node_fill_type", "spread, pack", "Pack", "pack"),
    ("network_configuration.dynamic_vnet_assignment_scope", "none, job", "JOB", "job"),
    (
        "network_configuration.public_ip_address_configuration.provision",
        "batchmanaged, usermanaged, nopublicipaddresses",
        "NoPublicIPAddresses",
        "nopublicipaddresses",
    ),
    (
        "refresh.node_deallocation_option",
        "requeue, terminate, taskcompletion, retaineddata",
        "TaskCompletion",
        "taskcompletion",
    ),
    ("start_task.user_identity.auto_user.elevation_level", "nonadmin, admin", "NonAdmin", "nonadmin"),
    ("start_task.user_identity.auto_user.scope", "task, pool", "Pool", "pool"),
    (
        "virtual_machine_configuration.disk_encryption_configuration.targets.0",
        "osdisk, temporarydisk",
        "OsDisk",
        "osdisk",
    ),
    ("virtual_machine_configuration.os_disk.caching", "none, readonly, readwrite", "ReadOnly", "readonly"),
    (
        "virtual_machine_configuration.os_disk.managed_disk.storage_account_type",
        "standard_lrs, premium_lrs, standardssd_lrs",
        "Premium_LRS",
        "premium_lrs",
    ),
    (
        "virtual_machine_configuration.container_configuration.type",
        "dockerCompatible, criCompatible",
        "DockerCompatible",
        "dockerCompatible",
    ),
    ("target_node_communication_mode", "default, classic, simplified", "Simplified", "simplified"),
    ("upgrade_policy.mode", "automatic, manual, rolling", "Manual", "manual"),
    ("refresh.on_drain_timeout", "wait, requeue, abort", "Abort", "abort"),
    ("refresh.strategy", "recreate, patch-when-empty", "Patch-When-Empty", "patch-when-empty"),
    ("identity.type", "UserAssigned", "userassigned", "UserAssigned"),
    (
        "virtual_machine_configuration.security_profile.security_type",
        "trustedLaunch, confidentialVM",
        "TRUSTEDLAUNCH",
        "trustedLaunch",
    ),
]

COMPANIONS: dict[str, dict[str, Any]] = {
    "start_task": {"command_line": "true"},
    "identity": {"user_assigned_identities": [IDENTITY]},
    "task_scheduling_policy": {"node_fill_type": "spread"},
    "upgrade_policy": {"mode": "manual"},
    "virtual_machine_configuration.container_configuration": {"type": "criCompatible"},
}


def enum_pool(path: str, value: Any) -> dict[str, Any]:
    data = base()
    for prefix, companion in COMPANIONS.items():
        if path.startswith(prefix + "."):
            for key, item in companion.items():
                data = with_path(f"{prefix}.{key}", item, data)
    return with_path(path, value, data)


def _get(model: Any, path: str) -> Any:
    for part in path.split("."):
        model = model[int(part)] if part.isdigit() else getattr(model, part)
    return model


@pytest.mark.parametrize(("path", "allowed", "spelled", "normal"), ENUMS)
def test_enums_are_case_insensitive_and_normalised(
    path: str, allowed: str, spelled: str, normal: str
) -> None:
    assert _get(Pool.model_validate(enum_pool(path, spelled)), path) == normal


@pytest.mark.parametrize(("path", "allowed", "spelled", "normal"), ENUMS)
def test_enums_list_the_allowed_values(path: str, allowed: str, spelled: str, normal: str) -> None:
    loc = tuple(int(p) if p.isdigit() else p for p in path.split("."))
    assert only_problem(enum_pool(path, "sprad")) == (loc, f"must be one of {allowed} (got 'sprad')")


# ARM resource ids


def test_subnet_id_must_be_a_subnet_resource_id() -> None:
    bad = f"{RG}/Microsoft.Network/virtualNetworks/vnet"
    assert only_problem(with_path("network_configuration.subnet_id", bad)) == (
        ("network_configuration", "subnet_id"),
        "must be an ARM resource id of a subnet: /subscriptions/<subscription>/resourceGroups/"
        "<resource-group>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet> "
        f"(got {bad!r})",
    )


def test_subnet_id_is_compared_case_insensitively() -> None:
    pool = Pool.model_validate(with_path("network_configuration.subnet_id", SUBNET.lower()))
    assert pool.network_configuration is not None
    assert pool.network_configuration.subnet_id == SUBNET.lower()


def test_subnet_id_schema_pattern_agrees_with_validation() -> None:
    schema = Pool.model_json_schema()["$defs"]["NetworkConfiguration"]["properties"]["subnet_id"]
    pattern = re.compile(str(schema["anyOf"][0]["pattern"]))
    assert pattern.match(SUBNET)
    assert pattern.match(SUBNET.lower())
    assert not pattern.match(SUBNET.rsplit("/subnets/", 1)[0])


def test_public_ip_ids_must_be_public_ip_resource_ids() -> None:
    data = with_path(
        "network_configuration.public_ip_address_configuration",
        {"provision": "usermanaged", "ip_address_ids": [SUBNET]},
    )
    loc, message = only_problem(data)
    assert loc == ("network_configuration", "public_ip_address_configuration", "ip_address_ids", 0)
    assert message.startswith("must be an ARM resource id of a public IP address: ")
    assert "/Microsoft.Network/publicIPAddresses/<ip>" in message


def test_public_ip_ids_need_user_managed_provisioning() -> None:
    ip = f"{RG}/Microsoft.Network/publicIPAddresses/ip1"
    data = with_path("network_configuration.public_ip_address_configuration", {"ip_address_ids": [ip]})
    assert only_problem(data) == (
        ("network_configuration", "public_ip_address_configuration"),
        "ip_address_ids needs provision: usermanaged (got no provision)",
    )
    data = with_path("network_configuration.public_ip_address_configuration", {"provision": "UserManaged"})
    assert only_problem(data) == (
        ("network_configuration", "public_ip_address_configuration"),
        "provision: usermanaged needs ip_address_ids",
    )


def test_identity_ids_are_user_assigned_identity_resource_ids() -> None:
    data = base(identity={"type": "UserAssigned", "user_assigned_identities": ["id1"]})
    loc, message = only_problem(data)
    assert loc == ("identity", "user_assigned_identities", 0)
    assert message == (
        "must be an ARM resource id of a user-assigned managed identity: /subscriptions/<subscription>/"
        "resourceGroups/<resource-group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
        "<name> (got 'id1')"
    )


def test_identity_needs_at_least_one_distinct_id() -> None:
    assert only_problem(base(identity={"user_assigned_identities": []})) == (
        ("identity", "user_assigned_identities"),
        "must name at least one identity",
    )
    twice = [IDENTITY, IDENTITY.upper().replace("/SUBSCRIPTIONS", "/subscriptions")]
    loc, message = only_problem(base(identity={"user_assigned_identities": twice}))
    assert loc == ("identity", "user_assigned_identities")
    assert message.startswith("identities must be unique (repeated: ")


def test_identity_is_held_but_not_sent_to_the_data_plane() -> None:
    pool = Pool.model_validate(base(identity={"user_assigned_identities": [IDENTITY]}))
    assert pool.identity is not None
    assert pool.identity.type == "UserAssigned"
    assert "identity" not in pool.to_batch_json("p")
    assert pool.canonical()["identity"] == {"type": "UserAssigned", "user_assigned_identities": [IDENTITY]}


# names that must be unique or are reserved


def test_metadata_names_may_not_use_the_reserved_prefix() -> None:
    data = base(metadata=[{"name": "owner", "value": "x"}, {"name": "Reconciler.spec-hash", "value": "y"}])
    assert only_problem(data) == (
        ("metadata", 1, "name"),
        "names starting with 'reconciler.' are reserved for the tool's own metadata "
        "(got 'Reconciler.spec-hash')",
    )


def test_metadata_names_are_unique() -> None:
    data = base(metadata=[{"name": "a", "value": "1"}, {"name": "a", "value": "2"}])
    assert only_problem(data) == (("metadata",), "metadata names must be unique (repeated: a)")


def test_environment_setting_names_are_unique() -> None:
    settings = [{"name": "A", "value": "1"}, {"name": "B"}, {"name": "A", "value": "2"}]
    data = base(start_task={"command_line": "true", "environment_settings": settings})
    assert only_problem(data) == (
        ("start_task", "environment_settings"),
        "environment setting names must be unique (repeated: A)",
    )


def test_user_account_names_are_unique_and_short() -> None:
    users = [{"name": "u", "password": "pw-one"}, {"name": "u", "password": "pw-two"}]
    assert only_problem(base(user_accounts=users)) == (
        ("user_accounts",),
        "user account names must be unique (repeated: u)",
    )
    long_name = [{"name": "x" * 21, "password": "pw-one"}]
    assert only_problem(base(user_accounts=long_name)) == (
        ("user_accounts", 0, "name"),
        f"must be at most 20 characters (got {'x' * 21!r})",
    )


def test_data_disk_luns_are_distinct_and_in_range() -> None:
    disks = [{"lun": 1, "disk_size_gb": 10}, {"lun": 1, "disk_size_gb": 20}]
    data = with_path("virtual_machine_configuration.data_disks", disks)
    assert only_problem(data) == (
        ("virtual_machine_configuration", "data_disks"),
        "data disk luns must be unique (repeated: 1)",
    )
    data = with_path("virtual_machine_configuration.data_disks", [{"lun": 64, "disk_size_gb": 10}])
    assert only_problem(data) == (
        ("virtual_machine_configuration", "data_disks", 0, "lun"),
        "must be between 0 and 63 (got 64)",
    )


def test_application_packages_at_most_ten() -> None:
    packages = [{"application_id": f"app{i}"} for i in range(11)]
    assert only_problem(base(application_package_references=packages)) == (
        ("application_package_references",),
        "at most 10 application packages per pool (got 11)",
    )


# mutually exclusive choices inside a pool


def test_image_reference_names_one_image() -> None:
    image = {"publisher": "p", "offer": "o", "sku": "s", "shared_gallery_image_id": "/SharedGalleries/x"}
    assert only_problem(with_path("virtual_machine_configuration.image_reference", image)) == (
        ("virtual_machine_configuration", "image_reference"),
        "publisher, offer, sku, shared_gallery_image_id are mutually exclusive: name one image",
    )
    assert only_problem(with_path("virtual_machine_configuration.image_reference", {"publisher": "p"})) == (
        ("virtual_machine_configuration", "image_reference"),
        "needs publisher, offer and sku (a Marketplace image) or one of virtual_machine_image_id, "
        "shared_gallery_image_id, community_gallery_image_id",
    )


def test_gallery_image_id_is_a_resource_id() -> None:
    image = {"virtual_machine_image_id": "gallery/images/x"}
    loc, message = only_problem(with_path("virtual_machine_configuration.image_reference", image))
    assert loc == ("virtual_machine_configuration", "image_reference", "virtual_machine_image_id")
    assert message.startswith("must be an ARM resource id of a compute gallery image: ")


def test_mount_names_exactly_one_kind() -> None:
    nfs = {"source": "10.0.0.4:/e", "relative_mount_path": "n"}
    both = {"nfs_mount_configuration": nfs, "cifs_mount_configuration": None}
    assert Pool.model_validate(base(mount_configuration=[both]))
    assert only_problem(base(mount_configuration=[{}])) == (
        ("mount_configuration", 0),
        "needs exactly one of azure_blob_file_system_configuration, nfs_mount_configuration, "
        "cifs_mount_configuration, azure_file_share_configuration (got none)",
    )
    twice = [{"nfs_mount_configuration": nfs}, {"nfs_mount_configuration": nfs}]
    assert only_problem(base(mount_configuration=twice)) == (
        ("mount_configuration",),
        "relative mount paths must be unique (repeated: n)",
    )


def test_blob_mount_needs_one_credential() -> None:
    blob = {
        "account_name": "a",
        "container_name": "c",
        "relative_mount_path": "m",
        "account_key": "key-one",
        "sas_key": "sas-one",
    }
    data = base(mount_configuration=[{"azure_blob_file_system_configuration": blob}])
    assert only_problem(data) == (
        ("mount_configuration", 0, "azure_blob_file_system_configuration"),
        "needs exactly one of account_key, sas_key, identity_reference (got account_key, sas_key)",
    )


def test_resource_file_needs_one_source_and_a_path_for_urls() -> None:
    task = {"command_line": "true", "resource_files": [{"file_path": "x"}]}
    assert only_problem(base(start_task=task)) == (
        ("start_task", "resource_files", 0),
        "needs exactly one of auto_storage_container_name, storage_container_url, http_url (got none)",
    )
    task = {"command_line": "true", "resource_files": [{"http_url": "https://h/x"}]}
    assert only_problem(base(start_task=task)) == (
        ("start_task", "resource_files", 0),
        "file_path is required with http_url",
    )
    task = {"command_line": "true", "resource_files": [{"http_url": "https://h/x", "file_path": "../x"}]}
    assert only_problem(base(start_task=task)) == (
        ("start_task", "resource_files", 0, "file_path"),
        "must stay inside the task working directory (got '../x')",
    )


def test_user_identity_is_a_name_or_an_auto_user() -> None:
    task = {"command_line": "true", "user_identity": {"username": "u", "auto_user": {"scope": "pool"}}}
    assert only_problem(base(start_task=task)) == (
        ("start_task", "user_identity"),
        "needs exactly one of username, auto_user (got username, auto_user)",
    )


def test_linux_uid_and_gid_go_together() -> None:
    users = [{"name": "u", "password": "pw-one", "linux_user_configuration": {"uid": 1000}}]
    assert only_problem(base(user_accounts=users)) == (
        ("user_accounts", 0, "linux_user_configuration"),
        "uid and gid must be given together or not at all",
    )


def test_registry_login_is_complete() -> None:
    registries = [{"registry_server": "r.azurecr.io", "username": "u"}]
    data = with_path(
        "virtual_machine_configuration.container_configuration",
        {"type": "dockerCompatible", "container_registries": registries},
    )
    assert only_problem(data) == (
        ("virtual_machine_configuration", "container_configuration", "container_registries", 0),
        "password is required with username/password login",
    )


def test_inbound_nat_pool_rules() -> None:
    nat = {
        "name": "ssh",
        "protocol": "tcp",
        "backend_port": 29876,
        "frontend_port_range_start": 1000,
        "frontend_port_range_end": 1010,
    }
    data = with_path("network_configuration.endpoint_configuration.inbound_nat_pools", [nat])
    assert set(problems(data)) == {
        (
            ("network_configuration", "endpoint_configuration", "inbound_nat_pools", 0, "backend_port"),
            "ports 29876 and 29877 are reserved by Batch (got 29876)",
        ),
    }
    nat = nat | {"backend_port": 22}
    data = with_path("network_configuration.endpoint_configuration.inbound_nat_pools", [nat])
    assert only_problem(data) == (
        ("network_configuration", "endpoint_configuration", "inbound_nat_pools", 0),
        "frontend_port_range_start..frontend_port_range_end must span at least 40 ports (got 1000..1010)",
    )
    ok = nat | {"frontend_port_range_end": 1100}
    other = ok | {"name": "rdp", "backend_port": 3389, "frontend_port_range_start": 1050}
    data = with_path("network_configuration.endpoint_configuration.inbound_nat_pools", [ok, other])
    assert only_problem(data) == (
        ("network_configuration", "endpoint_configuration", "inbound_nat_pools"),
        "frontend port ranges must not overlap (got ..1100 and 1050..1100)",
    )


def test_rolling_upgrade_percentages() -> None:
    policy = {
        "mode": "rolling",
        "rolling_upgrade_policy": {"max_batch_instance_percent": 50, "max_unhealthy_instance_percent": 20},
    }
    assert only_problem(base(upgrade_policy=policy)) == (
        ("upgrade_policy", "rolling_upgrade_policy", "max_unhealthy_instance_percent"),
        "must not be below max_batch_instance_percent (50) (got 20)",
    )


# refresh policy


def test_refresh_defaults() -> None:
    refresh = Pool.model_validate(base()).refresh
    assert refresh == RefreshPolicy()
    assert refresh.schedule is None
    assert refresh.timezone == "UTC"
    assert refresh.jitter == timedelta(0)
    assert refresh.node_deallocation_option == "taskcompletion"
    assert refresh.drain_timeout == timedelta(hours=2)
    assert refresh.delete_timeout == timedelta(minutes=30)
    assert refresh.allocation_timeout == timedelta(minutes=30)
    assert refresh.on_drain_timeout == "wait"
    assert refresh.strategy == "recreate"
    assert refresh.trigger() is None


def test_refresh_schedule_is_a_cron_expression() -> None:
    loc, message = only_problem(base(refresh={"schedule": "0 2 * *"}))
    assert loc == ("refresh", "schedule")
    assert message == (
        "must be a cron expression of 5 fields: minute hour day month day-of-week, e.g. 0 2 * * * "
        "(got '0 2 * *')"
    )
    loc, message = only_problem(base(refresh={"schedule": "61 2 * * *"}))
    assert loc == ("refresh", "schedule")
    assert message.startswith("is not a valid cron expression: ")
    assert "61" in message


def test_refresh_timezone_is_an_iana_name() -> None:
    assert only_problem(base(refresh={"timezone": "Mars/Olympus"})) == (
        ("refresh", "timezone"),
        "must be an IANA time zone like UTC or Europe/Paris (got 'Mars/Olympus')",
    )


def test_refresh_trigger_uses_timezone_and_jitter() -> None:
    refresh = RefreshPolicy.model_validate(
        {"schedule": "0 2 * * *", "timezone": "Asia/Tokyo", "jitter": "5m"}
    )
    trigger = refresh.trigger()
    assert trigger is not None
    assert str(trigger.timezone) == "Asia/Tokyo"
    assert trigger.jitter == 300


def test_refresh_durations_accept_short_forms() -> None:
    refresh = RefreshPolicy.model_validate({"drain_timeout": "1h30m", "delete_timeout": 600})
    assert refresh.drain_timeout == timedelta(minutes=90)
    assert refresh.delete_timeout == timedelta(minutes=10)


# secrets


SECRET_VALUES = ("registry-pw-1", "user-pw-123", "blob-key-123", "cifs-pw-123", "sas-url-sig-1")


def secret_pool() -> dict[str, Any]:
    data = with_path(
        "virtual_machine_configuration.container_configuration",
        {
            "type": "dockerCompatible",
            "container_registries": [{"registry_server": "r", "username": "u", "password": SECRET_VALUES[0]}],
        },
    )
    data["user_accounts"] = [{"name": "u", "password": SECRET_VALUES[1]}]
    data["mount_configuration"] = [
        {
            "azure_blob_file_system_configuration": {
                "account_name": "a",
                "container_name": "c",
                "account_key": SECRET_VALUES[2],
                "relative_mount_path": "b",
            }
        },
        {
            "cifs_mount_configuration": {
                "username": "u",
                "source": "//s/x",
                "relative_mount_path": "c",
                "password": SECRET_VALUES[3],
            }
        },
    ]
    data["start_task"] = {
        "command_line": "true",
        "resource_files": [{"http_url": f"https://h/x?{SECRET_VALUES[4]}", "file_path": "x"}],
    }
    return data


def test_secrets_are_secret_objects_and_never_shown() -> None:
    pool = Pool.model_validate(secret_pool())
    vm = pool.virtual_machine_configuration
    assert vm.container_configuration is not None
    registries = vm.container_configuration.container_registries
    assert registries is not None
    assert isinstance(registries[0].password, Secret)
    shown = repr(pool) + str(pool) + repr(pool.canonical()) + pool.model_dump_json()
    for value in SECRET_VALUES:
        assert value not in shown
    assert MASK in shown
    body = repr(pool.to_batch_json("p"))
    for value in SECRET_VALUES:
        assert value in body


def test_secrets_stay_out_of_validation_errors() -> None:
    data = secret_pool()
    data["user_accounts"][0]["name"] = "x" * 30
    data["user_accounts"][0]["password"] = 12345678
    with pytest.raises(ValidationError) as caught:
        Pool.model_validate(data)
    text = str(caught.value)
    assert "12345678" not in text
    data = secret_pool()
    data["target_dedicated_nodes"] = -1
    with pytest.raises(ValidationError) as caught:
        Pool.model_validate(data)
    for value in SECRET_VALUES:
        assert value not in str(caught.value)


def test_canonical_shows_secret_references() -> None:
    data = secret_pool()
    data["user_accounts"][0]["password"] = Secret("resolved-pw", reference="${env:USER_PW}")
    canonical = Pool.model_validate(data).canonical()
    assert canonical["user_accounts"][0]["password"] == "${env:USER_PW}"


# the model as a whole


def test_unknown_keys_are_errors() -> None:
    assert only_problem(base(vm_sise="x")) == (("vm_sise",), "Extra inputs are not permitted")
    loc, _ = only_problem(with_path("network_configuration.subnet", SUBNET))
    assert loc == ("network_configuration", "subnet")


def test_models_are_frozen() -> None:
    pool = Pool.model_validate(base())
    with pytest.raises(ValidationError):
        pool.vm_size = "other"  # type: ignore[misc]


def test_canonical_is_deterministic_and_normalised() -> None:
    first = Pool.model_validate(
        base(resize_timeout="15m", task_scheduling_policy={"node_fill_type": "Spread"}, suspend=True)
    )
    second = Pool.model_validate(
        base(task_scheduling_policy={"node_fill_type": "spread"}, resize_timeout="PT15M", account="other")
    )
    assert first.canonical() == second.canonical()
    assert list(first.canonical()) == sorted(first.canonical())
    assert first.canonical()["resize_timeout"] == "PT15M"
    for key in ("account", "refresh", "suspend", "deletion_protection"):
        assert key not in first.canonical()
    assert first.canonical() != Pool.model_validate(base(target_dedicated_nodes=2)).canonical()


def test_display_name_maps_to_the_api() -> None:
    pool = Pool.model_validate(base(display_name="Renders"))
    assert pool.to_batch_json("p")["displayName"] == "Renders"
    assert only_problem(base(display_name="x" * 1025)) == (
        ("display_name",),
        "must be at most 1024 characters (got 1025)",
    )


def test_json_schema_describes_the_pool() -> None:
    schema = Pool.model_json_schema()
    properties = schema["properties"]
    assert schema["additionalProperties"] is False
    assert {"vm_size", "virtual_machine_configuration", "refresh", "identity"} <= set(properties)
    assert "pattern" in str(properties["resize_timeout"])
    assert "writeOnly" in str(schema["$defs"]["UserAccount"]["properties"]["password"])
    assert schema["$defs"]["TaskSchedulingPolicy"]["properties"]["node_fill_type"]["enum"] == [
        "spread",
        "pack",
    ]
