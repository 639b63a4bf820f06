"""`reconciler validate` and `reconciler schema`: check a config before anything touches Azure.

Both answer in lines a person or a CI job reads directly: problems as `FILE:LINE:COL: path: message` on
stderr with exit status 1, never a traceback, so `validate` can gate a merge request.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

    generated = Config.model_json_schema(mode="validation")
    generated.pop("title", None)
    _nothing_required_under(generated, generated["properties"]["pools"]["additionalProperties"])
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": SCHEMA_TITLE, **generated}


PARTIAL_SUFFIX = "Partial"
"""Names the relaxed copy of a definition that is also used where defaults do not merge in (lists)."""


def _nothing_required_under(schema: dict[str, Any], entry: dict[str, Any]) -> None:
    """Make every key `defaults.pool` can supply optional below `entry` (a pool), keeping the rest.

    The loader deep-merges `defaults.pool` under each pool before it validates, so a pool without its
    own `vm_size` is fine and an editor must not flag it; the loader still reports a key that is
    missing after the merge. Lists are not merged, so a list item keeps its `required`: definitions
    are relaxed in copies, and a copy takes the original's name where nothing else uses the original.
    """
    defs: dict[str, Any] = schema["$defs"]
    relaxed: dict[str, str] = {}

    def relax(name: str) -> str:
        if name not in relaxed:
            relaxed[name] = name
            body = copy.deepcopy(defs[name])
            body.pop("required", None)
            _rename_refs(body, relax, merged_only=True)
            if body != defs[name]:
                relaxed[name] = name + PARTIAL_SUFFIX
                defs[relaxed[name]] = body
        return relaxed[name]

    _rename_refs(entry, relax, merged_only=True)
    used = _used_definitions(schema)
    for name in [n for n in defs if n not in used]:
        del defs[name]
    back = {partial: name for name, partial in relaxed.items() if partial != name and name not in defs}
    for partial, name in back.items():
        defs[name] = defs.pop(partial)
    _rename_refs(schema, lambda name: back.get(name, name), merged_only=False)
    schema["$defs"] = dict(sorted(defs.items()))


def _rename_refs(node: Any, rename: Callable[[str], str], *, merged_only: bool) -> None:
    """Point each `$ref` at `rename(its definition)`; with `merged_only`, not inside list items."""
    if isinstance(node, list):
        for item in node:
            _rename_refs(item, rename, merged_only=merged_only)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        node["$ref"] = _DEFS + rename(ref.removeprefix(_DEFS))
    for key, value in node.items():
        if not (merged_only and key in ("items", "prefixItems")):
            _rename_refs(value, rename, merged_only=merged_only)


def _used_definitions(schema: dict[str, Any]) -> set[str]:
    """Definitions reachable from the top of `schema`."""
    defs: dict[str, Any] = schema["$defs"]
    used: set[str] = set()
    pending: list[Any] = [{k: v for k, v in schema.items() if k != "$defs"}]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            name = ref.removeprefix(_DEFS) if isinstance(ref, str) else None
            if name is not None and name in defs and name not in used:
                used.add(name)
                pending.append(defs[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return used


_DEFS = "#/$defs/"


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
