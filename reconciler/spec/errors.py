"""What is wrong with a config, said where the user wrote it.

Every problem the loader finds (bad YAML, a missing variable, a value the models reject) ends up as one
`LocatedProblem` line, `FILE:LINE:COL: dotted.path: message`, so editors and CI logs can jump to it and a
user never has to read a traceback or guess which of several files is meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

if TYPE_CHECKING:
    from reconciler.spec.merge import Node


@dataclass(frozen=True, order=True)
class Position:
    """A 1-based place in a file; `file` is spelled as the user gave it on the command line."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, order=True)
class LocatedProblem:
    """One thing wrong with the config; field order makes sorting go by file, then line."""

    file: str
    line: int
    col: int
    path: str
    message: str

    @classmethod
    def at(cls, pos: Position, path: str, message: str) -> LocatedProblem:
        return cls(pos.file, pos.line, pos.col, path, message)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; `problems` says every reason found, not just the first."""

    def __init__(self, problems: Iterable[LocatedProblem]) -> None:
        self.problems: list[LocatedProblem] = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __repr__(self) -> str:
        return f"ConfigError({len(self.problems)} problem(s))"


def dotted(path: Iterable[str | int]) -> str:
    """`pools.p1.start_task.resource_files[0].http_url`: how a user would name a place in the YAML."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class SchemaIndex:
    """Answers "which keys may go here" and "is this a secret field" from the model's JSON Schema.

    The schema is the one place that knows every model, union and alias, so walking it keeps the
    suggestions and the secret check true to the models without importing any of them.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.root: Mapping[str, Any] = schema
        self.defs: Mapping[str, Any] = schema.get("$defs", {})

    def allowed_keys(self, loc: Sequence[str | int]) -> list[str]:
        """Property names at a pydantic error location (union tags in `loc` pick the member)."""
        names: set[str] = set()
        for schema in self._at(loc, strict=False) or []:
            names.update(schema.get("properties", {}))
        return sorted(names)

    def known(self, path: Sequence[str | int]) -> bool:
        return self._at(path, strict=True) is not None

    def is_secret(self, path: Sequence[str | int]) -> bool:
        return any(s.get("format") == "password" for s in self._at(path, strict=True) or [])

    def _at(self, loc: Sequence[str | int], *, strict: bool) -> list[Mapping[str, Any]] | None:
        found: list[Mapping[str, Any]] = [self.root]
        for part in loc:
            following = [nxt for schema in found for nxt in self._step(schema, part, 0)]
            if following:
                found = following
            elif strict:
                return None
        return [flat for schema in found for flat in self._flatten(schema, 0)]

    def _deref(self, schema: Any) -> Mapping[str, Any]:
        for _ in range(32):
            if not isinstance(schema, Mapping):
                return {}
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                return schema
            schema = self.defs.get(ref.rsplit("/", 1)[-1], {})
        return {}

    def _members(self, schema: Mapping[str, Any]) -> list[Any]:
        return [m for key in ("anyOf", "oneOf", "allOf") for m in schema.get(key, [])]

    def _flatten(self, schema: Any, depth: int) -> list[Mapping[str, Any]]:
        schema = self._deref(schema)
        members = self._members(schema)
        if not members or depth > 16:
            return [schema]
        return [flat for member in members for flat in self._flatten(member, depth + 1)]

    def _step(self, schema: Any, part: str | int, depth: int) -> list[Mapping[str, Any]]:
        schema = self._deref(schema)
        if depth > 16:
            return []
        mapping = schema.get("discriminator", {}).get("mapping", {})
        if isinstance(part, str) and part in mapping:
            return [self._deref({"$ref": mapping[part]})]
        members = self._members(schema)
        if members:
            titled = [m for m in members if self._deref(m).get("title") == part]
            if titled:
                return [self._deref(m) for m in titled]
            return [nxt for m in members for nxt in self._step(m, part, depth + 1)]
        if isinstance(part, str):
            properties = schema.get("properties", {})
            if part in properties:
                return [properties[part]]
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping):
                return [extra]
            return []
        prefix = schema.get("prefixItems", [])
        if 0 <= part < len(prefix):
            return [prefix[part]]
        items = schema.get("items")
        return [items] if isinstance(items, Mapping) else []


class ProblemReport:
    """Collects problems found on tree nodes and words them where the user wrote the value.

    A value inherited from `defaults.pool` is reported once, at its `defaults` line, naming the pools
    that inherit it, instead of once per pool at a place that does not contain it.
    """

    def __init__(self, root: Node) -> None:
        self.root = root
        self._found: dict[tuple[Position, str, str], set[str]] = {}
        self._silenced: set[int] = set()

    def silence(self, node: Node) -> None:
        """Drop further problems on `node`: one already says what is wrong with it."""
        self._silenced.add(id(node))

    @property
    def empty(self) -> bool:
        return not self._found

    def add(
        self,
        node: Node,
        data_path: Sequence[str | int],
        message: str,
        *,
        key: bool = False,
        below: Sequence[str | int] = (),
    ) -> None:
        """Record `message` about `node` (or about `below`, a place under it that does not exist)."""
        if id(node) in self._silenced:
            return
        pos = (node.key_pos or node.pos) if key else node.pos
        if node.note:
            message = f"{message} {node.note}"
        owners = self._found.setdefault((pos, dotted((*node.path, *below)), message), set())
        written, actual = tuple(node.path), tuple(data_path)
        if written != actual:
            shared = 0
            while shared < min(len(written), len(actual)) and written[-1 - shared] == actual[-1 - shared]:
                shared += 1
            owners.add(dotted(actual[: len(actual) - shared]))

    def at_path(self, path: Sequence[str | int], message: str) -> None:
        """A problem a check found at a data path (e.g. `pools.p1.account`) on the validated config."""
        node, matched = self.root, 0
        for part in path:
            child = node.child(part)
            if child is None:
                break
            node, matched = child, matched + 1
        rest = path[matched:]
        self.add(node, path[:matched], message, key=bool(rest), below=rest)

    def problems(self) -> list[LocatedProblem]:
        out = []
        for (pos, path, message), owners in self._found.items():
            if owners:
                message = f"{message} (inherited by {', '.join(sorted(owners))})"
            out.append(LocatedProblem.at(pos, path, message))
        return out


def translate(error: ValidationError, schema: SchemaIndex, report: ProblemReport) -> None:
    """One problem per pydantic error, with a smart union's per-member noise collapsed into one line."""
    located = [_Located.of(e, report.root) for e in error.errors(include_url=False, include_input=False)]
    groups: dict[tuple[str | int, ...], dict[str | int, list[_Located]]] = {}
    for item in located:
        if item.union is None:
            _report(item, schema, report)
        else:
            prefix, tag = item.union
            groups.setdefault(prefix, {}).setdefault(tag, []).append(item)
    for members in groups.values():
        if len(members) == 1:
            for item in next(iter(members.values())):
                _report(item, schema, report)
            continue
        best = max(members.values(), key=_fit)
        if _fit(best)[:2] != (0, False):
            for item in best:
                _report(item, schema, report)
            continue
        messages = list(dict.fromkeys(_message(i.error) for i in _flat(members)))
        stripped = [m.removeprefix("Input should be ") for m in messages]
        head = best[0]
        if all(m.startswith("Input should be ") for m in messages):
            text = "should be " + " or ".join(dict.fromkeys(stripped))
        else:
            text = "does not match any allowed form: " + "; ".join(messages)
        report.add(head.node, head.data_path, text)


