"""Config documents as trees that remember where each value was written, and the ways they combine.

A value keeps its position and the path it was written at through every merge (several files, a
directory, `defaults.pool` under each pool, dask config under each cluster), so an error in a value
inherited from `defaults.pool` is reported on the `defaults` line that holds it rather than on a pool
that never spelled it out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from reconciler.spec.base import ExclusiveKeys
from reconciler.spec.errors import LocatedProblem, Position, dotted

Path = tuple[str | int, ...]


@dataclass
class Node:
    """A value (a `dict[str, Node]`, a `list[Node]` or a scalar) and where it came from."""

    value: Any
    pos: Position
    path: Path
    key_pos: Position | None = None
    note: str = ""
    """Said after any message about this value, e.g. "(from dask config)"."""

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    def child(self, part: str | int) -> Node | None:
        if isinstance(self.value, dict) and isinstance(part, str):
            found: Node | None = self.value.get(part)
            return found
        if isinstance(self.value, list) and isinstance(part, int) and 0 <= part < len(self.value):
            item: Node = self.value[part]
            return item
        return None

    def plain(self) -> Any:
        """The value as plain dicts, lists and scalars, the shape pydantic validates."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value

    def walk(self) -> list[tuple[Path, Node]]:
        """Every node below (and including) this one with its path in *this* tree."""
        out: list[tuple[Path, Node]] = []
        stack: list[tuple[Path, Node]] = [((), self)]
        while stack:
            path, node = stack.pop()
            out.append((path, node))
            if isinstance(node.value, dict):
                stack.extend(((*path, k), v) for k, v in node.value.items())
            elif isinstance(node.value, list):
                stack.extend(((*path, i), v) for i, v in enumerate(node.value))
        return out


@dataclass
class Merger:
    """Combines whole documents; a scalar set to different values in two places is a problem."""

    problems: list[LocatedProblem] = field(default_factory=list)

    def merge(self, first: Node, second: Node) -> Node:
        if isinstance(first.value, dict) and isinstance(second.value, dict):
            merged = dict(first.value)
            for key, node in second.value.items():
                merged[key] = self.merge(merged[key], node) if key in merged else node
            return Node(merged, first.pos, first.path, first.key_pos, first.note)
        if second.value is None or _same(first, second):
            return first
        if first.value is None:
            return second
        where = second.key_pos or second.pos
        self.problems.append(
            LocatedProblem.at(
                where, dotted(second.path), f"defined twice (first at {first.key_pos or first.pos})"
            )
        )
        return first


def merge_under(
    defaults: Node, own: Node, exclusive: ExclusiveKeys | None = None, at: tuple[str, ...] = ()
) -> Node:
    """`own` with `defaults` filled in below it: mappings merge key by key, anything else `own` wins.

    Where `own` picks one of `exclusive`'s alternatives, the defaults' other alternatives stay out.
    """
    if not (isinstance(defaults.value, dict) and isinstance(own.value, dict)):
        return own
    exclusive = exclusive or {}
    displaced = _displaced(own.value.keys(), exclusive.get(at, ()))
    merged = {key: node for key, node in defaults.value.items() if key not in displaced}
    for key, node in own.value.items():
        merged[key] = merge_under(merged[key], node, exclusive, (*at, key)) if key in merged else node
    return Node(merged, own.pos, own.path, own.key_pos, own.note)


def _displaced(chosen: Collection[str], alternatives: tuple[frozenset[str], ...]) -> set[str]:
    """The keys of every alternative other than those `chosen` touches."""
    picked = [a for a in alternatives if not a.isdisjoint(chosen)]
    if not picked:
        return set()
    return {key for a in alternatives if a not in picked for key in a}


def _same(a: Node, b: Node) -> bool:
    try:
        return bool(type(a.value) is type(b.value) and a.plain() == b.plain())
    except Exception:
        return False


def from_plain(value: Any, pos: Position, path: Path, note: str = "") -> Node:
    """A tree for values that were never in a file (the dask config), all placed at `pos`."""
    if isinstance(value, dict):
        return Node(
            {str(k): from_plain(v, pos, (*path, str(k)), note) for k, v in value.items()},
            pos,
            path,
            pos,
            note,
        )
    if isinstance(value, list | tuple):
        return Node([from_plain(v, pos, (*path, i), note) for i, v in enumerate(value)], pos, path, pos, note)
    return Node(value, pos, path, pos, note)
