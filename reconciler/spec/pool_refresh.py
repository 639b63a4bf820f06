"""How and when the reconciler rebuilds a pool: the schedule, the drain and the safety timeouts.

These keys are the tool's own; none of them is sent to Azure.
"""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Annotated, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import field_validator
from pydantic_core import PydanticCustomError

from reconciler.spec.base import CaseInsensitive, Rejects, SpecModel
from reconciler.spec.cron import cron_trigger
from reconciler.spec.durations import Duration
from reconciler.spec.pool_types import NodeDeallocationOption


def cron_problem(expression: str) -> str | None:
    """Why APScheduler would not run on `expression` (a 5-field crontab line), or None."""
    if len(expression.split()) != 5:
        return (
            "must be a cron expression of 5 fields: minute hour day month day-of-week, e.g. 0 2 * * * "
            f"(got {expression!r})"
        )
    try:
        cron_trigger(expression)
    except ValueError as exc:
        return f"is not a valid cron expression: {exc}"
    return None


CronExpression = Annotated[str, Rejects("cron", cron_problem)]
"""A 5-field crontab line (minute hour day month day-of-week), read in UTC unless told otherwise."""

OnDrainTimeout = Annotated[Literal["wait", "requeue", "abort"], CaseInsensitive()]
RefreshStrategy = Annotated[Literal["recreate", "patch-when-empty"], CaseInsensitive()]


class RefreshPolicy(SpecModel):
    """When a pool is rebuilt from scratch, and how its running work is treated meanwhile."""

    schedule: CronExpression | None = None
    """A 5-field cron expression (minute hour day month weekday), e.g. `0 2 * * *`; none means
    the pool is refreshed only on request."""

    timezone: str = "UTC"
    """The IANA time zone the schedule is read in, e.g. `Asia/Tokyo`."""

    jitter: Duration = timedelta(0)
    """A random delay of up to this much added to each scheduled refresh."""

    node_deallocation_option: NodeDeallocationOption = "taskcompletion"
    """What happens to running tasks when the pool is drained to zero nodes."""

    drain_timeout: Duration = timedelta(hours=2)
    """How long the drain to zero nodes may take before `on_drain_timeout` applies."""

    delete_timeout: Duration = timedelta(minutes=30)
    """How long the pool deletion may take before the refresh is reported as stuck."""

    allocation_timeout: Duration = timedelta(minutes=30)
    """How long the recreated pool may take to reach its target size."""

    on_drain_timeout: OnDrainTimeout = "wait"
    """When the drain times out: keep waiting, requeue the running tasks, or abort the refresh."""

    strategy: RefreshStrategy = "recreate"
    """`recreate` deletes and recreates the pool; `patch-when-empty` only updates it while idle."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone",
                "must be an IANA time zone like UTC or Europe/Paris (got {got})",
                {"got": repr(name)},
            ) from None
        return name

    def trigger(self) -> CronTrigger | None:
        """The APScheduler trigger of the schedule, or None when refreshes are on request only."""
        if self.schedule is None:
            return None
        return cron_trigger(self.schedule, self.timezone, self.jitter)
