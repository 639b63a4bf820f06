"""Helpers every model module shares: errors placed on the field to change, and caught errors rebuilt."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import ValidationError, model_validator
from pydantic_core import ErrorDetails

from reconciler.spec.base import Rejects, SpecModel, error_at, reraise


class _Pair(SpecModel):
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> _Pair:
        if self.low > self.high:
            raise error_at(("high",), "order", "must be at least low", self.high)
        return self


def test_error_at_blames_the_named_field() -> None:
    with pytest.raises(ValidationError) as caught:
        _Pair(low=3, high=1)
    [error] = caught.value.errors()
    assert (error["loc"], error["type"], error["msg"]) == (("high",), "order", "must be at least low")


def test_reraise_keeps_types_messages_and_context_under_a_prefix() -> None:
    with pytest.raises(ValidationError) as caught:
        _Pair.model_validate({"low": "x"})
    original = caught.value.errors()
    rebuilt = reraise([*original, *_custom()], prefix=("pools", "p1")).errors()
    assert [(e["loc"], e["type"], e["msg"]) for e in rebuilt] == [
        (("pools", "p1", "low"), "int_parsing", original[0]["msg"]),
        (("pools", "p1", "high"), "missing", "Field required"),
        (("pools", "p1", "high"), "order", "must be at least low"),
    ]


def _custom() -> list[ErrorDetails]:
    with pytest.raises(ValidationError) as caught:
        _Pair(low=3, high=1)
    return list(caught.value.errors())


def _not_lower(value: str) -> str | None:
    return None if value == value.lower() else "must be lower case"


class _Named(SpecModel):
    name: Annotated[str, Rejects("name_case", _not_lower)] | None = None


def test_rejects_reports_the_functions_reason_under_its_kind() -> None:
    assert _Named(name="batch").name == "batch"
    assert _Named().name is None
    with pytest.raises(ValidationError) as caught:
        _Named(name="Batch")
    [error] = caught.value.errors()
    assert (error["loc"], error["type"], error["msg"]) == (("name",), "name_case", "must be lower case")
