"""``qgen.load``: a model file to a compiled model whose ``simulator()`` runs it on a target.

On a cache hit only the frontend runs (no sympy, no compiler): the build's key is derived from
the IR hash, and a current build proves that the model passed the checks before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from qgen.errors import Code, QgenError
from qgen.ir.nodes import Model

TARGETS = ("c", "reference")


class CompiledModel:
    """A model ready to simulate on one target."""

    def __init__(self, model: Model, target: str, build=None) -> None:
        self.model, self.target, self.build = model, target, build

    @property
    def name(self) -> str:
        return self.model.name

    def simulator(self, batch: int = 1, *, seed: int | None = None, connectivity=None, strict: bool = False,
                  spike_capacity: int | None = None):
        """A simulation of one network instance (drawn from ``seed``) for ``batch`` trials at once."""
        from qgen.runtime.network import instantiate

        data = instantiate(self.model, seed, connectivity)
        if self.target == "reference":
            from qgen.reference import ReferenceSimulator

            return ReferenceSimulator(data, batch=batch, strict=strict, spike_capacity=spike_capacity)
        from qgen.runtime.simulation import Simulation

        return Simulation(self.build, data, batch=batch, strict=strict, spike_capacity=spike_capacity)

    def as_jax(self, duration: float, *, batch: int = 1, seed: int | None = None,
               observables: Sequence[str] | None = None, **options):
        """(fn, params) for JAX: ``fn(params, inputs)`` -> observables, differentiable in ``params``.

        See :mod:`qgen.runtime.jax_bridge`; ``options`` go to :meth:`simulator`.
        """
        from qgen.runtime.jax_bridge import as_jax

        return as_jax(self.simulator(batch, seed=seed, **options), duration, observables)


def load(path: str | Path, target: str = "c", *, precision: str = "float64",
         overrides: Mapping[str, str] | None = None, out: str | Path = "generated",
         force: bool = False) -> CompiledModel:
    """Parse, check and build ``path`` for ``target`` (cached), ready for ``.simulator()``."""
    from qgen.frontend import load_model

    if target not in TARGETS:
        raise QgenError(Code.BAD_OPTION, f"unknown target {target!r}", hint="targets: " + ", ".join(TARGETS))
    sources: dict = {}
    model = load_model(path, overrides, sources)
    if model.network is None:
        raise QgenError(Code.NO_NETWORK, f"{path} has no network to simulate",
                        hint="add a 'network' block, or import this file from one that has")
    if target == "reference":
        from qgen.analysis import check_model

        check_model(model, sources)
        return CompiledModel(model, target)
    from qgen.targets import c

    cached = None if force else c.load_cached(model, precision, out)
    if cached is not None:
        return CompiledModel(model, target, cached)
    from qgen.analysis import check_model

    check_model(model, sources)
    return CompiledModel(model, target, c.build(model, precision, out, force=force))
