"""The pool model against Microsoft's own OpenAPI of the Batch service: shape, names and coverage."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from reconciler.spec.pool import Pool

SPEC_PATH = Path(__file__).parents[2].parent / "shared/azure-reference/batch-data-plane/BatchService.json"
SKIPPED = {("BatchPoolCreateOptions", "certificateReferences")}
NOT_MODELLED = {("BatchPoolCreateOptions", "id")}

RG = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-batch/providers"
IDENTITY = f"{RG}/Microsoft.ManagedIdentity/userAssignedIdentities/pool-identity"
GALLERY = f"{RG}/Microsoft.Compute/galleries/gallery"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def validator(document: dict[str, Any]) -> Draft4Validator:
    schema = {"$ref": "#/definitions/BatchPoolCreateOptions", "definitions": document["definitions"]}
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def full_pool() -> dict[str, Any]:
    """A fixed-size pool that sets every key the model has that fixed-size pools allow."""
    return {
        "account": "prod",
        "display_name": "Nightly renders",
        "vm_size": "standard_d4s_v3",
        "virtual_machine_configuration": {
            "image_reference": {
                "publisher": "microsoft-dsvm",
                "offer": "ubuntu-hpc",
                "sku": "2204",
                "version": "latest",
            },
            "node_agent_sku_id": "batch.node.ubuntu 22.04",
            "windows_configuration": {"enable_automatic_updates": False},
            "data_disks": [
                {
                    "lun": 0,
                    "caching": "ReadOnly",
                    "disk_size_gb": 128,
                    "managed_disk": {
                        "disk_encryption_set": {"id": f"{RG}/Microsoft.Compute/diskEncryptionSets/des"},
                        "storage_account_type": "Premium_LRS",
                        "security_profile": {"security_encryption_type": "vmguestStateOnly"},
                    },
                    "storage_account_type": "premium_lrs",
                }
            ],
            "license_type": "Windows_Server",
            "container_configuration": {
                "type": "dockerCompatible",
                "container_image_names": ["myregistry.azurecr.io/render:1.2"],
                "container_registries": [
                    {
                        "registry_server": "myregistry.azurecr.io",
                        "username": "puller",
                        "password": "s3cret-pw",
                    },
                    {"registry_server": "other.azurecr.io", "identity_reference": {"resource_id": IDENTITY}},
                ],
            },
            "disk_encryption_configuration": {
                "customer_managed_key": {
                    "identity_reference": {"resource_id": IDENTITY},
                    "key_url": "https://vault.vault.azure.net/keys/disk/0123456789abcdef",
                    "rotation_to_latest_key_version_enabled": True,
                },
                "targets": ["OsDisk", "TemporaryDisk"],
            },
            "node_placement_configuration": {"policy": "Zonal"},
            "extensions": [
                {
                    "name": "kv",
                    "publisher": "Microsoft.Azure.KeyVault",
                    "type": "KeyVaultForLinux",
                    "type_handler_version": "2.0",
                    "auto_upgrade_minor_version": True,
                    "enable_automatic_upgrade": True,
                    "settings": {"secretsManagementSettings": "{}"},
                    "protected_settings": {"token": "very-secret-token"},
                    "provision_after_extensions": ["other"],
                }
            ],
            "os_disk": {
                "ephemeral_os_disk_settings": {"placement": "CacheDisk"},
                "caching": "readwrite",
                "disk_size_gb": 64,
                "managed_disk": {"storage_account_type": "standardssd_lrs"},
                "write_accelerator_enabled": False,
            },
            "security_profile": {
                "encryption_at_host": True,
                "proxy_agent_settings": {
                    "enabled": True,
                    "imds": {
                        "in_vm_access_control_profile_reference_id": (
                            f"{GALLERY}/inVMAccessControlProfiles/imds/versions/1.0.0"
                        ),
                        "mode": "Manual",
                    },
                    "wire_server": {"mode": "automatic"},
                },
                "security_type": "TrustedLaunch",
                "uefi_settings": {"secure_boot_enabled": True, "v_tpm_enabled": True},
            },
            "service_artifact_reference": {
                "id": f"{GALLERY}/serviceArtifacts/art/vmArtifactsProfiles/profile"
            },
        },
        "resize_timeout": "15m",
        "resource_tags": {"team": "render"},
        "target_dedicated_nodes": 2,
        "target_low_priority_nodes": 4,
        "enable_inter_node_communication": True,
        "network_configuration": {
            "subnet_id": f"{RG}/Microsoft.Network/virtualNetworks/vnet/subnets/batch",
            "dynamic_vnet_assignment_scope": "Job",
            "endpoint_configuration": {
                "inbound_nat_pools": [
                    {
                        "name": "ssh",
                        "protocol": "TCP",
                        "backend_port": 22,
                        "frontend_port_range_start": 15000,
                        "frontend_port_range_end": 15100,
                        "network_security_group_rules": [
                            {
                                "priority": 150,
                                "access": "Allow",
                                "source_address_prefix": "10.0.0.0/8",
                                "source_port_ranges": ["*"],
                            }
                        ],
                    }
                ]
            },
            "public_ip_address_configuration": {
                "provision": "UserManaged",
                "ip_families": ["ipv4"],
                "ip_address_ids": [f"{RG}/Microsoft.Network/publicIPAddresses/ip1"],
            },
            "enable_accelerated_networking": True,
        },
        "start_task": {
            "command_line": "/bin/bash -c 'echo ready'",
            "container_settings": {
                "container_run_options": "--rm",
                "image_name": "myregistry.azurecr.io/render:1.2",
                "registry": {"registry_server": "myregistry.azurecr.io", "username": "u", "password": "pw-2"},
                "working_directory": "ContainerImageDefault",
                "container_host_batch_bind_mounts": [{"source": "shared", "is_read_only": True}],
            },
            "resource_files": [
                {
                    "http_url": "https://acct.blob.core.windows.net/c/setup.sh?sig=abc",
                    "file_path": "setup.sh",
                    "file_mode": "0755",
                },
                {
                    "storage_container_url": "https://acct.blob.core.windows.net/c?sig=def",
                    "blob_prefix": "assets/",
                    "identity_reference": {"resource_id": IDENTITY},
                },
                {"auto_storage_container_name": "inputs"},
            ],
            "environment_settings": [{"name": "MODE", "value": "render"}],
            "user_identity": {"auto_user": {"scope": "Pool", "elevation_level": "Admin"}},
            "max_task_retry_count": 3,
            "wait_for_success": True,
        },
        "application_package_references": [{"application_id": "blender", "version": "4.1"}],
        "task_slots_per_node": 4,
        "task_scheduling_policy": {"job_default_order": "CreationTime", "node_fill_type": "Pack"},
        "user_accounts": [
            {
                "name": "render",
                "password": "user-pw-1",
                "elevation_level": "nonAdmin",
                "linux_user_configuration": {"uid": 1001, "gid": 1001, "ssh_private_key": "-----KEY-----"},
                "windows_user_configuration": {"login_mode": "Batch"},
            }
        ],
        "metadata": [{"name": "owner", "value": "render-team"}],
        "mount_configuration": [
            {
                "azure_blob_file_system_configuration": {
                    "account_name": "acct",
                    "container_name": "data",
                    "account_key": "blob-account-key",
                    "blobfuse_options": "-o allow_other",
                    "relative_mount_path": "data",
                }
            },
            {
                "azure_blob_file_system_configuration": {
                    "account_name": "acct",
                    "container_name": "sas",
                    "sas_key": "sv=2024&sig=xyz",
                    "relative_mount_path": "sas",
                }
            },
            {
                "azure_blob_file_system_configuration": {
                    "account_name": "acct",
                    "container_name": "msi",
                    "identity_reference": {"resource_id": IDENTITY},
                    "relative_mount_path": "msi",
                }
            },
            {
                "nfs_mount_configuration": {
                    "source": "10.0.0.4:/export",
                    "relative_mount_path": "nfs",
                    "mount_options": "vers=4",
                }
            },
            {
                "cifs_mount_configuration": {
                    "username": "smbuser",
                    "source": "//fs/share",
                    "relative_mount_path": "cifs",
                    "mount_options": "vers=3.0",
                    "password": "cifs-pw",
                }
            },
            {
                "azure_file_share_configuration": {
                    "account_name": "acct",
                    "account_key": "file-account-key",
                    "azure_file_url": "https://acct.file.core.windows.net/share",
                    "relative_mount_path": "files",
                    "mount_options": "-o vers=3.0",
                }
            },
        ],
        "target_node_communication_mode": "Simplified",
        "upgrade_policy": {
            "mode": "Rolling",
            "automatic_os_upgrade_policy": {
                "disable_automatic_rollback": True,
                "enable_automatic_os_upgrade": True,
                "use_rolling_upgrade_policy": True,
                "os_rolling_upgrade_deferral": True,
            },
            "rolling_upgrade_policy": {
                "enable_cross_zone_upgrade": True,
                "max_batch_instance_percent": 20,
                "max_unhealthy_instance_percent": 20,
                "max_unhealthy_upgraded_instance_percent": 20,
                "pause_time_between_batches": "PT5S",
                "prioritize_unhealthy_instances": True,
                "rollback_failed_instances_on_policy_breach": False,
            },
        },
        "identity": {"type": "UserAssigned", "user_assigned_identities": [IDENTITY]},
        "refresh": {"schedule": "0 2 * * *", "timezone": "Asia/Tokyo"},
        "suspend": False,
        "deletion_protection": True,
    }


def variant(**changes: Any) -> dict[str, Any]:
    pool = copy.deepcopy(full_pool())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = pool
        for part in parents:
            target = target[part]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return pool


def variants() -> list[dict[str, Any]]:
    """The full pool and the variants needed for the mutually exclusive keys."""
    vm = "virtual_machine_configuration"
    task = "start_task"
    return [
        full_pool(),
        variant(
            enable_auto_scale=True,
            target_dedicated_nodes=None,
            target_low_priority_nodes=None,
            resize_timeout=None,
            auto_scale_formula="$TargetDedicatedNodes = 1;",
            auto_scale_evaluation_interval="PT15M",
        ),
        variant(**{f"{vm}__image_reference": {"virtual_machine_image_id": f"{GALLERY}/images/render"}}),
        variant(**{f"{vm}__image_reference": {"shared_gallery_image_id": "/SharedGalleries/g/Images/i"}}),
        variant(
            **{f"{vm}__image_reference": {"community_gallery_image_id": "/CommunityGalleries/g/Images/i"}}
        ),
        variant(**{f"{task}__user_identity": {"username": "render"}}),
    ]


def test_every_variant_is_a_valid_create_body(validator: Draft4Validator) -> None:
    for data in variants():
        body = Pool.model_validate(data).to_batch_json("render-pool_1")
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
        assert body["id"] == "render-pool_1"


def test_invalid_body_is_caught_by_the_schema_check(validator: Draft4Validator) -> None:
    body = Pool.model_validate(full_pool()).to_batch_json("p")
    body["taskSlotsPerNode"] = "four"
    assert list(validator.iter_errors(body))


def reachable(document: dict[str, Any], root: str) -> set[tuple[str, str]]:
    """Every (definition, property) a create body can hold, read-only ones excepted."""
    definitions = document["definitions"]
    found: set[tuple[str, str]] = set()
    todo, seen = [root], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for prop, schema in definitions[name].get("properties", {}).items():
            if schema.get("readOnly") or (name, prop) in SKIPPED:
                continue
            found.add((name, prop))
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            if ref:
                todo.append(ref.split("/")[-1])
    return found


def produced(document: dict[str, Any], name: str, value: Any, out: set[tuple[str, str]]) -> None:
    """Record every (definition, property) present in `value`, read as an instance of `name`."""
    definition = document["definitions"][name]
    if not isinstance(value, dict):
        return
    for prop, item in value.items():
        out.add((name, prop))
        schema = definition.get("properties", {}).get(prop, {})
        ref = schema.get("$ref")
        item_ref = schema.get("items", {}).get("$ref")
        if ref:
            produced(document, ref.split("/")[-1], item, out)
        elif item_ref:
            for element in item:
                produced(document, item_ref.split("/")[-1], element, out)


def test_every_api_property_is_declarable_and_spelled_as_the_api(document: dict[str, Any]) -> None:
    seen: set[tuple[str, str]] = set()
    for data in variants():
        produced(document, "BatchPoolCreateOptions", Pool.model_validate(data).to_batch_json("p"), seen)
    api = reachable(document, "BatchPoolCreateOptions")
    missing = api - seen - NOT_MODELLED
    unknown = seen - api
    assert not missing, sorted(missing)
    assert not unknown, sorted(unknown)


def test_top_level_properties_all_appear(document: dict[str, Any]) -> None:
    names = set(document["definitions"]["BatchPoolCreateOptions"]["properties"])
    body = Pool.model_validate(full_pool()).to_batch_json("p")
    autoscale = Pool.model_validate(variants()[1]).to_batch_json("p")
    expected = names - {"certificateReferences"}
    assert expected - set(body) - set(autoscale) == set()


def test_own_keys_are_not_sent_to_the_batch_service() -> None:
    body = Pool.model_validate(full_pool()).to_batch_json("p")
    for key in ("account", "identity", "refresh", "suspend", "deletion_protection", "deletionProtection"):
        assert key not in body


def test_create_body_carries_secrets_and_api_spellings() -> None:
    body = Pool.model_validate(full_pool()).to_batch_json("p")
    vm = body["virtualMachineConfiguration"]
    assert vm["nodeAgentSKUId"] == "batch.node.ubuntu 22.04"
    assert vm["containerConfiguration"]["containerRegistries"][0]["password"] == "s3cret-pw"
    assert vm["extensions"][0]["protectedSettings"] == {"token": "very-secret-token"}
    assert vm["osDisk"]["ephemeralOSDiskSettings"] == {"placement": "cachedisk"}
    assert vm["dataDisks"][0]["diskSizeGB"] == 128
    assert vm["dataDisks"][0]["caching"] == "readonly"
    assert vm["securityProfile"]["securityType"] == "trustedLaunch"
    assert vm["diskEncryptionConfiguration"]["targets"] == ["osdisk", "temporarydisk"]
    assert body["userAccounts"][0]["password"] == "user-pw-1"
    assert body["userAccounts"][0]["elevationLevel"] == "nonadmin"
    mounts = body["mountConfiguration"]
    assert mounts[0]["azureBlobFileSystemConfiguration"]["accountKey"] == "blob-account-key"
    assert mounts[1]["azureBlobFileSystemConfiguration"]["sasKey"] == "sv=2024&sig=xyz"
    assert mounts[4]["cifsMountConfiguration"]["password"] == "cifs-pw"
    assert mounts[5]["azureFileShareConfiguration"]["accountKey"] == "file-account-key"
    network = body["networkConfiguration"]
    assert network["dynamicVNetAssignmentScope"] == "job"
    assert network["publicIPAddressConfiguration"]["provision"] == "usermanaged"
    assert network["publicIPAddressConfiguration"]["ipFamilies"] == ["IPv4"]
    assert network["endpointConfiguration"]["inboundNATPools"][0]["protocol"] == "tcp"
    assert body["resizeTimeout"] == "PT15M"
    assert body["upgradePolicy"]["rollingUpgradePolicy"]["pauseTimeBetweenBatches"] == "PT5S"
    assert body["upgradePolicy"]["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] is True
    assert body["taskSchedulingPolicy"] == {"jobDefaultOrder": "creationTime", "nodeFillType": "pack"}
    assert body["targetNodeCommunicationMode"] == "simplified"
    assert body["displayName"] == "Nightly renders"


@pytest.mark.parametrize(
    "example",
    ["Pools_CreatePool_VirtualMachineConfiguration.json", "Pools_CreatePool_AcceleratedNetworking.json"],
)
def test_reference_examples_round_trip(example: str) -> None:
    sent = json.loads((SPEC_PATH.parent / example).read_text())["parameters"]["pool"]
    declared = {key: value for key, value in _snake(sent).items() if key != "id"}
    body = Pool.model_validate({"account": "prod", **declared}).to_batch_json(sent["id"])
    assert body == sent | {"enableAutoScale": sent.get("enableAutoScale", False)}


def _snake(value: Any) -> Any:
    irregular = {
        "nodeAgentSKUId": "node_agent_sku_id",
        "diskSizeGB": "disk_size_gb",
        "ephemeralOSDiskSettings": "ephemeral_os_disk_settings",
        "publicIPAddressConfiguration": "public_ip_address_configuration",
        "dynamicVNetAssignmentScope": "dynamic_vnet_assignment_scope",
        "inboundNATPools": "inbound_nat_pools",
        "automaticOSUpgradePolicy": "automatic_os_upgrade_policy",
        "enableAutomaticOSUpgrade": "enable_automatic_os_upgrade",
    }
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            snake = irregular.get(key) or "".join("_" + c.lower() if c.isupper() else c for c in key)
            out[snake] = _snake(item)
        return out
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value
