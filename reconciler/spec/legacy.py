"""`reconciler import-legacy`: the JSON pool-definition files admins keep today, turned into config YAML.

Those files hold a `common-config` object shared by every pool and one object per pool id, in the REST
API's camelCase; the script that consumed them picked a fixed list of fields out of each. The import is
generic instead (every key becomes its snake_case, so nothing an admin wrote is silently lost) and only
reproduces the script's decisions where it made one: a pool that enables autoscale gets the formula and
loses its fixed targets, any other pool is fixed-size whatever `common-config` says.

Registry passwords and other secrets are swapped for `${env:NAME}` references before anything is written
or printed; the result is then loaded like any config (with those variables stubbed) so the user learns
at once whether it validates.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, Final, TextIO

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from reconciler.spec.pool import AUTOSCALE_SETTINGS, FIXED_TARGETS

COMMON: Final = "common-config"
PLACEHOLDER_BATCH_URL: Final = "https://replace-me.region.batch.azure.com"

IRREGULAR: Final[Mapping[str, str]] = {
    "nodeAgentSKUId": "node_agent_sku_id",
    "publicIPAddressConfiguration": "public_ip_address_configuration",
    "dynamicVNetAssignmentScope": "dynamic_vnet_assignment_scope",
    "dynamicCNetAssignmentScope": "dynamic_vnet_assignment_scope",
    "ipAddressIds": "ip_address_ids",
    "userName": "username",
}
"""camelCase names the generic rule gets wrong, or that legacy files misspell."""

SECRET_KEYS: Final = frozenset({"password", "account_key", "sas_key"})
"""Keys whose plaintext value must never reach the YAML, stdout or stderr."""

SECRET_URL_KEYS: Final = frozenset({"http_url", "storage_container_url"})
"""URLs that are secrets when they carry a SAS signature (`sig=`)."""

USER_DATA_KEYS: Final = frozenset({"resource_tags", "metadata", "settings"})
"""Keys whose nested keys are the user's own names (tags, extension settings), kept as written."""

SECRET_MAPS: Final = frozenset({"protected_settings"})
"""Keys whose nested keys are the user's own names and whose every value is a secret."""

MINUTE_INTERVALS: Final = frozenset({"auto_scale_evaluation_interval", "resize_timeout"})
"""Durations legacy files sometimes give as a bare number, meaning minutes as the script's constants do."""


SECRET_SETTING: Final = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCOUNT_?KEY|CONNECTION_?STRING", re.I
)
"""Names of `{name, value}` settings (start task environment) whose value is taken for a secret."""

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_NAME = re.compile(r"[^A-Z0-9]+")


class LegacyError(Exception):
    """The legacy file cannot be converted; the message is one line meant for the user."""


def snake(name: str) -> str:
    """`nodeAgentSKUId` → `node_agent_sku_id`: the REST name as our YAML spells it."""
    if name in IRREGULAR:
        return IRREGULAR[name]
    return _BOUNDARY.sub("_", name).replace("-", "_").lower()


def env_name(*parts: str) -> str:
    """An environment variable name made of `parts`: upper case, anything else squeezed to `_`."""
    return _NOT_NAME.sub("_", "_".join(parts).upper()).strip("_")


@dataclass
class SecretRef:
    """One `${env:NAME}` that replaced a plaintext secret, and what it is for (never the value)."""

    name: str
    what: str
    used_by: list[str] = field(default_factory=list)


@dataclass
class Conversion:
    """The converted document and what the user must know about it."""

    document: CommentedMap
    secrets: list[SecretRef]
    notes: list[str]


class _Secrets:
    """Hands out one variable per distinct secret: the same registry login in many pools shares one."""

    def __init__(self) -> None:
        self.refs: dict[str, SecretRef] = {}
        self._values: dict[str, str] = {}

    def reference(self, bases: Sequence[str], value: str, what: str, owner: str) -> str:
        """`${env:NAME}` for `value`: the first of `bases` not yet holding another secret, else numbered."""
        name = next((b for b in bases if self._fits(b, value, what)), None)
        n = 2
        while name is None:
            if self._fits(f"{bases[-1]}_{n}", value, what):
                name = f"{bases[-1]}_{n}"
            n += 1
        self._values[name] = value
        ref = self.refs.setdefault(name, SecretRef(name, what))
        if owner not in ref.used_by:
            ref.used_by.append(owner)
        return f"${{env:{name}}}"

    def _fits(self, name: str, value: str, what: str) -> bool:
        return name not in self._values or (self._values[name] == value and self.refs[name].what == what)


