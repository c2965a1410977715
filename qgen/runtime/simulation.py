"""A compiled model bound to one network instance, with NumPy arrays shared with the kernels.

The C kernels own no memory: this class allocates every array of the build's layout, binds the
pointers into the generated ``qgen_state`` struct and runs the kernels. Weights, delays and
parameters are the very arrays the kernels read, so writing them (checked) changes the next
run. Every run starts from the initial state at t = 0 and returns a :class:`Result` like the
reference simulator's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Callable, Iterator

import numpy as np

from qgen.errors import Code, QgenError, SimulationError
from qgen.codegen.names import c_identifier
from qgen.runtime.inputs import BoundInputs, Inputs, check_inputs, pushed_in_order
from qgen.runtime.network import NetworkData
from qgen.runtime.results import DEFAULT_SPIKE_CAPACITY, Result, SpikeRecord
from qgen.runtime.schedule import run_steps
from qgen.targets.c import CBuild

_NUMPY = {"double": np.float64, "int32_t": np.int32, "int64_t": np.int64}


class BoundArrays(Mapping):
    """name -> a NumPy array the kernels read. ``m[name][...] = v`` writes in place; ``m[name] = v``
    checks the shape and that the values are finite numbers, then copies.

    A run checks (and the cuda target uploads) each array once and then makes it read-only, until it
    is asked for here again: so an unchanged array costs nothing at the next run, and a write through
    a reference kept from before a run fails loudly instead of being missed."""

    def __init__(self, arrays: dict[str, np.ndarray], what: str) -> None:
        self._arrays = arrays
        self._what = what

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            raise KeyError(f"no {self._what} {name!r}; there are: {', '.join(self._arrays)}")
        array = self._arrays[name]
        array.flags.writeable = True  # it may change: the next run checks it again
        return array

    def __setitem__(self, name: str, value) -> None:
        target = self[name]
        value = np.asarray(value)
        if value.shape != target.shape:
            raise QgenError(Code.BAD_INPUT, f"{self._what} {name!r} has shape {target.shape}, not {value.shape}")
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise QgenError(Code.BAD_INPUT, f"{self._what} {name!r} takes real numbers, not {value.dtype}")
        if not np.all(np.isfinite(value)):
            raise QgenError(Code.BAD_INPUT, f"{self._what} {name!r}: values must be finite")
        target[...] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


class Simulation:
    """Run a C build: ``sim = qgen.load(path).simulator(batch=2); result = sim.run(inputs, 100.0)``.

    ``threads``: several trials run one per thread (default: OpenMP's number of threads); one trial
    runs on one thread unless ``threads`` > 1 asks that the threads share it (templates/c/model.c.j2:
    each updates its share of the neurons and pushes into its own targets' queues, so results are
    identical to one thread's)."""

    def __init__(self, build: CBuild, data: NetworkData, *, batch: int = 1, strict: bool = False,
                 spike_capacity: int | None = None, threads: int | None = None) -> None:
        if not isinstance(batch, int) or batch < 1:
            raise QgenError(Code.BAD_OPTION, f"the batch size must be a positive integer, not {batch!r}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise QgenError(Code.BAD_OPTION, f"threads must be a positive integer, not {threads!r}",
                            hint="leave it out for OpenMP's default (OMP_NUM_THREADS, or every core)")
        self.build, self.data, self.batch, self.strict = build, data, batch, strict
        self.threads = threads or self._default_threads(build, data, batch)
        self.dt = data.dt
        self.exact = data.timing == "exact"
        self.real = np.float64 if build.precision == "float64" else np.float32
        self._fields = {f.name: f for f in build.layout}
        self._plan = build.manifest["plan"]
        self._pops = {p["name"]: p for p in self._plan["populations"]}
        self._projs = {p["name"]: p for p in self._plan["projections"]}
        self._state = build.ffi.new("qgen_state *")
        self._arrays: dict[str, np.ndarray] = {}
        records = {r.population: r.capacity for r in data.network.records if r.variable == "spikes"}
        self._capacity = {name: records.get(name) or spike_capacity or DEFAULT_SPIKE_CAPACITY
                          for name in records}
        self.spike_capacity = spike_capacity
        self._last: tuple[Result, int] | None = None  # the last run(..., grad=True), for backward()
        self._runs: list[tuple[int, int, dict[str, tuple[np.ndarray, np.ndarray]]]] = []
        self._bind_network()
        self.weights = BoundArrays({name: self._arrays[f"{p['prefix']}_weight"] for name, p in self._projs.items()},
                                   "weights of projection")
        self.delays = BoundArrays({name: self._arrays[f"{p['prefix']}_delay"] for name, p in self._projs.items()},
                                  "delays of projection")
        self.parameters = {name: BoundArrays({param: self._arrays[f"{p['prefix']}_params"][k:k + 1].reshape(())
                                              for k, param in enumerate(p["parameters"])},
                                             f"parameter of {name}")
                           for name, p in self._pops.items() if p["kind"] is not None}

    @staticmethod
    def _default_threads(build: CBuild, data: NetworkData, batch: int) -> int:
        """OpenMP's default number of threads across trials; one for a single trial. Threads that
        share a trial meet at two barriers per step, which costs a scheduler time slice each when the
        cores are busy with other work (two orders of magnitude slower), so sharing is asked for."""
        return 1 if batch == 1 else max(1, int(build.lib.qgen_max_threads()))

    # ------------------------------------------------------------ binding

    def _bind(self, name: str, array: np.ndarray) -> np.ndarray:
        """Keep ``array`` alive and point the struct's field at it."""
        ctype = self._fields[name].ctype
        array = np.ascontiguousarray(array, dtype=self.real if ctype == "real" else _NUMPY[ctype])
        self._arrays[name] = array
        setattr(self._state, name, self.build.ffi.cast(f"{ctype} *", array.ctypes.data))
        return array

    def _bind_network(self) -> None:
        for name, pop in self._pops.items():
            if pop["kind"] is None:
                continue
            data = self.data.populations[name]
            self._bind(f"{pop['prefix']}_params", [data.params[k] for k in pop["parameters"]])
            self._bind(f"{pop['prefix']}_derived", np.zeros(self._fields[f"{pop['prefix']}_derived"].shape[0]))
            if pop.get("backgrounds"):  # keys of the in-kernel background sources (qgen.runtime.background)
                from qgen.runtime.background import key

                sources = {bg.index: bg for bg in self.data.network.backgrounds}
                keys = np.array([key(self.data.seed, sources[g]) for g in pop["backgrounds"]], dtype=np.uint64)
                self._bind(f"{pop['prefix']}_bg_key", keys.view(np.int64))
        for name, proj in self._projs.items():
            data, q = self.data.projections[name], proj["prefix"]
            n_pre = self._pops[proj["pre"]]["size"]
            self._bind(f"{q}_post", data.post)
            self._bind(f"{q}_out_start", data.out_start)
            self._bind(f"{q}_weight", data.weight)
            self._bind(f"{q}_delay", data.delay)
            if f"{q}_part_syn" in self._fields:  # where threads share the trial: its synapses by thread
                shared = self._shared()
                self._bind(f"{q}_part_syn", np.zeros(data.size if shared else 1, np.int32))
                self._bind(f"{q}_part_start", np.zeros((self.threads if shared else 1) * (n_pre + 1), np.int64))
            if not self.exact:
                self._bind(f"{q}_delay_steps", np.zeros(data.size))
            if f"{q}_in_start" in self._fields:  # fifo lines (and the CUDA target's staging rows) per target
                order = np.lexsort((np.arange(data.size), data.post))
                if f"{q}_in_syn" in self._fields:
                    self._bind(f"{q}_in_syn", order)
                self._bind(f"{q}_in_start", np.searchsorted(data.post[order], np.arange(self._pops[proj["post"]]["size"] + 1)))
            setattr(self._state, f"S{proj['index']}", data.size)
        if self._shared():
            self._state.threads = self.threads
            self.build.lib.qgen_partition(self._state)

    def _shared(self) -> bool:
        """Whether the threads share one trial."""
        return self.batch == 1 and self.threads > 1

    def _bind_run(self, steps: int, inputs: dict[str, list[tuple[np.ndarray, np.ndarray]]] | BoundInputs,
                  grad: bool = False) -> dict[str, int]:
        """Fresh per-run arrays: state, clamps, records, traces, inputs and empty queues."""
        B, s = self.batch, self._state
        sizes = {"B": B, "T": steps, "B+1": B + 1, "CAL": self.threads if self._shared() else B}
        for name, proj in self._projs.items():
            delay = self.data.projections[name].delay
            sizes[f"S{proj['index']}"] = len(delay)
            if proj["queue"] == "ring":
                slots = int(math.ceil(delay.max() / self.dt)) + 2 if len(delay) else 2
                key = f"R{self._pops[proj['post']]['index']}" if proj["summing"] else f"D{proj['index']}"
                sizes[key] = max(sizes.get(key, 0), slots)  # a shared ring is as long as its longest delay
        for key, value in sizes.items():
            if key[0] in "RD" and key[1:].isdigit():
                setattr(s, key, value)
        for name, pop in self._pops.items():
            if pop["recorded_spikes"]:
                sizes[f"C{pop['index']}"] = self._capacity[name]
                setattr(s, f"C{pop['index']}", self._capacity[name])
        bound = inputs if isinstance(inputs, BoundInputs) else self._bound_inputs(inputs, steps)
        for name, array in bound.arrays.items():
            self._bind(name, array)
        sizes.update(bound.sizes)
        self._tape_sizes(sizes, steps, grad)
        for field in self._fields.values():
            if field.lifetime == "run":
                self._bind(field.name, np.zeros(tuple(sizes[d] if isinstance(d, str) else d for d in field.shape)))
        for name, pop in self._pops.items():
            if pop["kind"] is None:
                continue
            data = self.data.populations[name]
            x = np.stack([data.initial[v] for v in pop["state"]], axis=-1)
            self._arrays[f"{pop['prefix']}_x"][...] = x[None]
            if f"{pop['prefix']}_refractory_until" in self._arrays:
                self._arrays[f"{pop['prefix']}_refractory_until"][...] = -np.inf
        for pop in self._pops.values():
            if pop["kind"] is None:  # each trial reads its inputs from its own first spike on
                self._arrays[f"{pop['prefix']}_in_cursor"][...] = self._arrays[f"{pop['prefix']}_in_start"][:-1]
        s.B, s.T, s.step, s.trace_start, s.strict, s.threads = B, steps, 0, 0, int(self.strict), self.threads
        return sizes

    def _bound_inputs(self, checked: dict[str, list[tuple[np.ndarray, np.ndarray]]], steps: int) -> BoundInputs:
        """Each input population's spikes of all trials in (step, time, neuron) order, each with the step
        at whose end it is pushed, those pushed after the run left out (``pushed_in_order``), as the
        arrays the kernels read."""
        arrays, sizes = {}, {}
        for name, pop in self._pops.items():
            if pop["kind"] is not None:
                continue
            times, ids, push, start = [], [], [], [0]
            for t, i in checked.get(name) or [(np.empty(0), np.empty(0, np.int64))] * self.batch:
                step, emitted, i = pushed_in_order(t, i, self.dt, self.exact, steps)
                times.append(emitted)
                ids.append(i)
                push.append(step)
                start.append(start[-1] + len(step))
            p = pop["prefix"]
            joined = (lambda parts: parts[0]) if len(times) == 1 else np.concatenate
            for field, values in ((f"{p}_in_time", joined(times)), (f"{p}_in_id", joined(ids)),
                                  (f"{p}_in_step", joined(push)), (f"{p}_in_start", start)):
                ctype = self._fields[field].ctype
                arrays[field] = np.ascontiguousarray(values, dtype=self.real if ctype == "real" else _NUMPY[ctype])
            sizes[f"I{pop['index']}"] = start[-1]
        return BoundInputs(self, steps, arrays, sizes)

    def bind(self, inputs: Inputs | None, duration: float) -> BoundInputs:
        """Check, order and bind input spikes once for runs of ``duration`` ms: ``run(bound, duration)``
        then gives what ``run(inputs, duration)`` gives, without that work at every run (ten million
        input spikes took 0.2–0.5 s of each run). The spikes are copied: changing the given arrays
        afterwards changes nothing."""
        steps = run_steps(duration, self.dt)
        bound = self._bound_inputs(check_inputs(inputs, self.data, self.batch), steps)
        for array in bound.arrays.values():
            array.flags.writeable = False
        return bound

    # ------------------------------------------------------------ running

    def run(self, inputs: Inputs | BoundInputs | None = None, duration: float = 100.0,
            progress: Callable[[int, int], None] | None = None, *, grad: bool = False) -> Result:
        """Simulate ``duration`` ms of every trial from the initial state.

        ``inputs``: per input population, spikes (see :func:`qgen.runtime.inputs.check_inputs`), or
        what :meth:`bind` made of them for this duration. ``grad``: keep the spike record that
        :meth:`backward` needs (exact timing, linear kinds with additive events, a float64 build).
        """
        steps = run_steps(duration, self.dt)
        if grad:
            self._check_differentiable()
        self._last = None
        self._check_network()
        checked = (inputs.check(self, steps) if isinstance(inputs, BoundInputs)
                   else check_inputs(inputs, self.data, self.batch))
        self._bind_run(steps, checked, grad)
        base = {name: self._arrays[f"{p['prefix']}_params"].copy() for name, p in self._pops.items() if p["kind"]}
        self._runs = []
        try:
            for start, stop in self._segments(steps):
                self._apply_drives(base, start)
                self._call(self.build.lib.qgen_prepare(self._state), None)
                if grad:  # the parameters of each run of steps, for the backward pass
                    self._runs.append((start, stop, {name: (self._arrays[f"{p['prefix']}_params"].copy(),
                                                            self._arrays[f"{p['prefix']}_derived"].copy())
                                                     for name, p in self._pops.items() if p["kind"]}))
                self._run_steps(stop - start, start, steps, progress)
        finally:
            for name, values in base.items():
                self._arrays[f"{self._pops[name]['prefix']}_params"][...] = values
        for proj in self._projs.values():  # checked (and on the cuda target copied): read-only until asked for
            self._arrays[f"{proj['prefix']}_delay"].flags.writeable = False
            self._arrays[f"{proj['prefix']}_weight"].flags.writeable = False
        result = self._result(duration, steps)
        if grad:
            self._check_tape(result)
            self._last = (result, steps)
        return result

    def _run_steps(self, count: int, done: int, total: int, progress) -> None:
        errors = self.build.ffi.new("qgen_error[]", self.batch)
        chunk = max(1, total // 100) if progress else count
        while count > 0:
            now = min(chunk, count)
            self._call(self.build.lib.qgen_run(self._state, now, errors), errors)
            count -= now
            done += now
            if progress:
                progress(done, total)

    def _segments(self, steps: int) -> list[tuple[int, int]]:
        """Runs of steps with constant parameters: drives switch only at their start and stop."""
        cuts = {0, steps}
        for d in self.data.network.drives:
            cuts |= {c for c in (round(d.start / self.dt), round(d.stop / self.dt)) if 0 < c < steps}
        cuts = sorted(cuts)
        return list(zip(cuts, cuts[1:]))

    def _apply_drives(self, base: dict[str, np.ndarray], step: int) -> None:
        for name, values in base.items():
            self._arrays[f"{self._pops[name]['prefix']}_params"][...] = values
        for d in self.data.network.drives:
            if round(d.start / self.dt) <= step < round(d.stop / self.dt):
                pop = self._pops[d.population]
                self._arrays[f"{pop['prefix']}_params"][pop["parameters"].index(d.parameter)] = d.value

    def _check_network(self) -> None:
        """Delays and weights changed since the last run (writeable: see BoundArrays) must be valid."""
        for name, proj in self._projs.items():
            delay, weight = self._arrays[f"{proj['prefix']}_delay"], self._arrays[f"{proj['prefix']}_weight"]
            if delay.flags.writeable:
                if len(delay) and not (np.all(np.isfinite(delay)) and delay.min() >= self.dt * (1 - 1e-12)):
                    raise QgenError(Code.BAD_DELAY, f"projection {name}: a delay is below dt = {self.dt:g} ms "
                                    f"or not finite (smallest {delay.min():g} ms)", hint="delays are at least dt")
            if weight.flags.writeable and not np.all(np.isfinite(weight)):
                raise QgenError(Code.BAD_INPUT, f"projection {name}: a weight is not finite")
        for name, params in self.parameters.items():
            for param, value in params.items():
                if not np.isfinite(value):
                    raise QgenError(Code.BAD_INPUT, f"population {name}: parameter {param} is not finite")

    def _call(self, status: int, errors) -> None:
        if status == 0:
            return
        err = next(e for e in errors if e.code)
        pops, projs = list(self._pops.values()), list(self._projs.values())
        where = f"trial {list(errors).index(err)}, t = {err.time:.6g} ms"
        if err.code == 1:
            proj = projs[err.projection]
            raise SimulationError(
                Code.QUEUE_OVERFLOW,
                f"projection {proj['name']}: the {proj['queue']} queue of capacity {proj['capacity']} is full; an "
                f"event for neuron {err.neuron} arriving at {err.time:.6g} ms was dropped ({where})",
                hint=f"raise the capacity (queue = {proj['queue']}(capacity = {2 * proj['capacity']})) "
                     "or run without strict")
        pop = pops[err.population] if err.population >= 0 else {"name": "?", "kind": "?"}
        if err.code == 2:
            raise SimulationError(Code.NON_FINITE, f"population {pop['name']}: the state is not finite at "
                                  f"t = {err.time:g} ms ({where})", hint="check the parameters; with grid timing "
                                  "and non-linear dynamics, a smaller dt may help")
        if err.code == 3:
            raise SimulationError(Code.MODEL_RUNTIME, f"{pop['kind']}: the reset leaves neuron {err.neuron} of "
                                  f"{pop['name']} above threshold at t = {err.time:g} ms, so it would spike forever",
                                  hint="reset to a value below the threshold, or add a refractory period")
        if err.code == 5:
            raise SimulationError(Code.MODEL_RUNTIME, f"OpenMP ran {err.neuron} threads where the simulation was set "
                                  f"up for {self.threads} (threads = {self.threads})",
                                  hint="lift the limit (OMP_THREAD_LIMIT), or ask for fewer threads")
        raise SimulationError(Code.MODEL_RUNTIME, "the kernels ran out of memory (code 4)" if err.code == 4
                              else f"the kernels stopped with an unknown code {err.code}")

    def _result(self, duration: float, steps: int) -> Result:
        result = Result(duration, self.dt)
        for rec in self.data.network.records:
            pop = self._pops[rec.population]
            p = pop["prefix"]
            if rec.variable == "spikes":
                times = self._arrays[f"{p}_spike_times"].copy()
                counts = self._arrays[f"{p}_spike_count"].astype(np.int64)
                times[np.arange(times.shape[2])[None, None, :] >= counts[:, :, None]] = np.nan
                result.spikes[rec.population] = SpikeRecord(times, counts,
                                                             self._arrays[f"{p}_spike_overflow"].copy())
            else:
                trace = self._arrays[f"{p}_trace_{c_identifier(rec.variable)}"]
                result.traces[f"{rec.population}.{rec.variable}"] = trace.astype(np.float64)
        for name, proj in self._projs.items():
            result.drops[name] = self._arrays[f"{proj['prefix']}_drops"].copy()
        for name, pop in self._pops.items():
            if pop["kind"] is not None:
                result.final_state[name] = self._arrays[f"{pop['prefix']}_x"].astype(np.float64)
        return result


    # ------------------------------------------------------------ gradients (templates/c/adjoint.c.j2)

    DROP_LOG = 4096  # dropped events remembered per projection and trial in a run with grad=True

    @property
    def _differentiable(self) -> bool:
        return self._plan.get("gradients") in ("c", "cuda")  # the targets that print templates/c/adjoint.c.j2

    def _need_states(self) -> bool:
        """Parameter gradients need the state along the way: checkpoints and a replay of each segment."""
        for pop in self.data.populations.values():
            if pop.kind is not None and set(pop.spec.trainable) & set(pop.kind.parameter_names):
                return True
        return False

    def _tape_sizes(self, sizes: dict[str, int], steps: int, grad: bool) -> None:
        """Sizes and settings of the gradient tape: empty unless ``grad``."""
        if not self._differentiable:
            return
        s = self._state
        every = max(1, int(round(math.sqrt(steps)))) if grad and self._need_states() else 0
        sizes["NK"] = -(-steps // every) if every else 0
        s.grad, s.ckpt_every, s.NK, s.need_states = int(grad), every, sizes["NK"], int(every > 0)
        for name, pop in self._pops.items():
            if pop["spiking"]:
                capacity = self._capacity.get(name) or self.spike_capacity or DEFAULT_SPIKE_CAPACITY
                sizes[f"H{pop['index']}"] = capacity if grad else 0
                setattr(s, f"H{pop['index']}", sizes[f"H{pop['index']}"])
        for proj in self._projs.values():
            sizes[f"L{proj['index']}"] = self.DROP_LOG if grad else 0
            setattr(s, f"L{proj['index']}", sizes[f"L{proj['index']}"])

    def _check_differentiable(self) -> None:
        if self._differentiable:
            return
        reason = self._plan.get("gradients") or "this build has no backward pass (rebuild it with this qgen)"
        hint = {True: "set 'timing = exact' in the network block"}.get("timing = exact" in reason,
                                                                       "use qgen.load(path, target='reference') "
                                                                       "for gradients of this model")
        raise QgenError(Code.UNSUPPORTED, reason, hint=hint)

    def _check_tape(self, result: Result) -> None:
        for name, pop in self._pops.items():
            if not pop["spiking"]:
                continue
            overflow = self._arrays[f"{pop['prefix']}_tape_overflow"]
            if overflow.any():
                capacity = self._arrays[f"{pop['prefix']}_tape_time"].shape[2]
                hint = (f"raise it: 'record {name}.spikes(capacity = {2 * capacity})'" if pop["recorded_spikes"]
                        else f"raise it: simulator(spike_capacity = {2 * capacity})")
                raise SimulationError(Code.RECORD_OVERFLOW, f"{name}.spikes: {int(overflow.sum())} spikes did not fit "
                                      f"the recording capacity {capacity}, so their gradients cannot be given",
                                      hint=hint)
        for name, proj in self._projs.items():
            drops = result.drops[name]
            if drops.max(initial=0) > self.DROP_LOG:
                raise SimulationError(Code.QUEUE_OVERFLOW, f"projection {name}: {int(drops.max())} events were "
                                      f"dropped in one trial, more than the {self.DROP_LOG} the gradient tape "
                                      "remembers", hint=f"raise the capacity of the {proj['queue']} queue")

    def backward(self, cotangents: Mapping[str, np.ndarray]):
        """Gradients of every trainable quantity from cotangents of the last ``run(..., grad=True)``.

        The same cotangents and result as ``ReferenceSimulator.backward``: ``pop.spikes`` (B, N,
        capacity) dL/d(each recorded spike time), zero where there is none; ``pop.first_spike`` (B, N);
        ``pop.spike_count`` (B, N), piecewise constant, adds nothing; ``pop.var`` (B, T, N) for a
        recorded trace. Runs the C backward pass (templates/c/adjoint.c.j2), in memory O(spikes).
        """
        from qgen.reference.adjoint import _check_shape

        if self._last is None:
            raise QgenError(Code.BAD_OPTION, "backward() needs a forward pass that kept its record",
                            hint="run the simulation with run(inputs, duration, grad=True) first")
        result, steps = self._last
        B, s = self.batch, self._state
        sizes = {"B": B, "T": steps, "NSEG": len(self._runs), "NSEG+1": len(self._runs) + 1}
        for name, pop in self._pops.items():
            if pop["spiking"]:
                sizes[f"H{pop['index']}"] = int(getattr(s, f"H{pop['index']}"))
        for name, proj in self._projs.items():
            sizes[f"S{proj['index']}"] = self.data.projections[name].size
        for field in self._fields.values():
            if field.lifetime == "backward":
                self._bind(field.name, np.zeros(tuple(sizes[d] if isinstance(d, str) else d for d in field.shape)))
        s.NSEG = len(self._runs)
        self._arrays["seg_start"][:] = [start for start, _, _ in self._runs] + [steps]
        for g, (_, _, values) in enumerate(self._runs):
            for name, (params, derived) in values.items():
                prefix = self._pops[name]["prefix"]
                self._arrays[f"{prefix}_seg_params"][g, :len(params)] = params
                self._arrays[f"{prefix}_seg_derived"][g] = derived
        for key, value in cotangents.items():
            pop, _, what = key.partition(".")
            if pop not in self._pops or not what:
                raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: no population {pop!r}",
                                hint="cotangent names are pop.spikes, pop.first_spike, pop.spike_count or pop.var")
            value = np.asarray(value, dtype=np.float64)
            info = self._pops[pop]
            if what in ("spikes", "first_spike", "spike_count"):
                if pop not in result.spikes:
                    raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: {pop}.spikes is not recorded",
                                    hint=f"add 'record {pop}.spikes' to the network")
                record = result.spikes[pop]
                _check_shape(key, value, record.times.shape if what == "spikes" else record.counts.shape)
                if what == "spike_count" or not info["spiking"]:
                    continue
                tape = self._arrays[f"{info['prefix']}_tape_dt"]
                if what == "spikes":
                    kept = np.arange(value.shape[2])[None, None, :] < record.counts[:, :, None]
                    tape[:, :, :value.shape[2]] += np.where(kept, value, 0.0)
                else:
                    tape[:, :, 0] += np.where(record.counts > 0, value, 0.0)
            elif key in result.traces:
                _check_shape(key, value, result.traces[key].shape)
                self._arrays[f"{info['prefix']}_cot_{c_identifier(what)}"][...] = value
            else:
                raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: {key} is neither a spike observable nor a "
                                "recorded trace", hint=f"record it with 'record {key}'")
        errors = self.build.ffi.new("qgen_error[]", B)
        self._call(self.build.lib.qgen_backward(s, errors), errors)
        return self._gradients()

    def _gradients(self):
        from qgen.reference.adjoint import Gradients

        out = Gradients()
        for name, proj in self._projs.items():
            trainable = self.data.projections[name].spec.trainable
            if "weight" in trainable:
                out.weights[name] = self._arrays[f"{proj['prefix']}_wgrad"].sum(axis=0)
            if "delay" in trainable:
                out.delays[name] = self._arrays[f"{proj['prefix']}_dgrad"].sum(axis=0)
        dt = self.dt
        for name, pop in self._pops.items():
            if pop["kind"] is None:
                continue
            spec, names = self.data.populations[name].spec, pop["parameters"]
            per_run = self._arrays[f"{pop['prefix']}_pgrad"].sum(axis=0)  # (NSEG, parameters)
            total = np.zeros(len(names))
            for g, (start, _, _) in enumerate(self._runs):
                driven = {d.parameter for d in self.data.network.drives if d.population == name
                          and round(d.start / dt) <= start < round(d.stop / dt)}
                total += [0.0 if p in driven else per_run[g, k] for k, p in enumerate(names)]
            trainable = set(spec.trainable)
            params = {p: float(total[k]) for k, p in enumerate(names) if p in trainable}
            if params:
                out.parameters[name] = params
            kind = self.data.populations[name].kind
            lam = self._arrays[f"{pop['prefix']}_lam"].sum(axis=0)
            initial = {v: lam[:, k].copy() for k, v in enumerate(pop["state"])
                       if v in trainable or kind.state[k].trainable}
            if initial:
                out.initial[name] = initial
        return out
