"""The observed REST JSON of a pool comes back in the canonical shape of the spec it was created from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from azure.batch import models

from reconciler.azure import markers
from reconciler.azure.clients import AzureClients
from reconciler.azure.observe import observe_account
from reconciler.azure.rest import (
    POOL_SELECT,
    STATE_PROPERTIES,
    canonical_from_rest,
    comparable_pool,
    comparable_view,
)
from reconciler.emulator import Emulator
from reconciler.spec.pool import Pool, PoolIdentity
from reconciler.spec.secrets import Secret

EXAMPLES = Path(__file__).parents[2].parent / "shared/azure-reference/batch-data-plane"
RG = "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers"
IDENTITY = f"{RG}/Microsoft.ManagedIdentity/userAssignedIdentities/pool-identity"
SUBNET = f"{RG}/Microsoft.Network/virtualNetworks/vnet/subnets/batch"
PASSWORDS = ("registry-pw-1", "user-pw-2", "share-key-3", "sas-token-4", "ext-token-5")


def rich_pool() -> Pool:
    """A pool touching aliases, enums in odd case, durations, nested lists, secrets and non-defaults."""
    return Pool.model_validate(
        {
            "account": "alpha",
            "display_name": "Nightly renders",
            "vm_size": "standard_d4s_v3",
            "virtual_machine_configuration": {
                "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
                "node_agent_sku_id": "batch.node.ubuntu 22.04",
                "data_disks": [{"lun": 0, "caching": "ReadOnly", "disk_size_gb": 128}],
                "os_disk": {"ephemeral_os_disk_settings": {"placement": "CacheDisk"}, "disk_size_gb": 64},
                "container_configuration": {
                    "type": "dockerCompatible",
                    "container_image_names": ["myregistry.azurecr.io/render:1.2"],
                    "container_registries": [
                        {
                            "registry_server": "myregistry.azurecr.io",
                            "username": "puller",
                            "password": Secret(PASSWORDS[0]),
                        }
                    ],
                },
                "extensions": [
                    {
                        "name": "kv",
                        "publisher": "Microsoft.Azure.KeyVault",
                        "type": "KeyVaultForLinux",
                        "type_handler_version": "2.0",
                        "settings": {"pollingIntervalInS": "3600"},
                        "protected_settings": {"token": Secret(PASSWORDS[4])},
                    }
                ],
                "security_profile": {
                    "security_type": "TrustedLaunch",
                    "uefi_settings": {"secure_boot_enabled": True, "v_tpm_enabled": True},
                },
            },
            "resize_timeout": "20m",
            "resource_tags": {"team": "render", "cost": "nightly"},
            "target_dedicated_nodes": 2,
            "target_low_priority_nodes": 3,
            "enable_inter_node_communication": True,
            "network_configuration": {
                "subnet_id": SUBNET,
                "dynamic_vnet_assignment_scope": "None",
                "public_ip_address_configuration": {"provision": "NoPublicIPAddresses"},
                "endpoint_configuration": {
                    "inbound_nat_pools": [
                        {
                            "name": "ssh",
                            "protocol": "TCP",
                            "backend_port": 22,
                            "frontend_port_range_start": 15000,
                            "frontend_port_range_end": 15099,
                        }
                    ]
                },
            },
            "start_task": {
                "command_line": "/bin/bash -c 'setup.sh'",
                "resource_files": [
                    {
                        "http_url": Secret(f"https://acct.blob.core.windows.net/c/setup.sh?{PASSWORDS[3]}"),
                        "file_path": "setup.sh",
                        "file_mode": "0755",
                    }
                ],
                "environment_settings": [{"name": "MODE", "value": "render"}],
                "user_identity": {"auto_user": {"scope": "Task", "elevation_level": "Admin"}},
                "max_task_retry_count": 2,
                "wait_for_success": False,
            },
            "application_package_references": [{"application_id": "blender", "version": "4.1"}],
            "task_slots_per_node": 4,
            "task_scheduling_policy": {"node_fill_type": "Pack"},
            "user_accounts": [
                {"name": "render", "password": Secret(PASSWORDS[1]), "elevation_level": "Admin"}
            ],
            "metadata": [{"name": "owner", "value": "render-team"}],
            "mount_configuration": [
                {
                    "azure_file_share_configuration": {
                        "account_name": "acct",
                        "account_key": Secret(PASSWORDS[2]),
                        "azure_file_url": "https://acct.file.core.windows.net/share",
                        "relative_mount_path": "share",
                    }
                },
                {"nfs_mount_configuration": {"source": "10.0.0.4:/export", "relative_mount_path": "nfs"}},
            ],
            "target_node_communication_mode": "Simplified",
            "upgrade_policy": {
                "mode": "Automatic",
                "automatic_os_upgrade_policy": {"enable_automatic_os_upgrade": True},
            },
        }
    )


def plain_pool() -> Pool:
    """No secrets and only non-default values: its canonical form survives the round trip verbatim."""
    return Pool.model_validate(
        {
            "account": "alpha",
            "vm_size": "standard_d2s_v3",
            "virtual_machine_configuration": {
                "image_reference": {"publisher": "canonical", "offer": "ubuntu", "sku": "22_04-lts"},
                "node_agent_sku_id": "batch.node.ubuntu 22.04",
            },
            "resize_timeout": "PT30M",
            "target_dedicated_nodes": 1,
            "target_low_priority_nodes": 2,
            "enable_auto_scale": False,
            "enable_inter_node_communication": True,
            "task_slots_per_node": 2,
            "task_scheduling_policy": {"node_fill_type": "pack"},
            "start_task": {
                "command_line": "echo hi",
                "user_identity": {"auto_user": {"scope": "task", "elevation_level": "admin"}},
                "max_task_retry_count": 1,
                "wait_for_success": False,
            },
            "metadata": [{"name": "owner", "value": "me"}],
        }
    )


async def create(clients: AzureClients, pool_id: str, pool: Pool, *extra_metadata: tuple[str, str]) -> None:
    body = pool.to_batch_json(pool_id)
    body["metadata"] = [*body.get("metadata", []), *({"name": n, "value": v} for n, v in extra_metadata)]
    await clients.batch(pool.account).create_pool(models.BatchPoolCreateOptions(body))


async def test_a_created_pool_reads_back_as_its_comparable_spec(clients: AzureClients) -> None:
    pool = rich_pool()
    await create(clients, "rich", pool, (markers.MANAGED_BY, markers.MANAGED_BY_VALUE))
    observed = (await observe_account(clients, "alpha")).pools["rich"]
    assert dict(observed.desired_view) == comparable_pool(pool)
    assert observed.desired_view["task_scheduling_policy"] == {"node_fill_type": "pack"}
    assert observed.desired_view["resize_timeout"] == "PT20M"
    assert observed.desired_view["virtual_machine_configuration"]["data_disks"][0]["disk_size_gb"] == 128


async def test_without_secrets_and_defaults_the_view_is_the_canonical_form(clients: AzureClients) -> None:
    pool = plain_pool()
    await create(clients, "plain", pool, (markers.SPEC_HASH, "abc"))
    raw = [p.as_dict() async for p in clients.batch("alpha").list_pools(select=list(POOL_SELECT))]
    assert canonical_from_rest(raw[0]) == pool.canonical()
    observed = (await observe_account(clients, "alpha")).pools["plain"]
    assert dict(observed.desired_view) == comparable_pool(pool)


async def test_no_secret_reaches_the_snapshot_even_when_the_service_echoes_it(clients: AzureClients) -> None:
    await create(clients, "rich", rich_pool())
    raw = [p.as_dict() async for p in clients.batch("alpha").list_pools()]
    assert any(secret in json.dumps(raw) for secret in PASSWORDS), "the emulator echoes them back"
    observed = (await observe_account(clients, "alpha")).pools["rich"]
    text = repr(observed) + json.dumps(dict(observed.desired_view))
    assert not [secret for secret in PASSWORDS if secret in text]


async def test_an_out_of_band_change_shows_in_the_view(clients: AzureClients) -> None:
    pool = plain_pool()
    await create(clients, "plain", pool)
    update = models.BatchPoolUpdateOptions({"startTask": {"commandLine": "echo changed"}})
    await clients.batch("alpha").update_pool("plain", update)
    observed = (await observe_account(clients, "alpha")).pools["plain"]
    assert observed.desired_view["start_task"] == {"command_line": "echo changed"}
    assert dict(observed.desired_view) != comparable_pool(pool)


def test_the_service_example_matches_the_spec_that_leaves_defaults_out() -> None:
    body = json.loads((EXAMPLES / "Pools_GetPool_Basic.json").read_text())["responses"]["200"]["body"]
    spec = Pool.model_validate(
        {
            "account": "a",
            "vm_size": "standard_a1",
            "virtual_machine_configuration": {
                "image_reference": {
                    "publisher": "Canonical",
                    "offer": "0001-com-ubuntu-server-focal",
                    "sku": "20_04-lts",
                    "version": "latest",
                },
                "node_agent_sku_id": "batch.node.ubuntu 20.04",
            },
            "target_dedicated_nodes": 0,
            "start_task": {
                "command_line": "/bin/bash -c 'echo start task'",
                "user_identity": {"auto_user": {"scope": "task"}},
                "wait_for_success": False,
            },
        }
    )
    assert comparable_view(canonical_from_rest(body)) == comparable_pool(spec)
    resized = {**body, "vmSize": "standard_a2"}
    assert comparable_view(canonical_from_rest(resized)) != comparable_pool(spec)


def test_scale_settings_follow_the_autoscale_switch() -> None:
    base: dict[str, Any] = {"id": "p", "vmSize": "s", "targetDedicatedNodes": 5, "targetLowPriorityNodes": 1}
    autoscaled = canonical_from_rest(
        {**base, "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes=5;"}
    )
    fixed = canonical_from_rest({**base, "enableAutoScale": False, "autoScaleFormula": "left over"})
    assert "target_dedicated_nodes" not in autoscaled
    assert autoscaled["auto_scale_formula"] == "$TargetDedicatedNodes=5;"
    assert fixed["target_dedicated_nodes"] == 5
    assert "auto_scale_formula" not in fixed


def test_own_metadata_and_unknown_properties_stay_out_of_the_view() -> None:
    body = {
        "id": "p",
        "url": "https://x/pools/p",
        "stats": {"usageStats": {}},
        "certificateReferences": [{"thumbprint": "ab"}],
        "virtualMachineConfiguration": {"imageReference": {"sku": "x", "exactVersion": "1.2.3"}},
        "metadata": [{"name": markers.MANAGED_BY, "value": "reconciler"}, {"name": "team", "value": "a"}],
    }
    view = canonical_from_rest(body)
    assert view == {
        "enable_auto_scale": False,
        "metadata": [{"name": "team", "value": "a"}],
        "virtual_machine_configuration": {"image_reference": {"sku": "x"}},
    }


def test_identity_reads_back_from_the_data_plane_and_arm_shapes() -> None:
    data_plane = {
        "type": "UserAssigned",
        "userAssignedIdentities": [{"resourceId": IDENTITY, "clientId": "c"}],
    }
    arm = {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {"principalId": "p"}}}
    expected = {"type": "UserAssigned", "user_assigned_identities": [IDENTITY]}
    assert canonical_from_rest({"id": "p", "identity": data_plane})["identity"] == expected
    assert canonical_from_rest({"id": "p", "identity": arm})["identity"] == expected


def test_select_lists_state_and_every_compared_property_once() -> None:
    assert len(POOL_SELECT) == len(set(POOL_SELECT))
    assert set(STATE_PROPERTIES) <= set(POOL_SELECT)
    for name in ("vmSize", "virtualMachineConfiguration", "startTask", "identity", "upgradePolicy"):
        assert name in POOL_SELECT
    for name in ("account", "refresh", "suspend", "deletionProtection", "url", "stats"):
        assert name not in POOL_SELECT


def test_values_are_spelled_as_the_spec_spells_them() -> None:
    body = {
        "id": "p",
        "resizeTimeout": "PT60M",
        "taskSchedulingPolicy": {"nodeFillType": "Pack"},
        "startTask": {"commandLine": "x", "userIdentity": {"autoUser": {"elevationLevel": "Admin"}}},
        "networkConfiguration": {"publicIPAddressConfiguration": {"provision": "BatchManaged"}},
    }
    view = canonical_from_rest(body)
    assert view["resize_timeout"] == "PT1H"
    assert view["task_scheduling_policy"] == {"node_fill_type": "pack"}
    assert view["start_task"]["user_identity"] == {"auto_user": {"elevation_level": "admin"}}
    assert view["network_configuration"] == {"public_ip_address_configuration": {"provision": "batchmanaged"}}


async def test_an_identity_pool_made_through_arm_reads_back_its_identities(
    emu: Emulator, clients: AzureClients
) -> None:
    pool = plain_pool().model_copy(update={"identity": PoolIdentity(user_assigned_identities=[IDENTITY])})
    arm_identity = {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}}
    emu.batch.add_pool("alpha", pool.to_batch_json("withid"), identity=arm_identity)
    observed = (await observe_account(clients, "alpha")).pools["withid"]
    assert observed.desired_view["identity"] == {
        "type": "UserAssigned",
        "user_assigned_identities": [IDENTITY],
    }
    assert dict(observed.desired_view) == comparable_pool(pool)
