"""Tokens of the autoscale formula language.

Statements end at `;`, never at a line break: the service's own examples split one statement over several
lines. `//` and `/* */` comments are skipped. Every token keeps its line and column so each error can point
at the construct that caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from reconciler.emulator.batch.autoscale_errors import FormulaError


class Kind(Enum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    OP = "operator"
    END = "end of formula"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    line: int
    column: int

    def error(self, message: str) -> FormulaError:
        return FormulaError(message, line=self.line, column=self.column)


OPERATORS = (
    "&&",
    "||",
    "==",
    "!=",
    "<=",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "<",
    ">",
    "!",
    "?",
    ":",
    "(",
    ")",
    ",",
    ";",
    ".",
    "=",
)
# C-like operators the language lacks: the error names them rather than saying "unexpected".
FOREIGN_OPERATORS = ("**", "%", "^", "&", "|", "[", "]", "{", "}", "'", "~", "+=", "-=", "*=", "/=")

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_SPACE = re.compile(r"[ \t\r\n\f\v]+")


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    length = len(source)

    def column() -> int:
        return pos - line_start + 1

    def skip(end: int) -> None:
        nonlocal pos, line, line_start
        newlines = source.count("\n", pos, end)
        if newlines:
            line += newlines
            line_start = source.rindex("\n", pos, end) + 1
        pos = end

    while pos < length:
        if space := _SPACE.match(source, pos):
            skip(space.end())
            continue
        if source.startswith("//", pos):
            end = source.find("\n", pos)
            skip(length if end < 0 else end)
            continue
        if source.startswith("/*", pos):
            end = source.find("*/", pos + 2)
            if end < 0:
                raise FormulaError("unterminated comment", line=line, column=column())
            skip(end + 2)
            continue
        start_col = column()
        if number := _NUMBER.match(source, pos):
            if (after := number.end()) < length and (source[after].isalpha() or source[after] in "_$"):
                raise FormulaError(
                    f"malformed number '{source[pos : after + 1]}'", line=line, column=start_col
                )
            tokens.append(Token(Kind.NUMBER, number.group(), line, start_col))
            pos = number.end()
            continue
        if name := _NAME.match(source, pos):
            tokens.append(Token(Kind.NAME, name.group(), line, start_col))
            pos = name.end()
            continue
        if source[pos] == '"':
            string = _STRING.match(source, pos)
            if string is None:
                raise FormulaError("unterminated string", line=line, column=start_col)
            text = re.sub(r"\\(.)", r"\1", string.group(1))
            tokens.append(Token(Kind.STRING, text, line, start_col))
            pos = string.end()
            continue
        foreign = next((op for op in FOREIGN_OPERATORS if source.startswith(op, pos)), None)
        op = next((op for op in OPERATORS if source.startswith(op, pos)), None)
        if foreign is not None and (op is None or len(foreign) > len(op)):
            raise FormulaError(f"unsupported operator '{foreign}'", line=line, column=start_col)
        if op is None:
            raise FormulaError(f"unexpected character {source[pos]!r}", line=line, column=start_col)
        tokens.append(Token(Kind.OP, op, line, start_col))
        pos += len(op)
    tokens.append(Token(Kind.END, "", line, column()))
    return tokens
