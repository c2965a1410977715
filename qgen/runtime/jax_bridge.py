"""The JAX bridge: a simulation as a function usable under ``jax.grad``, ``jax.jit`` and ``jax.vmap``.

``fn, params = model.as_jax(duration=40.0)`` gives ``fn(params, inputs) -> observables``. The
forward and backward passes run on the host (``jax.pure_callback``) with the simulator's own
kernels; ``jax.custom_vjp`` connects the backward to ``Simulation.backward`` (the C target's adjoint
kernels, or the reference's), so JAX never differentiates the simulation itself and memory stays
O(spikes). Any optax loop works on top.

- ``params``: the trainable quantities, named as in ``Gradients.flat()``: ``proj.weight`` (S,),
  ``proj.delay`` (S,), ``pop.param`` (), ``pop.var.initial`` (N,).
- ``inputs``: per input population ``(times, ids)`` arrays of shape (B, K), padded with NaN
  times (see :func:`pad_inputs`); they are not differentiated.
- observables: ``pop.spikes`` (B, N, capacity) spike times, NaN where there is none;
  ``pop.first_spike`` (B, N), NaN where the neuron is silent; ``pop.spike_count`` (B, N);
  ``pop.var`` (B, T, N) for each recorded trace.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Sequence

import numpy as np

from qgen.errors import Code, QgenError
from qgen.runtime.results import DEFAULT_SPIKE_CAPACITY

Params = dict[str, np.ndarray]


def pad_inputs(trials: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One input population's (times, ids) per trial as two (B, K) arrays, times padded with NaN."""
    width = max((len(t) for t, _ in trials), default=0)
    times = np.full((len(trials), width), np.nan)
    ids = np.zeros((len(trials), width), dtype=np.int32)
    for b, (t, i) in enumerate(trials):
        times[b, :len(t)] = t
        ids[b, :len(i)] = i
    return times, ids


