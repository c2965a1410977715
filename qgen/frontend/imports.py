"""Reading a model file and everything it imports, in dependency order, with cycle detection."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lark import Tree

from qgen.errors import Code
from qgen.frontend.parser import parse
from qgen.frontend.source import Diagnostics, SourceFile, make_error
from qgen.ir.nodes import Location

STD_PREFIX = "std/"


def read_source(path: Path, display: str, diag: Diagnostics, loc: Location | None = None) -> SourceFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise make_error(Code.UNREADABLE_FILE, f"file not found: {path}", loc,
                         diag.sources.get(loc.file) if loc else None,
                         "check the path; it is taken relative to the current folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:  # ValueError: a NUL byte in the path
        reason = ("not UTF-8 text" if isinstance(err, UnicodeDecodeError) else
                  getattr(err, "strerror", None) or str(err))
        raise make_error(Code.UNREADABLE_FILE, f"cannot read {path}: {reason}", loc,
                         diag.sources.get(loc.file) if loc else None) from None
    source = SourceFile(path, display, text)
    diag.sources[display] = source
    return source


def load_sources(root: Path, diag: Diagnostics) -> list[tuple[SourceFile, Tree]]:
    """The root file and its imports, each parsed once, imports before their importers."""
    ordered: list[tuple[SourceFile, Tree]] = []
    done: set[str] = set()
    source = read_source(root, root.name, diag)
    _visit(source, root.parent, diag, ordered, done, stack=[])
    return ordered


def _visit(source: SourceFile, root_dir: Path, diag: Diagnostics,
           ordered: list[tuple[SourceFile, Tree]], done: set[str], stack: list[str]) -> None:
    tree = parse(source)
    stack.append(source.display)
    for stmt in tree.children:
        if not (isinstance(stmt, Tree) and stmt.data == "import_stmt"):
            continue
        token = stmt.children[0]
        target = str(token)[1:-1]
        loc = source.location(token)
        path, display = _resolve(target, source, root_dir)
        if path is None:
            hint = ("the library has: " + ", ".join(STD_PREFIX + n for n in library_files())
                    if target.startswith(STD_PREFIX) else
                    "paths are relative to the importing file; the shipped library is under std/")
            raise make_error(Code.IMPORT_NOT_FOUND, f"cannot find imported file {target!r}", loc,
                             source, hint)
        if display in stack:
            cycle = " -> ".join(stack[stack.index(display):] + [display])
            raise make_error(Code.CYCLIC_IMPORT, f"cyclic import: {cycle}", loc, source,
                             "move the shared neuron kinds into a file that both import")
        if display in done:
            continue
        child = read_source(path, display, diag, loc)
        _visit(child, root_dir, diag, ordered, done, stack)
    stack.pop()
    done.add(source.display)
    ordered.append((source, tree))


def library_files() -> list[str]:
    return sorted(p.name for p in resources.files("qgen.stdlib").iterdir() if p.name.endswith(".snn"))


def _resolve(target: str, importer: SourceFile, root_dir: Path) -> tuple[Path | None, str]:
    try:
        return _find(target, importer, root_dir)
    except (OSError, ValueError):  # a name too long, a NUL byte, ...: no such file
        return None, target


def _find(target: str, importer: SourceFile, root_dir: Path) -> tuple[Path | None, str]:
    if target.startswith(STD_PREFIX):
        entry = resources.files("qgen.stdlib").joinpath(target[len(STD_PREFIX):])
        return (Path(str(entry)) if entry.is_file() else None), target
    path = (importer.path.parent / target).resolve()
    if not path.is_file():
        return None, target
    try:
        display = path.relative_to(root_dir.resolve()).as_posix()
    except ValueError:
        display = path.as_posix()
    return path, display