_PYDANTIC_MISSING = "Field required"

_SHAPE_ERRORS = frozenset({"missing", "extra_forbidden", "union_tag_invalid", "union_tag_not_found"})


def _fit(items: list[_Located]) -> tuple[int, bool, int]:
    """How well a union member matched: errors deeper inside, or only about keys, mean it was meant."""
    return (max(i.depth for i in items), all(i.error["type"] in _SHAPE_ERRORS for i in items), -len(items))


def _flat(members: Mapping[str | int, list[_Located]]) -> list[_Located]:
    return [item for items in members.values() for item in items]


@dataclass
class _Located:
    """A pydantic error placed on the tree: the deepest node its location reaches."""

    error: ErrorDetails
    node: Node
    data_path: tuple[str | int, ...]
    is_key: bool
    union: tuple[tuple[str | int, ...], str | int] | None
    depth: int
    """How far the location goes past the union tag: deeper means a member matched better."""
    reached: bool
    """The location's last part is in the tree (a `missing` key the user wrote as null, say)."""

    @classmethod
    def of(cls, error: ErrorDetails, root: Node) -> _Located:
        loc = tuple(error["loc"])
        node, data_path, is_key = root, [], False
        union: tuple[tuple[str | int, ...], str | int] | None = None
        depth = 0
        reached = False
        for i, part in enumerate(loc):
            if part == "[key]":
                is_key = True
                continue
            child = node.child(part)
            reached = child is not None
            if child is not None:
                node = child
                data_path.append(part)
                if union is not None:
                    depth += 1
                continue
            if error["type"] == "missing" and i == len(loc) - 1:
                continue
            if union is None:
                union = (loc[:i], part)
        return cls(error, node, tuple(data_path), is_key, union, depth, reached)


def _message(error: ErrorDetails) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be a valid dictionary"):
        return "should be a mapping (key: value)"
    return message


def _report(item: _Located, schema: SchemaIndex, report: ProblemReport) -> None:
    error, node = item.error, item.node
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if kind == "missing":
        message = _message(error)
        if message == _PYDANTIC_MISSING:
            report.add(node, item.data_path, f"missing required key '{loc[-1]}'", key=True)
        else:
            # A model's own message says what to do but not which key; name it in the path.
            below = () if item.reached else (loc[-1],)
            report.add(node, item.data_path, message, key=True, below=below)
    elif kind == "extra_forbidden":
        name = str(loc[-1])
        message = f"unknown key '{name}'{_did_you_mean(name, schema.allowed_keys(loc[:-1]))}"
        report.add(node, item.data_path, message, key=True)
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "")).strip("'\"")
        tag_node = node.child(field)
        if tag_node is None:
            report.add(node, item.data_path, f"missing required key '{field}'", key=True)
        else:
            expected = [
                t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()
            ]
            tag = str(ctx.get("tag", tag_node.value))
            message = f"'{tag}' is not one of: {', '.join(expected)}{_did_you_mean(tag, expected)}"
            report.add(tag_node, (*item.data_path, field), message)
    else:
        key = item.is_key or kind == "invalid_name"
        report.add(node, item.data_path, _message(error), key=key)


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
