"""Source files and the diagnostics that point into them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from qgen.errors import Code, Excerpt, QgenError, QgenErrors
from qgen.ir.nodes import Location


@dataclass(frozen=True)
class SourceFile:
    path: Path  # where it was read from
    display: str  # how locations name it: relative to the root model's folder, or std/...
    text: str

    def line(self, number: int) -> str:
        # Lines as the parser counts them: only '\n' ends one (str.splitlines would also split at
        # '\r', '\f', '\u2028' and others, and show the wrong line).
        lines = self.text.split("\n")
        return lines[number - 1].rstrip("\r") if 0 < number <= len(lines) else ""

    def location(self, node) -> Location:
        """The location of a lark Tree (via its meta) or Token."""
        meta = getattr(node, "meta", node)
        if getattr(meta, "empty", False) or getattr(meta, "line", None) is None:
            return Location(self.display, 1, 1, 1, 1)
        return Location(self.display, meta.line, meta.column, meta.end_line, meta.end_column)


@dataclass
class Diagnostics:
    """Collects the errors of one pass so that the user sees all of them at once."""

    sources: dict[str, SourceFile] = field(default_factory=dict)
    errors: list[QgenError] = field(default_factory=list)

    def error(self, code: Code, message: str, loc: Location | None, hint: str | None = None) -> QgenError:
        err = make_error(code, message, loc, self.sources.get(loc.file) if loc else None, hint)
        self.errors.append(err)
        return err

    def raise_if_any(self) -> None:
        if self.errors:
            raise self.errors[0] if len(self.errors) == 1 else QgenErrors(sorted(self.errors, key=self._order))

    def _order(self, err: QgenError) -> tuple:
        """Source order: by file (as read), line and column; errors without a place last."""
        if err.where is None:
            return (len(self.sources), 0, 0)
        file, line, column = err.where.rsplit(":", 2)
        files = list(self.sources)
        return (files.index(file) if file in files else len(files), int(line), int(column))


def make_error(code: Code, message: str, loc: Location | None, source: SourceFile | None,
               hint: str | None = None) -> QgenError:
    excerpt = None
    if loc is not None and source is not None:
        end = loc.end_column - 1 if loc.end_line == loc.line else len(source.line(loc.line))
        excerpt = Excerpt(source.line(loc.line), loc.column, max(loc.column, end))
    return QgenError(code, message, where=str(loc) if loc else None, excerpt=excerpt, hint=hint)


def did_you_mean(name: str, choices, otherwise: str | None = None, n: int = 2, cutoff: float = 0.6) -> str | None:
    """The hint for an unknown name: 'did you mean a or b?' when some choices are close, else ``otherwise``."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff)
    return f"did you mean {' or '.join(close)}?" if close else otherwise
