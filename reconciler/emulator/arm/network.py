"""Microsoft.Network: virtual networks and subnets, NSGs, NICs and public IPs, with their references.

References are kept on both ends (a subnet lists the NIC ip configurations in it, a public IP names the ip
configuration using it, a NIC names its VM) because ARM refuses deletes by exactly those back-references.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from reconciler.emulator.arm.errors import ArmError, bad_request
from reconciler.emulator.arm.http import json_response, read_json
from reconciler.emulator.arm.resources import ArmState, same_id
from reconciler.emulator.arm.store import META, Resource, key_of, public

PROVIDER = "Microsoft.Network"
VNET = "Microsoft.Network/virtualNetworks"
SUBNET = "Microsoft.Network/virtualNetworks/subnets"
NSG = "Microsoft.Network/networkSecurityGroups"
NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"
PUT_SECONDS = 2.0
DELETE_SECONDS = 3.0
RESERVED_HOSTS = 4  # Azure keeps the first four addresses of every subnet

DEFAULT_SECURITY_RULES = [
    ("AllowVnetInBound", "Inbound", 65000, "VirtualNetwork", "VirtualNetwork", "Allow"),
    ("AllowAzureLoadBalancerInBound", "Inbound", 65001, "AzureLoadBalancer", "*", "Allow"),
    ("DenyAllInBound", "Inbound", 65500, "*", "*", "Deny"),
    ("AllowVnetOutBound", "Outbound", 65000, "VirtualNetwork", "VirtualNetwork", "Allow"),
    ("AllowInternetOutBound", "Outbound", 65001, "*", "Internet", "Allow"),
    ("DenyAllOutBound", "Outbound", 65500, "*", "*", "Deny"),
]

Route = Callable[[web.Request], Any]


def _etag() -> str:
    return f'W/"{ArmState.new_guid()}"'


class NetworkProvider:
    def __init__(self, state: ArmState) -> None:
        self.state = state
        self.store = state.store
        state.store.on_deleted.append(self._on_deleted)

    # --- common -----------------------------------------------------------------------------------------

    def _base(
        self, request: web.Request, provider_type: str, name_key: str, body: dict[str, Any]
    ) -> Resource:
        rg = request.match_info["resourceGroupName"]
        name = request.match_info[name_key]
        self.store.ensure_group(rg)
        return {
            "id": self.store.resource_id(rg, provider_type, name),
            "name": name,
            "type": provider_type,
            "location": body.get("location") or self.state.location,
            "tags": body.get("tags") or {},
            "etag": _etag(),
            "properties": copy.deepcopy(body.get("properties") or {}),
        }

    def _finish_put(
        self, request: web.Request, resource: Resource, existing: Resource | None
    ) -> web.Response:
        resource["properties"].setdefault("resourceGuid", self.state.new_guid())
        self.store.put(resource)
        self.store.start_transition(resource, "Updating", PUT_SECONDS)
        return self.state.put_response(request, resource, created=existing is None, provider=PROVIDER)

    def _start_delete(self, request: web.Request, resource: Resource) -> web.Response:
        self.store.start_delete(resource, DELETE_SECONDS)
        return self.state.accepted(request, resource, "delete", PROVIDER)

    def _crud(
        self,
        app: web.Application,
        gate: Any,
        segment: str,
        label: str,
        provider_type: str,
        name_key: str,
        put: Callable[[web.Request], Any],
        delete_check: Callable[[Resource], None],
        render: Callable[[Resource], Resource] = public,
    ) -> None:
        rg_path = (
            f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{segment}"
        )
        item = f"{rg_path}/{{{name_key}}}"

        async def get(request: web.Request) -> web.Response:
            match = request.match_info
            resource = self.state.require(match["resourceGroupName"], provider_type, match[name_key])
            return json_response(render(resource))

        async def delete(request: web.Request) -> web.Response:
            match = request.match_info
            resource = self.state.find(match["resourceGroupName"], provider_type, match[name_key])
            if resource is None:
                return web.Response(status=204)
            if not resource[META].get("deleting"):
                delete_check(resource)
            return self._start_delete(request, resource)

        async def update_tags(request: web.Request) -> web.Response:
            match = request.match_info
            resource = self.state.require(match["resourceGroupName"], provider_type, match[name_key])
            body = await read_json(request)
            resource["tags"] = body.get("tags") or {}
            resource["etag"] = _etag()
            return json_response(render(resource))

        async def list_group(request: web.Request) -> web.Response:
            rg = request.match_info["resourceGroupName"]
            self.state.require_group(rg)
            return self.state.list_response(request, self.store.of_type(provider_type, rg), render)

        async def list_all(request: web.Request) -> web.Response:
            return self.state.list_response(request, self.store.of_type(provider_type), render)

        app.router.add_put(item, gate(put), name=f"arm.{label}_CreateOrUpdate")
        app.router.add_get(item, gate(get), name=f"arm.{label}_Get")
        app.router.add_delete(item, gate(delete), name=f"arm.{label}_Delete")
        app.router.add_patch(item, gate(update_tags), name=f"arm.{label}_UpdateTags")
        app.router.add_get(rg_path, gate(list_group), name=f"arm.{label}_List")
        app.router.add_get(
            f"/subscriptions/{{subscriptionId}}/providers/{segment}",
            gate(list_all),
            name=f"arm.{label}_ListAll",
        )

    def add_routes(self, app: web.Application, gate: Any) -> None:
        self._crud(
            app,
            gate,
            VNET,
            "VirtualNetworks",
            VNET,
            "virtualNetworkName",
            self.put_vnet,
            self._check_vnet_delete,
            self.render_vnet,
        )
        self._crud(
            app,
            gate,
            NSG,
            "NetworkSecurityGroups",
            NSG,
            "networkSecurityGroupName",
            self.put_nsg,
            self._check_nsg_delete,
        )
        self._crud(
            app,
            gate,
            NIC,
            "NetworkInterfaces",
            NIC,
            "networkInterfaceName",
            self.put_nic,
            self._check_nic_delete,
        )
        self._crud(
            app,
            gate,
            PIP,
            "PublicIPAddresses",
            PIP,
            "publicIpAddressName",
            self.put_pip,
            self._check_pip_delete,
        )
        subnets = (
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
            f"{VNET}/{{virtualNetworkName}}/subnets"
        )
        app.router.add_put(
            f"{subnets}/{{subnetName}}", gate(self.put_subnet), name="arm.Subnets_CreateOrUpdate"
        )
        app.router.add_get(f"{subnets}/{{subnetName}}", gate(self.get_subnet), name="arm.Subnets_Get")
        app.router.add_delete(
            f"{subnets}/{{subnetName}}", gate(self.delete_subnet), name="arm.Subnets_Delete"
        )
        app.router.add_get(subnets, gate(self.list_subnets), name="arm.Subnets_List")
        self.state.add_operation_routes(app, gate, PROVIDER, "Network")

    # --- virtual networks and subnets ---------------------------------------------------------------------

    def _subnets_of(self, vnet: Resource) -> list[Resource]:
        prefix = key_of(vnet["id"]) + "/subnets/"
        return [r for k, r in self.store.resources.items() if k.startswith(prefix)]

    def render_vnet(self, vnet: Resource) -> Resource:
        body = public(vnet)
        body["properties"]["subnets"] = [public(s) for s in self._subnets_of(vnet)]
        return body

    def _make_subnet(self, vnet: Resource, name: str, body: dict[str, Any]) -> Resource:
        properties = copy.deepcopy(body.get("properties") or {})
        prefix = properties.get("addressPrefix") or next(iter(properties.get("addressPrefixes") or []), None)
        if not prefix:
            raise bad_request("InvalidRequestFormat", f"Subnet '{name}' must have an addressPrefix.")
        try:
            network = ipaddress.ip_network(prefix, strict=True)
        except ValueError as exc:
            raise bad_request(
                "InvalidCIDRNotation", f"The address prefix {prefix} has an invalid CIDR notation."
            ) from exc
        spaces = vnet["properties"].get("addressSpace", {}).get("addressPrefixes", [])
        if spaces and not any(network.subnet_of(ipaddress.ip_network(s)) for s in spaces):  # type: ignore[arg-type]
            raise bad_request(
                "NetcfgSubnetRangeOutsideVnet",
                f"Subnet '{name}' is not valid because its IP address range is outside the IP address "
                f"range of virtual network '{vnet['name']}'.",
            )
        if properties.get("networkSecurityGroup"):
            self.state.require_reference(properties["networkSecurityGroup"].get("id"), vnet["id"], NSG)
        subnet_id = f"{vnet['id']}/subnets/{name}"
        existing = self.store.get(subnet_id)
        if existing is not None:
            properties["ipConfigurations"] = existing["properties"].get("ipConfigurations", [])
            meta = copy.deepcopy(existing.get(META, {}))
        else:
            meta = {"allocated": {}}
        if not properties.get("ipConfigurations"):
            properties.pop("ipConfigurations", None)
        properties["provisioningState"] = "Succeeded"
        properties.setdefault("privateEndpointNetworkPolicies", "Disabled")
        properties.setdefault("privateLinkServiceNetworkPolicies", "Enabled")
        return {
            "id": subnet_id,
            "name": name,
            "type": SUBNET,
            "etag": _etag(),
            "properties": properties,
            META: meta,
        }

    async def put_vnet(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        resource = self._base(request, VNET, "virtualNetworkName", body)
        existing = self.store.get(resource["id"])
        properties = resource["properties"]
        for prefix in properties.get("addressSpace", {}).get("addressPrefixes", []):
            try:
                ipaddress.ip_network(prefix, strict=True)
            except ValueError as exc:
                raise bad_request(
                    "InvalidCIDRNotation", f"The address prefix {prefix} has an invalid CIDR notation."
                ) from exc
        wanted = properties.pop("subnets", None)
        properties.setdefault("enableDdosProtection", False)
        if existing is not None:
            resource[META] = {}
            properties["resourceGuid"] = existing["properties"].get("resourceGuid")
        if wanted is not None:
            new_subnets = [self._make_subnet(resource, s["name"], s) for s in wanted]
            names = {s["name"].lower() for s in new_subnets}
            if existing is not None:
                for old in self._subnets_of(existing):
                    if old["name"].lower() not in names:
                        self._check_subnet_delete(old)
                        self.store.remove(old["id"])
            for subnet in new_subnets:
                self.store.put(subnet)
        return self._finish_put(request, resource, existing)

    def _check_subnet_delete(self, subnet: Resource) -> None:
        if subnet["properties"].get("ipConfigurations"):
            users = ", ".join(c["id"] for c in subnet["properties"]["ipConfigurations"])
            raise bad_request(
                "InUseSubnetCannotBeDeleted",
                f"Subnet {subnet['name']} is in use by {users} and cannot be deleted. In order to delete the "
                "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
            )

    def _check_vnet_delete(self, vnet: Resource) -> None:
        for subnet in self._subnets_of(vnet):
            self._check_subnet_delete(subnet)

    def _vnet(self, request: web.Request) -> Resource:
        match = request.match_info
        return self.state.require(match["resourceGroupName"], VNET, match["virtualNetworkName"])

    async def put_subnet(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        vnet = self._vnet(request)
        name = request.match_info["subnetName"]
        existing = self.store.get(f"{vnet['id']}/subnets/{name}")
        subnet = self._make_subnet(vnet, name, body)
        self.store.put(subnet)
        return json_response(public(subnet), 201 if existing is None else 200)

    def _subnet(self, request: web.Request) -> Resource:
        vnet = self._vnet(request)
        name = request.match_info["subnetName"]
        subnet = self.store.get(f"{vnet['id']}/subnets/{name}")
        if subnet is None:
            raise ArmError(404, "NotFound", f"Resource {vnet['id']}/subnets/{name} not found.")
        return subnet

    async def get_subnet(self, request: web.Request) -> web.Response:
        return json_response(public(self._subnet(request)))

    async def delete_subnet(self, request: web.Request) -> web.Response:
        try:
            subnet = self._subnet(request)
        except ArmError:
            return web.Response(status=204)
        self._check_subnet_delete(subnet)
        self.store.remove(subnet["id"])
        return web.Response(status=200)

    async def list_subnets(self, request: web.Request) -> web.Response:
        return self.state.list_response(request, self._subnets_of(self._vnet(request)))

    # --- network security groups ----------------------------------------------------------------------

    async def put_nsg(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        resource = self._base(request, NSG, "networkSecurityGroupName", body)
        existing = self.store.get(resource["id"])
        properties = resource["properties"]
        rules = []
        for rule in properties.get("securityRules", []):
            rule = copy.deepcopy(rule)
            rule["id"] = f"{resource['id']}/securityRules/{rule['name']}"
            rule.setdefault("type", f"{NSG}/securityRules")
            rule.setdefault("properties", {})["provisioningState"] = "Succeeded"
            rules.append(rule)
        properties["securityRules"] = rules
        properties["defaultSecurityRules"] = [
            {
                "name": name,
                "id": f"{resource['id']}/defaultSecurityRules/{name}",
                "type": f"{NSG}/defaultSecurityRules",
                "properties": {
                    "description": name,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": source,
                    "destinationAddressPrefix": destination,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                    "provisioningState": "Succeeded",
                },
            }
            for name, direction, priority, source, destination, access in DEFAULT_SECURITY_RULES
        ]
        if existing is not None:
            for key in ("networkInterfaces", "subnets"):
                if existing["properties"].get(key):
                    properties[key] = existing["properties"][key]
        return self._finish_put(request, resource, existing)

    def _check_nsg_delete(self, nsg: Resource) -> None:
        users = nsg["properties"].get("networkInterfaces") or []
        users += [
            {"id": s["id"]}
            for s in self.store.of_type(SUBNET)
            if same_id((s["properties"].get("networkSecurityGroup") or {}).get("id"), nsg["id"])
        ]
        if users:
            raise bad_request(
                "InUseNetworkSecurityGroupCannotBeDeleted",
                f"Network security group {nsg['id']} cannot be deleted because it is in use by the following "
                f"resources: {', '.join(u['id'] for u in users)}.",
            )

    # --- public IP addresses ----------------------------------------------------------------------------

    @staticmethod
    def _address_for(resource_id: str) -> str:
        digest = hashlib.sha256(key_of(resource_id).encode()).digest()
        return f"20.{digest[0] % 254 + 1}.{digest[1]}.{digest[2] % 254 + 1}"

    async def put_pip(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        resource = self._base(request, PIP, "publicIpAddressName", body)
        existing = self.store.get(resource["id"])
        sku = body.get("sku") or {"name": "Basic", "tier": "Regional"}
        sku.setdefault("tier", "Regional")
        resource["sku"] = sku
        if body.get("zones"):
            resource["zones"] = body["zones"]
        properties = resource["properties"]
        standard = sku["name"].lower() == "standard"
        properties.setdefault("publicIPAllocationMethod", "Static" if standard else "Dynamic")
        if standard and properties["publicIPAllocationMethod"] != "Static":
            raise bad_request(
                "StandardSkuPublicIPAddressesMustBeStatic",
                f"Standard sku publicIp {resource['id']} must have AllocationMethod set to Static.",
            )
        properties.setdefault("publicIPAddressVersion", "IPv4")
        properties.setdefault("idleTimeoutInMinutes", 4)
        properties.pop("ipAddress", None)
        resource[META] = {"address": self._address_for(resource["id"])}
        if existing is not None and existing["properties"].get("ipConfiguration"):
            properties["ipConfiguration"] = existing["properties"]["ipConfiguration"]
        if properties["publicIPAllocationMethod"] == "Static" or (
            existing is not None and existing["properties"].get("ipAddress")
        ):
            properties["ipAddress"] = resource[META]["address"]
        return self._finish_put(request, resource, existing)

    def _check_pip_delete(self, pip: Resource) -> None:
        user = pip["properties"].get("ipConfiguration")
        if user:
            raise bad_request(
                "PublicIPAddressInUse",
                f"Public IP address {pip['id']} can not be deleted since it is still allocated to resource "
                f"{user['id']}. In order to delete the public IP, disassociate/detach the Public IP address "
                "from the resource. To learn how to do this, see aka.ms/deletepublicip.",
            )

    def set_pip_address(self, pip_id: str, allocated: bool) -> None:
        """Dynamic public IPs hold an address only while their VM is allocated, as in Azure."""
        pip = self.store.get(pip_id)
        if pip is None or pip["properties"].get("publicIPAllocationMethod") == "Static":
            return
        if allocated:
            pip["properties"]["ipAddress"] = pip[META].get("address") or self._address_for(pip["id"])
        else:
            pip["properties"].pop("ipAddress", None)

    # --- network interfaces -----------------------------------------------------------------------------

    def _allocate_ip(
        self, subnet: Resource, config_id: str, requested: str | None, prefix_length: int | None = None
    ) -> str:
        allocated: dict[str, str] = subnet[META].setdefault("allocated", {})
        if config_id in allocated and (requested is None or allocated[config_id] == requested):
            return allocated[config_id]
        properties = subnet["properties"]
        network = ipaddress.ip_network(properties.get("addressPrefix") or properties["addressPrefixes"][0])
        used: set[str] = set()
        for value in allocated.values():
            if "/" in value:
                used.update(str(a) for a in ipaddress.ip_network(value, strict=False))
            else:
                used.add(value)
        if prefix_length is not None:
            return self._allocate_block(network, allocated, used, config_id, prefix_length)
        if requested is not None:
            if ipaddress.ip_address(requested) not in network:
                raise bad_request(
                    "PrivateIPAddressNotInSubnet",
                    f"IP configuration {config_id} is referencing a private IP address {requested} which "
                    f"is not within the subnet {subnet['id']} address range.",
                )
            if requested in used:
                raise bad_request(
                    "PrivateIPAddressInUse",
                    f"IP configuration {config_id} is using the private IP address {requested} which is "
                    "already allocated to resource in the subnet.",
                )
            allocated[config_id] = requested
            return requested
        for index, host in enumerate(network):
            if index < RESERVED_HOSTS or host == network.broadcast_address:
                continue
            if str(host) not in used:
                allocated[config_id] = str(host)
                return str(host)
        raise bad_request(
            "SubnetIsFull",
            f"Subnet {subnet['name']} with address prefix {network} does not have enough capacity.",
        )

    @staticmethod
    def _allocate_block(
        network: Any, allocated: dict[str, str], used: set[str], config_id: str, prefix_length: int
    ) -> str:
        """An IP prefix for the configuration (`privateIPAddressPrefixLength`), aligned and wholly free."""
        reserved = {str(network[i]) for i in range(RESERVED_HOSTS)} | {str(network.broadcast_address)}
        for block in network.subnets(new_prefix=prefix_length):
            addresses = {str(a) for a in block}
            if not addresses & (used | reserved):
                allocated[config_id] = str(block)
                return str(block)
        raise bad_request("SubnetIsFull", f"Subnet {network} has no free /{prefix_length} prefix.")

    async def put_nic(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        resource = self._base(request, NIC, "networkInterfaceName", body)
        existing = self.store.get(resource["id"])
        properties = resource["properties"]
        nic_id = resource["id"]
        configs = properties.get("ipConfigurations") or []
        if not configs:
            raise bad_request(
                "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                f"Network interface {nic_id} must have at least one IP configuration.",
            )
        nsg_ref = (properties.get("networkSecurityGroup") or {}).get("id")
        nsg = self.state.require_reference(nsg_ref, nic_id, NSG) if nsg_ref else None
        plans: list[tuple[dict[str, Any], str, Resource, Resource | None, int]] = []
        for index, config in enumerate(configs):
            config_properties = config.setdefault("properties", {})
            config_id = f"{nic_id}/ipConfigurations/{config['name']}"
            subnet_ref = (config_properties.get("subnet") or {}).get("id")
            if subnet_ref is None and plans:
                subnet_ref = plans[0][2]["id"]  # secondary configurations share the primary's subnet
            subnet = self.state.require_reference(subnet_ref, nic_id, SUBNET)
            pip_ref = (config_properties.get("publicIPAddress") or {}).get("id")
            pip = self.state.require_reference(pip_ref, nic_id, PIP) if pip_ref else None
            if pip is not None:
                user = (pip["properties"].get("ipConfiguration") or {}).get("id")
                if user and not same_id(user, config_id):
                    raise bad_request(
                        "PublicIPAddressInUse",
                        f"Public IP address {pip['id']} is already in use by {user}.",
                    )
            plans.append((config, config_id, subnet, pip, index))
        if existing is not None:
            self._release_nic(
                existing, keep={key_of(p[1]): key_of(p[3]["id"]) if p[3] else None for p in plans}
            )
        for config, config_id, subnet, pip, index in plans:
            config_properties = config["properties"]
            method = config_properties.setdefault("privateIPAllocationMethod", "Dynamic")
            requested = config_properties.get("privateIPAddress") if method == "Static" else None
            prefix_length = config_properties.get("privateIPAddressPrefixLength")
            config_properties["privateIPAddress"] = self._allocate_ip(
                subnet, config_id, requested, int(prefix_length) if prefix_length else None
            )
            config["id"] = config_id
            config.setdefault("type", f"{NIC}/ipConfigurations")
            config["etag"] = resource["etag"]
            config_properties["subnet"] = {"id": subnet["id"]}
            config_properties.setdefault("primary", index == 0)
            config_properties.setdefault("privateIPAddressVersion", "IPv4")
            config_properties["provisioningState"] = "Succeeded"
            users = subnet["properties"].setdefault("ipConfigurations", [])
            if not any(same_id(u["id"], config_id) for u in users):
                users.append({"id": config_id})
            if pip is not None:
                pip["properties"]["ipConfiguration"] = {"id": config_id}
                config_properties["publicIPAddress"] = {"id": pip["id"]}
        if nsg is not None:
            properties["networkSecurityGroup"] = {"id": nsg["id"]}
            nics = nsg["properties"].setdefault("networkInterfaces", [])
            if not any(same_id(n["id"], nic_id) for n in nics):
                nics.append({"id": nic_id})
        properties.setdefault("dnsSettings", {"dnsServers": [], "appliedDnsServers": []})
        properties.setdefault("enableAcceleratedNetworking", False)
        properties.setdefault("enableIPForwarding", False)
        properties.setdefault("disableTcpStateTracking", False)
        properties.setdefault("vnetEncryptionSupported", False)
        properties["nicType"] = properties.get("nicType", "Standard")
        if existing is not None:
            for key in ("virtualMachine", "macAddress", "primary"):
                if key in existing["properties"]:
                    properties[key] = existing["properties"][key]
            resource[META] = {k: v for k, v in existing.get(META, {}).items() if k == "vm"}
        return self._finish_put(request, resource, existing)

    def _release_nic(self, nic: Resource, keep: Mapping[str, str | None] | None = None) -> None:
        """Drop the back-references a NIC holds on subnets, public IPs and its NSG.

        `keep` maps the ip configurations a re-PUT keeps to the public IP each now names: a kept
        configuration holds on to its subnet address, but a public IP it no longer names is detached,
        as Azure does, and becomes deletable.
        """
        keep = keep or {}
        for config in nic["properties"].get("ipConfigurations", []):
            config_id = config.get("id") or f"{nic['id']}/ipConfigurations/{config['name']}"
            config_properties = config.get("properties", {})
            if key_of(config_id) in keep:
                old_pip = (config_properties.get("publicIPAddress") or {}).get("id")
                if old_pip and key_of(old_pip) != keep[key_of(config_id)]:
                    self._detach_pip(old_pip, config_id)
                continue
            subnet = self.store.get((config_properties.get("subnet") or {}).get("id") or "")
            if subnet is not None:
                subnet[META].setdefault("allocated", {}).pop(config_id, None)
                users = [
                    u
                    for u in subnet["properties"].get("ipConfigurations", [])
                    if not same_id(u["id"], config_id)
                ]
                if users:
                    subnet["properties"]["ipConfigurations"] = users
                else:
                    subnet["properties"].pop("ipConfigurations", None)
            self._detach_pip((config_properties.get("publicIPAddress") or {}).get("id") or "", config_id)
        nsg = self.store.get((nic["properties"].get("networkSecurityGroup") or {}).get("id") or "")
        if nsg is not None:
            nics = [
                n for n in nsg["properties"].get("networkInterfaces", []) if not same_id(n["id"], nic["id"])
            ]
            if nics:
                nsg["properties"]["networkInterfaces"] = nics
            else:
                nsg["properties"].pop("networkInterfaces", None)

    def _detach_pip(self, pip_id: str, config_id: str) -> None:
        pip = self.store.get(pip_id)
        if pip is not None and same_id((pip["properties"].get("ipConfiguration") or {}).get("id"), config_id):
            pip["properties"].pop("ipConfiguration", None)
            self.set_pip_address(pip["id"], allocated=False)

    def _check_nic_delete(self, nic: Resource) -> None:
        vm = nic["properties"].get("virtualMachine")
        if vm:
            raise bad_request(
                "NicInUse",
                f"Network Interface {nic['id']} is used by existing resource {vm['id']}. In order to delete "
                "the network interface, it must be dissociated from the resource. To learn more, see "
                "aka.ms/deletenic.",
            )

    def attach_nic(self, nic: Resource, vm_id: str, primary: bool) -> None:
        nic["properties"]["virtualMachine"] = {"id": vm_id}
        nic["properties"]["primary"] = primary
        digest = hashlib.sha256(key_of(nic["id"]).encode()).hexdigest().upper()
        nic["properties"]["macAddress"] = "-".join(["00", "0D", "3A", digest[0:2], digest[2:4], digest[4:6]])
        self.set_nic_allocated(nic, True)

    def set_nic_allocated(self, nic: Resource, allocated: bool) -> None:
        for config in nic["properties"].get("ipConfigurations", []):
            pip_id = (config.get("properties", {}).get("publicIPAddress") or {}).get("id")
            if pip_id:
                self.set_pip_address(pip_id, allocated)

    def detach_nic(self, nic: Resource) -> None:
        nic["properties"].pop("virtualMachine", None)
        nic["properties"].pop("macAddress", None)
        nic["properties"].pop("primary", None)
        self.set_nic_allocated(nic, False)

    def _on_deleted(self, resource: Resource) -> None:
        kind = resource["type"].lower()
        if kind == NIC.lower():
            self._release_nic(resource)
        elif kind == VNET.lower():
            for subnet in self._subnets_of(resource):
                self.store.remove(subnet["id"])
