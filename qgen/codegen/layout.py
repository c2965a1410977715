"""One array of the kernels' state struct, as the code generator lays it out and the manifest records it.

Kept free of sympy: the runtime reads layouts back from manifests on the cached-load path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """``ctype *name`` of ``shape`` (symbolic sizes allowed, see qgen.codegen.c).

    ``lifetime``: "network" arrays describe the instance and persist across runs (parameters,
    connectivity, weights, delays); "run" arrays start at zero in every run; "input" arrays hold
    the input spikes of a run.
    """

    name: str
    ctype: str
    shape: tuple[str | int, ...]
    comment: str
    lifetime: str = "run"
