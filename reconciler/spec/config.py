"""The whole config file: Azure settings, accounts, pools, clusters and how the daemon runs.

Each section validates on its own here; what spans sections (a pool naming an account, an identity
pool needing ARM coordinates) is `checks.cross_check`, run by the loader right after this model.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from reconciler.spec.account import Account, Auth, AzureSettings
from reconciler.spec.base import Between, CaseInsensitive, SpecModel, error_at, reraise
from reconciler.spec.cluster import Cluster, validate_cluster_name
from reconciler.spec.durations import Duration, describe
from reconciler.spec.pool import Pool, validate_pool_id
from reconciler.spec.pool_refresh import CronExpression
from reconciler.spec.secrets import Secret

_ACCOUNT_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})")
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*"
)


def validate_account_key(name: str) -> str | None:
    """Why an account's short name cannot be used, or None; it appears in logs and metric labels."""
    if not _ACCOUNT_NAME.fullmatch(name):
        return "an account name is 1 to 63 letters, digits, '-' or '_', starting with a letter or digit"
    return None


def _validate_keys(
    value: Any, handler: ValidatorFunctionWrapHandler, problem: Callable[[str], str | None]
) -> Any:
    """Check a section's keys with errors placed at `section.<key>`, next to the errors of its values.

    pydantic places a key's error at `section.<key>.[key]`, a path that does not exist in the file;
    integer keys (YAML reads `123:` as a number) are taken as the names they look like.
    """
    errors: list[ErrorDetails] = []
    if isinstance(value, dict):
        kept: dict[Any, Any] = {}
        for key, item in value.items():
            name = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
            message = problem(name) if isinstance(name, str) else "must be a name (text)"
            if message is None:
                kept[name] = item
            else:
                where = name if isinstance(name, str) else repr(name)
                errors.append({"type": "invalid_name", "loc": (where,), "msg": message, "input": name})
        value = kept
    try:
        result = handler(value)
    except ValidationError as exc:
        errors.extend(exc.errors())
        result = None
    if errors:
        raise reraise(errors)
    return result


class Defaults(SpecModel):
    """Values laid under every pool by the loader before validation (the pool's own keys win)."""

    pool: dict[str, Any] = {}


class RefreshWindow(SpecModel):
    """A time span in which pool refreshes may start, opening at each match of `start` (UTC)."""

    start: CronExpression
    duration: Duration

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError(
                "duration_zero", "must be above zero (got {got})", {"got": describe(value)}
            )
        return value


class Schedule(SpecModel):
    """How often the daemon compares Azure with the config."""

    reconcile_interval: Duration = timedelta(seconds=60)
    jitter: Duration = timedelta(seconds=5)
    """Random delay added to each tick, so that several daemons do not call Azure in step."""
    refresh_windows: list[RefreshWindow] = []

    @field_validator("reconcile_interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise PydanticCustomError(
                "reconcile_interval", "must be at least 1 second (got {got})", {"got": describe(value)}
            )
        return value

    @model_validator(mode="after")
    def _jitter_below_interval(self) -> Schedule:
        if self.jitter >= self.reconcile_interval:
            raise error_at(
                ("jitter",),
                "jitter",
                f"must be shorter than reconcile_interval ({describe(self.reconcile_interval)}), "
                f"got {describe(self.jitter)}",
            )
        return self


class Safety(SpecModel):
    """Guards on what the reconciler may destroy."""

    prune: bool = False
    """Delete managed pools and clusters that the config no longer declares."""
    max_deletions_per_run: Annotated[int, Between(0)] = 1
    """Pools or clusters deleted per tick at most; a config losing half its pools stops here."""


class MetricsTls(SpecModel):
    """Serve /metrics over https; both files are needed."""

    cert_file: Path | None = None
    key_file: Path | None = None


class BasicAuth(SpecModel):
    """HTTP basic auth in front of /metrics; both username and password are needed."""

    username: str | None = None
    password: Secret | None = None


class Metrics(SpecModel):
    """The Prometheus endpoint (and /healthz, /readyz)."""

    address: str = "127.0.0.1"
    port: Annotated[int, Between(1, 65535)] = 9464
    tls: MetricsTls | None = None
    basic_auth: BasicAuth | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.fullmatch(value):
                raise PydanticCustomError(
                    "address", "must be an IP address or host name to listen on, e.g. 0.0.0.0"
                ) from None
        return value


class LoggingSettings(SpecModel):
    """Log level and form; `auto` is JSON unless stdout is a terminal."""

    level: Annotated[Literal["debug", "info", "warning", "error", "critical"], CaseInsensitive] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(SpecModel):
    """Everything one config file (or directory) declares."""

    azure: AzureSettings = AzureSettings()
    accounts: dict[str, Account] = {}
    """Batch accounts by the short name pools use in `account`."""
    defaults: Defaults = Defaults()
    pools: dict[str, Pool] = {}
    """Pools by their id in Azure."""
    clusters: dict[str, Cluster] = {}
    """Dask clusters on Azure VMs, by name."""
    schedule: Schedule = Schedule()
    safety: Safety = Safety()
    metrics: Metrics = Metrics()
    logging: LoggingSettings = LoggingSettings()

    @field_validator("accounts", mode="wrap")
    @classmethod
    def _account_keys(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _validate_keys(value, handler, validate_account_key)

    @field_validator("pools", mode="wrap")
    @classmethod
    def _pool_ids(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _validate_keys(value, handler, validate_pool_id)

    @field_validator("clusters", mode="wrap")
    @classmethod
    def _cluster_names(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _validate_keys(value, handler, validate_cluster_name)

    def auth_for(self, account: str) -> Auth:
        """The credential settings for a declared account: its own, else azure.auth."""
        return self.accounts[account].auth or self.azure.auth
