"""The common base of every desired-state model.

Strict by default because a typo in a config file must be an error, not a silently ignored key; frozen
because a validated spec is a value that is hashed, diffed and shared between tasks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast, get_args

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError, PydanticKnownError, core_schema

ExclusiveKeys = Mapping[tuple[str, ...], tuple[frozenset[str], ...]]
"""Alternatives that exclude one another, by the path (below a pool or cluster) of the mapping holding them.

A place that sets a key of one alternative inherits none of the other alternatives' keys (from
`defaults.pool` or the dask config): merged key by key, the two would be a conflict nobody wrote.
"""


def one_each(*keys: str) -> tuple[frozenset[str], ...]:
    """Keys inherited as a unit: setting any of them here leaves all the others to this place."""
    return tuple(frozenset({key}) for key in keys)


class SpecModel(BaseModel):
    """Base of every model a user declares in the config file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        validate_assignment=True,
        use_attribute_docstrings=True,
        hide_input_in_errors=True,
        populate_by_name=True,
        protected_namespaces=(),
    )


def error_at(loc: tuple[str | int, ...], kind: str, message: str, value: object = None) -> ValidationError:
    """A validation error placed at `loc` under the model being validated, for checks that span fields.

    A model validator's own errors land on the model; this puts the blame on the field the user must
    change, so the loader can point at its line.
    """
    return ValidationError.from_exception_data(
        "spec", [InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)]
    )


def reraise(errors: Iterable[ErrorDetails], prefix: tuple[str | int, ...] = ()) -> ValidationError:
    """Rebuild caught errors (under `prefix`) into one error, keeping each type, message and context."""
    details: list[InitErrorDetails] = []
    for err in errors:
        ctx = err.get("ctx")
        try:
            known = PydanticKnownError(cast(Any, err["type"]), ctx).message() == err["msg"]
        except (KeyError, TypeError, ValueError):
            known = False
        kind: str | PydanticCustomError = (
            err["type"] if known else PydanticCustomError(err["type"], err["msg"], ctx)
        )
        detail = InitErrorDetails(type=kind, loc=(*prefix, *err["loc"]), input=err["input"])
        if ctx is not None and isinstance(kind, str):
            detail["ctx"] = ctx
        details.append(detail)
    return ValidationError.from_exception_data("spec", details)


class CaseInsensitive:
    """Marks a `Literal[...]` of API spellings as accepted in any letter case.

    Azure treats these values case-insensitively and old definition files spell them freely
    (`Spread`, `BatchManaged`); the model stores the API's own spelling so that diffs compare equal.
    """

    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        allowed: tuple[str, ...] = get_args(source)
        by_fold = {value.casefold(): value for value in allowed}

        def normalise(value: object) -> object:
            if isinstance(value, str) and value.strip().casefold() in by_fold:
                return by_fold[value.strip().casefold()]
            raise PydanticCustomError(
                "enum",
                "must be one of {allowed} (got {got})",
                {"allowed": ", ".join(allowed), "got": repr(value)},
            )

        return core_schema.no_info_before_validator_function(normalise, handler(source))


class Check:
    """Base of the annotations that check a value once it has its type, in the house style of messages.

    Subclasses say what is wrong in `check` and what the JSON Schema (for editors) should add.
    """

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def schema_extra(self) -> dict[str, Any]:
        return {}

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(self.schema_extra())
        return json_schema


class Rejects(Check):
    """Marks a value checked by a function that says why it is wrong, or None.

    The function stays callable on its own, so a rule that applies in several places is written once.
    """

    def __init__(self, kind: str, problem: Callable[[Any], str | None]) -> None:
        self.kind = kind
        self.problem = problem

    def check(self, value: Any) -> Any:
        message = self.problem(value)
        if message:
            raise PydanticCustomError(self.kind, message)
        return value


class ArmId(Check):
    """Marks a `str` as the ARM resource id of `what`, in one of the given forms.

    Templates use `<name>` for one path segment; ARM compares ids case-insensitively, so does this.
    """

    def __init__(self, what: str, *templates: str) -> None:
        self.what = what
        self.shown = " or ".join(templates)
        self._pattern = re.compile("|".join(_template_regex(t, fold=False) for t in templates), re.IGNORECASE)
        # JSON Schema regexes have no case-insensitive flag: spell each letter as [xX].
        self.regex = "^(?:" + "|".join(_template_regex(t, fold=True) for t in templates) + ")$"

    def check(self, value: str) -> str:
        if not self._pattern.fullmatch(value):
            raise PydanticCustomError(
                "arm_resource_id",
                "must be an ARM resource id of {what}: {form} (got {got})",
                {"what": self.what, "form": self.shown, "got": repr(value)},
            )
        return value

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": self.regex,
            "description": f"ARM resource id of {self.what}: {self.shown}",
        }


def _template_regex(template: str, *, fold: bool) -> str:
    parts = []
    for literal, placeholder in re.findall(r"([^<]*)(<[^>]+>)?", template):
        for char in literal:
            parts.append(f"[{char.lower()}{char.upper()}]" if fold and char.isalpha() else re.escape(char))
        if placeholder:
            parts.append("[^/]+")
    return "(?:" + "".join(parts) + ")"


class Between(Check):
    """Marks an `int` as bounded, with a message in the house style (`must be at least 1 (got 0)`)."""

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: int) -> int:
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                message = f"must be between {low} and {high} (got {{got}})"
            elif low is not None:
                message = f"must be at least {low} (got {{got}})"
            else:
                message = f"must be at most {high} (got {{got}})"
            raise PydanticCustomError("out_of_range", message, {"got": value})
        return value

    def schema_extra(self) -> dict[str, Any]:
        bounds = {"minimum": self.minimum, "maximum": self.maximum}
        return {key: bound for key, bound in bounds.items() if bound is not None}


class NotBlank(Check):
    """Marks a `str` that must hold something other than whitespace."""

    def check(self, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank", "must not be empty", {})
        return value

    def schema_extra(self) -> dict[str, Any]:
        return {"minLength": 1}