class _Converter:
    """One conversion's walk over the legacy objects, collecting secrets and notes on the way."""

    def __init__(self) -> None:
        self.secrets = _Secrets()
        self.notes: list[str] = []

    def value(self, value: Any, key: str, owner: str, where: str) -> Any:
        if isinstance(value, Mapping) and key in SECRET_MAPS:
            return self._secret_map(value, owner, where)
        if isinstance(value, Mapping):
            return _plain_map(value) if key in USER_DATA_KEYS else self.mapping(value, owner, where)
        if isinstance(value, list):
            seq = CommentedSeq()
            for i, item in enumerate(value):
                seq.append(self.value(item, key if key in USER_DATA_KEYS else "", owner, f"{where}[{i}]"))
            return seq
        if key in MINUTE_INTERVALS and isinstance(value, int | float) and not isinstance(value, bool):
            text = f"PT{value:g}M"
            self.notes.append(f"{owner}: {where} {value} read as minutes ({text})")
            return text
        if isinstance(value, str) and "\n" in value:
            return LiteralScalarString(value)
        return value

    def mapping(self, value: Mapping[str, Any], owner: str, where: str) -> CommentedMap:
        out = CommentedMap()
        secrets: list[tuple[str, str]] = []
        setting = value.get("name")
        secret_setting = isinstance(setting, str) and SECRET_SETTING.search(setting) is not None
        for k, v in value.items():
            name = snake(str(k))
            if _is_secret(name, v) or (secret_setting and name == "value" and _is_secret("password", v)):
                secrets.append((name, v))
                out[name] = None
            else:
                out[name] = self.value(v, name, owner, f"{where}.{name}")
        for name, secret in secrets:
            bases, what = self._secret_names(out, name, owner, where)
            out[name] = self.secrets.reference(bases, secret, what, owner)
        return out

    def _secret_map(self, value: Mapping[str, Any], owner: str, where: str) -> CommentedMap:
        out = CommentedMap()
        for k, v in value.items():
            if isinstance(v, str) and v and not v.startswith("${"):
                bases = [env_name(owner, str(k))]
                out[str(k)] = self.secrets.reference(bases, v, f"{k} at {where}", owner)
            else:
                out[str(k)] = v
        return out

    @staticmethod
    def _secret_names(siblings: Mapping[str, Any], key: str, owner: str, where: str) -> tuple[list[str], str]:
        """Variable names to try for a secret, and what it is, judged from the object that holds it."""
        generic = env_name(owner, where.rsplit(".", 1)[-1], key)
        server = siblings.get("registry_server")
        user = str(siblings.get("username") or "")
        if isinstance(server, str):
            prefix = "ACR" if server.lower().endswith(".azurecr.io") else "REGISTRY"
            names = [env_name(prefix, server, key), env_name(prefix, server, user, key)]
            return names, f"{key} of {user or 'the registry user'} at {server}"
        account = siblings.get("name")
        if isinstance(account, str) and key == "value":
            return [env_name(account), env_name(owner, account)], f"value of setting {account}"
        if isinstance(account, str) and key == "password":
            return [env_name("USER", account, key), env_name(owner, "USER", account, key)], (
                f"password of user account {account}"
            )
        return [generic], f"{key} at {where}"


