"""What the cluster tests share: a vnet/subnet/NSG made through the network SDK, configs and helpers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from reconciler.emulator import Emulator
from reconciler.spec.config import Config

RG = "rg-dask"
LOCATION = "japaneast"
VNET = "dask-vnet"
SUBNET = "workers"
NSG = "dask-nsg"
FAST = 20_000.0
"""Simulated seconds per wall second: a 90 s VM create is a few milliseconds."""

MakeConfig = Callable[..., Config]


def azure_settings(connection: dict[str, Any]) -> dict[str, Any]:
    """The `azure:` section for an emulator, from its connection info (in process or the file)."""
    identity = connection["identity"]
    return {
        "arm_endpoint": connection["arm"]["url"],
        "authority": identity["authority"],
        "ca_bundle": connection["ca_bundle"],
        "subscription_id": connection["arm"]["subscription_id"],
        "auth": {
            "method": "client_secret",
            "tenant_id": identity["tenant_id"],
            "client_id": identity["client_id"],
            "client_secret": identity["client_secret"],
        },
    }


def cluster_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "location": LOCATION,
        "resource_group": RG,
        "vnet": VNET,
        "security_group": NSG,
        "n_workers": 3,
        "worker_options": {"nthreads": 2},
        "env_vars": {"EXTRA_PIP_PACKAGES": "s3fs"},
    }
    spec.update(overrides)
    return spec


def raw_config(
    emu: Emulator | dict[str, Any], clusters: dict[str, dict[str, Any]], **top: Any
) -> dict[str, Any]:
    """The config as a file would hold it (secrets in clear: a validated config masks them)."""
    connection = emu if isinstance(emu, dict) else emu.connection
    return {"azure": azure_settings(connection), "clusters": clusters, **top}


def config_of(emu: Emulator | dict[str, Any], clusters: dict[str, dict[str, Any]], **top: Any) -> Config:
    return Config.model_validate(raw_config(emu, clusters, **top))


async def make_network(network: Any) -> str:
    """The vnet (two subnets, `workers` first), and the NSG allowing 8786-8787; returns the subnet id."""
    vnet = await (
        await network.virtual_networks.begin_create_or_update(
            RG,
            VNET,
            {
                "location": LOCATION,
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.5.0.0/16"]},
                    "subnets": [
                        {"name": SUBNET, "properties": {"addressPrefix": "10.5.1.0/24"}},
                        {"name": "other", "properties": {"addressPrefix": "10.5.2.0/24"}},
                    ],
                },
            },
        )
    ).result()
    await (
        await network.network_security_groups.begin_create_or_update(
            RG,
            NSG,
            {
                "location": LOCATION,
                "properties": {
                    "securityRules": [
                        {
                            "name": "dask",
                            "properties": {
                                "protocol": "Tcp",
                                "sourcePortRange": "*",
                                "destinationPortRanges": ["8786", "8787"],
                                "sourceAddressPrefix": "*",
                                "destinationAddressPrefix": "*",
                                "access": "Allow",
                                "priority": 500,
                                "direction": "Inbound",
                            },
                        }
                    ]
                },
            },
        )
    ).result()
    return str(next(s.id for s in vnet.subnets if s.name == SUBNET))


class RecordedBodies(SansIOHTTPPolicy[Any, Any]):
    """Keeps the JSON body of every VM PUT as it leaves the client: the emulator, like Azure, never
    returns `customData`, so the cloud-init is checked on the wire."""

    def __init__(self) -> None:
        self.vm_puts: dict[str, dict[str, Any]] = {}

    def on_request(self, request: PipelineRequest[Any]) -> None:
        http = request.http_request
        if http.method == "PUT" and "/virtualMachines/" in http.url:
            name = http.url.split("/virtualMachines/")[1].split("?")[0]
            body = http.body if isinstance(http.body, bytes | str) else http.data
            if hasattr(body, "getvalue"):
                body = body.getvalue()
            self.vm_puts[name] = json.loads(body)

    def cloud_init(self, vm: str) -> str:
        return base64.b64decode(self.vm_puts[vm]["properties"]["osProfile"]["customData"]).decode()
