"""The cloud-init a cluster VM boots with: Docker, the admin's bootstrap lines, then one Dask container.

Rendered from a template shipped in the package, as dask-cloudprovider does, so a cluster declared here
boots the way an `AzureVMCluster` VM does. The container command is an argument list (cloud-init runs it
without a shell), so option values and environment variables reach Dask exactly as declared.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping
from typing import Any, Final, Literal

import jinja2

from reconciler.spec.cluster import Cluster

MAX_CUSTOM_DATA: Final = 87_380
"""Azure's limit on `osProfile.customData`, in base64 characters."""
SCHEDULER_PORT: Final = 8786

Role = Literal["scheduler", "worker"]

_ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("reconciler.plan", "templates"),
    autoescape=False,  # noqa: S701 - YAML, not HTML; every value goes through tojson
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


class CustomDataTooLarge(ValueError):
    """The rendered cloud-init exceeds what Azure accepts; the config must shrink, retrying cannot help."""


def option_flags(options: Mapping[str, Any]) -> list[str]:
    """`{"idle_timeout": "1h", "dashboard": False}` as `--idle-timeout 1h --no-dashboard`, Dask CLI style.

    A mapping becomes one `k=v k=v` argument, the form of `dask worker --resources`.
    """
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + flag[2:])
        elif value is None:
            continue
        elif isinstance(value, dict):
            flags.extend([flag, " ".join(f"{k}={v}" for k, v in value.items())])
        elif isinstance(value, list | tuple):
            for item in value:
                flags.extend([flag, str(item)])
        else:
            flags.extend([flag, str(value)])
    return flags


def dask_command(cluster: Cluster, role: Role, scheduler_ip: str | None) -> list[str]:
    """The `dask scheduler` / `dask worker tcp://<ip>:8786` command run inside the container."""
    if role == "scheduler":
        return ["dask", "scheduler", *option_flags(cluster.scheduler_options)]
    if not scheduler_ip:
        raise ValueError("a worker needs the scheduler's private IP")
    command = ["dask", "worker", f"tcp://{scheduler_ip}:{SCHEDULER_PORT}"]
    if cluster.worker_class == "dask.distributed.Worker":
        command.append("--no-nanny")
    elif cluster.worker_class != "dask.distributed.Nanny":
        command.extend(["--worker-class", cluster.worker_class])
    return [*command, *option_flags(cluster.worker_options)]


def docker_command(cluster: Cluster, role: Role, scheduler_ip: str | None) -> list[str]:
    env: list[str] = []
    for name, value in cluster.env_vars.items():
        env.extend(["-e", f"{name}={value}"])
    return [
        "docker",
        "run",
        "--net=host",
        *env,
        *shlex.split(cluster.docker_args),
        cluster.docker_image,
        *dask_command(cluster, role, scheduler_ip),
    ]


def render_cloud_init(cluster: Cluster, role: Role, scheduler_ip: str | None = None) -> str:
    return _ENV.get_template("cloud-init.yaml.j2").render(
        bootstrap=cluster.bootstrap,
        extra_bootstrap=list(cluster.extra_bootstrap),
        docker_command=docker_command(cluster, role, scheduler_ip),
        auto_shutdown=cluster.auto_shutdown,
    )


def custom_data(cluster: Cluster, role: Role, scheduler_ip: str | None = None, *, name: str = "") -> str:
    """The base64 `customData`; `CustomDataTooLarge`, naming cluster and sizes, when Azure would refuse it."""
    encoded = base64.b64encode(render_cloud_init(cluster, role, scheduler_ip).encode("utf-8")).decode("ascii")
    if len(encoded) > MAX_CUSTOM_DATA:
        raise CustomDataTooLarge(
            f"cluster {name or '?'}: the {role}'s cloud-init is {len(encoded)} base64 characters, above "
            f"Azure's limit of {MAX_CUSTOM_DATA}; shorten extra_bootstrap, env_vars or the Dask options"
        )
    return encoded
