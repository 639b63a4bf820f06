"""Crontab weekdays mean what crontab means (Sunday = 0 or 7), not APScheduler's Monday = 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.spec.cron import cron_trigger, weekday_names
from reconciler.spec.pool_refresh import RefreshPolicy, cron_problem

SATURDAY = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def next_fires(expression: str, count: int = 5) -> list[str]:
    trigger = cron_trigger(expression)
    found: list[str] = []
    moment = trigger.get_next_fire_time(None, SATURDAY)
    while moment is not None and len(found) < count:
        found.append(moment.strftime("%a"))
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return found


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 2 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 2 * * 0", ["Sun", "Sun", "Sun"]),
        ("0 2 * * 7", ["Sun", "Sun", "Sun"]),
        ("0 2 * * 6,0", ["Sun", "Sat", "Sun"]),
        ("0 2 * * mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ],
)
def test_weekdays_are_crontab_weekdays(expression: str, days: list[str]) -> None:
    assert next_fires(expression, len(days)) == days


def test_a_refresh_policy_trigger_reads_weekdays_as_crontab_does() -> None:
    policy = RefreshPolicy.model_validate({"schedule": "30 2 * * 1", "timezone": "Asia/Tokyo"})
    trigger = policy.trigger()
    assert trigger is not None
    fire = trigger.get_next_fire_time(None, SATURDAY)
    assert fire is not None
    assert (fire.strftime("%a %H:%M"), str(fire.tzinfo)) == ("Mon 02:30", "Asia/Tokyo")


@pytest.mark.parametrize("field", ["8", "3-9", "5-2", "*/0", "*/x"])
def test_weekdays_out_of_range_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match="day-of-week"):
        weekday_names(field)
    assert cron_problem(f"0 2 * * {field}") is not None


def test_step_and_star_keep_their_meaning() -> None:
    assert weekday_names("*") == "*"
    assert weekday_names("*/2") == "sun,tue,thu,sat"
    assert weekday_names("1-5/2") == "mon,wed,fri"
