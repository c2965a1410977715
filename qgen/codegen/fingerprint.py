"""Where the C templates live and a fingerprint of everything that shapes generated code.

Kept free of sympy so that a cached load can compute its cache key without importing it.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

TEMPLATES = Path(str(resources.files("qgen.templates"))) / "c"
_GENERATORS = ("c.py", "kinds.py", "layout.py", "names.py", "printer.py")


def template_hash() -> str:
    """Changes whenever a C template or the generator changes: part of the build-cache key."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for path in sorted([*TEMPLATES.glob("*.j2"), *(here / name for name in _GENERATORS)]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
