"""The emulator as a Python object, for tests and the demo: `async with Emulator() as emu:`.

Tests must reach the emulator through the real SDK clients; building those clients by hand (endpoint, key,
CA bundle, credential scopes, base_url) is where tests go subtly wrong, so the emulator hands out clients
already wired to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from reconciler.emulator.arm import ArmService
from reconciler.emulator.batch import BatchService
from reconciler.emulator.clock import SimClock
from reconciler.emulator.context import WELL_KNOWN_ACCOUNT_KEY, AccountSettings, EmulatorContext
from reconciler.emulator.counters import RequestCounters
from reconciler.emulator.faults import FaultInjector
from reconciler.emulator.identity import IdentityProvider
from reconciler.emulator.persistence import SavedState, read_state, restore, save
from reconciler.emulator.server import EmulatorServer
from reconciler.emulator.tls import TlsMaterial

log = logging.getLogger("reconciler.emulator")

T = TypeVar("T")
DEFAULT_ACCOUNT = "demo"
ARM_SCOPES = ["https://management.azure.com/.default"]
SAVE_INTERVAL = 30.0


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Emulator:
    """Starts on `__aenter__`; `port=0`/`arm_port=0` pick free ports, reported in `port`/`arm_port`."""

    def __init__(
        self,
        accounts: Mapping[str, str | None] | None = None,
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        arm_port: int = 0,
        state_file: str | Path | None = None,
        start: datetime | None = None,
        save_interval: float = SAVE_INTERVAL,
        fault_seed: int | None = None,
    ) -> None:
        names = dict(accounts) if accounts else {DEFAULT_ACCOUNT: None}
        self._accounts = {name: key or WELL_KNOWN_ACCOUNT_KEY for name, key in names.items()}
        self._time_scale = time_scale
        self._start = start
        self.host = host
        self.port = port
        self.arm_port = arm_port
        self.state_file = Path(state_file) if state_file is not None else None
        self._save_interval = save_interval
        self.faults = FaultInjector(fault_seed)
        self.counters = RequestCounters()
        self._server: EmulatorServer | None = None
        self._saver: asyncio.Task[None] | None = None
        self._clients: list[Any] = []
        self._workdir: Path | None = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        saved = read_state(self.state_file) if self.state_file is not None else None
        if saved is not None:
            clock = SimClock.from_state(saved.clock, self._time_scale)
        else:
            clock = SimClock(self._time_scale, self._start)
        self._workdir = Path(tempfile.mkdtemp(prefix="reconciler-emulator-"))
        try:
            server = self._build(clock, saved, self._workdir)
            await server.start(self.host, self.port, self.arm_port)
        except BaseException:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            raise
        self._server = server
        self.port, self.arm_port = server.port, server.arm_port
        self.connection = self._connection()
        if self.state_file is not None:
            self._saver = asyncio.create_task(self._save_periodically(self.state_file))

    def _build(self, clock: SimClock, saved: SavedState | None, workdir: Path) -> EmulatorServer:
        accounts = {name: AccountSettings(name, key) for name, key in self._accounts.items()}
        self.ctx = EmulatorContext(clock, accounts, workdir)
        self.clock = clock
        self.batch = BatchService(self.ctx)
        self.identity = IdentityProvider(self.ctx)
        self.arm = ArmService(self.ctx, self.batch, self.identity)
        for part in (self.batch, self.arm):
            self.ctx.parts.setdefault(part.name, part)
        if saved is not None:
            restore(self.ctx, saved)
        tls = TlsMaterial.generate()
        self.ca_bundle = tls.write_ca(workdir)
        return EmulatorServer(
            self.ctx,
            batch=self.batch,
            identity=self.identity,
            arm=self.arm,
            faults=self.faults,
            counters=self.counters,
            tls=tls,
        )

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                result = client.close()
                if asyncio.iscoroutine(result):
                    await result
        if self._server is not None:
            await self._server.stop()
            self._server = None
            if self.state_file is not None:
                await save(self.ctx, self.state_file)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def operations(self) -> frozenset[str]:
        """Every route name a fault rule or a counter query can name (`batch.Pools_GetPool`)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.operations

    async def save_state(self) -> None:
        if self.state_file is None:
            raise RuntimeError("this emulator has no state_file")
        await save(self.ctx, self.state_file)

    async def _save_periodically(self, path: Path) -> None:
        while True:
            await asyncio.sleep(self._save_interval)
            try:
                await save(self.ctx, path)
            except Exception:  # a failed save must not end saving; the next one may succeed
                log.exception("emulator.state_save_failed path=%s", path)

    # --- addresses and secrets -------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def arm_url(self) -> str:
        return f"https://{_url_host(self.host)}:{self.arm_port}"

    @property
    def admin_url(self) -> str:
        return f"{self.http_url}/_emulator"

    def batch_url(self, account: str = DEFAULT_ACCOUNT, tls: bool = False) -> str:
        self._account(account)
        return f"{self.arm_url if tls else self.http_url}/{account}"

    def account_key(self, account: str = DEFAULT_ACCOUNT) -> str:
        return self._account(account).key

    def _account(self, account: str) -> AccountSettings:
        try:
            return self.ctx.accounts[account]
        except KeyError:
            raise KeyError(f"the emulator has no account {account!r}") from None

    def _connection(self) -> dict[str, Any]:
        identity = {
            "authority": self.arm_url,
            "tenant_id": self.ctx.tenant_id,
            "client_id": self.ctx.client_id,
            "client_secret": self.ctx.client_secret,
            "certificate_path": "",
        }
        identity.update(self.identity.connection_info(self.arm_url))
        return {
            "batch": {
                name: {
                    "url": self.batch_url(name),
                    "tls_url": self.batch_url(name, tls=True),
                    "key": settings.key,
                }
                for name, settings in self.ctx.accounts.items()
            },
            "arm": {"url": self.arm_url, "subscription_id": self.ctx.subscription_id},
            "identity": identity,
            "ca_bundle": str(self.ca_bundle),
            "admin": self.admin_url,
        }

    # --- ready-made SDK clients -----------------------------------------------------------------------

    def token_credential(self, aio: bool = True, kind: Literal["secret", "certificate"] = "secret") -> Any:
        """An azure-identity credential whose authority is the emulator (secret or certificate SP)."""
        credential = self.identity.credential(self.arm_url, str(self.ca_bundle), aio=aio, kind=kind)
        self._clients.append(credential)
        return credential

    def batch_client(
        self,
        account: str = DEFAULT_ACCOUNT,
        *,
        aio: bool = True,
        tls: bool = False,
        auth: Literal["shared_key", "token"] = "shared_key",
        **client_kwargs: Any,
    ) -> Any:
        """`azure.batch.aio.BatchClient` (or the sync one) for `account`, closed when the emulator stops."""
        from azure.core.credentials import AzureNamedKeyCredential

        if aio:
            from azure.batch.aio import BatchClient as AioBatchClient

            factory: Callable[..., Any] = AioBatchClient
        else:
            from azure.batch import BatchClient

            factory = BatchClient
        credential: Any
        if auth == "token":
            if not tls:
                raise ValueError("bearer tokens are only accepted over HTTPS: pass tls=True")
            credential = self.token_credential(aio=aio)
        else:
            credential = AzureNamedKeyCredential(account, self.account_key(account))
        if tls:
            client_kwargs.setdefault("connection_verify", str(self.ca_bundle))
        client = factory(self.batch_url(account, tls=tls), credential, **client_kwargs)
        self._clients.append(client)
        return client

    def _mgmt_client(self, module: str, class_name: str, aio: bool, client_kwargs: dict[str, Any]) -> Any:
        import importlib

        factory = getattr(importlib.import_module(f"{module}.aio" if aio else module), class_name)
        client_kwargs.setdefault("connection_verify", str(self.ca_bundle))
        client_kwargs.setdefault("credential_scopes", ARM_SCOPES)
        credential = client_kwargs.pop("credential", None) or self.token_credential(aio=aio)
        client = factory(credential, self.ctx.subscription_id, base_url=self.arm_url, **client_kwargs)
        self._clients.append(client)
        return client

    def compute_client(self, *, aio: bool = True, **client_kwargs: Any) -> Any:
        return self._mgmt_client("azure.mgmt.compute", "ComputeManagementClient", aio, client_kwargs)

    def network_client(self, *, aio: bool = True, **client_kwargs: Any) -> Any:
        return self._mgmt_client("azure.mgmt.network", "NetworkManagementClient", aio, client_kwargs)

    def batch_mgmt_client(self, *, aio: bool = True, **client_kwargs: Any) -> Any:
        return self._mgmt_client("azure.mgmt.batch", "BatchManagementClient", aio, client_kwargs)

    @classmethod
    def in_thread(cls, *args: Any, **kwargs: Any) -> ThreadedEmulator:
        """The emulator on its own loop in a background thread, for the blocking (sync) SDK clients."""
        return ThreadedEmulator(cls(*args, **kwargs))


