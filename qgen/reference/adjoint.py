"""The reference adjoint: exact gradients (EventProp) through the spike queues, NumPy, float64.

Written from DESIGN.md §4, simple on purpose, the oracle of every target's backward pass:

- The forward run (``run(..., grad=True)``) keeps a :class:`ForwardTape`: the state at the start of
  every step (checkpoints every step: this is the reference, memory is no concern here), the spikes
  pushed at the end of each step, and the events the queues dropped.
- The backward sweep goes through the steps in reverse. Each recorded spike enters a *reverse
  queue* of the projection's kind one maximum delay ahead of the sweep; the queue pops the
  arrivals of each step in reverse time order. The step is recomputed from its checkpoint with
  those arrivals, recording every jump (:class:`StepRecorder`), and the adjoint runs back through
  the jumps: flows with the adjoint propagators, events (dL/dw, dL/dt_a = dL/d(delay), which is
  added to the emitting spike's dL/dt_k), spikes (the saltation), refractory ends.
- Parameter gradients are the closed-form integrals of each sub-interval plus the jump terms.

Forward-dropped events are excluded from the reverse queue, so both passes see the same events.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from qgen.analysis.numeric_adjoint import NumericAdjoint
from qgen.errors import Code, QgenError, SimulationError
from qgen.reference.queues import Event, make_queue

if TYPE_CHECKING:
    from qgen.reference.simulator import PopulationState, ReferenceSimulator

SpikeKey = tuple[int, int, int]  # (population order, neuron, index among that neuron's spikes)


# ------------------------------------------------------------------ what the forward keeps


@dataclass
class ForwardTape:
    """One trial's forward record for the backward sweep."""

    checkpoints: list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=list)
    emitted: list[list[tuple[float, int, int]]] = field(default_factory=list)  # pushed at the end of step n
    dropped: set[tuple[str, int, float]] = field(default_factory=set)  # (projection, synapse, arrival)


class StepRecorder:
    """The jumps of one population through one recomputed step, per neuron, in forward order."""

    def __init__(self, order: int, counts: np.ndarray, t1: float) -> None:
        self.order = order
        self.counts = counts.copy()  # spikes of each neuron so far: the index of its next spike
        self.t1 = t1
        self.ops: dict[int, list[tuple]] = defaultdict(list)
        self.free = self.held = self.held_ending = np.empty(0, dtype=np.int64)

    def flow(self, j: int, delta: float, refractory: bool, x: np.ndarray) -> None:
        self.ops[j].append(("flow", delta, refractory, x[:-1].copy()))

    def event(self, j: int, x_minus: np.ndarray, weight: float, refractory: bool, proj: int, syn: int,
              source: int) -> None:
        self.ops[j].append(("event", x_minus[:-1].copy(), weight, refractory, proj, syn, source))

    def spike(self, j: int, x_minus: np.ndarray, by_event: bool) -> None:
        key = (self.order, j, int(self.counts[j]))
        self.counts[j] += 1
        self.ops[j].append(("spike", x_minus[:-1].copy(), by_event, key))

    def refractory_end(self, j: int, x: np.ndarray) -> None:
        self.ops[j].append(("end", x[:-1].copy(), (self.order, j, int(self.counts[j]) - 1)))


# ------------------------------------------------------------------ results


@dataclass
class Gradients:
    """dL/d(every trainable quantity), summed over the trials of the batch."""

    weights: dict[str, np.ndarray] = field(default_factory=dict)  # projection -> (S,)
    delays: dict[str, np.ndarray] = field(default_factory=dict)  # projection -> (S,)
    parameters: dict[str, dict[str, float]] = field(default_factory=dict)  # population -> {parameter: dL/dp}
    initial: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # population -> {variable: (N,)}

    def flat(self) -> dict[str, np.ndarray]:
        """Every gradient under one name: ``proj.weight``, ``proj.delay``, ``pop.param``, ``pop.var.initial``."""
        out = {f"{p}.weight": g for p, g in self.weights.items()}
        out.update({f"{p}.delay": g for p, g in self.delays.items()})
        out.update({f"{p}.{k}": np.asarray(v) for p, d in self.parameters.items() for k, v in d.items()})
        out.update({f"{p}.{k}.initial": v for p, d in self.initial.items() for k, v in d.items()})
        return out


