"""Calico's selector expressions, as IPPool.spec.nodeSelector and BGP settings use them:

    all()                         every node
    has(key)  !has(key)           the label is there (or not)
    key == "v"   key != "v"       quotes single or double
    key in {"a", "b"}   key not in {"a"}
    ( ... )   !expr   a && b   a || b      (&& binds tighter than ||)

`parse` checks an expression and names what is wrong; `matches` evaluates a parsed one
against a node's labels. Pure: no store, no kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ValidationError

_TOKEN = re.compile(r"""\s*(?:(?P<str>"[^"]*"|'[^']*')|(?P<op>&&|\|\||==|!=|[!(){},])|(?P<word>[A-Za-z0-9_./-]+))""")


@dataclass(frozen=True)
class Node:
    """One node of the parsed expression: op is all, has, eq, ne, in, notin, not, and, or."""
    op: str
    key: str = ""
    values: tuple[str, ...] = ()
    args: tuple["Node", ...] = ()


class SelectorError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SelectorError(f"unexpected {text[pos:].strip()[:10]!r} at character {pos + 1}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        out.append((kind, value[1:-1] if kind == "str" else value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tk, tv = self.peek()
        if (value is not None and tv != value) or (kind is not None and tk != kind) or tk == "end":
            want = repr(value) if value else {"str": "a quoted value", "word": "a label key"}.get(kind or "", "more")
            raise SelectorError(f"expected {want}, found {tv!r}" if tk != "end" else f"expected {want} at the end")
        self.i += 1
        return tv

    def expr(self) -> Node:
        left = self.conj()
        while self.peek()[1] == "||":
            self.take("||")
            left = Node("or", args=(left, self.conj()))
        return left

    def conj(self) -> Node:
        left = self.unary()
        while self.peek()[1] == "&&":
            self.take("&&")
            left = Node("and", args=(left, self.unary()))
        return left

    def unary(self) -> Node:
        tk, tv = self.peek()
        if tv == "!":
            self.take("!")
            return Node("not", args=(self.unary(),))
        if tv == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        if tk == "word" and tv in ("all", "has") and self.peek(1)[1] == "(":
            self.take()
            self.take("(")
            if tv == "all":
                self.take(")")
                return Node("all")
            key = self.take(kind="word")
            self.take(")")
            return Node("has", key)
        key = self.take(kind="word")
        tk, tv = self.peek()
        if tv in ("==", "!="):
            self.take()
            return Node("eq" if tv == "==" else "ne", key, (self.take(kind="str"),))
        negate = False
        if tk == "word" and tv == "not":
            self.take()
            negate = True
        if self.peek()[1] == "in":
            self.take("in")
            self.take("{")
            values = []
            while self.peek()[1] != "}":
                values.append(self.take(kind="str"))
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            return Node("notin" if negate else "in", key, tuple(values))
        raise SelectorError(f"expected ==, !=, in or not in after {key!r}")


def parse(text: str) -> Node:
    if not isinstance(text, str):
        raise SelectorError("must be a string such as all() or zone == \"a\"")
    if not text.strip():
        return Node("all")
    p = _Parser(text)
    node = p.expr()
    if p.peek()[0] != "end":
        raise SelectorError(f"unexpected {p.peek()[1]!r} after a complete expression")
    return node


def check(text: object, field: str, source: str = "") -> str:
    """The expression, normalized ("" -> "all()"), or a ValidationError naming `field`."""
    try:
        parse(text)  # type: ignore[arg-type]
    except SelectorError as e:
        raise ValidationError(field, f"{text!r} is not a selector: {e}", source) from None
    return text.strip() or "all()"  # type: ignore[union-attr]


def matches(node: Node | str, labels: dict[str, str]) -> bool:
    if isinstance(node, str):
        node = parse(node)
    op = node.op
    if op == "all":
        return True
    if op == "has":
        return node.key in labels
    if op == "eq":
        return labels.get(node.key) == node.values[0]
    if op == "ne":
        return labels.get(node.key) != node.values[0]
    if op == "in":
        return node.key in labels and labels[node.key] in node.values
    if op == "notin":
        return labels.get(node.key) not in node.values
    if op == "not":
        return not matches(node.args[0], labels)
    if op == "and":
        return all(matches(a, labels) for a in node.args)
    return any(matches(a, labels) for a in node.args)
