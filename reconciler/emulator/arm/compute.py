"""Microsoft.Compute: virtual machines (spot included) and the managed OS disks created with them."""

from __future__ import annotations

import base64
import binascii
import copy
import uuid
from typing import Any

from aiohttp import web

from reconciler.emulator.arm.errors import ArmError, bad_request
from reconciler.emulator.arm.http import json_response, read_json
from reconciler.emulator.arm.network import NIC, NetworkProvider
from reconciler.emulator.arm.resources import ArmState
from reconciler.emulator.arm.store import META, Resource, public

PROVIDER = "Microsoft.Compute"
VM = "Microsoft.Compute/virtualMachines"
DISK = "Microsoft.Compute/disks"
MAX_CUSTOM_DATA = 87_380
DEFAULT_OS_DISK_GB = 30

# Simulated seconds, roughly what Azure takes.
CREATE_SECONDS = 90.0
UPDATE_SECONDS = 10.0
DELETE_SECONDS = 45.0
FORCE_DELETE_SECONDS = 10.0
DISK_DELETE_SECONDS = 5.0
POWER_SECONDS = {"deallocate": 60.0, "start": 30.0, "powerOff": 20.0, "restart": 20.0}
POWER_STEPS = {
    "deallocate": ("deallocating", "deallocated"),
    "start": ("starting", "running"),
    "powerOff": ("stopping", "stopped"),
    "restart": ("starting", "running"),
}
POWER_DISPLAY = {
    "running": "VM running",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}


def _identity_of(requested: dict[str, Any] | None, tenant_id: str) -> dict[str, Any] | None:
    """The identity block as ARM echoes it: principal and client ids filled in for each identity."""
    if not requested:
        return None
    identity = copy.deepcopy(requested)
    kind = str(identity.get("type", "None"))
    if "SystemAssigned" in kind:
        identity.setdefault("principalId", str(uuid.uuid4()))
        identity.setdefault("tenantId", tenant_id)
    for resource_id in identity.get("userAssignedIdentities") or {}:
        seed = resource_id.lower()
        identity["userAssignedIdentities"][resource_id] = {
            "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, "principal:" + seed)),
            "clientId": str(uuid.uuid5(uuid.NAMESPACE_URL, "client:" + seed)),
        }
    return identity


