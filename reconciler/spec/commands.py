"""`reconciler validate` and `reconciler schema`: check a config before anything touches Azure.

Both answer in lines a person or a CI job reads directly: problems as `FILE:LINE:COL: path: message` on
stderr with exit status 1, never a traceback, so `validate` can gate a merge request.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from pydantic.json_schema import PydanticJsonSchemaWarning

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:azure-reconciler:config"
SCHEMA_TITLE = "reconciler config"
REGENERATE = "reconciler schema -o config/reconciler.schema.json"
"""The command that rewrites the committed schema."""


def validate_command(paths: list[Path]) -> int:
    """Exit status 0 with a one-line summary when the config is usable, else 1 and every problem."""
    from reconciler.spec.errors import ConfigError
    from reconciler.spec.loader import load_config

    try:
        config = load_config(paths)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except Exception as exc:
        # A bug must still not print a traceback (it could show config values): name it and stop.
        print(f"{_names(paths)}: cannot be validated: internal error ({type(exc).__name__})", file=sys.stderr)
        return 1
    counts = ", ".join(
        _count(len(section), noun)
        for section, noun in (
            (config.pools, "pool"),
            (config.clusters, "cluster"),
            (config.accounts, "account"),
        )
    )
    print(f"OK: {counts} ({_names(paths)})")
    return 0


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file, as editors consume it."""
    from reconciler.spec.config import Config

    with warnings.catch_warnings():
        # A default the schema cannot spell (a timedelta) is left out of it; editors do not need it.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        generated = Config.model_json_schema(mode="validation")
    generated.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": SCHEMA_TITLE, **generated}


def schema_text() -> str:
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_command(output: Path | None) -> int:
    """Print the schema, or write it to `output` (exit status 1 with one line if that fails)."""
    text = schema_text()
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{output}: cannot write: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _names(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths)
