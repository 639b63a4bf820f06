"""Crontab lines as crontab means them, for APScheduler 3.

APScheduler 3 numbers weekdays from Monday = 0, so `CronTrigger.from_crontab("0 2 * * 1-5")` fires
Tuesday to Saturday. A config says what an admin's crontab says; numbers in the weekday field are
therefore spelled as names, which both read the same way.
"""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Final

from apscheduler.triggers.cron import CronTrigger

_WEEKDAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expression: str, timezone: str = "UTC", jitter: timedelta | None = None) -> CronTrigger:
    """The APScheduler trigger of a 5-field crontab line; raises ValueError for a bad one."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, weekday = fields
    seconds = int(jitter.total_seconds()) if jitter else 0
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday_names(weekday),
        timezone=zoneinfo.ZoneInfo(timezone),
        jitter=seconds or None,
    )


def weekday_names(field: str) -> str:
    """A crontab day-of-week field with numbers (0 or 7 = Sunday) spelled as names."""
    names: list[str] = []
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        if step_text and not step_text.isdigit():
            raise ValueError(f"bad step in day-of-week {item!r}")
        step = int(step_text) if step_text else 1
        if base == "*":
            if not step_text:
                return "*"
            low, high = 0, 6
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                names.append(item)
                continue
            low, high = int(first), int(last)
        elif base.isdigit():
            low = high = int(base)
            if step_text:
                high = 6
        else:
            names.append(item)
            continue
        if not (0 <= low <= 7 and 0 <= high <= 7) or low > high or step < 1:
            raise ValueError(f"day-of-week {item!r} is outside 0-7")
        names.extend(_WEEKDAYS[day] for day in range(low, high + 1, step))
    return ",".join(dict.fromkeys(names))
