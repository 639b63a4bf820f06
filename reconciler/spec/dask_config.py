"""Cluster defaults from the dask config, read the way dask-cloudprovider's `AzureVMCluster` reads them.

Admins who already run Dask on Azure keep their resource group, vnet, security group, image and sizes in
dask's YAML config (`~/.config/dask/*.yaml`, `/etc/dask`, `$DASK_CONFIG`, ...) or in `DASK_*` environment
variables. Reading the same keys from the same places lets such a setup carry over without being
restated in our config: a cluster's own keys still win, because the loader merges these *under* it.

Only what the user's config sets is returned. dask-cloudprovider's built-in defaults (which its import
copies into `~/.config/dask/cloudprovider.yaml`) are carried by the cluster model itself, so a value equal
to one of them is left out; that keeps the merged cluster free of noise and the model the single place
where a default lives.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

import dask.config

# dask-cloudprovider reads `location`, `resource_group` and `subscription_id` from `cloudprovider.azure`
# and the rest from `cloudprovider.azure.azurevm`; everything else (n_workers, worker_options, env_vars,
# ...) is a constructor argument only, so the dask config never supplies it.
_AZURE_KEYS: Final = ("location", "resource_group", "subscription_id")
_AZUREVM_KEYS: Final = (
    "vnet",
    "subnet",
    "security_group",
    "public_ingress",
    "vm_size",
    "scheduler_vm_size",
    "disk_size",
    "docker_image",
    "vm_image",
    "bootstrap",
    "auto_shutdown",
    "marketplace_plan",
    "extra_vm_options",
)

BUILTIN_DEFAULTS: Final[Mapping[str, Any]] = {
    "public_ingress": True,
    "vm_size": "Standard_DS1_v2",
    "disk_size": 50,
    "docker_image": "daskdev/dask:latest",
    "vm_image": {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest"},
    "bootstrap": True,
    "auto_shutdown": True,
}
"""dask-cloudprovider's own defaults (its `cloudprovider.yaml`) for the keys above that have one."""


def config_paths(env: Mapping[str, str] | None = None) -> list[str]:
    """dask's search path for YAML config, computed from `env` instead of the process environment.

    dask computes its own list once at import; recomputing it lets a caller (and a test) say which
    `DASK_CONFIG`, `DASK_ROOT_CONFIG` and `HOME` apply without touching `os.environ`.
    """
    env = os.environ if env is None else env
    home = env.get("HOME") or os.path.expanduser("~")
    paths = [
        env.get("DASK_ROOT_CONFIG", "/etc/dask"),
        os.path.join(sys.prefix, "etc", "dask"),
        *(os.path.join(prefix, "etc", "dask") for prefix in site.PREFIXES),
        os.path.join(home, ".config", "dask"),
    ]
    if "DASK_CONFIG" in env:
        paths.append(env["DASK_CONFIG"])
    # Later entries take precedence, so a duplicate keeps its last position, as dask does.
    return list(reversed(list(dict.fromkeys(reversed(paths)))))


def cluster_defaults(
    env: Mapping[str, str] | None = None, paths: Sequence[str] | None = None
) -> dict[str, Any]:
    """Cluster keys set by the dask config in `paths` (dask's locations) and `DASK_*` variables of `env`.

    Pure: dask's global config is neither read nor changed, so the result depends only on the arguments
    (and the files they point at).
    """
    env = os.environ if env is None else env
    search = list(paths) if paths is not None else config_paths(env)
    collected = dask.config.collect(paths=search, env=env)
    found: dict[str, Any] = {}
    for prefix, keys in (
        ("cloudprovider.azure", _AZURE_KEYS),
        ("cloudprovider.azure.azurevm", _AZUREVM_KEYS),
    ):
        for key in keys:
            value = _lookup(collected, f"{prefix}.{key}")
            if key == "vm_image" and isinstance(value, Mapping) and "id" not in value:
                # dask-cloudprovider lays the configured image over its default one key by key.
                value = {**BUILTIN_DEFAULTS["vm_image"], **value}
            if value is None or value == {} or value == BUILTIN_DEFAULTS.get(key):
                continue
            found[key] = value
    return found


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    """`dask.config.get` on a given dict: treats `resource-group` and `resource_group` as one key."""
    try:
        return dask.config.get(key, config=dict(config))
    except (KeyError, TypeError):
        return None