# ------------------------------------------------------------------ cotangents


def spike_time_cotangents(sim: "ReferenceSimulator", cotangents: Mapping[str, np.ndarray], result,
                          steps: int) -> tuple[list[dict[SpikeKey, float]], dict[str, np.ndarray]]:
    """Split the user's cotangents into per-spike dL/dt_k (per trial) and trace cotangents.

    Keys: ``pop.spikes`` (B, N, capacity) dL/d(recorded spike time); ``pop.first_spike`` (B, N);
    ``pop.spike_count`` (B, N), piecewise constant, so it contributes nothing; ``pop.var``
    (B, T, N) for a recorded trace.
    """
    data, batch = sim.data, sim.batch
    orders = {name: i for i, name in enumerate(data.populations)}
    per_spike: list[dict[SpikeKey, float]] = [defaultdict(float) for _ in range(batch)]
    traces: dict[str, np.ndarray] = {}
    for key, value in cotangents.items():
        pop, _, what = key.partition(".")
        if pop not in data.populations or not what:
            raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: no population {pop!r}",
                            hint="cotangent names are pop.spikes, pop.first_spike, pop.spike_count or pop.var")
        value = np.asarray(value, dtype=np.float64)
        size = data.populations[pop].size
        if what in ("spikes", "first_spike", "spike_count"):
            if pop not in result.spikes:
                raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: {pop}.spikes is not recorded",
                                hint=f"add 'record {pop}.spikes' to the network")
            record = result.spikes[pop]
            shape = record.times.shape if what == "spikes" else record.counts.shape
            _check_shape(key, value, shape)
            if what == "spike_count":
                continue
            for b in range(batch):
                for j in range(size):
                    if what == "first_spike":
                        if record.counts[b, j]:
                            per_spike[b][(orders[pop], j, 0)] += value[b, j]
                    else:
                        for k in range(int(record.counts[b, j])):
                            per_spike[b][(orders[pop], j, k)] += value[b, j, k]
        elif key in result.traces:
            _check_shape(key, value, result.traces[key].shape)
            traces[key] = value
        else:
            raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: {key} is neither a spike observable nor a "
                            "recorded trace", hint=f"record it with 'record {key}'")
    return per_spike, traces


