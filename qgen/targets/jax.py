"""The JAX target: generate a Python module per model, cache it, import it and run it.

A build lives in ``<out>/<model>/jax/<precision>/``: ``model.py`` (the generated module, readable,
importable on its own: it needs only jax) and ``manifest.json`` (cache key, IR hash, template hash,
the plan of populations and projections). The manifest is written last, atomically, so an
interrupted build has none and is redone; the cache key covers the IR and every template and
generator file, so an unchanged model is never regenerated. jax itself is imported only to run.

:class:`JaxSimulation` gives the C target's API (``run(inputs, duration) -> Result``, writable
``weights``, ``delays`` and ``parameters``) and, for JAX users, :meth:`JaxSimulation.forward_fn`:
a pure function ``f(params, inputs) -> outputs`` usable under ``jax.jit``, ``jax.vmap`` and
``jax.grad`` (the generated module's ``simulate`` is a ``jax.custom_vjp`` whose backward is the
generated adjoint scan), and :meth:`JaxSimulation.as_jax`, the JAX bridge's ``(fn, params)``
contract natively; :func:`export_stablehlo` serializes ``fn`` and its VJP with ``jax.export``.
See docs/targets.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

from qgen.codegen.fingerprint import template_hash
from qgen.errors import Code, QgenError, SimulationError
from qgen.ir.nodes import Model
from qgen.runtime.inputs import BoundInputs, Inputs, check_inputs, pushed_in_order
from qgen.runtime.network import NetworkData
from qgen.runtime.results import DEFAULT_SPIKE_CAPACITY, Result
from qgen.runtime.schedule import grid_point, grid_steps, run_steps
from qgen.targets.c import MANIFEST, _locked, write_manifest

PRECISIONS = ("float64", "float32")
FORMAT = 1  # of the build folder; part of the cache key
DEFAULT_EVENT_CAPACITY = 32  # due events per neuron and step (a population's merged buffer)
DEFAULT_SPIKES_PER_STEP = 2  # spikes per neuron and step that reach the queues (exact timing)
DEFAULT_DROP_CAPACITY = 1024  # dropped events per projection and trial the backward pass can leave out
MIN_REVERSE_CAPACITY = 32  # events per target (fifo: per synapse) in a reverse queue, at least
BIG = 2**31 - 1
# XLA:CPU options: the classic kernel emitters (a scatter inside a loop is expanded, so the loop is
# compiled into one function: qgen/runtime/xla_flags.py sets the same for the user's own jax.jit);
# LLVM at XLA's default -O3, which vectorises the loops over neurons in that function (-O1 compiled
# ~10 % faster and ran the recurrent network 20 % slower). Other backends use their defaults.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


# ------------------------------------------------------------------ build and cache


@dataclass
class JaxBuild:
    folder: Path
    manifest: dict

    @property
    def module(self) -> ModuleType:
        """The generated module, imported on first use (building needs no jax; running does)."""
        try:
            return _import(self.folder / "model.py", self.manifest["module"])
        except ImportError as err:
            raise QgenError(Code.UNSUPPORTED, f"the jax target needs jax: {err}",
                            hint="pip install 'jax>=0.4.30' (or qgen[jax])") from None

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def plan(self) -> dict:
        return self.manifest["plan"]

    @property
    def simulate(self) -> Callable:
        """``module.simulate`` under jax.jit with the config static: compiled once per config and
        shapes, and shared by every simulator of identical builds in this process."""
        name = self.manifest["module"]
        if name not in _JITTED:
            _JITTED[name] = _jit(self.module.simulate)
        return _JITTED[name]


def _jit(simulate: Callable) -> Callable:
    """jax.jit with the config static, and CPU_COMPILER_OPTIONS on CPU where XLA knows them."""
    import jax

    plain = jax.jit(simulate, static_argnames=("config",))
    if jax.default_backend() != "cpu":
        return plain
    _check_small_loops()
    tuned = jax.jit(simulate, static_argnames=("config",), compiler_options=CPU_COMPILER_OPTIONS)
    chosen = [tuned]

    def call(*args, **kwargs):
        try:
            return chosen[0](*args, **kwargs)
        except Exception as err:  # an older XLA without these options: use its defaults
            if chosen[0] is tuned and "option" in str(err).lower():
                chosen[0] = plain
                return plain(*args, **kwargs)
            raise
    return call


_SMALL_LOOPS: list[bool] = []  # whether XLA:CPU compiles the scans as one function (probed once)


def _check_small_loops() -> None:
    """Warn once if JAX compiled a program before qgen was imported, so that qgen's XLA:CPU settings
    (qgen/runtime/xla_flags.py) cannot take effect: the JAX target then runs about 2x slower."""
    from qgen.runtime import xla_flags

    if _SMALL_LOOPS or os.environ.get("QGEN_XLA_FLAGS", "1") == "0":
        return
    _SMALL_LOOPS.append(xla_flags.in_effect())
    if not _SMALL_LOOPS[0]:
        import warnings

        warnings.warn("qgen's JAX target runs about 2x slower in this process: JAX compiled a program before "
                      "qgen was imported, so XLA no longer reads the XLA_FLAGS that qgen sets. Import qgen "
                      f"before running JAX code, or start Python with XLA_FLAGS=\"{xla_flags.EXTRA}"
                      f"{xla_flags.OPTION}={xla_flags.THRESHOLD} {xla_flags.EMITTERS}=false\" "
                      "(QGEN_XLA_FLAGS=0 silences this).",
                      RuntimeWarning, stacklevel=3)


def cache_key(model: Model, precision: str, template: str) -> str:
    from qgen import __version__

    parts = [str(FORMAT), __version__, model.hash, template, precision, sys.version.split()[0]]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_folder(model: Model, precision: str, out: str | Path) -> Path:
    return Path(out) / model.name / "jax" / precision


def build(model: Model, precision: str = "float64", out: str | Path = "generated", force: bool = False) -> JaxBuild:
    """Generate ``model`` as a JAX module unless an identical build is cached; return it imported."""
    if precision not in PRECISIONS:
        raise QgenError(Code.BAD_OPTION, f"unknown precision {precision!r}", hint="use float64 or float32")
    folder = build_folder(model, precision, out)
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(model, precision, template_hash("jax"))
    with _locked(folder):
        if not force:
            cached = _load_cached(folder, key)
            if cached is not None:
                return cached
        return _generate(model, precision, folder, key)


def load_cached(model: Model, precision: str = "float64", out: str | Path = "generated") -> JaxBuild | None:
    """The cached build of ``model`` if it is current, without generating anything (fast path of load)."""
    folder = build_folder(model, precision, out)
    if not (folder / MANIFEST).is_file():
        return None
    with _locked(folder):
        return _load_cached(folder, cache_key(model, precision, template_hash("jax")))


_MODULES: dict[str, ModuleType] = {}  # module name (it holds the cache key) -> the imported module
_JITTED: dict[str, Callable] = {}  # module name -> its jitted simulate


def _load_cached(folder: Path, key: str) -> JaxBuild | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("key") != key:
            return None
        if not (folder / manifest["module_file"]).is_file():
            return None
    except (OSError, ValueError, KeyError):
        return None  # missing, partial or corrupt: build again
    return JaxBuild(folder, manifest)


def _import(path: Path, name: str) -> ModuleType:
    if name in _MODULES:
        return _MODULES[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _MODULES[name] = module
    return module


def _generate(model: Model, precision: str, folder: Path, key: str) -> JaxBuild:
    from qgen import __version__
    from qgen.codegen.jax import generate

    generated = generate(model, precision, __version__)
    compile(generated.source, str(folder / "model.py"), "exec")  # a template bug shows here, not at import
    (folder / MANIFEST).unlink(missing_ok=True)
    temporary = folder / "model.py.tmp"
    temporary.write_text(generated.source)
    os.replace(temporary, folder / "model.py")
    module_name = f"_qgen_jax_{_identifier(model.name)}_{precision}_{key[:12]}"
    manifest = {
        "key": key, "qgen": __version__, "model": model.name, "model_hash": model.hash,
        "template_hash": template_hash("jax"), "precision": precision, "timing": model.network.timing,
        "module": module_name, "module_file": "model.py", "plan": generated.plan,
    }
    write_manifest(folder, manifest)
    return JaxBuild(folder, manifest)


def _identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def precision_scope(precision: str):
    """64-bit JAX for float64 builds, scoped to the call (jax.enable_x64 is thread-local)."""
    import jax

    if precision != "float64":
        return nullcontext()
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # jax < 0.6

    return enable_x64()


# ------------------------------------------------------------------ results


@dataclass
class JaxResult(Result):
    """A :class:`Result` with what the fixed-capacity arrays of the JAX target could not hold."""

    lost_events: dict[str, np.ndarray] = field(default_factory=dict)  # population -> (batch,) due events dropped
    lost_spikes: dict[str, np.ndarray] = field(default_factory=dict)  # population -> (batch,) spikes not pushed

    def warnings(self) -> list[str]:
        lines = super().warnings()
        for pop, lost in self.lost_events.items():
            if lost.sum():
                lines.append(f"{pop}: {int(lost.sum())} due events did not fit the per-step event buffer and "
                             "were dropped; raise event_capacity in simulator()")
        for pop, lost in self.lost_spikes.items():
            if lost.sum():
                lines.append(f"{pop}: {int(lost.sum())} spikes did not fit the per-step spike buffer and were "
                             "not sent to the queues; raise spikes_per_step in simulator()")
        return lines


# ------------------------------------------------------------------ the simulation


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


class JaxSimulation:
    """Run a JAX build: ``sim = qgen.load(path, target="jax").simulator(batch=2); sim.run(inputs, 100.0)``.

    Beyond the C target's options: ``event_capacity`` (due events per neuron and step, default 32)
    and ``spikes_per_step`` (spikes per neuron and step that reach the queues, default 2 with exact
    timing). What does not fit is counted per population and reported by ``result.warnings()``.

    The adjoint's sizes (used only under jax.grad): ``tape_capacity`` (spikes per neuron and trial
    kept for the backward pass, default the record capacity or 1024), ``checkpoint_every`` (steps
    between kept states, default ⌈√T⌉), ``drop_capacity`` (dropped events per projection and trial
    the backward pass can leave out, default 1024) and ``reverse_capacity`` (events per target, per
    synapse for fifo, in a reverse queue; default max(32, 4 × the queue's capacity)). Beyond any of
    them the gradients are NaN, never silently wrong.
    """

    def __init__(self, build: JaxBuild, data: NetworkData, *, batch: int = 1, strict: bool = False,
                 spike_capacity: int | None = None, event_capacity: int | None = None,
                 spikes_per_step: int | None = None, tape_capacity: int | None = None,
                 checkpoint_every: int | None = None, drop_capacity: int | None = None,
                 reverse_capacity: int | None = None) -> None:
        from qgen.runtime.simulation import BoundArrays

        if not isinstance(batch, int) or batch < 1:
            raise QgenError(Code.BAD_OPTION, f"the batch size must be a positive integer, not {batch!r}")
        for name, value in (("event_capacity", event_capacity), ("spikes_per_step", spikes_per_step),
                            ("tape_capacity", tape_capacity), ("checkpoint_every", checkpoint_every),
                            ("drop_capacity", drop_capacity), ("reverse_capacity", reverse_capacity)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise QgenError(Code.BAD_OPTION, f"{name} must be a positive integer, not {value!r}")
        self.build, self.data, self.batch, self.strict = build, data, batch, strict
        self.module = build.module
        self.dt = data.dt
        self.exact = data.timing == "exact"
        self.real = np.float64 if build.precision == "float64" else np.float32
        self.event_capacity = event_capacity or DEFAULT_EVENT_CAPACITY
        self.spikes_per_step = spikes_per_step or (DEFAULT_SPIKES_PER_STEP if self.exact else 1)
        self.tape_capacity, self.checkpoint_every = tape_capacity, checkpoint_every
        self.drop_capacity = drop_capacity or DEFAULT_DROP_CAPACITY
        self.reverse_capacity = reverse_capacity
        self._pops = {p["name"]: p for p in build.plan["populations"]}
        self._projs = {p["name"]: p for p in build.plan["projections"]}
        records = {r.population: r.capacity for r in data.network.records if r.variable == "spikes"}
        self._capacity = {name: records.get(name) or spike_capacity or DEFAULT_SPIKE_CAPACITY for name in records}
        self._weights = {name: p.weight.astype(self.real) for name, p in data.projections.items()}
        self._delays = {name: p.delay.astype(np.float64) for name, p in data.projections.items()}
        self._params = {name: np.array([pop.params[k] for k in self._pops[name]["parameters"]], dtype=self.real)
                        for name, pop in data.populations.items() if pop.kind is not None}
        self.weights = BoundArrays(self._weights, "weights of projection")
        self.delays = BoundArrays(self._delays, "delays of projection")
        self.parameters = {name: BoundArrays({param: values[k:k + 1].reshape(())
                                              for k, param in enumerate(self._pops[name]["parameters"])},
                                             f"parameter of {name}")
                           for name, values in self._params.items()}
        self._connections = self._connectivity()

    # ------------------------------------------------------------ the arrays of the pure function

    def _connectivity(self) -> dict:
        """Per projection: pre, post and the incoming synapses of each target (padded, in synapse order)."""
        network = {}
        for name, proj in self.data.projections.items():
            n_post = self.data.populations[proj.spec.post].size
            order = np.lexsort((np.arange(proj.size), proj.post))
            indegree = np.bincount(proj.post, minlength=n_post)
            width = max(1, int(indegree.max()) if len(indegree) else 1)
            starts = np.concatenate([[0], np.cumsum(indegree)])
            column = np.arange(proj.size) - np.repeat(starts[:-1], indegree)
            in_syn = np.zeros((n_post, width), np.int32)
            in_valid = np.zeros((n_post, width), bool)
            in_syn[proj.post[order], column] = order
            in_valid[proj.post[order], column] = True
            network[name] = {"pre": proj.pre.astype(np.int32), "post": proj.post.astype(np.int32),
                             "in_syn": in_syn, "in_valid": in_valid}
        return network

    @property
    def _network(self) -> dict:
        """The network argument: connectivity, and with grid timing the delays in steps, rounded in
        float64 from the current delays (as the reference and the C target round them)."""
        if self.exact:
            return self._connections
        return {name: dict(arrays, delay_steps=grid_steps(self._delays[name], self.dt).astype(np.int32))
                for name, arrays in self._connections.items()}

    def params(self) -> dict:
        """The differentiable arguments: weights, delays (ms), parameters and initial states (copies)."""
        initial = {}
        for name, pop in self.data.populations.items():
            if pop.kind is not None:
                initial[name] = np.stack([pop.initial[v] for v in self._pops[name]["state"]], axis=-1).astype(self.real)
        return {"weight": {k: v.copy() for k, v in self._weights.items()},
                "delay": {k: v.astype(self.real) for k, v in self._delays.items()},
                "parameters": {name: {param: values[k].copy() for k, param in enumerate(self._pops[name]["parameters"])}
                               for name, values in self._params.items()},
                "initial": initial}

    def encode_inputs(self, inputs: Inputs | None, steps: int, fixed: dict | None = None, *,
                      length: int | None = None, window: int | None = None,
                      per_step: int | None = None) -> tuple[dict, dict]:
        """Input spikes as padded arrays with a leading batch axis, and per input population the
        sizes used: length (spikes per trial), window (spikes pushed in one step), per_step (spikes
        of one neuron pushed in one step). ``fixed`` (per population) or the keywords impose sizes."""
        checked = check_inputs(inputs, self.data, self.batch)
        arrays, sizes = {}, {}
        for name, trials in checked.items():
            if fixed is not None:
                length, window, per_step = fixed[name]["length"], fixed[name]["window"], fixed[name]["per_step"]
            rows, need_window, need_per_step, need_length = [], 1, 1, 1
            for times, ids in trials:
                step, emitted, ids = pushed_in_order(times, ids, self.dt, self.exact, steps)
                group = np.lexsort((np.arange(len(ids)), ids, step))  # (step, id) groups, in time order
                first = np.ones(len(group), bool)
                first[1:] = (step[group][1:] != step[group][:-1]) | (ids[group][1:] != ids[group][:-1])
                starts = np.maximum.accumulate(np.where(first, np.arange(len(group)), 0))
                rank = np.empty(len(ids), np.int64)
                rank[group] = np.arange(len(group)) - starts
                if len(ids):
                    need_per_step = max(need_per_step, int(rank.max()) + 1)
                    need_window = max(need_window, int(np.unique(step, return_counts=True)[1].max()))
                need_length = max(need_length, len(ids))
                rows.append((emitted, ids, step, rank))
            window_ = window or _pow2(need_window)
            per_step_ = per_step or _pow2(need_per_step)
            length_ = length or _pow2(need_length)
            if need_window > window_ or need_per_step > per_step_ or need_length > length_:
                raise QgenError(Code.BAD_INPUT, f"input {name!r} does not fit the sizes of this forward function "
                                f"({need_length} spikes, {need_window} in one step, {need_per_step} of one neuron "
                                "in one step)", hint="make the forward function for the largest inputs")
            total = length_ + window_
            block = {"time": np.zeros((self.batch, total), self.real), "id": np.zeros((self.batch, total), np.int32),
                     "step": np.full((self.batch, total), BIG, np.int32),
                     "rank": np.zeros((self.batch, total), np.int32)}
            for b, (emitted, ids, step, rank) in enumerate(rows):
                k = len(ids)
                block["time"][b, :k], block["id"][b, :k] = emitted, ids
                block["step"][b, :k], block["rank"][b, :k] = step, rank
            arrays[name] = block
            sizes[name] = {"length": length_, "window": window_, "per_step": per_step_}
        return arrays, sizes

    def config(self, steps: int, input_sizes: dict):
        """The static sizes of the compiled program (module.Config)."""
        ring, events, spikes, records, windows, pushes = [], [], [], [], [], []
        for name, pop in self._pops.items():
            if pop["kind"] is None:
                spikes.append(input_sizes[name]["per_step"])
            else:
                spikes.append(self.spikes_per_step if pop["spiking"] else 1)
        for name, proj in self._projs.items():
            delay = self._delays[name]
            ring.append(int(math.ceil(delay.max() / self.dt)) + 2 if proj["queue"] == "ring" and len(delay) else
                        (2 if proj["queue"] == "ring" else 0))
            incoming = self._connections[name]["in_syn"].shape[1] * spikes[self._pops[proj["pre"]]["index"]]
            pushes.append(max(1, min(self.event_capacity, incoming)))
        for name, pop in self._pops.items():
            if pop["kind"] is None:
                events.append(1)
                windows.append(input_sizes[name]["window"])
            else:
                bound = 0
                for index in pop["listed"]:
                    proj = self.build.plan["projections"][index]
                    width = self._connections[proj["name"]]["in_syn"].shape[1] if proj["queue"] == "fifo" else 1
                    bound += proj["capacity"] * width
                events.append(max(1, min(self.event_capacity, bound)))
                windows.append(0)
            records.append(self._capacity.get(name, 0) if pop["recorded_spikes"] else 0)
        # the adjoint's sizes (used only under jax.grad)
        tape = tuple((self.tape_capacity or max(self._capacity.get(name, 0), DEFAULT_SPIKE_CAPACITY))
                     if pop["spiking"] else 0 for name, pop in self._pops.items())
        every = self.checkpoint_every or max(1, int(math.ceil(math.sqrt(steps))))
        reverse = tuple(self.reverse_capacity or max(MIN_REVERSE_CAPACITY, 4 * proj["capacity"])
                        for proj in self._projs.values())
        ahead = max([int(math.ceil(d.max() / self.dt)) + 1 for d in self._delays.values() if len(d)] or [1])
        return self.module.Config(batch=self.batch, steps=steps, ring_slots=tuple(ring),
                                  event_capacity=tuple(events), push_capacity=tuple(pushes),
                                  spike_capacity=tuple(spikes),
                                  record_capacity=tuple(records), input_window=tuple(windows),
                                  tape_capacity=tape, checkpoint_every=min(every, steps),
                                  drop_capacity=tuple(self.drop_capacity for _ in self._projs),
                                  reverse_capacity=reverse, ahead=ahead)

    def forward_fn(self, duration: float, inputs: Inputs | None = None, **sizes) -> "Forward":
        """A pure forward function for runs of ``duration`` ms: ``f(params, inputs) -> outputs``.

        Static sizes (steps, ring slots, buffer capacities, input sizes) are fixed now, from the
        current delays and from ``inputs`` (or ``length``, ``window``, ``per_step`` given as
        keywords); ``f.inputs(...)`` encodes inputs to those sizes. See :class:`Forward`.
        """
        steps = self._steps(duration)
        self._check_network()
        _, input_sizes = self.encode_inputs(inputs, steps, **sizes)
        return Forward(self, duration, steps, self.config(steps, input_sizes), input_sizes)

    # ------------------------------------------------------------ the JAX function of the bridge's contract

    def observable_shapes(self, steps: int) -> dict[str, tuple[int, ...]]:
        """The observables of :meth:`as_jax` and their shapes (as qgen.runtime.jax_bridge names them)."""
        out = {}
        for rec in self.data.network.records:
            size = self.data.populations[rec.population].size
            if rec.variable == "spikes":
                out[f"{rec.population}.spikes"] = (self.batch, size, self._capacity[rec.population])
                out[f"{rec.population}.first_spike"] = (self.batch, size)
                out[f"{rec.population}.spike_count"] = (self.batch, size)
            else:
                out[f"{rec.population}.{rec.variable}"] = (self.batch, steps, size)
        return out

    def trainable(self) -> dict[str, np.ndarray]:
        """The current values of every trainable quantity, named as in ``Gradients.flat()``."""
        out = {}
        for name, proj in self.data.projections.items():
            if "weight" in proj.spec.trainable:
                out[f"{name}.weight"] = self._weights[name].copy()
            if "delay" in proj.spec.trainable:
                out[f"{name}.delay"] = self._delays[name].astype(self.real)
        for name, pop in self.data.populations.items():
            if pop.kind is None:
                continue
            trainable = set(pop.spec.trainable)
            for k, param in enumerate(self._pops[name]["parameters"]):
                if param in trainable:
                    out[f"{name}.{param}"] = self._params[name][k].copy()
            for i, var in enumerate(pop.kind.state_names):
                if var in trainable or pop.kind.state[i].trainable:
                    out[f"{name}.{var}.initial"] = np.asarray(pop.initial[var], dtype=self.real).copy()
        return out

    def as_jax(self, duration: float, observables=None, *, per_step: int | None = None):
        """``(fn, params)`` with the contract of :func:`qgen.runtime.jax_bridge.as_jax`, natively:
        ``fn(params, inputs)`` is generated JAX code end to end (forward scan and adjoint scan, no host
        callback), usable under jax.grad, jax.jit, jax.vmap and jax.export.

        ``params``: the trainable quantities (``proj.weight``, ``proj.delay``, ``pop.param``,
        ``pop.var.initial``); the others keep the simulator's current values. ``inputs``: per input
        population ``(times, ids)`` of shape (B, K), times padded with NaN (jax_bridge.pad_inputs);
        a time at or beyond the duration is ignored. ``per_step``: input spikes of one neuron in one
        step, at most (default min(K, 4)). Observables: ``pop.spikes`` (B, N, capacity), NaN where
        there is none; ``pop.first_spike``; ``pop.spike_count``; ``pop.var`` (B, T, N). A trial
        that fails (an error, or something beyond a fixed capacity) gives NaN observables, and NaN
        gradients where the adjoint's capacities are exceeded (see docs/targets.md).
        """
        import jax
        import jax.numpy as jnp

        steps = self._steps(duration)
        self._check_network()
        shapes = self.observable_shapes(steps)
        names = list(observables) if observables is not None else list(shapes)
        for name in names:
            if name not in shapes:
                raise QgenError(Code.BAD_OPTION, f"no observable {name!r}", hint="observables: " + ", ".join(shapes))
        module, network, base = self.module, self._network, self.params()
        inputs_of = [name for name, pop in self._pops.items() if pop["kind"] is None]
        state_names = {name: pop["state"] for name, pop in self._pops.items()}
        dt, exact, real = self.dt, self.exact, self.real

        def fn(params, inputs):
            full = jax.tree_util.tree_map(jnp.asarray, base)
            for key, value in params.items():
                owner, _, what = key.partition(".")
                if owner in self._projs:
                    full[what][owner] = value
                elif what.endswith(".initial"):
                    var = what.removesuffix(".initial")
                    full["initial"][owner] = full["initial"][owner].at[:, state_names[owner].index(var)].set(value)
                else:
                    full["parameters"][owner][what] = value
            encoded, sizes, crowded = {}, {}, jnp.zeros(self.batch, bool)
            for name in inputs_of:
                times, ids = inputs.get(name, (jnp.full((self.batch, 1), jnp.nan), jnp.zeros((self.batch, 1), jnp.int32)))
                block, size, over = _encode_jax(times, ids, steps, dt, exact, per_step, module.REAL)
                encoded[name], sizes[name] = block, size
                crowded = crowded | over
            out = module.simulate(network, full, encoded, self.config(steps, sizes))
            bad = (out["error"]["code"] != 0) | crowded
            for lost in jax.tree_util.tree_leaves(out["lost"]):
                bad = bad | (lost > 0)
            result = {}
            for name in names:
                pop, what = name.split(".", 1)
                if what in ("spikes", "first_spike", "spike_count"):
                    rec = out["spikes"][pop]
                    value = {"spikes": rec["times"], "first_spike": rec["times"][:, :, 0],
                             "spike_count": rec["count"].astype(module.REAL)}[what]
                else:
                    value = out["traces"][name]
                result[name] = jnp.where(bad.reshape((-1,) + (1,) * (value.ndim - 1)), jnp.nan, value)
            return result

        params = {key: np.asarray(value, dtype=real) for key, value in self.trainable().items()}
        return fn, params

    # ------------------------------------------------------------ running

    def _steps(self, duration: float) -> int:
        return run_steps(duration, self.dt)

    def bind(self, inputs: Inputs | None, duration: float) -> BoundInputs:
        """Input spikes checked and encoded once, on the device, for runs of ``duration`` ms
        (``run(bound, duration)``), as on the C target."""
        import jax

        steps = self._steps(duration)
        encoded, input_sizes = self.encode_inputs(inputs, steps)
        return BoundInputs(self, steps, jax.device_put(encoded), input_sizes)

    def run(self, inputs: Inputs | BoundInputs | None = None, duration: float = 100.0,
            progress: Callable[[int, int], None] | None = None) -> Result:
        """Simulate ``duration`` ms of every trial from the initial state (``inputs``: spikes, or what
        :meth:`bind` made of them for this duration)."""
        import jax

        steps = self._steps(duration)
        self._check_network()
        if isinstance(inputs, BoundInputs):
            encoded, input_sizes = inputs.check(self, steps).arrays, inputs.sizes
        else:
            encoded, input_sizes = self.encode_inputs(inputs, steps)
        config = self.config(steps, input_sizes)
        with precision_scope(self.build.precision):
            outputs = jax.device_get(self.build.simulate(self._network, self.params(), encoded, config))
        if progress is not None:
            progress(steps, steps)
        return self.result(outputs, duration)

    def _check_network(self) -> None:
        for name in self._projs:
            delay = self._delays[name]
            if len(delay) and not (np.all(np.isfinite(delay)) and delay.min() >= self.dt * (1 - 1e-12)):
                raise QgenError(Code.BAD_DELAY, f"projection {name}: a delay is below dt = {self.dt:g} ms "
                                f"or not finite (smallest {delay.min():g} ms)", hint="delays are at least dt")
            if not np.all(np.isfinite(self._weights[name])):
                raise QgenError(Code.BAD_INPUT, f"projection {name}: a weight is not finite")
        for name, values in self._params.items():
            if not np.all(np.isfinite(values)):
                raise QgenError(Code.BAD_INPUT, f"population {name}: a parameter is not finite")

    def result(self, outputs: dict, duration: float) -> JaxResult:
        """The outputs of the forward function as a Result; raises SimulationError for a failed trial."""
        outputs = _numpy(outputs)
        error = outputs["error"]
        if self.strict:  # the first dropped event is an error when it comes before any other
            drop = outputs["first_drop"]
            first = (drop["code"] != 0) & ((error["code"] == 0) | (drop["time"] <= error["time"]))
            error = {key: np.where(first, drop[key], error[key]) for key in error}
        self._raise(error)
        result = JaxResult(duration, self.dt)
        for name, rec in outputs["spikes"].items():
            from qgen.runtime.results import SpikeRecord

            times = rec["times"].astype(np.float64)
            counts = rec["count"].astype(np.int64)
            times[np.arange(times.shape[2])[None, None, :] >= counts[:, :, None]] = np.nan
            result.spikes[name] = SpikeRecord(times, counts, rec["overflow"].astype(np.int64))
        for key, trace in outputs["traces"].items():
            result.traces[key] = np.asarray(trace, dtype=np.float64)
        for name, drops in outputs["drops"].items():
            result.drops[name] = np.asarray(drops, dtype=np.int64)
        for name, x in outputs["final_state"].items():
            result.final_state[name] = np.asarray(x, dtype=np.float64)
        for name, lost in outputs["lost"]["events"].items():
            result.lost_events[name] = np.asarray(lost, dtype=np.int64)
        for name, lost in outputs["lost"]["spikes"].items():
            result.lost_spikes[name] = np.asarray(lost, dtype=np.int64)
        return result

    def _raise(self, error: dict) -> None:
        codes = np.asarray(error["code"])
        if not codes.any():
            return
        b = int(np.argmax(codes != 0))
        code, where, neuron = int(codes[b]), int(error["where"][b]), int(error["neuron"][b])
        time = float(error["time"][b])
        at = f"trial {b}, t = {time:.6g} ms"
        pops, projs = list(self._pops.values()), list(self._projs.values())
        if code == self.module.QUEUE_OVERFLOW:
            proj = projs[where]
            raise SimulationError(
                Code.QUEUE_OVERFLOW,
                f"projection {proj['name']}: the {proj['queue']} queue of capacity {proj['capacity']} is full; "
                f"an event was dropped in the step ending at {time:.6g} ms ({at})",
                hint=f"raise the capacity (queue = {proj['queue']}(capacity = {2 * proj['capacity']})) "
                     "or run without strict")
        if code == self.module.RING_TOO_SHORT:
            raise SimulationError(Code.BAD_DELAY, f"projection {projs[where]['name']}: a delay is longer than the "
                                  f"ring queue's slots ({at})", hint="make the forward function after changing delays")
        pop = pops[where] if 0 <= where < len(pops) else {"name": "?", "kind": "?"}
        if code == self.module.NON_FINITE:
            raise SimulationError(Code.NON_FINITE, f"population {pop['name']}: the state is not finite at "
                                  f"t = {time:g} ms ({at})", hint="check the parameters; with grid timing "
                                  "and non-linear dynamics, a smaller dt may help")
        if code == self.module.RESET_ABOVE_THRESHOLD:
            raise SimulationError(Code.MODEL_RUNTIME, f"{pop['kind']}: the reset leaves neuron {neuron} of "
                                  f"{pop['name']} above threshold at t = {time:g} ms, so it would spike forever",
                                  hint="reset to a value below the threshold, or add a refractory period")
        if code == self.module.SEARCH_LIMIT:
            raise SimulationError(Code.MODEL_RUNTIME, f"population {pop['name']}: neuron {neuron} needed more than "
                                  f"{self.module.MAX_ITERATIONS} actions in the step ending at {time:g} ms ({at})")
        raise SimulationError(Code.MODEL_RUNTIME, f"the kernels stopped with an unknown code {code} ({at})")


def _encode_jax(times, ids, steps: int, dt: float, exact: bool, per_step: int | None, real):
    """One input population's (times, ids) (B, K), NaN-padded, as the generated module takes them
    (as JaxSimulation.encode_inputs does on the host): sorted by (step, time, id), with each spike's
    rank among its neuron's spikes of its step. Returns (arrays, sizes, trials with too many spikes
    of one neuron in one step)."""
    import jax.numpy as jnp
    from jax import lax

    times = jnp.asarray(times)
    ids = jnp.asarray(ids).astype(jnp.int32)
    batch, K = times.shape
    valid = ~jnp.isnan(times)
    safe = jnp.where(valid, times, 0.0)
    if exact:
        step, emitted = jnp.floor(safe / dt), safe
    else:
        index = grid_point(safe / dt, jnp)
        step, emitted = index - 1, index * dt
    valid = valid & (step < steps)
    step = jnp.where(valid, step, BIG).astype(jnp.int32)
    emitted = jnp.where(valid, emitted, 0.0)
    ids = jnp.where(valid, ids, 0)
    step, emitted, ids = lax.sort((step, emitted, ids), dimension=1, num_keys=3)
    before = jnp.arange(K)[None, None, :] < jnp.arange(K)[None, :, None]
    same = (step[:, :, None] == step[:, None, :]) & (ids[:, :, None] == ids[:, None, :]) & before
    rank = jnp.sum(same, axis=2, dtype=jnp.int32)
    width = per_step or min(K, 4)
    over = jnp.any((step < BIG) & (rank >= width), axis=1)
    pad = K  # the window: at most K spikes in one step
    block = {"time": jnp.concatenate([emitted, jnp.zeros((batch, pad))], axis=1).astype(real),
             "id": jnp.concatenate([ids, jnp.zeros((batch, pad), jnp.int32)], axis=1),
             "step": jnp.concatenate([step, jnp.full((batch, pad), BIG, jnp.int32)], axis=1),
             "rank": jnp.concatenate([rank, jnp.zeros((batch, pad), jnp.int32)], axis=1)}
    return block, {"length": K, "window": K, "per_step": width}, over


def export_stablehlo(sim: JaxSimulation, duration: float, folder: str | Path, *, input_spikes: int = 64,
                     platforms: tuple[str, ...] | None = None) -> list[Path]:
    """Serialize ``fn`` of :meth:`JaxSimulation.as_jax` and its VJP with jax.export (StableHLO).

    Writes ``forward.stablehlo`` (``fn(params, inputs) -> observables``), ``vjp.stablehlo``
    (``(params, inputs, cotangents) -> (observables, dL/dparams)``) and ``export.json`` (names,
    shapes, dtypes). Load them anywhere with jax alone: ``jax.export.deserialize(bytes).call(...)``.
    """
    import jax

    folder = Path(folder)
    with precision_scope(sim.build.precision):
        fn, params = sim.as_jax(duration)
        real = np.dtype(sim.real)
        inputs = {name: (jax.ShapeDtypeStruct((sim.batch, input_spikes), real),
                         jax.ShapeDtypeStruct((sim.batch, input_spikes), np.int32))
                  for name, pop in sim._pops.items() if pop["kind"] is None}
        param_specs = {k: jax.ShapeDtypeStruct(np.shape(v), real) for k, v in params.items()}
        out_specs = jax.eval_shape(fn, param_specs, inputs)

        def vjp(params, inputs, cotangents):
            out, back = jax.vjp(lambda p: fn(p, inputs), params)
            return out, back(cotangents)[0]

        kwargs = {} if platforms is None else {"platforms": platforms}
        forward = jax.export.export(jax.jit(fn), **kwargs)(param_specs, inputs)
        backward = jax.export.export(jax.jit(vjp), **kwargs)(param_specs, inputs, out_specs)
    written = []
    for name, exported in (("forward.stablehlo", forward), ("vjp.stablehlo", backward)):
        (folder / name).write_bytes(exported.serialize())
        written.append(folder / name)
    info = {"model": sim.build.manifest["model"], "precision": sim.build.precision, "dt": sim.dt,
            "duration": duration, "batch": sim.batch, "input_spikes": input_spikes,
            "platforms": list(forward.platforms),
            "params": {k: list(np.shape(v)) for k, v in params.items()},
            "inputs": list(inputs), "observables": {k: list(v.shape) for k, v in out_specs.items()},
            "call": "jax.export.deserialize(open('forward.stablehlo', 'rb').read()).call(params, inputs); "
                    "inputs: {pop: (times (B, K) NaN-padded, ids (B, K) int32)}; "
                    "vjp.stablehlo: .call(params, inputs, cotangents) -> (observables, gradients)"}
    (folder / "export.json").write_text(json.dumps(info, indent=1))
    written.append(folder / "export.json")
    return written


def _numpy(tree):
    if isinstance(tree, dict):
        return {k: _numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


class Forward:
    """A pure forward function of one network instance with fixed static sizes.

    ``f(params, inputs)`` runs ``f.config.batch`` trials and returns a dict of arrays: ``spikes``
    (per recorded population: ``times`` (B, N, C) with NaN beyond ``count``, ``count``, ``overflow``),
    ``traces`` ("pop.var" -> (B, T, N)), ``drops`` (per projection, (B,)), ``final_state``,
    ``lost`` and ``error``. It is a function of arrays only (jit it, vmap it); ``params`` is
    ``sim.params()`` or a pytree of the same structure, ``inputs`` is ``f.inputs(...)``.
    Float64 builds need 64-bit JAX (``jax.config.update("jax_enable_x64", True)``).
    """

    def __init__(self, sim: JaxSimulation, duration: float, steps: int, config, input_sizes: dict) -> None:
        self.sim, self.duration, self.steps, self.config = sim, duration, steps, config
        self.input_sizes = input_sizes
        self.network = sim._network

    def __call__(self, params: dict, inputs: dict) -> dict:
        import jax

        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((params, inputs))):
            return self.sim.module.simulate(self.network, params, inputs, self.config)  # inside jit, vmap, grad
        return self.sim.build.simulate(self.network, params, inputs, self.config)  # the program run() compiled

    def inputs(self, inputs: Inputs | None) -> dict:
        """Encode input spikes (as for ``run``) to this function's sizes."""
        encoded, _ = self.sim.encode_inputs(inputs, self.steps, self.input_sizes)
        return encoded

    def result(self, outputs: dict) -> JaxResult:
        """The outputs as a Result (as ``run`` returns it)."""
        return self.sim.result(outputs, self.duration)
