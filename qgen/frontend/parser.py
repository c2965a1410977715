"""Text to parse tree with lark; syntax errors become qgen errors with line:column and a hint."""

from __future__ import annotations

import functools
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from qgen.errors import Code, QgenError
from qgen.frontend.source import SourceFile, make_error
from qgen.ir.nodes import Location

# How expected terminals are named in messages.
_READABLE = {
    "NAME": "a name",
    "NUMBER": "a number",
    "QUANTITY": "a number with a unit",
    "DERIVATIVE": "an equation 'dx/dt = ...'",
    "STRING": 'a quoted path "..."',
    "COMPARE": "a comparison (>=, >, <=, <)",
    "ASSIGN_OP": "an assignment (=, +=, -=, *=, /=)",
    "TRAINABLE": "'trainable'",
}


@functools.cache
def grammar_text() -> str:
    return resources.files("qgen.grammar").joinpath("qgen.lark").read_text()


@functools.cache
def _parser() -> Lark:
    # cache=True: lark stores the built LALR tables in the temp folder, keyed by the grammar's hash,
    # so later processes skip the table construction (0.3 s).
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True,
                start=["start", "expr"], cache=True)


def _describe(terminal: str) -> str:
    if terminal in _READABLE:
        return _READABLE[terminal]
    pattern = next((t.pattern for t in _parser().terminals if t.name == terminal), None)
    if pattern is not None and pattern.type == "str":
        return f"'{pattern.value}'"
    return terminal.lower()


def _expected(names: set[str], start: str) -> str:
    items = sorted({_describe(n) for n in names if n != "$END"})
    if "$END" in names or not items:  # lark leaves the set empty where only the end can follow
        items.append("the end of the file" if start == "start" else "the end of the value")
    if len(items) > 8:
        items = items[:8] + ["..."]
    return ", ".join(items)


def _token_text(token: Token) -> str:
    return "end of file" if token.type == "$END" else f"'{token}'"


def _hint(err: UnexpectedInput, source: SourceFile, start: str) -> str | None:
    if start == "expr":
        return "a --set value is one constant expression, e.g. --set N=1000"
    if isinstance(err, UnexpectedCharacters):
        char = source.text[err.pos_in_stream] if err.pos_in_stream < len(source.text) else ""
        if char == "'":
            return "derivatives are written dv/dt, not v'"
        if char == '"':
            return "strings (import paths) must end on the same line"
        if char in "{}()":
            return "check that brackets are balanced"
        if char.isalpha():
            return f"names are written with ASCII letters, digits and '_' (e.g. tau, not {char})"
        return None
    if isinstance(err, UnexpectedToken):
        expected = err.expected or set()
        if "DERIVATIVE" in expected and err.token.type == "NAME":
            return "each equation is written 'dx/dt = expression' for a state variable x"
        if err.token.type in ("QUANTITY", "NUMBER") and "EQUAL" in expected:
            return "write 'name = value'"
        if err.token.type == "QUANTITY":
            return "a number and a unit go together ('20 ms'); separate statements with ';' or a new line"
        if "ASSIGN_OP" in expected and err.token.type == "COMPARE":
            return "assignments use '=', '+=', '-=', '*=' or '/='"
        if err.token.type == "$END":
            return "check that every '{' has a matching '}'"
    return None


def parse(source: SourceFile, start: str = "start") -> Tree:
    """Parse one file (or one expression); raise a QgenError, never a lark exception, on bad syntax."""
    try:
        tree = _parser().parse(source.text, start=start)
    except UnexpectedInput as err:
        raise _syntax_error(err, source, start) from None
    _check_depth(tree, source)
    return tree


# Operators nest at most this deep, so that the later (recursive) stages never run out of stack.
MAX_DEPTH = 100
_OPERATORS = {"add", "sub", "mul", "div", "neg", "pos", "pow", "call"}


def _check_depth(tree: Tree, source: SourceFile) -> None:
    stack: list[tuple[Tree, int, Tree | None]] = [(tree, 0, None)]  # (node, depth, outermost operator)
    while stack:
        node, depth, outer = stack.pop()
        if node.data in _OPERATORS:
            depth, outer = depth + 1, outer or node
            if depth > MAX_DEPTH:
                raise make_error(Code.UNSUPPORTED, f"an expression is nested more than {MAX_DEPTH} levels deep",
                                 source.location(outer), source, "split it with intermediate parameters or constants")
        else:
            depth, outer = 0, None
        stack.extend((child, depth, outer) for child in node.children if isinstance(child, Tree))


def _syntax_error(err: UnexpectedInput, source: SourceFile, start: str) -> QgenError:
    line = getattr(err, "line", None) or 1
    column = getattr(err, "column", None) or 1
    at_end = isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END")
    if at_end or line < 1:  # lark puts the end of input at line -1, or at the start of the last token
        lines = source.text.rstrip().split("\n")  # point just after the last non-blank text
        line, column = len(lines), len(lines[-1]) + 1
    length = 1
    if isinstance(err, UnexpectedCharacters):
        code = Code.UNEXPECTED_CHARACTER
        char = source.text[err.pos_in_stream] if err.pos_in_stream < len(source.text) else "?"
        message = f"unexpected character {char!r}"
        if err.allowed:
            message += f"; expected {_expected(set(err.allowed), start)}"
    elif at_end:
        code = Code.UNEXPECTED_END
        what = "file" if start == "start" else "value"
        message = f"unexpected end of {what}; expected {_expected(set(err.expected), start)}"
    else:
        assert isinstance(err, UnexpectedToken)
        code = Code.SYNTAX
        length = max(1, len(str(err.token)))
        message = f"unexpected {_token_text(err.token)}; expected {_expected(set(err.expected), start)}"
    loc = Location(source.display, line, column, line, column + length)
    return make_error(code, message, loc, source, _hint(err, source, start))
