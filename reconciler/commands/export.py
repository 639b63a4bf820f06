"""`reconciler export --account NAME`: the account's pools as config YAML, to adopt pools older than the tool.

The YAML is built from the same REST→spec conversion the plan compares with
(`reconciler.azure.rest.canonical_from_rest`, then `comparable_view`), so the exported pools plan as in
sync against the pools they came from; service defaults are left out to keep the file short. The
tool's own `reconciler.*` metadata is not exported. Every pool is written with `adopt: true`: the point
of exporting is to bring the pools under the tool, and the first `apply` then writes the ownership
marker onto each pool that still matches its exported spec (one that changed meanwhile is held, never
touched), after which it can be refreshed like any pool the tool built.

Secrets: the service never returns passwords and keys, and what it does return (a SAS URL) must not be
written to a file. Every secret field the service filled, or the model requires, becomes an
`${env:NAME}` reference, and the names are listed on stderr for the admin to set. Extension
`protected_settings` are not returned at all and cannot be exported. The file carries the account block
of the config it was exported with (and its `azure` settings), secrets again as references, so it
validates on its own.

The output is checked with `load_config` before it is written: an export that would not validate is an
error, never a file.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from reconciler.azure.clients import AzureClients
from reconciler.azure.rest import canonical_from_rest, comparable_view, rest_name, unwrap
from reconciler.commands.common import CLI_CALLER, EXIT_OK, CommandError, load, run
from reconciler.spec.config import Config
from reconciler.spec.pool import Pool
from reconciler.spec.secrets import MASK, Secret

HEADER = "# Exported by `reconciler export --account {account}`; set the variables listed on stderr.\n"
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


def export_command(config_paths: list[Path], account: str, output: Path | None) -> int:
    def body() -> int:
        config = load(config_paths)
        if account not in config.accounts:
            known = ", ".join(sorted(config.accounts)) or "none"
            raise CommandError(f"account {account!r} is not declared in the config (declared: {known})")
        bodies = asyncio.run(_list_pools(config, account))
        env_names: list[str] = []
        document = {
            **_account_section(config, account, env_names),
            "pools": {str(b["id"]): _pool_section(b, account, env_names) for b in bodies},
        }
        text = HEADER.format(account=account) + _dump(document)
        _check(text, env_names)
        if output is None:
            sys.stdout.write(text)
        else:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"{output}: cannot write: {exc.strerror or exc}") from None
        if env_names:
            print("set these environment variables before using the file:", file=sys.stderr)
            for name in env_names:
                print(f"  {name}", file=sys.stderr)
        return EXIT_OK

    return run(body)


async def _list_pools(config: Config, account: str) -> list[dict[str, Any]]:
    from azure.core.exceptions import AzureError as SdkError

    from reconciler.azure.errors import classify

    async with AzureClients(config, caller=CLI_CALLER) as clients:
        try:
            listed = [p.as_dict() async for p in clients.batch(account).list_pools()]
        except (SdkError, OSError) as exc:
            raise CommandError(f"account {account}: {classify(exc).describe()}") from None
    return sorted((b for b in listed if b.get("state") != "deleting"), key=lambda b: str(b["id"]))


def _env_name(*parts: str) -> str:
    return _NOT_NAME.sub("_", "_".join(parts)).strip("_").upper()


def _account_section(config: Config, account: str, env_names: list[str]) -> dict[str, Any]:
    """The account (and non-default `azure` settings) as the config declares them, secrets as references."""
    section: dict[str, Any] = {}
    azure = config.azure.model_dump(mode="json", exclude_defaults=True)
    if azure:
        section["azure"] = _referenced(azure, config.azure, ("AZURE",), env_names)
    declared = config.accounts[account]
    dumped = declared.model_dump(mode="json", exclude_none=True)
    section["accounts"] = {account: _referenced(dumped, declared, ("BATCH", account), env_names)}
    return section


def _referenced(data: Any, model: Any, name: tuple[str, ...], env_names: list[str]) -> Any:
    """`data` (a dump of `model`) with every literal secret, shown as the mask, made an env reference."""
    if isinstance(model, Secret):
        if model.reference is not None:
            return model.reference
        env = _env_name(*name)
        env_names.append(env)
        return f"${{env:{env}}}"
    if isinstance(model, BaseModel) and isinstance(data, dict):
        return {
            key: _referenced(value, getattr(model, key, None), (*name, key), env_names)
            for key, value in data.items()
        }
    if data == MASK:
        env = _env_name(*name)
        env_names.append(env)
        return f"${{env:{env}}}"
    return data


def _pool_section(body: Mapping[str, Any], account: str, env_names: list[str]) -> dict[str, Any]:
    pool_id = str(body["id"])
    view = _escaped(comparable_view(canonical_from_rest(body)))
    if not view.get("enable_auto_scale") and "target_low_priority_nodes" not in view:
        view.setdefault("target_dedicated_nodes", 0)
    with_secrets = _add_secrets(Pool, view, body, (pool_id,), env_names)
    ordered = {name: with_secrets[name] for name in Pool.model_fields if name in with_secrets}
    return {"account": account, "adopt": True, **ordered}


def _escaped(value: Any) -> Any:
    """Values as the loader reads them back: a literal `${` is written `$${`, or it would resolve."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _add_secrets(
    model: type[BaseModel],
    data: Mapping[str, Any],
    rest: Mapping[str, Any],
    name: tuple[str, ...],
    env_names: list[str],
) -> dict[str, Any]:
    """Put an `${env:..}` reference where the service holds a secret the views leave out."""
    out = dict(data)
    for field, info in model.model_fields.items():
        annotation = unwrap(
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        )
        observed = rest.get(rest_name(field, info))
        if annotation is Secret:
            needed = observed is not None or info.is_required()
            if field == "password" and (data.get("username") or data.get("user_name")):
                needed = True
            if needed and field not in out:
                env = _env_name(*name, field)
                env_names.append(env)
                out[field] = f"${{env:{env}}}"
        elif _is_model(annotation) and isinstance(observed, Mapping) and isinstance(out.get(field), Mapping):
            out[field] = _add_secrets(annotation, out[field], observed, (*name, field), env_names)
        elif (
            get_origin(annotation) is list and isinstance(observed, list) and isinstance(out.get(field), list)
        ):
            (item,) = get_args(annotation) or (Any,)
            item = unwrap(item)
            if _is_model(item) and len(observed) == len(out[field]):
                out[field] = [
                    _add_secrets(item, d, r, (*name, field, str(i)), env_names)
                    if isinstance(d, Mapping) and isinstance(r, Mapping)
                    else d
                    for i, (d, r) in enumerate(zip(out[field], observed, strict=True))
                ]
    return out


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _block(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _block(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_block(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _dump(document: Mapping[str, Any]) -> str:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    stream = io.StringIO()
    yaml.dump(_block(dict(document)), stream)
    return stream.getvalue()


def _check(text: str, env_names: list[str]) -> None:
    """Load the export as a user would, with stand-ins for the variables they will set."""
    from reconciler.spec.errors import ConfigError
    from reconciler.spec.loader import load_config

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export.yaml"
        path.write_text(text, encoding="utf-8")
        env = {**os.environ, **{name: f"stand-in-{name.lower()}" for name in env_names}}
        try:
            load_config([path], env=env)
        except ConfigError as exc:
            raise CommandError(f"the export does not validate (a bug, please report it):\n{exc}") from None