class ComputeProvider:
    def __init__(self, state: ArmState, network: NetworkProvider) -> None:
        self.state = state
        self.store = state.store
        self.network = network
        state.store.on_deleted.append(self._on_deleted)

    def add_routes(self, app: web.Application, gate: Any) -> None:
        rg = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers"
        vm = f"{rg}/{VM}/{{vmName}}"
        router = app.router
        router.add_put(vm, gate(self.put_vm), name="arm.VirtualMachines_CreateOrUpdate")
        router.add_patch(vm, gate(self.patch_vm), name="arm.VirtualMachines_Update")
        router.add_get(vm, gate(self.get_vm), name="arm.VirtualMachines_Get")
        router.add_delete(vm, gate(self.delete_vm), name="arm.VirtualMachines_Delete")
        router.add_get(
            f"{vm}/instanceView", gate(self.instance_view), name="arm.VirtualMachines_InstanceView"
        )
        for action, label in (
            ("deallocate", "Deallocate"),
            ("start", "Start"),
            ("powerOff", "PowerOff"),
            ("restart", "Restart"),
        ):
            router.add_post(f"{vm}/{action}", gate(self._power(action)), name=f"arm.VirtualMachines_{label}")
        router.add_post(
            f"{vm}/simulateEviction",
            gate(self.simulate_eviction),
            name="arm.VirtualMachines_SimulateEviction",
        )
        router.add_get(f"{rg}/{VM}", gate(self.list_vms), name="arm.VirtualMachines_List")
        router.add_get(
            f"/subscriptions/{{subscriptionId}}/providers/{VM}",
            gate(self.list_vms),
            name="arm.VirtualMachines_ListAll",
        )
        disk = f"{rg}/{DISK}/{{diskName}}"
        router.add_get(disk, gate(self.get_disk), name="arm.Disks_Get")
        router.add_patch(disk, gate(self.patch_disk), name="arm.Disks_Update")
        router.add_delete(disk, gate(self.delete_disk), name="arm.Disks_Delete")
        router.add_get(f"{rg}/{DISK}", gate(self.list_disks), name="arm.Disks_ListByResourceGroup")
        router.add_get(
            f"/subscriptions/{{subscriptionId}}/providers/{DISK}",
            gate(self.list_disks),
            name="arm.Disks_List",
        )
        self.state.add_operation_routes(app, gate, PROVIDER, "Compute")

    # --- rendering ----------------------------------------------------------------------------------------

    def render_vm(self, vm: Resource, *, instance_view: bool = False, user_data: bool = False) -> Resource:
        body = public(vm)
        if instance_view:
            body["properties"]["instanceView"] = self.build_instance_view(vm)
        if user_data and vm[META].get("userData"):
            body["properties"]["userData"] = vm[META]["userData"]
        return body

    def build_instance_view(self, vm: Resource) -> dict[str, Any]:
        meta = vm[META]
        state = vm["properties"].get("provisioningState", "Succeeded")
        when = meta.get("changed", self.state.now_iso())
        provisioning: dict[str, Any] = {
            "code": f"ProvisioningState/{state.lower()}",
            "level": "Info",
            "displayStatus": f"Provisioning {state.lower()}",
            "time": when,
        }
        if state == "Failed":
            error = meta.get("error") or {"code": "InternalError"}
            provisioning.update(
                code=f"ProvisioningState/failed/{error['code']}",
                level="Error",
                displayStatus="Provisioning failed",
                message=error.get("message", ""),
            )
        elif state in ("Creating", "Updating", "Deleting"):
            provisioning["displayStatus"] = state
        power = meta.get("power", "running")
        statuses = [provisioning]
        if state != "Creating" or power != "starting":
            statuses.append(
                {"code": f"PowerState/{power}", "level": "Info", "displayStatus": POWER_DISPLAY[power]}
            )
        os_disk = vm["properties"]["storageProfile"]["osDisk"]
        view: dict[str, Any] = {
            "computerName": vm["properties"].get("osProfile", {}).get("computerName", vm["name"]),
            "osName": "ubuntu" if os_disk.get("osType") == "Linux" else "Windows Server",
            "osVersion": "24.04" if os_disk.get("osType") == "Linux" else "10.0.20348",
            "platformUpdateDomain": 0,
            "platformFaultDomain": 0,
            "isVMInStandbyPool": False,
            "hyperVGeneration": "V2",
            "vmAgent": {
                "vmAgentVersion": "2.13.1.1",
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded",
                        "level": "Info",
                        "displayStatus": "Ready" if power == "running" else "Not Ready",
                        "time": when,
                    }
                ],
            },
            "disks": [
                {
                    "name": os_disk["name"],
                    "statuses": [
                        {
                            "code": "ProvisioningState/succeeded",
                            "level": "Info",
                            "displayStatus": "Provisioning succeeded",
                            "time": when,
                        }
                    ],
                }
            ],
            "statuses": statuses,
        }
        if meta.get("evicted"):
            view["statuses"].append(
                {
                    "code": "EvictionState/evicted",
                    "level": "Info",
                    "displayStatus": "VM evicted",
                    "time": when,
                }
            )
        return view

    # --- virtual machines ---------------------------------------------------------------------------------

    def _validate(self, vm_id: str, properties: dict[str, Any]) -> None:
        if not (properties.get("hardwareProfile") or {}).get("vmSize"):
            raise bad_request(
                "InvalidParameter", "Required parameter 'hardwareProfile.vmSize' is missing (null)."
            )
        custom_data = (properties.get("osProfile") or {}).get("customData")
        if custom_data is not None:
            if len(custom_data) > MAX_CUSTOM_DATA:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Custom data in OSProfile must be in Base64 encoding and with a maximum length of "
                    f"{MAX_CUSTOM_DATA} characters.",
                    [{"code": "InvalidParameter", "target": "customData"}],
                )
            try:
                base64.b64decode(custom_data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request(
                    "InvalidParameter", "Custom data in OSProfile must be in Base64 encoding."
                ) from exc
        priority = properties.get("priority")
        if properties.get("evictionPolicy") and priority not in ("Spot", "Low"):
            raise bad_request(
                "InvalidParameter", "EvictionPolicy can be set only on Azure Spot Virtual Machines."
            )
        if priority == "Spot":
            properties.setdefault("evictionPolicy", "Deallocate")
        nics = (properties.get("networkProfile") or {}).get("networkInterfaces") or []
        if not nics:
            raise bad_request("InvalidParameter", "At least one network interface is required.")
        for reference in nics:
            nic = self.state.require_reference(reference.get("id"), vm_id, NIC)
            user = (nic["properties"].get("virtualMachine") or {}).get("id")
            if user and user.lower() != vm_id.lower():
                raise ArmError(
                    409,
                    "NicInUse",
                    f"Network interface {nic['id']} is already used by virtual machine {user}.",
                )

    def _create_os_disk(self, vm: Resource, os_disk: dict[str, Any], rg: str) -> None:
        name = os_disk.get("name") or f"{vm['name']}_OsDisk_1_{uuid.uuid4().hex}"
        disk_id = self.store.resource_id(rg, DISK, name)
        existing = self.store.get(disk_id)
        if existing is not None and existing.get("managedBy"):
            raise ArmError(
                409,
                "ConflictingUserInput",
                f"Disk {name} already exists in resource group {rg.upper()}. Only CreateOption.Attach is "
                "supported.",
            )
        managed = os_disk.setdefault("managedDisk", {})
        managed.setdefault("storageAccountType", "Premium_LRS")
        managed["id"] = disk_id
        os_disk["name"] = name
        os_disk.setdefault("osType", "Linux")
        os_disk.setdefault("createOption", "FromImage")
        os_disk.setdefault("caching", "ReadWrite")
        os_disk.setdefault("deleteOption", "Detach")
        os_disk.setdefault("diskSizeGB", DEFAULT_OS_DISK_GB)
        sku = managed["storageAccountType"]
        image = vm["properties"].get("storageProfile", {}).get("imageReference") or {}
        size = int(os_disk["diskSizeGB"])
        disk: Resource = {
            "id": disk_id,
            "name": name,
            "type": DISK,
            "location": vm["location"],
            "tags": {},
            "managedBy": vm["id"],
            "sku": {"name": sku, "tier": "Premium" if sku.startswith("Premium") else "Standard"},
            "properties": {
                "osType": os_disk["osType"],
                "hyperVGeneration": "V2",
                "creationData": {"createOption": "FromImage", "imageReference": {"id": _image_id(image)}},
                "diskSizeGB": size,
                "diskSizeBytes": size * 1024**3,
                "uniqueId": str(uuid.uuid4()),
                "timeCreated": self.state.now_iso(),
                "provisioningState": "Succeeded",
                "diskState": "Attached",
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            },
            META: {},
        }
        if vm.get("zones"):
            disk["zones"] = vm["zones"]
        self.store.put(disk)

    async def put_vm(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        rg = request.match_info["resourceGroupName"]
        name = request.match_info["vmName"]
        self.store.ensure_group(rg)
        vm_id = self.store.resource_id(rg, VM, name)
        existing = self.store.get(vm_id)
        if existing is not None and existing[META].get("deleting"):
            raise ArmError(
                409, "OperationNotAllowed", f"Operation on VM '{name}' is not allowed: it is being deleted."
            )
        properties = copy.deepcopy(body.get("properties") or {})
        self._validate(vm_id, properties)
        os_profile = properties.get("osProfile") or {}
        os_profile.pop("customData", None)
        os_profile.pop("adminPassword", None)
        if properties.get("osProfile") is not None:
            os_profile.setdefault("secrets", [])
            os_profile.setdefault("allowExtensionOperations", True)
            os_profile.setdefault("requireGuestProvisionSignal", True)
        user_data = properties.pop("userData", None)
        storage = properties.setdefault("storageProfile", {})
        storage.setdefault("dataDisks", [])
        if "imageReference" in storage:
            storage["imageReference"].setdefault("exactVersion", "1.0.0")
        vm: Resource = {
            "id": vm_id,
            "name": name,
            "type": VM,
            "location": body.get("location") or self.state.location,
            "tags": body.get("tags") or {},
            "properties": properties,
            META: {},
        }
        for key in ("zones", "plan", "extendedLocation"):
            if body.get(key):
                vm[key] = body[key]
        identity = _identity_of(body.get("identity"), self.state.ctx.tenant_id)
        if identity is not None:
            vm["identity"] = identity
        if existing is not None:
            return self._update_vm(request, existing, vm, user_data)
        os_disk = storage.setdefault("osDisk", {"createOption": "FromImage"})
        self._create_os_disk(vm, os_disk, rg)
        properties["vmId"] = str(uuid.uuid4())
        properties["timeCreated"] = self.state.now_iso()
        vm[META].update(power="starting", power_target="running", changed=self.state.now_iso())
        if user_data:
            vm[META]["userData"] = user_data
        fault = self.state.take_fault("vm_create", name)
        self._attach_nics(vm)
        self.store.put(vm)
        if fault is not None:
            vm[META]["error"] = {
                "code": fault.get("code") or "OSProvisioningTimedOut",
                "message": fault.get("message")
                or f"OS Provisioning for VM '{name}' did not finish in the allotted time.",
            }
            self.store.start_transition(vm, "Creating", CREATE_SECONDS, final="Failed")
        else:
            self.store.start_transition(vm, "Creating", CREATE_SECONDS)
        vm[META]["power_at"] = vm[META]["ready_at"]
        return self.state.put_response(request, vm, created=True, provider=PROVIDER)

    def _attach_nics(self, vm: Resource) -> None:
        references = vm["properties"]["networkProfile"]["networkInterfaces"]
        for index, reference in enumerate(references):
            nic = self.store.get(reference["id"])
            if nic is not None:
                primary = (reference.get("properties") or {}).get("primary", index == 0)
                self.network.attach_nic(nic, vm["id"], bool(primary))

    def _update_vm(
        self, request: web.Request, existing: Resource, vm: Resource, user_data: str | None
    ) -> web.Response:
        properties = vm["properties"]
        old = existing["properties"]
        properties["storageProfile"]["osDisk"] = old["storageProfile"]["osDisk"]
        for key in ("vmId", "timeCreated"):
            properties[key] = old[key]
        if not properties.get("osProfile") and old.get("osProfile"):
            properties["osProfile"] = old["osProfile"]
        vm[META] = existing[META]
        if user_data:
            vm[META]["userData"] = user_data
        for reference in old.get("networkProfile", {}).get("networkInterfaces", []):
            nic = self.store.get(reference["id"])
            if nic is not None:
                self.network.detach_nic(nic)
        self.store.put(vm)
        self._attach_nics(vm)
        if vm[META].get("power") != "running":
            for reference in properties["networkProfile"]["networkInterfaces"]:
                nic = self.store.get(reference["id"])
                if nic is not None:
                    self.network.set_nic_allocated(nic, False)
        self.store.start_transition(vm, "Updating", UPDATE_SECONDS)
        return self.state.put_response(request, vm, created=False, provider=PROVIDER)

    async def patch_vm(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        vm = self.state.require(request.match_info["resourceGroupName"], VM, request.match_info["vmName"])
        if "tags" in body:
            vm["tags"] = body["tags"] or {}
        for key, value in (body.get("properties") or {}).items():
            if key in ("hardwareProfile", "billingProfile", "diagnosticsProfile", "evictionPolicy"):
                vm["properties"][key] = value
        if body.get("identity") is not None:
            vm["identity"] = _identity_of(body["identity"], self.state.ctx.tenant_id)
        self.store.start_transition(vm, "Updating", UPDATE_SECONDS)
        return self.state.put_response(request, vm, created=False, provider=PROVIDER)

    async def get_vm(self, request: web.Request) -> web.Response:
        vm = self.state.require(request.match_info["resourceGroupName"], VM, request.match_info["vmName"])
        expand = request.query.get("$expand", "").lower()
        return json_response(
            self.render_vm(vm, instance_view="instanceview" in expand, user_data="userdata" in expand)
        )

    async def instance_view(self, request: web.Request) -> web.Response:
        vm = self.state.require(request.match_info["resourceGroupName"], VM, request.match_info["vmName"])
        return json_response(self.build_instance_view(vm))

    async def list_vms(self, request: web.Request) -> web.Response:
        rg = request.match_info.get("resourceGroupName")
        if rg is not None:
            self.state.require_group(rg)
        status_only = request.query.get("statusOnly", "").lower() == "true"
        expand = "instanceview" in request.query.get("$expand", "").lower()
        vms = self.store.of_type(VM, rg)
        return self.state.list_response(
            request, vms, lambda vm: self.render_vm(vm, instance_view=status_only or expand)
        )

    async def delete_vm(self, request: web.Request) -> web.Response:
        vm = self.state.find(request.match_info["resourceGroupName"], VM, request.match_info["vmName"])
        if vm is None:
            return web.Response(status=204)
        if not vm[META].get("deleting"):
            force = request.query.get("forceDeletion", "").lower() == "true"
            vm[META].pop("power_at", None)
            self.store.start_delete(vm, FORCE_DELETE_SECONDS if force else DELETE_SECONDS)
        return self.state.accepted(request, vm, "delete", PROVIDER)

    def _power(self, action: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            vm = self.state.require(request.match_info["resourceGroupName"], VM, request.match_info["vmName"])
            meta = vm[META]
            if meta.get("deleting") or vm["properties"].get("provisioningState") == "Creating":
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation '{action}' is not allowed on VM '{vm['name']}' since the VM is "
                    f"{vm['properties'].get('provisioningState', '').lower()}.",
                )
            during, after = POWER_STEPS[action]
            seconds = POWER_SECONDS[action]
            meta.update(power=during, power_target=after, changed=self.state.now_iso(), evicted=False)
            self.store.start_transition(vm, "Updating", seconds)
            meta["power_at"] = meta["ready_at"]
            for reference in vm["properties"]["networkProfile"]["networkInterfaces"]:
                nic = self.store.get(reference["id"])
                if nic is not None:
                    self.network.set_nic_allocated(nic, after == "running" or action == "powerOff")
            return self.state.accepted(request, vm, "action", PROVIDER)

        return handler

    async def simulate_eviction(self, request: web.Request) -> web.Response:
        vm = self.state.require(request.match_info["resourceGroupName"], VM, request.match_info["vmName"])
        self.evict(vm)
        return web.Response(status=204)

    def evict(self, vm: Resource) -> None:
        """Evict a spot VM as Azure does: deallocate it, or delete it with its disks, per `evictionPolicy`."""
        properties = vm["properties"]
        if properties.get("priority") not in ("Spot", "Low"):
            raise ArmError(
                409, "OperationNotAllowed", f"VM '{vm['name']}' is not an Azure Spot virtual machine."
            )
        meta = vm[META]
        if properties.get("evictionPolicy", "Deallocate") == "Delete":
            properties["storageProfile"]["osDisk"]["deleteOption"] = "Delete"
            self.store.remove(vm["id"])
            return
        meta.update(
            power="deallocated", evicted=True, changed=self.state.now_iso(), power_at=None, ready_at=None
        )
        meta.pop("power_target", None)
        properties["provisioningState"] = "Succeeded"
        for reference in properties["networkProfile"]["networkInterfaces"]:
            nic = self.store.get(reference["id"])
            if nic is not None:
                self.network.set_nic_allocated(nic, False)

    def _on_deleted(self, resource: Resource) -> None:
        if resource["type"].lower() != VM.lower():
            return
        properties = resource["properties"]
        for reference in properties.get("networkProfile", {}).get("networkInterfaces", []):
            nic = self.store.get(reference["id"])
            if nic is None:
                continue
            self.network.detach_nic(nic)
            if (reference.get("properties") or {}).get("deleteOption") == "Delete":
                self.store.remove(nic["id"])
        os_disk = properties.get("storageProfile", {}).get("osDisk", {})
        disk = self.store.get(os_disk.get("managedDisk", {}).get("id") or "")
        if disk is None:
            return
        if os_disk.get("deleteOption") == "Delete":
            self.store.remove(disk["id"])
        else:
            disk.pop("managedBy", None)
            disk["properties"]["diskState"] = "Unattached"

    # --- disks ------------------------------------------------------------------------------------------

    async def get_disk(self, request: web.Request) -> web.Response:
        disk = self.state.require(
            request.match_info["resourceGroupName"], DISK, request.match_info["diskName"]
        )
        return json_response(public(disk))

    async def patch_disk(self, request: web.Request) -> web.Response:
        """Tags only: Azure does not tag the OS disk a VM creates, so its owner tags it afterwards."""
        body = await read_json(request)
        disk = self.state.require(
            request.match_info["resourceGroupName"], DISK, request.match_info["diskName"]
        )
        if "tags" in body:
            disk["tags"] = body["tags"] or {}
        return self.state.put_response(request, disk, created=False, provider=PROVIDER)

    async def list_disks(self, request: web.Request) -> web.Response:
        rg = request.match_info.get("resourceGroupName")
        if rg is not None:
            self.state.require_group(rg)
        return self.state.list_response(request, self.store.of_type(DISK, rg))

    async def delete_disk(self, request: web.Request) -> web.Response:
        disk = self.state.find(request.match_info["resourceGroupName"], DISK, request.match_info["diskName"])
        if disk is None:
            return web.Response(status=204)
        if disk.get("managedBy"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Disk {disk['name']} is attached to VM {disk['managedBy']}.",
            )
        if not disk[META].get("deleting"):
            self.store.start_delete(disk, DISK_DELETE_SECONDS)
        return self.state.accepted(request, disk, "delete", PROVIDER)


def _image_id(image: dict[str, Any]) -> str:
    if image.get("id"):
        return str(image["id"])
    return (
        f"/Subscriptions/emulator/Providers/Microsoft.Compute/Locations/any/Publishers/{image.get('publisher')}"
        f"/ArtifactTypes/VMImage/Offers/{image.get('offer')}/Skus/{image.get('sku')}/Versions/"
        f"{image.get('exactVersion', '1.0.0')}"
    )
