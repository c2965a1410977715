"""Errors that reach the user: a stable code, a location with a caret excerpt, and a hint.

Every rejection of user input (a model file, a command-line value, an input file, a run that
overflows in strict mode) is a :class:`QgenError`. The command line prints it and exits with
status 2; it never shows a Python traceback. Codes are stable so that documentation, tests and
users can refer to them (in the manner of NESTML's message codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Code(Enum):
    """Stable error codes. The value is (code, short title)."""

    SYNTAX = ("Q001", "syntax error")
    UNEXPECTED_CHARACTER = ("Q002", "unexpected character")
    UNEXPECTED_END = ("Q003", "unexpected end of file")
    UNREADABLE_FILE = ("Q010", "cannot read file")
    IMPORT_NOT_FOUND = ("Q011", "imported file not found")
    CYCLIC_IMPORT = ("Q012", "cyclic import")
    NETWORK_IN_IMPORT = ("Q013", "network in an imported file")
    UNKNOWN_NAME = ("Q020", "unknown name")
    DUPLICATE_NAME = ("Q021", "duplicate name")
    UNKNOWN_UNIT = ("Q022", "unknown unit")
    UNKNOWN_FUNCTION = ("Q023", "unknown function")
    BAD_ARGUMENT = ("Q024", "bad argument")
    DIMENSION_MISMATCH = ("Q030", "dimension mismatch")
    MISSING_TIME_UNIT = ("Q031", "time quantity without a time unit")
    BAD_VALUE = ("Q032", "value out of range")
    NOT_CONSTANT = ("Q033", "expression is not a constant")
    BAD_DELAY = ("Q040", "delay below dt")
    UNKNOWN_QUEUE = ("Q041", "unknown queue kind")
    BAD_CAPACITY = ("Q042", "bad queue capacity")
    UNKNOWN_CONNECTIVITY = ("Q043", "unknown connectivity")
    UNKNOWN_INITIALIZER = ("Q044", "unknown initialiser")
    UNKNOWN_VARIABLE = ("Q050", "threshold, reset or event on an unknown variable")
    MISSING_BLOCK = ("Q051", "incomplete neuron")
    NONLINEAR_EXACT = ("Q060", "non-linear dynamics with exact timing")
    UNSUPPORTED = ("Q061", "not supported")
    NO_NETWORK = ("Q070", "no network")
    SECOND_NETWORK = ("Q071", "more than one network")
    BAD_INPUT = ("Q080", "bad input")
    BAD_OPTION = ("Q081", "bad option")
    QUEUE_OVERFLOW = ("Q090", "queue overflow")
    RECORD_OVERFLOW = ("Q091", "recording overflow")
    NON_FINITE = ("Q092", "non-finite state")
    MODEL_RUNTIME = ("Q093", "model error during simulation")

    @property
    def id(self) -> str:
        return self.value[0]

    @property
    def title(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Excerpt:
    """The source line of an error and the columns to underline (1-based, inclusive)."""

    text: str
    start: int
    end: int

    def render(self) -> str:
        text = self.text.rstrip("\n")
        line = text.expandtabs(4)
        # Columns count characters; after tabs are expanded, the caret moves with them.
        start = len(text[:max(1, self.start) - 1].expandtabs(4)) + 1
        end = max(start, min(len(text[:max(1, self.end)].expandtabs(4)), len(line)))
        return f"    {line}\n    {' ' * (start - 1)}^{'~' * (end - start)}"


class QgenError(Exception):
    """A user-facing error: ``file:line:col: error Qnnn: message``, an excerpt, and a hint."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        where: str | None = None,
        excerpt: Excerpt | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.where = where
        self.excerpt = excerpt
        self.hint = hint

    def format(self) -> str:
        head = f"{self.where}: " if self.where else ""
        parts = [f"{head}error {self.code.id}: {self.message}"]
        if self.excerpt is not None:
            parts.append(self.excerpt.render())
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.format()


class QgenErrors(QgenError):
    """Several errors found in one pass; formats them all, in source order."""

    def __init__(self, errors: list[QgenError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, where=first.where,
                         excerpt=first.excerpt, hint=first.hint)
        self.errors = errors

    def format(self) -> str:
        body = "\n\n".join(e.format() for e in self.errors)
        if len(self.errors) > 1:
            body += f"\n\n{len(self.errors)} errors"
        return body


class SimulationError(QgenError):
    """An error raised while a model runs (strict-mode overflow, bad input spikes, NaN state)."""
