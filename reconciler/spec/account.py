"""Batch accounts and the credentials used to reach them and ARM.

Each credential kind is its own model, told apart by `method`, so a config can only hold the keys that
kind takes: a client secret next to a certificate path is an error here rather than a credential that
silently ignores one of them. Every key, secret and password is a `Secret`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.spec.base import Rejects, SpecModel, error_at, reraise
from reconciler.spec.secrets import Secret

_GUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DOMAIN: Final = re.compile(r"(?=.{4,253}$)([a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}")
_RESOURCE_GROUP: Final = re.compile(r"[-\w.()]{1,90}")
_BATCH_ACCOUNT: Final = re.compile(r"[a-z0-9]{3,24}")
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_BATCH_SUFFIXES: Final = (".batch.azure.com", ".batch.chinacloudapi.cn", ".batch.usgovcloudapi.net")

AUTH_METHODS: Final = (
    "default",
    "certificate",
    "client_secret",
    "managed_identity",
    "azure_cli",
    "shared_key",
)


def guid_problem(value: str) -> str | None:
    """Why `value` is not a GUID (subscriptions, client ids), or None."""
    if not _GUID.fullmatch(value):
        return "must be a GUID like 11111111-2222-3333-4444-555555555555"
    return None


def resource_group_problem(value: str) -> str | None:
    """Why ARM would reject this resource group name, or None."""
    if not _RESOURCE_GROUP.fullmatch(value) or value.endswith("."):
        return (
            "a resource group name is 1 to 90 letters, digits, '-', '_', '.', '(' or ')' "
            "and does not end with '.'"
        )
    return None


ResourceGroupName = Annotated[str, Rejects("resource_group", resource_group_problem)]


def is_local_host(host: str | None) -> bool:
    """True for the loopback names where the local emulator listens (and plain http is allowed)."""
    return host is not None and host.lower() in _LOCAL_HOSTS


def endpoint_problem(url: str, *, what: str) -> str | None:
    """Why `url` cannot serve as an Azure endpoint, or None.

    https only, except on loopback where the emulator may speak plain http; a path only on loopback,
    where the emulator tells accounts apart by `/<account>`.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{what} must be a URL like https://host"
    if not host or parts.scheme not in {"http", "https"}:
        return f"{what} must be a URL like https://host"
    if parts.username is not None or parts.password is not None:
        return f"{what} must not hold credentials"
    if parts.query or parts.fragment:
        return f"{what} must not have a query or fragment"
    local = is_local_host(host)
    if parts.scheme == "http" and not local:
        return f"{what} must use https (plain http only for the local emulator on 127.0.0.1/localhost)"
    if parts.path.strip("/") and not local:
        return f"{what} must not have a path (got {parts.path})"
    return None


def _guid(value: str) -> str:
    problem = guid_problem(value)
    if problem:
        raise PydanticCustomError("guid", problem)
    return value.lower()


def _tenant(value: str) -> str:
    if _GUID.fullmatch(value):
        return value.lower()
    if _DOMAIN.fullmatch(value):
        return value
    raise PydanticCustomError(
        "tenant_id", "must be a tenant GUID or a verified domain like contoso.onmicrosoft.com"
    )


Guid = Annotated[
    str,
    BeforeValidator(lambda v: _guid(v) if isinstance(v, str) else v),
    WithJsonSchema({"type": "string", "pattern": f"^{_GUID.pattern}$", "description": "A GUID."}),
]
"""A GUID, lower-cased so that comparisons and hashes do not depend on how it was typed."""

TenantId = Annotated[str, BeforeValidator(lambda v: _tenant(v) if isinstance(v, str) else v)]


class DefaultAuth(SpecModel):
    """azure-identity's DefaultAzureCredential: environment, workload identity, managed identity, CLI."""

    method: Literal["default"]


class CertificateAuth(SpecModel):
    """A service principal signing in with a certificate (PEM or PKCS#12)."""

    method: Literal["certificate"]
    tenant_id: TenantId
    client_id: Guid
    certificate_path: Path
    certificate_password: Secret | None = None
    """Only for an encrypted key or a password-protected PKCS#12 file."""
    send_certificate_chain: bool = False
    """Send the x5c header, needed for subject-name/issuer authentication."""


class ClientSecretAuth(SpecModel):
    """A service principal signing in with a client secret."""

    method: Literal["client_secret"]
    tenant_id: TenantId
    client_id: Guid
    client_secret: Secret


class ManagedIdentityAuth(SpecModel):
    """The identity of the VM or container instance this runs on."""

    method: Literal["managed_identity"]
    client_id: Guid | None = None
    """For a user-assigned identity; leave out for the system-assigned one."""


class AzureCliAuth(SpecModel):
    """Whoever ran `az login` on this machine; for a person trying things, not for the service."""

    method: Literal["azure_cli"]


class SharedKeyAuth(SpecModel):
    """A Batch account key. Reaches the Batch data plane only: ARM calls still need another credential."""

    method: Literal["shared_key"]
    key: Secret


