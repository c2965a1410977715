"""``qgen.load``: a model file to a compiled model whose ``simulator()`` runs it on a target.

On a cache hit only the frontend runs (no sympy, no compiler): the build's key is derived from
the IR hash, and a current build proves that the model passed the checks before.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Mapping, Sequence

from qgen.errors import Code, QgenError
from qgen.ir.nodes import Model

TARGETS = ("c", "cuda", "jax", "reference")


class CompiledModel:
    """A model ready to simulate on one target."""

    def __init__(self, model: Model, target: str, build=None, out: str | Path = "generated") -> None:
        self.model, self.target, self.build, self.out = model, target, build, out

    @property
    def name(self) -> str:
        return self.model.name

    def simulator(self, batch: int = 1, *, seed: int | None = None, connectivity=None, strict: bool = False,
                  spike_capacity: int | None = None, **options):
        """A simulation of one network instance (drawn from ``seed``) for ``batch`` trials at once.

        ``options``: target-specific (c: ``threads``; jax: ``event_capacity``, ``spikes_per_step``; cuda:
        ``spikes_per_step``)."""
        from qgen.runtime.network import instantiate

        simulator = self._simulator_class()
        accepted = {name for name, parameter in inspect.signature(simulator).parameters.items()
                    if parameter.kind is parameter.KEYWORD_ONLY} - {"batch", "strict", "spike_capacity"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise QgenError(Code.BAD_OPTION, f"unknown options for the {self.target} target: {', '.join(unknown)}",
                            hint=f"it takes {', '.join(sorted(accepted))}" if accepted else "it takes none")
        data = instantiate(self.model, seed, connectivity, **self._draws())
        if self.target == "cuda":
            from qgen.targets.cuda import simulation

            return simulation(self.build, data, batch=batch, strict=strict, spike_capacity=spike_capacity, **options)
        if self.target == "reference":
            return simulator(data, batch=batch, strict=strict, spike_capacity=spike_capacity)
        return simulator(self.build, data, batch=batch, strict=strict, spike_capacity=spike_capacity, **options)

    def _draws(self) -> dict:
        """Who draws the network's counter-based values: the C target its generated code, the cuda
        and jax targets the builder compiled alone (where a C compiler works), the reference NumPy."""
        if self.target == "c":
            from qgen.targets.c import GeneratedDraws

            return {"draws": GeneratedDraws(self.build)}
        from qgen.codegen.draws import network_draws

        if self.target == "reference" or not network_draws(self.model):
            return {}
        from qgen.targets.builder import draws

        generated = draws(self.out)
        return {"draws": generated} if generated is not None else {}

    def _simulator_class(self) -> type:
        if self.target == "cuda":
            from qgen.targets.cuda import _simulation_class

            return _simulation_class()
        if self.target == "jax":
            from qgen.targets.jax import JaxSimulation

            return JaxSimulation
        if self.target == "reference":
            from qgen.reference import ReferenceSimulator

            return ReferenceSimulator
        from qgen.runtime.simulation import Simulation

        return Simulation

    def as_jax(self, duration: float, *, batch: int = 1, seed: int | None = None,
               observables: Sequence[str] | None = None, **options):
        """(fn, params) for JAX: ``fn(params, inputs)`` -> observables, differentiable in ``params``.

        See :mod:`qgen.runtime.jax_bridge`; ``options`` go to :meth:`simulator`.
        """
        if self.target == "jax":  # native: the generated adjoint, no host callback
            return self.simulator(batch, seed=seed, **options).as_jax(duration, observables)
        from qgen.runtime.jax_bridge import as_jax

        return as_jax(self.simulator(batch, seed=seed, **options), duration, observables)


def load(path: str | Path, target: str = "c", *, precision: str = "float64",
         overrides: Mapping[str, str] | None = None, out: str | Path = "generated",
         force: bool = False, runtime: bool = True) -> CompiledModel:
    """Parse, check and build ``path`` for ``target`` (cached), ready for ``.simulator()``.

    ``runtime=False``: build only (the cuda target then needs nvcc, but neither pycuda nor a GPU)."""
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
    if target == "jax" and model.network.backgrounds:  # in-kernel sources: reference, c and cuda
        bg = model.network.backgrounds[0]
        raise QgenError(Code.UNSUPPORTED, f"{bg.loc}: background sources are not supported on target {target}",
                        hint="run this model on the c, cuda or reference target")
    if target == "jax":
        from qgen.targets import jax as builder
    elif target == "cuda":
        from qgen.targets import cuda as builder

        if runtime:
            builder.check_runtime()  # before building: one sentence on what is missing (pycuda, a GPU)
    else:
        from qgen.targets import c as builder

    cached = None if force else builder.load_cached(model, precision, out)
    if cached is not None:
        return CompiledModel(model, target, cached, out)
    from qgen.analysis import check_model

    check_model(model, sources)
    return CompiledModel(model, target, builder.build(model, precision, out, force=force), out)
