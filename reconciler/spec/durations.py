"""Durations as people write them in a config file, held as `timedelta`.

Accepted: ISO 8601 (`PT15M`, `P1D`, `P1DT2H`), short forms (`90s`, `15m`, `2h`, `1d`, `1h30m`) and plain
integer seconds. The value remembers the text it came from so that an error can echo what the user
wrote (`must be at least 5 minutes (got 2m)`); it serializes to ISO 8601, the form the Batch API takes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

_ISO = re.compile(
    r"P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)
_SHORT = re.compile(
    r"(?=\d)(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+(?:\.\d+)?)s)?",
    re.IGNORECASE,
)
_SECONDS = re.compile(r"\d+")

PATTERN = (
    r"^(\d+|[Pp](?!$)(\d+[Ww])?(\d+[Dd])?([Tt](?=\d)(\d+[Hh])?(\d+[Mm])?(\d+(\.\d+)?[Ss])?)?"
    r"|(?=\d)(\d+[dD])?(\d+[hH])?(\d+[mM])?(\d+(\.\d+)?[sS])?)$"
)
"""The accepted spellings, as a JSON Schema pattern (for editors)."""


class DurationValue(timedelta):
    """A `timedelta` that keeps the text it was parsed from."""

    text: str

    def __new__(cls, delta: timedelta, text: str | None = None) -> DurationValue:
        value = super().__new__(cls, delta.days, delta.seconds, delta.microseconds)
        value.text = text if text is not None else to_iso8601(delta)
        return value

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __reduce__(self) -> Any:
        return (DurationValue, (timedelta(self.days, self.seconds, self.microseconds), self.text))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Also what pydantic uses to put a `DurationValue` default into a JSON Schema, as ISO 8601."""
        return core_schema.no_info_plain_validator_function(
            parse_duration,
            serialization=core_schema.plain_serializer_function_ser_schema(
                to_iso8601, when_used="json-unless-none"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": ["string", "integer"],
            "pattern": PATTERN,
            "minimum": 0,
            "description": "A duration: ISO 8601 (PT15M, P1D), short form (90s, 15m, 2h, 1d, 1h30m) "
            "or integer seconds.",
        }


def to_iso8601(delta: timedelta) -> str:
    """ISO 8601 text of a duration, in the days/hours/minutes/seconds form the Batch API prints."""
    if delta < timedelta(0):
        raise ValueError("a negative duration has no ISO 8601 form")
    days = delta.days
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{days}D"
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or delta.microseconds:
        frac = f".{delta.microseconds:06d}".rstrip("0") if delta.microseconds else ""
        clock += f"{seconds}{frac}S"
    if clock:
        out += "T" + clock
    return out if out != "P" else "PT0S"


def describe(delta: timedelta) -> str:
    """The text a person wrote for this duration when known, else its ISO 8601 form."""
    return delta.text if isinstance(delta, DurationValue) else to_iso8601(delta)


def parse_duration(value: object) -> DurationValue:
    """Parse any accepted spelling; raises `PydanticCustomError` with a message meant for a person."""
    if isinstance(value, DurationValue):
        return value
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise _error("-" + to_iso8601(-value), negative=True)
        return DurationValue(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _error(str(value), negative=True)
        return _build(str(value), seconds=value)
    if not isinstance(value, str):
        raise _error(repr(value))
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return _build(text, seconds=text)
    match = _ISO.fullmatch(text) or _SHORT.fullmatch(text)
    if match is None:
        raise _error(repr(value))
    return _build(text, **{k: v for k, v in match.groupdict().items() if v is not None})


def _build(text: str, **parts: str | int) -> DurationValue:
    try:
        return DurationValue(timedelta(**{unit: float(amount) for unit, amount in parts.items()}), text)
    except (OverflowError, ValueError):
        raise PydanticCustomError(
            "duration_too_long", "is too long to be a duration (got {got})", {"got": text[:40]}
        ) from None


def _error(got: str, *, negative: bool = False) -> PydanticCustomError:
    if negative:
        return PydanticCustomError("duration_negative", "must not be negative (got {got})", {"got": got})
    return PydanticCustomError(
        "duration_format",
        "must be a duration like PT15M, P1D, 90s, 15m, 2h, 1d, 1h30m or integer seconds (got {got})",
        {"got": got},
    )


Duration = Annotated[timedelta, DurationValue]
"""A non-negative duration field; see the module docstring for the accepted spellings."""
