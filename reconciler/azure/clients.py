"""The SDK clients the reconciler talks to Azure through, created lazily and closed together.

One Batch data-plane client per account and one management client per kind and subscription: each holds
a connection pool, so they live as long as the process. Every request names its caller (`x-ms-caller`
and the user agent) so Azure's logs and the emulator's counters can tell one reconciler from another,
and HTTP logging never writes headers or bodies, which carry keys and tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import urlsplit

from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HeadersPolicy, SansIOHTTPPolicy
from azure.mgmt.batch.aio import BatchManagementClient
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.network.aio import NetworkManagementClient

from reconciler import __version__
from reconciler.azure.credentials import Credentials
from reconciler.azure.errors import ConfigurationError
from reconciler.spec.config import Config

CALLER_HEADER: Final = "x-ms-caller"
DEFAULT_CALLER: Final = "reconciler"
BATCH_SCOPE: Final = "https://batch.core.windows.net//.default"

_http_log = logging.getLogger("reconciler.azure.http")
_Mgmt = TypeVar("_Mgmt", BatchManagementClient, ComputeManagementClient, NetworkManagementClient)


class QuietHttpLoggingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Logs method, host, path and status at debug level: no query string, no header, no body."""

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        if _http_log.isEnabledFor(logging.DEBUG):
            url = urlsplit(request.http_request.url)
            _http_log.debug(
                "azure.http %s %s%s -> %s",
                request.http_request.method,
                url.netloc,
                url.path,
                response.http_response.status_code,
            )


class AzureClients:
    """Holds the process's Azure clients; `async with AzureClients(config) as clients:`.

    `credentials` given by the caller stay theirs to close; otherwise the holder makes and closes its own.
    `client_options` go to every client constructor (e.g. `retry_total`, a test transport).
    `arm_scope` overrides the token scope of management calls, `<arm_endpoint>/.default` by default, for an
    endpoint whose token audience differs from its URL.
    """

    def __init__(
        self,
        config: Config,
        *,
        credentials: Credentials | None = None,
        caller: str = DEFAULT_CALLER,
        client_options: Mapping[str, Any] | None = None,
        arm_scope: str | None = None,
    ) -> None:
        self._config = config
        self._own_credentials = credentials is None
        self._credentials = credentials if credentials is not None else Credentials(config.azure)
        self.caller = caller
        self._options = dict(client_options or {})
        self._arm_scope = arm_scope or f"{config.azure.arm_endpoint}/.default"
        self._batch: dict[str, Any] = {}
        self._mgmt: dict[tuple[type[Any], str], Any] = {}

    @property
    def config(self) -> Config:
        return self._config

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    def _common(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "user_agent": f"{self.caller} reconciler/{__version__}",
            "headers_policy": HeadersPolicy(base_headers={CALLER_HEADER: self.caller}),
            "http_logging_policy": QuietHttpLoggingPolicy(),
            "logging_enable": False,
        }
        if self._config.azure.ca_bundle is not None:
            options["connection_verify"] = str(self._config.azure.ca_bundle)
        options.update(self._options)
        return options

    def batch(self, account: str) -> Any:
        """The `azure.batch.aio.BatchClient` of a declared account (KeyError for an unknown one)."""
        client = self._batch.get(account)
        if client is None:
            settings = self._config.accounts[account]
            options = self._common()
            credential = self._credentials.batch(settings)
            if not isinstance(credential, AzureNamedKeyCredential):
                if urlsplit(settings.batch_url).scheme != "https":
                    raise ConfigurationError(
                        f"account {account}: token auth needs an https batch_url "
                        "(plain http takes shared_key only)"
                    )
                options["credential_scopes"] = [BATCH_SCOPE]
            if settings.proxies is not None:
                options["proxies"] = settings.proxies.model_dump(exclude_none=True)
            client = self._batch[account] = BatchClient(settings.batch_url, credential, **options)
        return client

    def batch_mgmt(self, subscription_id: str) -> BatchManagementClient:
        return self._management(BatchManagementClient, subscription_id)

    def compute(self, subscription_id: str) -> ComputeManagementClient:
        return self._management(ComputeManagementClient, subscription_id)

    def network(self, subscription_id: str) -> NetworkManagementClient:
        return self._management(NetworkManagementClient, subscription_id)

    def _management(self, kind: type[_Mgmt], subscription_id: str) -> _Mgmt:
        client = self._mgmt.get((kind, subscription_id))
        if client is None:
            client = kind(
                self._credentials.arm(),
                subscription_id,
                base_url=self._config.azure.arm_endpoint,
                credential_scopes=[self._arm_scope],
                **self._common(),
            )
            self._mgmt[kind, subscription_id] = client
        assert isinstance(client, kind)
        return client

    async def close(self) -> None:
        clients = [*self._batch.values(), *self._mgmt.values()]
        self._batch, self._mgmt = {}, {}
        try:
            for client in clients:
                await client.close()
        finally:
            if self._own_credentials:
                await self._credentials.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
