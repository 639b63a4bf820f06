"""Translation between ARM's `batchAccounts/pools` shape and the Batch data plane's pool JSON.

ARM nests what the data plane keeps flat (`deploymentConfiguration.virtualMachineConfiguration`,
`scaleSettings`), spells enums in PascalCase where the data plane uses lowercase, and names a few fields
differently. Keeping the translation pure and in one place lets one stored pool answer both faces.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

ENUM_FIELDS = frozenset(
    {
        "caching",
        "storageAccountType",
        "targets",
        "placement",
        "policy",
        "elevationLevel",
        "scope",
        "access",
        "protocol",
        "provision",
        "nodeFillType",
        "nodeDeallocationOption",
        "targetNodeCommunicationMode",
        "currentNodeCommunicationMode",
        "loginMode",
        "allocationState",
        "osType",
    }
)
ARM_SPELLING = {
    v.lower(): v
    for v in [
        "None",
        "ReadOnly",
        "ReadWrite",
        "Standard_LRS",
        "Premium_LRS",
        "StandardSSD_LRS",
        "OsDisk",
        "TemporaryDisk",
        "CacheDisk",
        "Regional",
        "Zonal",
        "Admin",
        "NonAdmin",
        "Pool",
        "Task",
        "Allow",
        "Deny",
        "TCP",
        "UDP",
        "BatchManaged",
        "UserManaged",
        "NoPublicIPAddresses",
        "Spread",
        "Pack",
        "Requeue",
        "Terminate",
        "TaskCompletion",
        "RetainedData",
        "Steady",
        "Resizing",
        "Stopping",
        "Default",
        "Classic",
        "Simplified",
        "Batch",
        "Interactive",
        "Linux",
        "Windows",
    ]
}
ARM_READ_ONLY = frozenset(
    {
        "lastModified",
        "creationTime",
        "provisioningState",
        "provisioningStateTransitionTime",
        "allocationState",
        "allocationStateTransitionTime",
        "currentDedicatedNodes",
        "currentLowPriorityNodes",
        "resizeOperationStatus",
        "autoScaleRun",
        "currentNodeCommunicationMode",
        "certificates",
    }
)


def _enums(value: Any, *, to_arm: bool, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _enums(v, to_arm=to_arm, key=k) for k, v in value.items()}
    if isinstance(value, list):
        return [_enums(v, to_arm=to_arm, key=key) for v in value]
    if isinstance(value, str) and key in ENUM_FIELDS:
        return ARM_SPELLING.get(value.lower(), value) if to_arm else value.lower()
    return copy.deepcopy(value)


def scale_to_data_plane(scale: dict[str, Any]) -> dict[str, Any]:
    auto = scale.get("autoScale")
    if auto is not None:
        body = {"enableAutoScale": True, "autoScaleFormula": auto.get("formula", "")}
        body["autoScaleEvaluationInterval"] = auto.get("evaluationInterval") or "PT15M"
        return body
    fixed = scale.get("fixedScale") or {}
    return {
        "enableAutoScale": False,
        "targetDedicatedNodes": int(fixed.get("targetDedicatedNodes") or 0),
        "targetLowPriorityNodes": int(fixed.get("targetLowPriorityNodes") or 0),
        "resizeTimeout": fixed.get("resizeTimeout") or "PT15M",
    }


def resize_body(fixed: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetDedicatedNodes": int(fixed.get("targetDedicatedNodes") or 0),
        "targetLowPriorityNodes": int(fixed.get("targetLowPriorityNodes") or 0),
    }
    if fixed.get("resizeTimeout"):
        body["resizeTimeout"] = fixed["resizeTimeout"]
    if fixed.get("nodeDeallocationOption"):
        body["nodeDeallocationOption"] = str(fixed["nodeDeallocationOption"]).lower()
    return body


def properties_to_data_plane(properties: dict[str, Any]) -> dict[str, Any]:
    """ARM pool properties (less scale settings and read-only fields) as data-plane pool fields."""
    body: dict[str, Any] = {}
    for key, value in properties.items():
        if key in ARM_READ_ONLY or key == "scaleSettings":
            continue
        if key == "deploymentConfiguration":
            vm_config = (value or {}).get("virtualMachineConfiguration")
            if vm_config is not None:
                converted = _enums(vm_config, to_arm=False)
                if "nodeAgentSkuId" in converted:
                    converted["nodeAgentSKUId"] = converted.pop("nodeAgentSkuId")
                body["virtualMachineConfiguration"] = converted
        elif key == "interNodeCommunication":
            body["enableInterNodeCommunication"] = str(value).lower() == "enabled"
        elif key == "networkConfiguration":
            network = _enums(value, to_arm=False)
            if "dynamicVnetAssignmentScope" in network:
                network["dynamicVNetAssignmentScope"] = str(network.pop("dynamicVnetAssignmentScope")).lower()
            body["networkConfiguration"] = network
        elif key == "applicationPackages":
            body["applicationPackageReferences"] = [
                {
                    "applicationId": p["id"].rstrip("/").rsplit("/", 1)[-1],
                    **({"version": p["version"]} if p.get("version") else {}),
                }
                for p in value or []
            ]
        else:
            body[key] = _enums(value, to_arm=False)
    return body


def create_body(pool_id: str, properties: dict[str, Any]) -> dict[str, Any]:
    body = {"id": pool_id, **properties_to_data_plane(properties)}
    body.update(scale_to_data_plane(properties.get("scaleSettings") or {"fixedScale": {}}))
    return body


def identity_to_arm(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    if not identity or identity.get("type", "None") == "None":
        return None
    entries = identity.get("userAssignedIdentities") or []
    if isinstance(entries, dict):
        return copy.deepcopy(identity)
    return {
        "type": "UserAssigned",
        "userAssignedIdentities": {
            e["resourceId"]: {k: e[k] for k in ("principalId", "clientId") if k in e} for e in entries
        },
    }


def pool_to_arm(
    pool: dict[str, Any],
    resource_id: str,
    *,
    identity: dict[str, Any] | None = None,
    node_deallocation_option: str | None = None,
) -> dict[str, Any]:
    """A data-plane pool as ARM's `Microsoft.Batch/batchAccounts/pools` resource."""
    props: dict[str, Any] = {}
    if pool.get("displayName"):
        props["displayName"] = pool["displayName"]
    props["lastModified"] = pool.get("lastModified")
    props["creationTime"] = pool.get("creationTime")
    props["provisioningState"] = "Deleting" if pool.get("state") == "deleting" else "Succeeded"
    props["provisioningStateTransitionTime"] = pool.get("stateTransitionTime", pool.get("creationTime"))
    props["allocationState"] = ARM_SPELLING.get(str(pool.get("allocationState", "steady")), "Steady")
    props["allocationStateTransitionTime"] = pool.get("allocationStateTransitionTime")
    props["vmSize"] = pool.get("vmSize")
    props["interNodeCommunication"] = "Enabled" if pool.get("enableInterNodeCommunication") else "Disabled"
    props["taskSlotsPerNode"] = pool.get("taskSlotsPerNode", 1)
    props["taskSchedulingPolicy"] = _enums(
        pool.get("taskSchedulingPolicy") or {"nodeFillType": "spread"}, to_arm=True
    )
    if pool.get("virtualMachineConfiguration") is not None:
        vm_config = _enums(pool["virtualMachineConfiguration"], to_arm=True)
        if "nodeAgentSKUId" in vm_config:
            vm_config["nodeAgentSkuId"] = vm_config.pop("nodeAgentSKUId")
        props["deploymentConfiguration"] = {"virtualMachineConfiguration": vm_config}
    if pool.get("enableAutoScale"):
        auto = {"formula": pool.get("autoScaleFormula", "")}
        if pool.get("autoScaleEvaluationInterval"):
            auto["evaluationInterval"] = pool["autoScaleEvaluationInterval"]
        props["scaleSettings"] = {"autoScale": auto}
        run = pool.get("autoScaleRun")
        if run:
            arm_run = {"evaluationTime": run.get("timestamp"), "results": run.get("results")}
            if run.get("error"):
                arm_run["error"] = _error_to_arm(run["error"])
            props["autoScaleRun"] = {k: v for k, v in arm_run.items() if v is not None}
    else:
        fixed: dict[str, Any] = {
            "targetDedicatedNodes": pool.get("targetDedicatedNodes", 0),
            "targetLowPriorityNodes": pool.get("targetLowPriorityNodes", 0),
            "resizeTimeout": pool.get("resizeTimeout", "PT15M"),
        }
        if node_deallocation_option:
            fixed["nodeDeallocationOption"] = ARM_SPELLING.get(
                node_deallocation_option.lower(), node_deallocation_option
            )
        props["scaleSettings"] = {"fixedScale": fixed}
    if pool.get("networkConfiguration") is not None:
        network = _enums(pool["networkConfiguration"], to_arm=True)
        if "dynamicVNetAssignmentScope" in network:
            network["dynamicVnetAssignmentScope"] = network.pop("dynamicVNetAssignmentScope")
        props["networkConfiguration"] = network
    for key in (
        "metadata",
        "startTask",
        "userAccounts",
        "mountConfiguration",
        "targetNodeCommunicationMode",
        "currentNodeCommunicationMode",
        "upgradePolicy",
        "resourceTags",
    ):
        if pool.get(key) is not None:
            props[key] = _enums(pool[key], to_arm=True)
    if pool.get("applicationPackageReferences"):
        props["applicationPackages"] = [
            {
                "id": f"{resource_id}/applications/{p['applicationId']}",
                **({"version": p["version"]} if p.get("version") else {}),
            }
            for p in pool["applicationPackageReferences"]
        ]
    props["currentDedicatedNodes"] = pool.get("currentDedicatedNodes", 0)
    props["currentLowPriorityNodes"] = pool.get("currentLowPriorityNodes", 0)
    errors = pool.get("resizeErrors") or []
    if props["allocationState"] != "Steady" or errors:
        status: dict[str, Any] = {
            "startTime": pool.get("allocationStateTransitionTime"),
            "resizeTimeout": pool.get("resizeTimeout", "PT15M"),
        }
        if not pool.get("enableAutoScale") or pool.get("targetDedicatedNodes"):
            status["targetDedicatedNodes"] = pool.get("targetDedicatedNodes", 0)
        if pool.get("targetLowPriorityNodes"):
            status["targetLowPriorityNodes"] = pool["targetLowPriorityNodes"]
        status["nodeDeallocationOption"] = ARM_SPELLING.get((node_deallocation_option or "requeue").lower())
        if errors:
            status["errors"] = [_error_to_arm(e) for e in errors]
        props["resizeOperationStatus"] = status
    etag = pool.get("eTag") or ""
    body: dict[str, Any] = {
        "id": resource_id,
        "name": pool["id"],
        "type": "Microsoft.Batch/batchAccounts/pools",
        "etag": f'W/"{etag}"' if etag else None,
        "properties": {k: v for k, v in props.items() if v is not None},
    }
    arm_identity = identity_to_arm(pool.get("identity")) or identity
    if arm_identity:
        body["identity"] = arm_identity
    if body["etag"] is None:
        del body["etag"]
    return body


def _error_to_arm(error: dict[str, Any]) -> dict[str, Any]:
    message = error.get("message")
    if isinstance(message, dict):
        message = message.get("value")
    arm: dict[str, Any] = {"code": error.get("code", ""), "message": message or ""}
    values = error.get("values") or []
    if values:
        arm["details"] = [{"code": v.get("name", ""), "message": v.get("value", "")} for v in values]
    return arm


def identity_to_data_plane(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """ARM's identity dict as the data plane's list form, with stable ids for each identity."""
    if not identity or identity.get("type", "None") == "None":
        return None
    entries = []
    for resource_id, known in (identity.get("userAssignedIdentities") or {}).items():
        seed = resource_id.lower()
        entries.append(
            {
                "resourceId": resource_id,
                "clientId": (known or {}).get("clientId")
                or str(uuid.uuid5(uuid.NAMESPACE_URL, "client:" + seed)),
                "principalId": (known or {}).get("principalId")
                or str(uuid.uuid5(uuid.NAMESPACE_URL, "principal:" + seed)),
            }
        )
    return {"type": "UserAssigned", "userAssignedIdentities": entries}
