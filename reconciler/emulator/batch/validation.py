"""Request-body checks with the service's error codes (`MissingRequiredProperty`, `InvalidPropertyValue`)."""

from __future__ import annotations

import re
from typing import Any

from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.timefmt import parse_duration

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
MIN_RESIZE_TIMEOUT = 300.0
MIN_AUTOSCALE_INTERVAL = 300.0
MAX_AUTOSCALE_INTERVAL = 168 * 3600.0


def missing(name: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "MissingRequiredProperty",
        "A required property was not specified in the request body.",
        {"PropertyName": name},
    )


def invalid(name: str, value: Any, reason: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        {"PropertyName": name, "PropertyValue": str(value), "Reason": reason},
    )


def require_id(body: dict[str, Any], name: str = "id") -> str:
    value = body.get(name)
    if value is None or value == "":
        raise missing(name)
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise invalid(name, value, "The id may contain letters, digits, hyphens and underscores, up to 64")
    return value


def node_count(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(name, value, "The node count must be a non-negative integer")
    return value


def resize_timeout(body: dict[str, Any]) -> float | None:
    value = body.get("resizeTimeout")
    if value is None:
        return None
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None:
        raise invalid("resizeTimeout", value, "The value is not a valid ISO 8601 duration")
    if seconds < MIN_RESIZE_TIMEOUT:
        raise invalid("resizeTimeout", value, "The resize timeout must be at least 5 minutes")
    return seconds


def autoscale_interval(body: dict[str, Any]) -> float | None:
    value = body.get("autoScaleEvaluationInterval")
    if value is None:
        return None
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None or not MIN_AUTOSCALE_INTERVAL <= seconds <= MAX_AUTOSCALE_INTERVAL:
        raise invalid(
            "autoScaleEvaluationInterval", value, "The interval must be between 5 minutes and 168 hours"
        )
    return seconds


def deallocation_option(body: dict[str, Any]) -> str:
    value = body.get("nodeDeallocationOption")
    if value is None:
        return "requeue"
    if not isinstance(value, str) or value.lower() not in DEALLOCATION_OPTIONS:
        raise invalid("nodeDeallocationOption", value, "Unknown node deallocation option")
    return value.lower()


def start_task_defaults(start_task: Any) -> Any:
    if not isinstance(start_task, dict):
        return start_task
    filled = dict(start_task)
    if not filled.get("commandLine"):
        raise missing("startTask.commandLine")
    filled.setdefault("userIdentity", {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}})
    filled.setdefault("maxTaskRetryCount", 0)
    filled.setdefault("waitForSuccess", True)
    return filled
