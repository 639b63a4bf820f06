"""How a pool's nodes join a network and are reached: subnet, public IPs, inbound NAT endpoints."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.base import Between
from reconciler.spec.pool_types import (
    ApiModel,
    DynamicVNetAssignmentScope,
    InboundEndpointProtocol,
    IpAddressProvisioningType,
    IPFamily,
    NetworkSecurityGroupRuleAccess,
    PublicIpAddressId,
    SubnetId,
    require_unique,
)

_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,75}[A-Za-z0-9_])?")
_PORT_RANGE = re.compile(r"\*|(\d{1,5})(?:-(\d{1,5}))?")
_RESERVED_BACKEND_PORTS = (29876, 29877)
_RESERVED_FRONTEND = (50000, 55000)
_MIN_FRONTEND_PORTS = 40
_MAX_NSG_RULES = 25


class NetworkSecurityGroupRule(ApiModel):
    priority: Annotated[int, Between(150, 4096)]
    access: NetworkSecurityGroupRuleAccess
    source_address_prefix: str
    source_port_ranges: list[str] | None = None

    @field_validator("source_port_ranges")
    @classmethod
    def _port_ranges(cls, ranges: list[str] | None) -> list[str] | None:
        for entry in ranges or []:
            match = _PORT_RANGE.fullmatch(entry)
            ports = [int(p) for p in match.groups() if p is not None] if match else []
            if match is None or any(p > 65535 for p in ports) or ports != sorted(ports):
                raise PydanticCustomError(
                    "port_range",
                    "must be '*', a port (22) or a range (100-200) of ports 0 to 65535 (got {got})",
                    {"got": repr(entry)},
                )
        return ranges


class InboundNatPool(ApiModel):
    name: str
    protocol: InboundEndpointProtocol
    backend_port: Annotated[int, Between(1, 65535)]
    frontend_port_range_start: Annotated[int, Between(1, 65534)]
    frontend_port_range_end: Annotated[int, Between(1, 65534)]
    network_security_group_rules: list[NetworkSecurityGroupRule] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _ENDPOINT_NAME.fullmatch(name):
            raise PydanticCustomError(
                "endpoint_name",
                "must be at most 77 letters, digits, '_', '.' or '-', start with a letter or digit "
                "and end with a letter, digit or '_' (got {got})",
                {"got": repr(name)},
            )
        return name

    @field_validator("backend_port")
    @classmethod
    def _backend_port(cls, port: int) -> int:
        if port in _RESERVED_BACKEND_PORTS:
            raise PydanticCustomError(
                "reserved_port", "ports 29876 and 29877 are reserved by Batch (got {got})", {"got": port}
            )
        return port

    @model_validator(mode="after")
    def _frontend_range(self) -> Self:
        start, end = self.frontend_port_range_start, self.frontend_port_range_end
        if end - start + 1 < _MIN_FRONTEND_PORTS:
            raise PydanticCustomError(
                "frontend_port_range",
                "frontend_port_range_start..frontend_port_range_end must span at least 40 ports "
                "(got {start}..{end})",
                {"start": start, "end": end},
            )
        low, high = _RESERVED_FRONTEND
        if start <= high and end >= low:
            raise PydanticCustomError(
                "frontend_port_range",
                "frontend ports 50000 to 55000 are reserved by Batch (got {start}..{end})",
                {"start": start, "end": end},
            )
        return self


class EndpointConfiguration(ApiModel):
    inbound_nat_pools: list[InboundNatPool] = Field(serialization_alias="inboundNATPools")

    @field_validator("inbound_nat_pools")
    @classmethod
    def _pool_wide_rules(cls, pools: list[InboundNatPool]) -> list[InboundNatPool]:
        require_unique("inbound NAT pool names", [p.name for p in pools])
        require_unique("backend ports", [p.backend_port for p in pools])
        ranges = sorted((p.frontend_port_range_start, p.frontend_port_range_end) for p in pools)
        for (_, end), (start, next_end) in itertools.pairwise(ranges):
            if start <= end:
                raise PydanticCustomError(
                    "frontend_port_overlap",
                    "frontend port ranges must not overlap (got ..{end} and {start}..{next_end})",
                    {"end": end, "start": start, "next_end": next_end},
                )
        rules = [r for p in pools for r in p.network_security_group_rules or []]
        if len(rules) > _MAX_NSG_RULES:
            raise PydanticCustomError(
                "too_many_rules",
                "at most 25 network security group rules per pool (got {count})",
                {"count": len(rules)},
            )
        require_unique("network security group rule priorities", [r.priority for r in rules])
        return pools


class PublicIpAddressConfiguration(ApiModel):
    provision: IpAddressProvisioningType | None = None
    ip_families: list[IPFamily] | None = None
    ip_address_ids: list[PublicIpAddressId] | None = None

    @model_validator(mode="after")
    def _ids_with_user_managed(self) -> Self:
        if self.ip_address_ids and self.provision != "usermanaged":
            raise PydanticCustomError(
                "ip_address_ids",
                "ip_address_ids needs provision: usermanaged (got {got})",
                {"got": self.provision or "no provision"},
            )
        if self.provision == "usermanaged" and not self.ip_address_ids:
            raise PydanticCustomError("ip_address_ids", "provision: usermanaged needs ip_address_ids", {})
        return self


class NetworkConfiguration(ApiModel):
    subnet_id: SubnetId | None = None
    dynamic_vnet_assignment_scope: DynamicVNetAssignmentScope | None = Field(
        default=None, serialization_alias="dynamicVNetAssignmentScope"
    )
    endpoint_configuration: EndpointConfiguration | None = None
    public_ip_address_configuration: PublicIpAddressConfiguration | None = Field(
        default=None, serialization_alias="publicIPAddressConfiguration"
    )
    enable_accelerated_networking: bool | None = None