class ThreadedEmulator:
    """Runs an `Emulator` on a private event loop; `call`/`run` execute setup code on that loop.

    `faults` and `counters` are thread-safe and may be used directly; anything touching the services or
    the clock goes through `call`, `run` or `advance`.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator", daemon=True)

    def __enter__(self) -> ThreadedEmulator:
        self._thread.start()
        try:
            self.run(self.emulator.start())
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.run(self.emulator.stop())
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = 60.0) -> T:
        async def invoke() -> T:
            result = fn()
            if isinstance(result, Awaitable):
                return await result  # type: ignore[no-any-return]
            return result

        return self.run(invoke(), timeout)

    def advance(self, seconds: float) -> None:
        self.call(lambda: self.emulator.clock.advance(seconds))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.emulator, name)

    def batch_client(self, account: str = DEFAULT_ACCOUNT, *, aio: bool = False, **kwargs: Any) -> Any:
        return self.emulator.batch_client(account, aio=aio, **kwargs)

    def token_credential(self, aio: bool = False, kind: Literal["secret", "certificate"] = "secret") -> Any:
        return self.emulator.token_credential(aio=aio, kind=kind)

    def compute_client(self, *, aio: bool = False, **client_kwargs: Any) -> Any:
        return self.emulator.compute_client(aio=aio, **client_kwargs)

    def network_client(self, *, aio: bool = False, **client_kwargs: Any) -> Any:
        return self.emulator.network_client(aio=aio, **client_kwargs)

    def batch_mgmt_client(self, *, aio: bool = False, **client_kwargs: Any) -> Any:
        return self.emulator.batch_mgmt_client(aio=aio, **client_kwargs)
