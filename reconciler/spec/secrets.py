"""A string that must never be shown: passwords, account keys, client secrets.

Logs, reprs, tracebacks, validation errors and plan output only ever see a mask or the reference the
value came from (`${env:BATCH_KEY}`), so a config can be printed, diffed and exported safely. The value
itself is reached only through `reveal()`, at the point where it is handed to an SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

MASK = "********"

_revealed: set[str] = set()
_revealed_lock = threading.Lock()


def revealed_values() -> frozenset[str]:
    """Every secret value revealed so far in this process, for log scrubbers to redact."""
    with _revealed_lock:
        return frozenset(_revealed)


class Secret:
    """A secret value, held directly or resolved lazily on first `reveal()` (e.g. from Key Vault)."""

    __slots__ = ("_lock", "_resolver", "_value", "reference")

    def __init__(
        self,
        value: str | None = None,
        *,
        reference: str | None = None,
        resolver: Callable[[], str] | None = None,
    ) -> None:
        if value is None and resolver is None:
            raise ValueError("a Secret needs a value or a resolver")
        self._value = value
        self._resolver = resolver
        self._lock = threading.Lock()
        self.reference = reference
        if value:
            _remember(value)

    @property
    def is_resolved(self) -> bool:
        return self._value is not None

    def reveal(self) -> str:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    assert self._resolver is not None
                    self._value = self._resolver()
                    _remember(self._value)
        return self._value

    def display(self) -> str:
        """What may be shown to a person: the reference it came from, or the mask."""
        return self.reference or MASK

    def __repr__(self) -> str:
        return f"Secret({self.display()!r})"

    def __str__(self) -> str:
        return self.display()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if self.reference is not None and self.reference == other.reference:
            return True
        if self._value is None or other._value is None:
            return False
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self.reference) if self.reference is not None else hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda s: s.display(), when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "description": "A secret. Prefer a reference: ${env:NAME}, ${file:/path} or "
            "${keyvault:https://VAULT.vault.azure.net/secrets/NAME}.",
        }

    @classmethod
    def _validate(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(value, reference=getattr(value, "reference", None))
        raise ValueError("expected a string or a ${env:...}/${file:...}/${keyvault:...} reference")


def _remember(value: str) -> None:
    if len(value) >= 4:
        with _revealed_lock:
            _revealed.add(value)