def _is_secret(key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value or value.startswith("${"):
        return False
    return key in SECRET_KEYS or (key in SECRET_URL_KEYS and "sig=" in value)


def _plain_map(value: Mapping[str, Any]) -> CommentedMap:
    out = CommentedMap()
    for k, v in value.items():
        out[str(k)] = _plain_map(v) if isinstance(v, Mapping) else v
    return out


def convert(
    legacy: Mapping[str, Any], account: str, batch_url: str | None = None, source_name: str = "legacy file"
) -> Conversion:
    """The config document for `legacy` (already parsed JSON); raises `LegacyError` on a wrong shape."""
    converter = _Converter()
    common_raw = legacy.get(COMMON, {})
    if not isinstance(common_raw, Mapping):
        raise LegacyError(f"{source_name}: '{COMMON}' must be an object")
    pools_raw = {k: v for k, v in legacy.items() if k != COMMON}
    for pool_id, body in pools_raw.items():
        if not isinstance(body, Mapping):
            raise LegacyError(f"{source_name}: pool '{pool_id}' must be an object, not {type(body).__name__}")

    common = converter.mapping(common_raw, "defaults", "defaults.pool")
    common_autoscale = common.pop("enable_auto_scale", None)
    if common_autoscale:
        converter.notes.append(
            f"{COMMON}.enableAutoScale is true: pools without their own enableAutoScale stay fixed-size"
        )

    document = CommentedMap()
    accounts = CommentedMap()
    entry = CommentedMap()
    entry["batch_url"] = batch_url or PLACEHOLDER_BATCH_URL
    if not batch_url:
        entry.yaml_add_eol_comment("TODO: the account's URL (--batch-url)", "batch_url")
    entry["auth"] = CommentedMap([("method", "default")])
    accounts[account] = entry
    document["accounts"] = accounts
    if common:
        document["defaults"] = CommentedMap([("pool", common)])
    pools = CommentedMap()
    for pool_id, body in pools_raw.items():
        pools[pool_id] = _pool(converter, str(pool_id), body, account)
    document["pools"] = pools
    return Conversion(document, list(converter.secrets.refs.values()), converter.notes)


def _pool(converter: _Converter, pool_id: str, body: Mapping[str, Any], account: str) -> CommentedMap:
    converted = converter.mapping(body, pool_id, f"pools.{pool_id}")
    pool = CommentedMap([("account", account)])
    if converted.get("enable_auto_scale"):
        dropped = [k for k in FIXED_TARGETS if converted.pop(k, None) is not None]
        if dropped:
            converter.notes.append(f"{pool_id}: autoscale pool, {', '.join(dropped)} dropped")
    else:
        dropped = [k for k in AUTOSCALE_SETTINGS if converted.pop(k, None) is not None]
        if dropped:
            converter.notes.append(f"{pool_id}: enableAutoScale is not set, {', '.join(dropped)} dropped")
    pool.update(converted)
    return pool


def dump(conversion: Conversion, source_name: str) -> str:
    """The YAML text: block style, keys in the legacy order, a header saying where it came from."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    conversion.document.yaml_set_start_comment(
        f"Converted from the legacy pool definitions in {source_name}.\n"
        "Keys are the snake_case of the Batch REST API; `defaults.pool` holds what was `common-config`."
    )
    document = conversion.document
    for key in list(document)[1:]:
        document.yaml_set_comment_before_after_key(key, before="\n")
    for pool_id in list(document.get("pools", {}))[1:]:
        document["pools"].yaml_set_comment_before_after_key(pool_id, before="\n", indent=2)
    out = StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def read_legacy(source: Path) -> dict[str, Any]:
    """The parsed file, or a `LegacyError` naming FILE:LINE:COL for JSON the parser rejects."""
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise LegacyError(f"{source}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise LegacyError(f"{source}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LegacyError(f"{source}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise LegacyError(f"{source}:1:1: expected an object of pool definitions, not {type(data).__name__}")
    return data


def validation_problems(text: str, secrets: Sequence[SecretRef], shown_as: str) -> list[str]:
    """Problems `load_config` finds in `text`, with the referenced variables stubbed and the file named
    `shown_as`, so validation needs neither the real passwords nor a file the user asked for."""
    from reconciler.spec.errors import ConfigError
    from reconciler.spec.loader import load_config

    env = {ref.name: "stub-for-validation" for ref in secrets}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "imported.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config([path], env=env)
        except ConfigError as err:
            return [line.replace(str(path), shown_as) for line in str(err).splitlines()]
    return []


def import_legacy_command(
    source: Path,
    output: Path | None,
    account: str,
    batch_url: str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Convert `source`, write the YAML to `output` (or stdout), report variables and problems on stderr."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        conversion = convert(read_legacy(source), account, batch_url, source.name)
    except LegacyError as problem:
        print(problem, file=err)
        return 1
    text = dump(conversion, source.name)
    shown_as = str(output) if output is not None else "<stdout>"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        out.write(text)
    for note in conversion.notes:
        print(f"note: {note}", file=err)
    if conversion.secrets:
        print("Set these environment variables before using the config:", file=err)
        for ref in conversion.secrets:
            print(f"  {ref.name}: {ref.what} (pools: {', '.join(ref.used_by)})", file=err)
    if not batch_url:
        print(f"note: accounts.{account}.batch_url is a placeholder; pass --batch-url or edit it", file=err)
    problems = validation_problems(text, conversion.secrets, shown_as)
    if problems:
        print(f"The converted config does not validate ({len(problems)} problem(s)):", file=err)
        for line in problems:
            print(line, file=err)
        return 1
    return 0
