"""The common base of every desired-state model.

Strict by default because a typo in a config file must be an error, not a silently ignored key; frozen
because a validated spec is a value that is hashed, diffed and shared between tasks.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