def _validate_auth(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Name the allowed methods when `method` is missing or unknown, instead of a bare tag error.

    Errors inside a kind are given back without the union's tag in their location, so they point at a
    key the user wrote (`auth.tenant_id`, not `auth.certificate.tenant_id`).
    """
    if isinstance(value, dict):
        value = _pick_method(value)
    try:
        return handler(value)
    except ValidationError as exc:
        errors = exc.errors()
        for err in errors:
            if err["loc"] and err["loc"][0] in AUTH_METHODS:
                err["loc"] = err["loc"][1:]
        raise reraise(errors) from None


def _pick_method(value: dict[str, Any]) -> dict[str, Any]:
    allowed = ", ".join(AUTH_METHODS)
    if "method" not in value:
        if not value:
            return {"method": "default"}
        raise PydanticCustomError("auth_method_missing", f"auth needs a method: one of {allowed}")
    method = value["method"]
    if method not in AUTH_METHODS:
        close = difflib.get_close_matches(str(method), AUTH_METHODS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise PydanticCustomError(
            "auth_method_unknown",
            f"unknown auth method '{method}' (allowed: {allowed}){hint}",
        )
    return value


Auth = Annotated[
    DefaultAuth | CertificateAuth | ClientSecretAuth | ManagedIdentityAuth | AzureCliAuth | SharedKeyAuth,
    Field(discriminator="method"),
    WrapValidator(_validate_auth),
]
"""How to obtain a credential; `method` selects the kind and the keys it takes."""


class Proxies(SpecModel):
    """HTTP proxies for one account's calls, as azure-core's ProxyPolicy takes them."""

    http: str | None = None
    https: str | None = None

    @field_validator("http", "https")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            host = None
        if not host or parts.scheme not in {"http", "https"}:
            raise PydanticCustomError("proxy_url", "must be a proxy URL like http://proxy.corp:3128")
        if parts.password is not None:
            raise PydanticCustomError(
                "proxy_password",
                "must not hold a password (it would show wherever the config is printed); "
                "set HTTPS_PROXY in the service's environment instead",
            )
        return value


class Account(SpecModel):
    """One Batch account, by the short name pools refer to it with."""

    batch_url: str
    """The account endpoint, e.g. https://prodbatch.japaneast.batch.azure.com."""
    subscription_id: Guid | None = None
    resource_group: ResourceGroupName | None = None
    account_name: str | None = None
    """The Batch account's name in ARM; with subscription_id and resource_group, needed by identity pools."""
    auth: Auth | None = None
    """Leave out to use azure.auth."""
    proxies: Proxies | None = None

    @field_validator("batch_url")
    @classmethod
    def _batch_url(cls, value: str) -> str:
        problem = endpoint_problem(value, what="batch_url")
        if problem:
            raise PydanticCustomError("batch_url", problem)
        return value.rstrip("/")

    @field_validator("account_name")
    @classmethod
    def _account_name(cls, value: str | None) -> str | None:
        if value is not None and not _BATCH_ACCOUNT.fullmatch(value):
            raise PydanticCustomError(
                "account_name", "a Batch account name is 3 to 24 lowercase letters and digits"
            )
        return value

    @model_validator(mode="after")
    def _name_matches_url(self) -> Account:
        host = (urlsplit(self.batch_url).hostname or "").lower()
        if self.account_name is not None and host.endswith(_BATCH_SUFFIXES):
            label = host.split(".", 1)[0]
            if label != self.account_name:
                raise error_at(
                    ("account_name",),
                    "account_name_mismatch",
                    f"does not match batch_url, which names account '{label}'",
                    self.account_name,
                )
        if isinstance(self.auth, SharedKeyAuth) and self.batch_account_name is None:
            raise error_at(
                ("account_name",),
                "missing",
                "required with shared_key auth: this batch_url does not name the account",
            )
        return self

    @property
    def is_local(self) -> bool:
        """True when batch_url points at the local emulator."""
        return is_local_host(urlsplit(self.batch_url).hostname)

    @property
    def batch_account_name(self) -> str | None:
        """The name shared-key signing uses: account_name, else what batch_url says.

        The emulator's `/<account>` path names it there; a real endpoint's first host label does.
        """
        if self.account_name is not None:
            return self.account_name
        parts = urlsplit(self.batch_url)
        host = parts.hostname or ""
        if is_local_host(host):
            segment = parts.path.strip("/").split("/", 1)[0]
            return segment or None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return host.split(".", 1)[0]
        return None

    @property
    def arm_coordinates_missing(self) -> tuple[str, ...]:
        """Which of the ARM coordinates (needed for management-plane pool operations) are not set."""
        return tuple(
            name
            for name in ("subscription_id", "resource_group", "account_name")
            if getattr(self, name) is None
        )


class AzureSettings(SpecModel):
    """Where Azure is and who we are to ARM; the public cloud and DefaultAzureCredential unless told."""

    arm_endpoint: str = "https://management.azure.com"
    authority: str = "https://login.microsoftonline.com"
    ca_bundle: Path | None = None
    """Extra CA certificates to trust (PEM): private endpoints behind a TLS-inspecting proxy, the emulator."""
    subscription_id: Guid | None = None
    """Subscription for clusters that name none (and whose dask config names none)."""
    auth: Auth = DefaultAuth(method="default")
    """The credential for ARM calls, and for accounts that name none."""

    @field_validator("arm_endpoint", "authority")
    @classmethod
    def _endpoint(cls, value: str, info: Any) -> str:
        problem = endpoint_problem(value, what=info.field_name)
        if problem:
            raise PydanticCustomError("endpoint", problem)
        return value.rstrip("/")

    @field_validator("auth")
    @classmethod
    def _not_shared_key(cls, value: Any) -> Any:
        if isinstance(value, SharedKeyAuth):
            raise PydanticCustomError(
                "auth_shared_key",
                "shared_key is a Batch account key and cannot sign ARM calls; "
                "give it under accounts.<name>.auth and use an Entra ID method here",
            )
        return value
