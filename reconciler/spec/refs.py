"""`${env:NAME}`, `${file:/path}` and `${keyvault:URL}` references inside config values.

Environment variables and files are read once, at load time, so a missing one fails `validate` rather
than a 2 a.m. refresh. Key Vault secrets are fetched only when a value is first revealed (an SDK call
needs it): `validate` then works on a machine without access to the vault, and a secret rotated in the
vault is picked up on the next reload without the config changing. A resolved value remembers the text
it came from, so a secret field shows `${env:BATCH_KEY}` and never the key.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from reconciler.spec.secrets import Secret

MAX_FILE_BYTES = 1024 * 1024

_REF = re.compile(r"\$\$\{|\$\{(env|file|keyvault):([^}]*)\}")
_KEYVAULT_FORM = "${keyvault:https://VAULT.vault.azure.net/secrets/NAME[/VERSION]}"


class RefStr(str):
    """A value read through a reference; a `Secret` built from it displays `reference` instead."""

    reference: str

    def __new__(cls, value: str, reference: str) -> RefStr:
        made = super().__new__(cls, value)
        made.reference = reference
        return made


@dataclass(frozen=True)
class KeyVaultRef:
    """One secret in one vault, optionally pinned to a version."""

    vault_url: str
    name: str
    version: str | None = None


class KeyVaultResolver(Protocol):
    """Fetches a secret's current value; called at most once per value, on first reveal."""

    def __call__(self, ref: KeyVaultRef) -> str: ...


class AzureKeyVault:
    """Resolves through azure-keyvault-secrets; the credential and clients are made on first use."""

    def __init__(self, credential: Any = None) -> None:
        self._credential = credential
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, ref: KeyVaultRef) -> str:
        client = self._client(ref.vault_url)
        value = client.get_secret(ref.name, ref.version).value
        if value is None:
            raise LookupError(f"Key Vault secret {ref.name} in {ref.vault_url} has no value")
        return str(value)

    def _client(self, vault_url: str) -> Any:
        with self._lock:
            if vault_url not in self._clients:
                from azure.keyvault.secrets import SecretClient

                if self._credential is None:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
                self._clients[vault_url] = SecretClient(vault_url=vault_url, credential=self._credential)
            return self._clients[vault_url]


class UnresolvedReference(ValueError):
    """A reference that cannot be resolved; the message is safe to show (it never holds a value)."""


def has_reference(text: str) -> bool:
    return _REF.search(text) is not None


def resolve(
    text: str,
    *,
    env: Mapping[str, str],
    base_dir: Path,
    keyvault: KeyVaultResolver,
) -> str | Secret:
    """`text` with its references replaced; raises `UnresolvedReference` naming the first bad one.

    Returns `text` itself when it holds no reference, a `RefStr` when something was substituted, and a
    lazy `Secret` for a `${keyvault:...}` reference (which must be the whole value).
    """
    matches = list(_REF.finditer(text))
    if not matches:
        return text
    out: list[str] = []
    substituted = False
    end = 0
    for match in matches:
        out.append(text[end : match.start()])
        end = match.end()
        scheme, arg = match.group(1), match.group(2)
        if scheme is None:
            out.append("${")
            continue
        substituted = True
        if scheme == "env":
            out.append(_env(arg, env))
        elif scheme == "file":
            out.append(_file(arg, base_dir))
        else:
            if match.span() != (0, len(text)):
                raise UnresolvedReference(
                    f"a ${{keyvault:...}} reference must be the whole value, as in {_KEYVAULT_FORM}"
                )
            ref = parse_keyvault(arg)
            return Secret(resolver=functools.partial(keyvault, ref), reference=text)
    out.append(text[end:])
    value = "".join(out)
    return RefStr(value, text) if substituted else value


def parse_keyvault(url: str) -> KeyVaultRef:
    parts = urlsplit(url.strip())
    segments = [s for s in parts.path.split("/") if s]
    if (
        parts.scheme != "https"
        or not parts.hostname
        or len(segments) not in (2, 3)
        or segments[0] != "secrets"
        or parts.query
        or parts.fragment
    ):
        raise UnresolvedReference(f"a Key Vault reference has the form {_KEYVAULT_FORM}")
    version = segments[2] if len(segments) == 3 else None
    return KeyVaultRef(f"https://{parts.netloc}", segments[1], version)


def _env(name: str, env: Mapping[str, str]) -> str:
    name = name.strip()
    if not name:
        raise UnresolvedReference("${env:} needs a variable name")
    value = env.get(name)
    if value is None:
        raise UnresolvedReference(f"environment variable {name} is not set")
    return value


def _file(name: str, base_dir: Path) -> str:
    name = name.strip()
    if not name:
        raise UnresolvedReference("${file:} needs a path")
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        if not path.is_file():
            raise UnresolvedReference(f"file {path} does not exist or is not a regular file")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UnresolvedReference(f"cannot read file {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UnresolvedReference(f"file {path} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UnresolvedReference(f"file {path} is not UTF-8 text") from None