def _check_shape(key: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if value.shape != tuple(shape):
        raise QgenError(Code.BAD_INPUT, f"cotangent {key!r} has shape {value.shape}, not {tuple(shape)}")
    if not np.all(np.isfinite(value)):
        raise QgenError(Code.BAD_INPUT, f"cotangent {key!r}: values must be finite (use 0 for absent spikes)")


# ------------------------------------------------------------------ the backward sweep


class BackwardSweep:
    """The reverse-time sweep of one trial."""

    def __init__(self, sim: "ReferenceSimulator", tape: ForwardTape, steps: int,
                 spike_dt: dict[SpikeKey, float], traces: dict[str, np.ndarray], b: int) -> None:
        self.sim, self.tape, self.steps, self.b = sim, tape, steps, b
        self.data = data = sim.data
        self.spike_dt = defaultdict(float, spike_dt)
        self.traces = traces
        self.names = list(data.populations)
        self.lam = {name: np.zeros((pop.size, len(pop.kind.state_names))) for name, pop in data.populations.items()
                    if pop.kind is not None}
        self.param_grad = {name: np.zeros(len(self.data.populations[name].kind.parameter_names)) for name in self.lam}
        self.weight_grad = {name: np.zeros(p.size) for name, p in data.projections.items()}
        self.delay_grad = {name: np.zeros(p.size) for name, p in data.projections.items()}
        self.keys: list[SpikeKey] = []  # the emitting spike of each reverse-queue event, by index

    def run(self) -> None:
        sim, steps, dt = self.sim, self.steps, self.sim.dt
        delivered = sum(len(e) for e in self.tape.emitted) * max((p.size for p in self.data.projections.values()),
                                                                 default=0)
        # the reverse queues are of each projection's kind, sized so that they cannot drop: the
        # forward's drops are known and left out, so both passes see exactly the same events
        queues = {name: make_queue(p.spec.queue.kind, name, p.post, max(delivered, 1), True, False)
                  for name, p in self.data.projections.items()}
        ahead = max((int(math.ceil(p.delay.max() / dt)) + 1 for p in self.data.projections.values() if p.size),
                    default=0)
        counts: dict[tuple[int, int], int] = defaultdict(int)
        spike_keys = self._spike_keys(counts)
        next_push = steps - 1
        for n in reversed(range(steps)):
            for key, cot in self.traces.items():
                pop, var = key.split(".", 1)
                self.lam[pop][:, self.data.populations[pop].kind.state_names.index(var)] += cot[self.b, n]
            while next_push >= 0 and next_push >= n - ahead:
                self._push_reverse(queues, next_push, spike_keys[next_push])
                next_push -= 1
            due = self._pop_reverse(queues, n)
            for name, pop in self.data.populations.items():
                if pop.kind is not None:
                    self._step(name, n, due.get(name, {}))

    # -------------------------------------------------------------- the reverse queues

    def _spike_keys(self, counts: dict[tuple[int, int], int]) -> list[list[SpikeKey]]:
        """The key of every pushed spike: its neuron's spikes are pushed in time order."""
        keys = []
        for emitted in self.tape.emitted:
            step_keys = []
            for _, order, j in emitted:
                step_keys.append((order, j, counts[order, j]))
                counts[order, j] += 1
            keys.append(step_keys)
        return keys

    def _push_reverse(self, queues, m: int, keys: list[SpikeKey]) -> None:
        """The arrivals of step m's spikes, latest first, with reversed delivery steps."""
        sim, dt, steps = self.sim, self.sim.dt, self.steps
        for (t, order, j), key in reversed(list(zip(self.tape.emitted[m], keys))):
            source = len(self.keys)
            self.keys.append(key)
            for _, proj, starts in sim._outgoing[self.names[order]]:
                for syn in range(starts[j], starts[j + 1]):
                    arrival = t + proj.delay[syn]
                    step = max(int(math.floor(arrival / dt)), m + 1)
                    if step >= steps or (proj.name, syn, arrival) in self.tape.dropped:
                        continue
                    queues[proj.name].push(Event(-arrival, syn, steps - 1 - step, source))

    def _pop_reverse(self, queues, n: int) -> dict[str, dict[int, list[tuple]]]:
        """Step n's arrivals per target, as the forward saw them: (time, projection, synapse, weight, source)."""
        due: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        for order, (name, queue) in enumerate(queues.items()):
            proj = self.data.projections[name]
            for event in queue.pop_due(self.steps - 1 - n):
                target = int(proj.post[event.synapse])
                due[proj.spec.post][target].append((-event.time, order, event.synapse,
                                                    float(proj.weight[event.synapse]), event.source))
        for per_target in due.values():
            for events in per_target.values():
                events.sort()
        return due

    # -------------------------------------------------------------- one step, backwards

    def _step(self, name: str, n: int, events: dict[int, list[tuple]]) -> None:
        from qgen.reference.simulator import PopulationState

        sim, dt = self.sim, self.sim.dt
        pop = self.data.populations[name]
        x0, until, counts = self.tape.checkpoints[n][name]
        order = self.names.index(name)
        state = PopulationState(pop, order, x0.copy(), until.copy(), np.zeros(pop.size, dtype=np.int64),
                                [[] for _ in range(pop.size)])
        state.recorder = rec = StepRecorder(order, counts, (n + 1) * dt)
        dyn = sim._dynamics_at(pop, n)
        adj = sim._adjoint_at(pop, n)
        sim._exact_step(state, dyn, events, n)
        expected = self.tape.checkpoints[n + 1][name][0] if n + 1 < self.steps else None
        if expected is not None and not np.array_equal(state.x, expected):
            raise SimulationError(Code.MODEL_RUNTIME, f"internal error: the recomputed step {n} of {name} differs "
                                  "from the forward pass", hint="please report this with the model file")
        lam, grad = self.lam[name], np.zeros_like(self.param_grad[name])
        k = adj.n
        for indices, refractory in ((rec.free, False), (rec.held, True)):
            if len(indices):
                if refractory:
                    for j in rec.held_ending:  # the period ends exactly at the end of the step
                        x_end = adj.propagator(dt, True) @ x0[j]
                        self._refractory_end(adj, lam[j], x_end[:k], (order, int(j), int(counts[j]) - 1), grad)
                D = adj.propagator_gradients(dt, refractory)[:, :k, :]
                grad += np.einsum("ki,pij,kj->p", lam[indices], D, x0[indices])
                lam[indices] = lam[indices] @ adj.propagator(dt, refractory)[:k, :k]
        for j, ops in rec.ops.items():
            lam[j] = self._back_through(adj, ops, lam[j].copy(), grad)
        grad[[i for i, p in enumerate(adj.parameter_names) if p in sim._driven_at(pop, n)]] = 0.0
        self.param_grad[name] += grad

    def _back_through(self, adj: NumericAdjoint, ops: list[tuple], lam: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """λ at the start of the step from λ at its end, through one neuron's jumps."""
        pending = 0.0  # dL/dt of a spike that an event triggered: it moves with the event
        for op in reversed(ops):
            kind = op[0]
            if kind == "flow":
                _, delta, refractory, x0 = op
                grad += adj.interval_parameter_gradient(delta, x0, lam, refractory)
                lam = adj.adjoint_propagator(delta, refractory) @ lam
            elif kind == "event":
                _, x_minus, weight, refractory, proj, syn, source = op
                g = adj.event(x_minus, weight, lam, refractory)
                time = g.time + pending
                pending = 0.0
                name = self._projection_name(proj)
                self.weight_grad[name][syn] += g.weight
                self.delay_grad[name][syn] += time
                self.spike_dt[self.keys[source]] += time
                grad += g.parameters
                lam = g.adjoint
            elif kind == "spike":
                _, x_minus, by_event, key = op
                dL_dt = self.spike_dt.pop(key, 0.0)
                if by_event:
                    g = adj.reset(x_minus, lam)
                    pending += g.time + dL_dt
                else:
                    g = adj.spike(x_minus, lam, dL_dt)
                grad += g.parameters
                lam = g.adjoint
            else:  # "end"
                _, x, key = op
                self._refractory_end(adj, lam, x, key, grad)
        return lam

    def _refractory_end(self, adj: NumericAdjoint, lam: np.ndarray, x: np.ndarray, key: SpikeKey,
                        grad: np.ndarray) -> None:
        time = adj.refractory_end_time_gradient(x, lam)
        self.spike_dt[key] += time
        grad += time * adj.refractory_period_gradient

    def _projection_name(self, order: int) -> str:
        return list(self.data.projections)[order]


def check_differentiable(sim: "ReferenceSimulator") -> None:
    """Gradients need exact timing and linear dynamics: say so before the forward run."""
    if not sim.exact:
        raise QgenError(Code.UNSUPPORTED, "gradients need 'timing = exact': on the grid, spike times do not move "
                        "with the parameters", hint="set 'timing = exact' in the network block")
    for pop in sim.data.populations.values():
        if pop.kind is not None and not sim._dynamics_at(pop, 0).linear:
            raise QgenError(Code.UNSUPPORTED, f"{pop.kind.name} is not linear: exact gradients need linear "
                            "dynamics", hint="use a linear neuron kind")
