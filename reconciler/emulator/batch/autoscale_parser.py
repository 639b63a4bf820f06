"""Syntax of the autoscale formula language: a Pratt parser from tokens to a small tree.

Precedence, loosest first: `?:` (right-associative), `||`, `&&`, `== !=`, `< <= > >=`, `+ -`, `* /`, unary
`- !`, then calls, `.member` and `.Method(...)`. Names that the service does not define are rejected here,
before anything runs, so a typo in a branch that a test never takes still fails at `enableautoscale` as it
does in Azure.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.emulator.batch.autoscale_errors import FormulaError
from reconciler.emulator.batch.autoscale_lexer import Kind, Token, tokenize

MAX_FORMULA_CHARS = 8 * 1024
MAX_STATEMENTS = 100
MAX_NESTING = 64

FUNCTIONS = frozenset(
    {
        "avg", "ceil", "floor", "len", "lg", "ln", "log", "max", "min", "norm", "percentile", "rand",
        "range", "round", "std", "stop", "sum", "time", "val",
    }
)  # fmt: skip
METHODS = frozenset({"GetSample", "GetSamplePercent", "GetSamplePeriod", "Count", "HistoryBeginTime"})
TIMESTAMP_FIELDS = frozenset({"year", "month", "day", "weekday", "hour", "minute", "second"})


@dataclass(frozen=True)
class Number:
    value: float
    token: Token


@dataclass(frozen=True)
class String:
    value: str
    token: Token


@dataclass(frozen=True)
class Name:
    name: str
    token: Token


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr
    token: Token


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    token: Token


@dataclass(frozen=True)
class Ternary:
    condition: Expr
    then: Expr
    otherwise: Expr
    token: Token


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    token: Token


@dataclass(frozen=True)
class Member:
    target: Expr
    name: str
    token: Token


@dataclass(frozen=True)
class MethodCall:
    target: Expr
    method: str
    args: tuple[Expr, ...]
    token: Token


Expr = Number | String | Name | Unary | Binary | Ternary | Call | Member | MethodCall


@dataclass(frozen=True)
class Statement:
    """`target = expr`, or a bare call such as `stop()` when `target` is None."""

    target: Token | None
    expr: Expr


_BINARY_POWER = {
    "||": 2,
    "&&": 3,
    "==": 4,
    "!=": 4,
    "<": 5,
    "<=": 5,
    ">": 5,
    ">=": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "/": 7,
}
_TERNARY_POWER = 1
_UNARY_POWER = 8


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.END:
            self.index += 1
        return token

    def at_end(self) -> bool:
        return self.current.kind is Kind.END

    def at(self, text: str) -> bool:
        token = self.current
        return token.kind is Kind.OP and token.text == text

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.current.error(f"expected '{text}' but found {_describe(self.current)}")
        return self.advance()

    def statements(self) -> list[Statement]:
        result: list[Statement] = []
        while self.current.kind is not Kind.END:
            if self.at(";"):
                self.advance()
                continue
            result.append(self.statement())
            if len(result) > MAX_STATEMENTS:
                raise self.current.error(f"a formula may hold at most {MAX_STATEMENTS} statements")
            if not self.at_end():
                self.expect(";")
        return result

    def statement(self) -> Statement:
        first = self.current
        nxt = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else first
        if first.kind is Kind.NAME and nxt.kind is Kind.OP and nxt.text == "=":
            self.advance()
            self.advance()
            return Statement(first, self.expression(0))
        expr = self.expression(0)
        if not isinstance(expr, Call):
            raise first.error("expected an assignment 'name = expression'")
        return Statement(None, expr)

    def expression(self, min_power: int) -> Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.current.error(f"expression nested deeper than {MAX_NESTING} levels")
        try:
            left = self.prefix()
            while True:
                token = self.current
                if token.kind is not Kind.OP:
                    break
                if token.text == "?" and min_power <= _TERNARY_POWER:
                    self.advance()
                    then = self.expression(0)
                    self.expect(":")
                    otherwise = self.expression(_TERNARY_POWER)
                    left = Ternary(left, then, otherwise, token)
                    continue
                power = _BINARY_POWER.get(token.text)
                if power is None or power < min_power:
                    break
                self.advance()
                left = Binary(token.text, left, self.expression(power + 1), token)
            return left
        finally:
            self.depth -= 1

    def prefix(self) -> Expr:
        token = self.advance()
        expr: Expr
        if token.kind is Kind.NUMBER:
            expr = Number(float(token.text), token)
        elif token.kind is Kind.STRING:
            expr = String(token.text, token)
        elif token.kind is Kind.NAME:
            if self.at("("):
                if token.text not in FUNCTIONS:
                    raise token.error(f"unsupported function '{token.text}'")
                expr = Call(token.text, self.arguments(), token)
            else:
                expr = Name(token.text, token)
        elif token.kind is Kind.OP and token.text in ("-", "!"):
            return Unary(token.text, self.expression(_UNARY_POWER), token)
        elif token.kind is Kind.OP and token.text == "(":
            expr = self.expression(0)
            self.expect(")")
        else:
            raise token.error(f"expected an expression but found {_describe(token)}")
        return self.postfix(expr)

    def postfix(self, expr: Expr) -> Expr:
        chained = 0
        while self.at("."):
            chained += 1
            if chained > MAX_NESTING:
                raise self.current.error(f"more than {MAX_NESTING} '.' in a row")
            self.advance()
            name = self.advance()
            if name.kind is not Kind.NAME or name.text.startswith("$"):
                raise name.error(f"expected a member name after '.' but found {_describe(name)}")
            if self.at("("):
                if name.text not in METHODS:
                    raise name.error(f"unsupported method '{name.text}'")
                expr = MethodCall(expr, name.text, self.arguments(), name)
            else:
                if name.text not in TIMESTAMP_FIELDS:
                    raise name.error(f"unsupported member '{name.text}'")
                expr = Member(expr, name.text, name)
        return expr

    def arguments(self) -> tuple[Expr, ...]:
        self.expect("(")
        args: list[Expr] = []
        if not self.at(")"):
            args.append(self.expression(0))
            while self.at(","):
                self.advance()
                args.append(self.expression(0))
        self.expect(")")
        return tuple(args)


def _describe(token: Token) -> str:
    return token.kind.value if token.kind is Kind.END else f"'{token.text}'"


def parse(source: str) -> list[Statement]:
    if len(source.encode("utf-8")) > MAX_FORMULA_CHARS:
        raise FormulaError(f"a formula may be at most {MAX_FORMULA_CHARS} bytes long")
    return _Parser(tokenize(source)).statements()


def left_spine(expr: Binary) -> tuple[Expr, list[Binary]]:
    """`a + b - c` as its first operand `a` and the operations applied to it in order (`+ b`, `- c`).

    Left-associative chains are as long as the formula allows (8 KB of `1+1+...`) while the parser bounds
    every other kind of nesting, so whoever walks the tree walks these chains in a loop, not by recursion.
    """
    spine: list[Binary] = []
    node: Expr = expr
    while isinstance(node, Binary):
        spine.append(node)
        node = node.left
    spine.reverse()
    return node, spine
