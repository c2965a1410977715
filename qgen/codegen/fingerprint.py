"""Where the C templates live and a fingerprint of everything that shapes generated code.

Kept free of sympy so that a cached load can compute its cache key without importing it.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

TEMPLATE_ROOT = Path(str(resources.files("qgen.templates")))
TEMPLATES = TEMPLATE_ROOT / "c"
_GENERATORS = ("c.py", "draws.py", "kinds.py", "layout.py", "names.py", "printer.py", "adjoint_c.py")
_JAX_GENERATORS = ("jax.py", "adjoint_jax.py", "names.py")
_RUNTIME = ("streams.py", "background.py")  # constants and tables printed into the C source


def template_hash(target: str = "c") -> str:
    """Changes whenever a template or the generator of ``target`` changes: part of the build-cache key."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    templates, generators = (TEMPLATES, _GENERATORS) if target == "c" else (TEMPLATE_ROOT / target, _JAX_GENERATORS)
    sources = [*templates.glob("*.j2"), *(here / name for name in generators)]
    if target == "c":
        sources += [here.parent / "runtime" / name for name in _RUNTIME]
    for path in sorted(sources):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
