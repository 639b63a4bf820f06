"""Credentials from the config's auth settings: azure-identity's async credentials, or a Batch key.

A credential holds a token cache and an HTTP session, so each distinct auth setting gets exactly one per
process (accounts that share settings share it), and all are closed on shutdown. Secrets are revealed
only here, as they are handed to azure-identity or azure-core.
"""

from __future__ import annotations

from collections.abc import Hashable
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity import aio as identity

from reconciler.azure.errors import ConfigurationError
from reconciler.spec.account import (
    Account,
    Auth,
    AzureCliAuth,
    AzureSettings,
    CertificateAuth,
    ClientSecretAuth,
    DefaultAuth,
    ManagedIdentityAuth,
    SharedKeyAuth,
)

PUBLIC_AUTHORITY_HOSTS: Final = frozenset(
    {"login.microsoftonline.com", "login.chinacloudapi.cn", "login.microsoftonline.us"}
)
"""Authorities Entra ID instance discovery knows; any other (a private cloud, the emulator) skips it."""

BatchCredential = AsyncTokenCredential | AzureNamedKeyCredential


def identity_options(settings: AzureSettings) -> dict[str, Any]:
    """Keyword arguments every azure-identity credential built from `settings` takes."""
    options: dict[str, Any] = {"authority": settings.authority}
    host = urlsplit(settings.authority).hostname or ""
    if host.lower() not in PUBLIC_AUTHORITY_HOSTS:
        options["disable_instance_discovery"] = True
    if settings.ca_bundle is not None:
        options["connection_verify"] = str(settings.ca_bundle)
    return options


def token_credential(auth: Auth, settings: AzureSettings) -> AsyncTokenCredential:
    """A new async token credential for `auth`; the caller owns it and must close it."""
    options = identity_options(settings)
    if isinstance(auth, CertificateAuth):
        password = auth.certificate_password.reveal() if auth.certificate_password is not None else None
        return identity.CertificateCredential(
            auth.tenant_id,
            auth.client_id,
            certificate_path=str(auth.certificate_path),
            password=password,
            send_certificate_chain=auth.send_certificate_chain,
            **options,
        )
    if isinstance(auth, ClientSecretAuth):
        return identity.ClientSecretCredential(
            auth.tenant_id, auth.client_id, auth.client_secret.reveal(), **options
        )
    if isinstance(auth, ManagedIdentityAuth):
        transport = {k: v for k, v in options.items() if k == "connection_verify"}
        return identity.ManagedIdentityCredential(client_id=auth.client_id, **transport)
    if isinstance(auth, AzureCliAuth):
        return identity.AzureCliCredential()
    if isinstance(auth, DefaultAuth):
        return identity.DefaultAzureCredential(**options)
    raise TypeError(f"auth method {auth.method!r} gives no token credential")


class Credentials:
    """The process's credentials, one per distinct auth setting, created on first use."""

    def __init__(self, settings: AzureSettings) -> None:
        self._settings = settings
        self._tokens: dict[Hashable, AsyncTokenCredential] = {}
        self._closed = False

    @property
    def settings(self) -> AzureSettings:
        return self._settings

    def arm(self) -> AsyncTokenCredential:
        """The credential for management-plane calls (`azure.auth`)."""
        return self.token(self._settings.auth)

    def token(self, auth: Auth) -> AsyncTokenCredential:
        if isinstance(auth, SharedKeyAuth):
            raise TypeError("shared_key auth is a Batch account key, not a token credential")
        if self._closed:
            raise RuntimeError("credentials are closed")
        credential = self._tokens.get(auth)
        if credential is None:
            credential = self._tokens[auth] = token_credential(auth, self._settings)
        return credential

    def batch(self, account: Account) -> BatchCredential:
        """What signs this account's data-plane calls: its key, or a token from its (or the default) auth."""
        auth = account.auth or self._settings.auth
        if isinstance(auth, SharedKeyAuth):
            name = account.batch_account_name
            if name is None:
                raise ConfigurationError("shared_key auth needs the account name (account_name)")
            return AzureNamedKeyCredential(name, auth.key.reveal())
        return self.token(auth)

    async def close(self) -> None:
        self._closed = True
        tokens, self._tokens = list(self._tokens.values()), {}
        for credential in tokens:
            await credential.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