class Bridge:
    """Host side of the bridge for one simulator: parameters in, observables and gradients out."""

    def __init__(self, sim, duration: float, observables: Sequence[str] | None) -> None:
        if not hasattr(sim, "backward"):
            raise QgenError(Code.UNSUPPORTED, "this target has no backward pass yet",
                            hint="use qgen.load(path, target='reference') for gradients")
        if hasattr(sim, "_check_differentiable"):  # the C target: a build without the backward pass says why now
            sim._check_differentiable()
        self.sim, self.duration = sim, float(duration)
        self.steps = int(np.ceil(duration / sim.dt - 1e-9))
        available = self._available()
        self.observables = list(observables) if observables is not None else list(available)
        for name in self.observables:
            if name not in available:
                raise QgenError(Code.BAD_OPTION, f"no observable {name!r}", hint="observables: " + ", ".join(available))
        self.shapes = {name: available[name] for name in self.observables}
        self._last_key: bytes | None = None

    def _available(self) -> dict[str, tuple[int, ...]]:
        data, batch = self.sim.data, self.sim.batch
        out = {}
        for rec in data.network.records:
            size = data.populations[rec.population].size
            if rec.variable == "spikes":
                capacity = rec.capacity or self.sim.spike_capacity or DEFAULT_SPIKE_CAPACITY
                out[f"{rec.population}.spikes"] = (batch, size, capacity)
                out[f"{rec.population}.first_spike"] = (batch, size)
                out[f"{rec.population}.spike_count"] = (batch, size)
            else:
                out[f"{rec.population}.{rec.variable}"] = (batch, self.steps, size)
        return out

    # -------------------------------------------------------------- parameters

    def trainable(self) -> Params:
        """The current values of every trainable quantity."""
        data, out = self.sim.data, {}
        for name, proj in data.projections.items():
            for what in ("weight", "delay"):
                if what in proj.spec.trainable:
                    out[f"{name}.{what}"] = getattr(proj, what).copy()
        for name, pop in data.populations.items():
            if pop.kind is None:
                continue
            trainable = set(pop.spec.trainable)
            for p in pop.kind.parameter_names:
                if p in trainable:
                    out[f"{name}.{p}"] = np.asarray(pop.params[p], dtype=np.float64)
            for i, v in enumerate(pop.kind.state_names):
                if v in trainable or pop.kind.state[i].trainable:
                    out[f"{name}.{v}.initial"] = pop.initial[v].copy()
        return out

    def _set(self, params: Params) -> None:
        data = self.sim.data
        for key, value in params.items():
            value = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(value)):
                raise QgenError(Code.BAD_INPUT, f"parameter {key}: values must be finite")
            owner, _, what = key.partition(".")
            if owner in data.projections:
                bound = getattr(self.sim, what + "s", None)  # the C target's arrays (copies where dtypes differ)
                target = bound[owner] if bound is not None else None  # (asking for it makes it writeable)
                getattr(data.projections[owner], what)[...] = value
                if target is not None and target is not getattr(data.projections[owner], what):
                    target[...] = value
            elif what.endswith(".initial"):
                data.populations[owner].initial[what.removesuffix(".initial")][...] = value
            else:
                data.populations[owner].params[what] = float(value)
                if isinstance(getattr(self.sim, "parameters", None), dict):  # the C target reads its own array
                    self.sim.parameters[owner][what][...] = float(value)
        if len(getattr(self.sim, "_dynamics", ())) > 64:  # the reference caches per parameter set
            self.sim._dynamics.clear()
            self.sim._adjoints.clear()

    # -------------------------------------------------------------- host callbacks

    def forward(self, params: Params, inputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        self._set(params)
        result = self.sim.run(self._inputs(inputs), self.duration, grad=True)
        self._last_key = self._key(params, inputs)
        out = {}
        for name in self.observables:
            pop, what = name.split(".", 1)
            if what == "spikes":
                out[name] = result.spikes[pop].times
            elif what == "first_spike":
                out[name] = result.spikes[pop].times[:, :, 0]
            elif what == "spike_count":
                out[name] = result.spikes[pop].counts.astype(np.float64)
            else:
                out[name] = result.traces[name]
        return out

    def backward(self, params: Params, inputs, cotangents: dict[str, np.ndarray]) -> Params:
        if self._key(params, inputs) != self._last_key:  # another forward ran in between: redo this one
            self.forward(params, inputs)
        cot = {}
        for name, value in cotangents.items():
            value = np.nan_to_num(np.asarray(value, dtype=np.float64))
            if not name.endswith(".spike_count"):
                cot[name] = value
        result, _ = self.sim._last
        for pop, record in result.spikes.items():  # no spike, no time: its cotangent is meaningless
            if f"{pop}.spikes" in cot:
                cot[f"{pop}.spikes"] = np.where(np.isnan(record.times), 0.0, cot[f"{pop}.spikes"])
            if f"{pop}.first_spike" in cot:
                cot[f"{pop}.first_spike"] = np.where(record.counts > 0, cot[f"{pop}.first_spike"], 0.0)
        flat = self.sim.backward(cot).flat()
        return {key: np.asarray(flat.get(key, np.zeros_like(value)), dtype=np.float64).reshape(np.shape(value))
                for key, value in params.items()}

    def _inputs(self, inputs) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        out = {}
        for pop, (times, ids) in inputs.items():
            times, ids = np.asarray(times, dtype=np.float64), np.asarray(ids)
            if times.ndim != 2 or ids.shape != times.shape:
                raise QgenError(Code.BAD_INPUT, f"input {pop!r}: the JAX bridge takes (times, ids) of shape (B, K)",
                                hint="build them with qgen.runtime.jax_bridge.pad_inputs")
            keep = ~np.isnan(times)
            out[pop] = [(times[b][keep[b]], ids[b][keep[b]].astype(np.int64)) for b in range(len(times))]
        return out

    @staticmethod
    def _key(params: Params, inputs) -> bytes:
        digest = hashlib.sha256()
        for key in sorted(params):
            digest.update(key.encode() + np.ascontiguousarray(params[key], dtype=np.float64).tobytes())
        for key in sorted(inputs):
            for array in inputs[key]:
                digest.update(key.encode() + np.ascontiguousarray(array).tobytes())
        return digest.digest()


def as_jax(sim, duration: float, observables: Sequence[str] | None = None) -> tuple[Callable[..., Any], Params]:
    """(fn, params): ``fn(params, inputs)`` returns the observables and is differentiable in ``params``."""
    import jax
    import jax.numpy as jnp

    bridge = Bridge(sim, duration, observables)
    real = jnp.zeros(()).dtype  # float64 under jax_enable_x64, else float32
    shapes = {name: jax.ShapeDtypeStruct(shape, real) for name, shape in bridge.shapes.items()}

    def host_forward(params, inputs):
        out = bridge.forward(params, inputs)
        return {k: np.asarray(v, dtype=real) for k, v in out.items()}

    def host_backward(params, inputs, cotangents):
        grads = bridge.backward(params, inputs, cotangents)
        return {k: np.asarray(v, dtype=real) for k, v in grads.items()}

    @jax.custom_vjp
    def fn(params, inputs):
        return jax.pure_callback(host_forward, shapes, params, inputs, vmap_method="sequential")

    def fn_fwd(params, inputs):
        return fn(params, inputs), (params, inputs)

    def fn_bwd(residuals, cotangents):
        params, inputs = residuals
        param_shapes = {k: jax.ShapeDtypeStruct(np.shape(v), real) for k, v in params.items()}
        grads = jax.pure_callback(host_backward, param_shapes, params, inputs, cotangents,
                                  vmap_method="sequential")
        return grads, jax.tree_util.tree_map(_zero_cotangent, inputs)

    fn.defvjp(fn_fwd, fn_bwd)
    params = {k: jnp.asarray(v, dtype=real) for k, v in bridge.trainable().items()}
    return fn, params


def _zero_cotangent(x):
    import jax
    import jax.numpy as jnp

    if jnp.issubdtype(x.dtype, jnp.integer):
        return np.zeros(np.shape(x), dtype=jax.dtypes.float0)
    return jnp.zeros_like(x)
