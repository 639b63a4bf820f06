"""The OData subset Batch clients write in `$filter` and `$select`.

Supported: `eq`, `ne`, `startswith(prop,'x')`, `and`, `or`, `not`, parentheses, string/number/boolean
literals. Anything else is a 400 `InvalidQueryParameterValue`, as the service answers an unparsable filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler.emulator.batch.errors import BatchServiceError

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w./]*))"
)


def _bad(expression: str, why: str) -> BatchServiceError:
    return BatchServiceError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        {"QueryParameterName": "$filter", "QueryParameterValue": expression, "Reason": why},
    )


def _tokens(expression: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(expression):
        if expression[pos:].strip() == "":
            break
        match = _TOKEN.match(expression, pos)
        if match is None:
            raise _bad(expression, f"unexpected character at position {pos}")
        pos = match.end()
        if match.group("str") is not None:
            out.append(("lit", match.group("str")[1:-1].replace("''", "'")))
        elif match.group("num") is not None:
            text = match.group("num")
            out.append(("lit", float(text) if "." in text else int(text)))
        elif match.group("punct") is not None:
            out.append((match.group("punct"), None))
        else:
            word = match.group("word")
            if word in ("true", "false"):
                out.append(("lit", word == "true"))
            elif word in ("and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le"):
                out.append((word, None))
            else:
                out.append(("name", word))
    return out


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> Any:
        if self.peek() != kind:
            raise _bad(self.expression, f"expected {kind} at token {self.pos}")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.pos != len(self.tokens):
            raise _bad(self.expression, f"unexpected token at {self.pos}")
        return predicate

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == "or":
            self.pos += 1
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda row: any(t(row) for t in terms))

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while self.peek() == "and":
            self.pos += 1
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else (lambda row: all(t(row) for t in terms))

    def unary(self) -> Predicate:
        if self.peek() == "not":
            self.pos += 1
            inner = self.unary()
            return lambda row: not inner(row)
        if self.peek() == "(":
            self.pos += 1
            inner = self.disjunction()
            self.take(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = self.take("name")
        if name in ("startswith", "endswith", "substringof") and self.peek() == "(":
            self.pos += 1
            prop = self.take("name")
            self.take(",")
            prefix = self.take("lit")
            self.take(")")
            if not isinstance(prefix, str):
                raise _bad(self.expression, f"{name} needs a string")
            if name == "startswith":
                return lambda row: str(_lookup(row, prop) or "").startswith(prefix)
            if name == "endswith":
                return lambda row: str(_lookup(row, prop) or "").endswith(prefix)
            return lambda row: prefix in str(_lookup(row, prop) or "")
        op = self.peek()
        if op not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise _bad(self.expression, f"unsupported construct near '{name}'")
        self.pos += 1
        value = self.take("lit")
        return _compare(name, op, value)


def _compare(prop: str, op: str, value: Any) -> Predicate:
    def check(row: dict[str, Any]) -> bool:
        actual = _lookup(row, prop)
        if isinstance(actual, str) and isinstance(value, str) and prop.endswith(("state", "State")):
            actual, expected = actual.lower(), value.lower()
        else:
            expected = value
        if op == "eq":
            return bool(actual == expected)
        if op == "ne":
            return bool(actual != expected)
        if actual is None:
            return False
        try:
            if op == "gt":
                return bool(actual > expected)
            if op == "ge":
                return bool(actual >= expected)
            if op == "lt":
                return bool(actual < expected)
            return bool(actual <= expected)
        except TypeError:
            return False

    return check


def _lookup(row: dict[str, Any], prop: str) -> Any:
    value: Any = row
    for part in prop.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def parse_filter(expression: str | None) -> Predicate | None:
    if expression is None or not expression.strip():
        return None
    return _Parser(expression).parse()


def parse_select(select: str | None) -> list[str] | None:
    if select is None or not select.strip():
        return None
    return [part.strip() for part in select.split(",") if part.strip()]


def project(body: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Keep only the selected properties (plus `odata.metadata`, which the service always sends)."""
    if fields is None:
        return body
    keep = set(fields) | {"odata.metadata"}
    return {k: v for k, v in body.items() if k in keep}
