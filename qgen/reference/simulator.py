"""The reference simulator: NumPy, float64, simple and slow on purpose.

Written from the semantics of DESIGN.md §3, not from any template: it is the oracle that every
target and queue kind is checked against. One step n covers [n·dt, (n+1)·dt) and runs:

1. pop from every projection's queue the events due in this step;
2. advance every neuron through the step:
   exact timing: event to event in time order with the closed-form propagators; the first
   threshold crossing of each sub-interval found to machine precision; reset (and the start of
   the refractory clamp) at the exact spike time; the end of a refractory period at its exact
   time; an event applied at its arrival time, and a spike at once if it lifts g(x) to >= 0.
   grid timing (NEST's iaf_psc_exp scheme): the propagator over dt (the clamped one while
   refractory), then the events of the step, then the threshold; spikes at the end of the step;
3. push the step's spikes (input spikes included), in time order, into the queues of their
   outgoing projections: exact arrival t + d (delivered in the step containing it), or on the
   grid, after round(d/dt) steps.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from qgen.analysis import analyse
from qgen.analysis.numeric import NumericNeuron
from qgen.analysis.numeric_adjoint import NumericAdjoint
from qgen.errors import Code, QgenError, SimulationError
from qgen.reference.adjoint import BackwardSweep, ForwardTape, Gradients, check_differentiable, \
    spike_time_cotangents
from qgen.reference.crossing import CrossingSearch
from qgen.reference.queues import Event, Queue, make_queue
from qgen.runtime.inputs import Inputs, check_inputs
from qgen.runtime import background
from qgen.runtime.network import NetworkData, PopulationData, ProjectionData
from qgen.runtime.results import DEFAULT_SPIKE_CAPACITY, Result, SpikeRecord
from qgen.runtime.schedule import grid_steps, input_schedule, run_steps


class Dynamics:
    """One kind under one set of parameter values: numeric maps and step propagators."""

    def __init__(self, data: PopulationData, params: Mapping[str, float], dt: float) -> None:
        self.analysis = analysis = analyse(data.kind)
        self.numeric = num = NumericNeuron(analysis, params)
        self.n = num.n
        self.linear = analysis.linear
        self.t_ref = num.refractory_period
        self.ref_steps = int(math.floor(self.t_ref / dt + 0.5))
        self.clamp_mask = np.array([name not in data.kind.clamped for name in num.state_names], dtype=float)
        if self.linear:
            self.P_dt = num.propagate(dt)
            self.P_ref_dt = num.propagate_refractory(dt)
        self.crossing = None
        if analysis.threshold is not None and analysis.threshold_linear and self.linear:
            self.crossing = CrossingSearch(num.threshold_vector, num.A_aug, num.propagate)
        if analysis.additive_event:
            zero = np.zeros(self.n)
            self.event_vector = num.event(zero, 1.0) - num.event(zero, 0.0)
            self.event_vector_ref = num.event_refractory(zero, 1.0) - num.event_refractory(zero, 0.0)

    @property
    def spiking(self) -> bool:
        return self.analysis.threshold is not None


@dataclass
class PopulationState:
    """One population in one trial: augmented states x̃ = (x, 1), refractoriness, the spike log."""

    data: PopulationData
    order: int
    x: np.ndarray  # (N, n+1)
    refractory_until: np.ndarray  # exact timing: end of the clamp (ms), -inf when free
    refractory_steps: np.ndarray  # grid timing: steps left in the clamp
    spikes: list[list[float]]  # per neuron
    pre_spike_states: list[tuple[float, int, np.ndarray]] = field(default_factory=list)
    step_spikes: list[tuple[float, int]] = field(default_factory=list)
    recorder: Any = None  # the backward pass's StepRecorder while it recomputes a step


class ReferenceSimulator:
    """Simulate a network instance: ``ReferenceSimulator(data, batch=2).run(inputs, duration=100.0)``."""

    def __init__(self, data: NetworkData, *, batch: int = 1, strict: bool = False,
                 spike_capacity: int | None = None) -> None:
        if batch < 1:
            raise QgenError(Code.BAD_OPTION, f"the batch size must be at least 1, not {batch}")
        self.data = data
        self.batch = batch
        self.strict = strict
        self.dt = data.dt
        self.exact = data.timing == "exact"
        self.spike_capacity = spike_capacity
        self._dynamics: dict[tuple, Dynamics] = {}
        self._adjoints: dict[tuple, NumericAdjoint] = {}
        self._tapes: list[ForwardTape] | None = None
        self._last: tuple[Result, int] | None = None
        self._outgoing: dict[str, list[tuple[int, ProjectionData, np.ndarray]]] = defaultdict(list)
        for order, proj in enumerate(data.projections.values()):
            n_pre = data.populations[proj.spec.pre].size
            starts = np.searchsorted(proj.pre, np.arange(n_pre + 1))
            self._outgoing[proj.spec.pre].append((order, proj, starts))
        self._proj_order = {name: i for i, name in enumerate(data.projections)}
        self._steps_of = {name: grid_steps(p.delay, self.dt) for name, p in data.projections.items()}
        # background sources per population: (key, Poisson CDF table, weight), in source order
        self._backgrounds: dict[str, list[tuple[int, np.ndarray, float]]] = defaultdict(list)
        for bg in data.network.backgrounds:
            self._backgrounds[bg.population].append((background.key(data.seed, bg),
                                                     background.cdf_table(bg.rate * self.dt), bg.weight))

    # ------------------------------------------------------------ running

    def run(self, inputs: Inputs | None = None, duration: float = 100.0,
            progress: Callable[[int, int], None] | None = None, *, grad: bool = False) -> Result:
        """Simulate ``duration`` ms for every trial; inputs per input population (see qgen.runtime.inputs).

        ``grad``: keep what :meth:`backward` needs (exact timing and linear dynamics only).
        """
        steps = run_steps(duration, self.dt)
        if grad:
            check_differentiable(self)
        self._tapes, self._last = None, None
        tapes = [ForwardTape() for _ in range(self.batch)] if grad else [None] * self.batch
        checked = check_inputs(inputs, self.data, self.batch)
        net = self.data.network
        result = Result(duration, self.dt)
        records = {(r.population, r.variable): r for r in net.records}
        trials = []
        for b in range(self.batch):
            trials.append(self._run_trial({name: spikes[b] for name, spikes in checked.items()}, steps, records,
                                          progress if b == 0 else None, tapes[b]))
        for (pop, var), rec in records.items():
            if var == "spikes":
                capacity = rec.capacity or self.spike_capacity or DEFAULT_SPIKE_CAPACITY
                result.spikes[pop] = _spike_record([t[0][pop] for t in trials], capacity)
            else:
                result.traces[f"{pop}.{var}"] = np.stack([t[1][f"{pop}.{var}"] for t in trials])
        for name in self.data.projections:
            result.drops[name] = np.array([t[2][name] for t in trials], dtype=np.int64)
        for name, pop in self.data.populations.items():
            if pop.kind is not None:
                result.final_state[name] = np.stack([t[3][name] for t in trials])
        if grad:
            for pop, record in result.spikes.items():
                if record.overflow.any():
                    capacity = record.times.shape[2]
                    raise SimulationError(Code.RECORD_OVERFLOW, f"{pop}.spikes: {int(record.overflow.sum())} spikes "
                                          f"did not fit the recording capacity {capacity}, so their gradients "
                                          "cannot be given", hint=f"raise it: 'record {pop}.spikes(capacity = "
                                          f"{2 * capacity})'")
            self._tapes, self._last = tapes, (result, steps)
        return result

    def backward(self, cotangents: Mapping[str, np.ndarray]) -> Gradients:
        """Gradients of every trainable quantity from cotangents of the last ``run(..., grad=True)``.

        Cotangent names: ``pop.spikes`` (B, N, capacity), dL/d(each recorded spike time), zero
        where there is no spike; ``pop.first_spike`` (B, N); ``pop.spike_count`` (B, N), which
        is piecewise constant and adds nothing; ``pop.var`` (B, T, N) for a recorded trace.
        """
        if self._tapes is None:
            raise QgenError(Code.BAD_OPTION, "backward() needs a forward pass that kept its record",
                            hint="run the simulation with run(inputs, duration, grad=True) first")
        result, steps = self._last
        per_spike, traces = spike_time_cotangents(self, cotangents, result, steps)
        sweeps = []
        for b, tape in enumerate(self._tapes):
            sweep = BackwardSweep(self, tape, steps, per_spike[b], traces, b)
            sweep.run()
            sweeps.append(sweep)
        return self._gradients(sweeps)

    def _gradients(self, sweeps: list[BackwardSweep]) -> Gradients:
        out = Gradients()
        for name, proj in self.data.projections.items():
            if "weight" in proj.spec.trainable:
                out.weights[name] = sum(s.weight_grad[name] for s in sweeps)
            if "delay" in proj.spec.trainable:
                out.delays[name] = sum(s.delay_grad[name] for s in sweeps)
        for name, pop in self.data.populations.items():
            if pop.kind is None:
                continue
            names = pop.kind.parameter_names
            total = sum(s.param_grad[name] for s in sweeps)
            trainable = set(pop.spec.trainable)
            params = {p: float(total[i]) for i, p in enumerate(names) if p in trainable}
            if params:
                out.parameters[name] = params
            initial = {v: sum(s.lam[name][:, i] for s in sweeps) for i, v in enumerate(pop.kind.state_names)
                       if v in trainable or pop.kind.state[i].trainable}
            if initial:
                out.initial[name] = initial
        return out

    def _run_trial(self, inputs, steps: int, records, progress, tape: ForwardTape | None = None):
        data, dt = self.data, self.dt
        states = {name: self._initial_state(pop, order) for order, (name, pop) in
                  enumerate(data.populations.items())}
        queues = {name: self._queue(proj) for name, proj in data.projections.items()}
        if tape is not None:
            for queue in queues.values():
                queue.dropped = tape.dropped
        traces = {f"{p}.{v}": np.empty((steps, data.populations[p].size))
                  for (p, v) in records if v != "spikes"}
        input_steps = self._input_schedule(inputs, steps)
        if not self.exact:
            self._push(states, queues, input_steps.pop(-1, []), -1)
        for n in range(steps):
            if tape is not None:
                tape.checkpoints.append({name: (s.x.copy(), s.refractory_until.copy(),
                                                np.array([len(k) for k in s.spikes])) for name, s in states.items()})
            due = self._pop(queues, n)
            for name, state in states.items():
                if state.data.kind is None:
                    continue
                dyn = self._dynamics_at(state.data, n)
                events = due.get(name, {})
                if self.exact:
                    self._exact_step(state, dyn, events, n)
                else:
                    self._grid_step(state, dyn, events, n)
                if not np.all(np.isfinite(state.x)):
                    raise SimulationError(Code.NON_FINITE, f"population {name}: the state is not finite at "
                                          f"t = {(n + 1) * dt:g} ms", hint="check the parameters; with grid "
                                          "timing and non-linear dynamics, a smaller dt may help")
            emitted = input_steps.pop(n, [])
            for state in states.values():
                emitted.extend((t, state.order, j) for t, j in state.step_spikes)
                state.step_spikes.clear()
            self._push(states, queues, emitted, n)
            if tape is not None:
                tape.emitted.append(list(emitted))
            for key, trace in traces.items():
                pop, var = key.split(".", 1)
                state = states[pop]
                trace[n] = state.x[:, state.data.kind.state_names.index(var)]
            if progress is not None:
                progress(n + 1, steps)
        spikes = {name: s.spikes for name, s in states.items()}
        final = {name: s.x[:, :-1].copy() for name, s in states.items()}
        return spikes, traces, {name: q.drops for name, q in queues.items()}, final

    # ------------------------------------------------------------ set-up

    def _initial_state(self, pop: PopulationData, order: int) -> PopulationState:
        n = pop.size
        if pop.kind is None:
            x = np.ones((n, 1))
        else:
            x = np.column_stack([pop.initial[v] for v in pop.kind.state_names] + [np.ones(n)])
        return PopulationState(pop, order, x, np.full(n, -np.inf), np.zeros(n, dtype=np.int64),
                               [[] for _ in range(n)])

    def _queue(self, proj: ProjectionData) -> Queue:
        kind = self.data.populations[proj.spec.post].kind
        summing = not self.exact and analyse(kind).additive_event
        spec = proj.spec.queue
        return make_queue(spec.kind, proj.name, proj.post, spec.capacity, self.strict, summing)

    def _dynamics_at(self, pop: PopulationData, step: int) -> Dynamics:
        params = dict(pop.params)
        for drive in self.data.network.drives:
            if drive.population == pop.name and round(drive.start / self.dt) <= step < round(drive.stop / self.dt):
                params[drive.parameter] = drive.value
        key = (pop.kind.name, tuple(sorted(params.items())))
        if key not in self._dynamics:
            self._dynamics[key] = Dynamics(pop, params, self.dt)
        return self._dynamics[key]

    def _driven_at(self, pop: PopulationData, step: int) -> set[str]:
        """The parameters a drive sets in this step (their population values do not act)."""
        return {d.parameter for d in self.data.network.drives
                if d.population == pop.name and round(d.start / self.dt) <= step < round(d.stop / self.dt)}

    def _adjoint_at(self, pop: PopulationData, step: int) -> NumericAdjoint:
        dyn = self._dynamics_at(pop, step)
        key = (pop.kind.name, tuple(sorted(dyn.numeric.params.items())))
        if key not in self._adjoints:
            self._adjoints[key] = NumericAdjoint(dyn.analysis, dyn.numeric.params)
        return self._adjoints[key]

    def _input_schedule(self, inputs, steps: int) -> dict[int, list[tuple[float, int, int]]]:
        """Input spikes by the step at whose end they are pushed (step -1: before the first)."""
        schedule: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
        for name, (times, ids) in inputs.items():
            order = list(self.data.populations).index(name)
            push_steps, emitted = input_schedule(times, self.dt, self.exact)
            for step, t, j in zip(push_steps, emitted, ids):
                if step < steps:
                    schedule[int(step)].append((float(t), order, int(j)))
        return schedule

    # ------------------------------------------------------------ queues

    def _push(self, states, queues, emitted: list[tuple[float, int, int]], step: int) -> None:
        emitted.sort()
        names = list(states)
        dt = self.dt
        for t, order, j in emitted:
            for _, proj, starts in self._outgoing[names[order]]:
                queue = queues[proj.name]
                for syn in range(starts[j], starts[j + 1]):
                    if self.exact:
                        arrival = t + proj.delay[syn]
                        queue.push(Event(arrival, syn, max(int(math.floor(arrival / dt)), step + 1)))
                    else:
                        delay_steps = int(self._steps_of[proj.name][syn])
                        queue.push(Event((step + 1 + delay_steps) * dt, syn, step + delay_steps))

    def _pop(self, queues, step: int) -> dict[str, dict[int, list[tuple[float, int, int, float]]]]:
        """Due events grouped by target population and neuron: (time, projection, synapse, weight)."""
        due: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        for name, queue in queues.items():
            proj = self.data.projections[name]
            order = self._proj_order[name]
            for event in queue.pop_due(step):
                target = int(proj.post[event.synapse])
                due[proj.spec.post][target].append((event.time, order, event.synapse, float(proj.weight[event.synapse])))
        for per_target in due.values():
            for events in per_target.values():
                events.sort()
        return due

    # ------------------------------------------------------------ exact timing

    def _exact_step(self, state: PopulationState, dyn: Dynamics, events, n: int) -> None:
        dt = self.dt
        t0, t1 = n * dt, (n + 1) * dt
        x = state.x
        refractory = state.refractory_until > t0
        slow = np.zeros(len(x), dtype=bool)
        slow[list(events)] = True
        slow |= refractory & (state.refractory_until < t1)
        if not dyn.linear:
            raise QgenError(Code.NONLINEAR_EXACT, f"{state.data.kind.name} is not linear; exact timing needs "
                            "linear dynamics", hint="use 'timing = grid'")
        held = ~slow & refractory
        x[held] = x[held] @ dyn.P_ref_dt.T
        free = np.nonzero(~slow & ~refractory)[0]
        if len(free):
            moved = x[free] @ dyn.P_dt.T
            if dyn.crossing is not None:
                maybe = dyn.crossing.may_cross(x[free], moved, dt)
                slow[free[maybe]] = True
                free, moved = free[~maybe], moved[~maybe]
            x[free] = moved
        if state.recorder is not None:
            rec = state.recorder
            rec.free, rec.held = free, np.nonzero(held)[0]
            rec.held_ending = np.nonzero(held & (state.refractory_until == t1))[0]
        for j in np.nonzero(slow)[0]:
            x[j] = self._advance(state, dyn, int(j), x[j].copy(), events.get(int(j), ()), t0, t1)

    def _advance(self, state: PopulationState, dyn: Dynamics, j: int, x: np.ndarray, events, t0: float,
                 t1: float) -> np.ndarray:
        """One neuron through [t0, t1): integrate from event to event, spiking where g reaches 0."""
        num = dyn.numeric
        rec = state.recorder
        t = t0
        for time, proj, syn, weight, *source in events:
            x, t = self._integrate(state, dyn, j, x, t, max(time, t))
            refractory = state.refractory_until[j] > t
            if rec is not None:
                rec.event(j, x, weight, refractory, proj, syn, source[0])
            x[:-1] = (num.event_refractory if refractory else num.event)(x[:-1], weight)
            if not refractory and dyn.spiking and num.threshold(x[:-1]) >= 0:
                x = self._spike(state, dyn, j, t, x, by_event=True)
        x, _ = self._integrate(state, dyn, j, x, t, t1)
        return x

    def _integrate(self, state: PopulationState, dyn: Dynamics, j: int, x: np.ndarray, t: float,
                   target: float) -> tuple[np.ndarray, float]:
        num = dyn.numeric
        rec = state.recorder
        while t < target:
            until = state.refractory_until[j]
            if until > t:
                end = min(target, until)
                if rec is not None:
                    rec.flow(j, end - t, True, x)
                x = num.propagate_refractory(end - t) @ x
                t = end
                if rec is not None and end == until:
                    rec.refractory_end(j, x)
                continue
            found = dyn.crossing.first(x, target - t, t) if dyn.crossing is not None else None
            if found is None:
                if rec is not None:
                    rec.flow(j, target - t, False, x)
                return num.propagate(target - t) @ x, target
            s, x_minus = found
            if rec is not None:
                rec.flow(j, s, False, x)
            t = t + s
            x = self._spike(state, dyn, j, t, x_minus)
        return x, t

    def _spike(self, state: PopulationState, dyn: Dynamics, j: int, t: float, x_minus: np.ndarray,
               by_event: bool = False) -> np.ndarray:
        num = dyn.numeric
        if state.recorder is not None:
            state.recorder.spike(j, x_minus, by_event)
        state.spikes[j].append(t)
        state.pre_spike_states.append((t, j, x_minus[:-1].copy()))
        state.step_spikes.append((t, j))
        x = np.append(num.reset(x_minus[:-1]), 1.0)
        if dyn.t_ref > 0:
            state.refractory_until[j] = t + dyn.t_ref
        elif num.threshold(x[:-1]) >= 0:
            raise SimulationError(Code.MODEL_RUNTIME, f"{state.data.kind.name}: the reset leaves neuron {j} of "
                                  f"{state.data.name} above threshold at t = {t:g} ms, so it would spike forever",
                                  hint="reset to a value below the threshold, or add a refractory period")
        return x

    # ------------------------------------------------------------ grid timing

    def _grid_step(self, state: PopulationState, dyn: Dynamics, events, n: int) -> None:
        x = state.x
        refractory = state.refractory_steps > 0
        if dyn.linear:
            x[~refractory] = x[~refractory] @ dyn.P_dt.T
            x[refractory] = x[refractory] @ dyn.P_ref_dt.T
        else:
            x[:, :-1] = _rk4(dyn, x[:, :-1], refractory, self.dt)
        state.refractory_steps[refractory] -= 1
        num = dyn.numeric
        sources = self._backgrounds.get(state.data.name)
        if (events or sources) and dyn.analysis.additive_event:
            total = np.zeros(len(x))
            for target, items in events.items():
                total[target] = math.fsum(w for *_, w in items)
            if sources:  # the background sources' events of this step, after the queued ones
                total += background.inputs(sources, n, len(x))
            x[:, :-1] += np.where(refractory[:, None], dyn.event_vector_ref, dyn.event_vector) * total[:, None]
        else:
            for target, items in events.items():
                fn = num.event_refractory if refractory[target] else num.event
                for *_, weight in items:
                    x[target, :-1] = fn(x[target, :-1], weight)
        if not dyn.spiking:
            return
        t = (n + 1) * self.dt
        for j in np.nonzero((num.threshold(x[:, :-1]) >= 0) & ~refractory)[0]:
            state.spikes[j].append(t)
            state.pre_spike_states.append((t, int(j), x[j, :-1].copy()))
            state.step_spikes.append((t, int(j)))
            x[j, :-1] = num.reset(x[j, :-1])
            state.refractory_steps[j] = dyn.ref_steps


def _rk4(dyn: Dynamics, x: np.ndarray, refractory: np.ndarray, dt: float) -> np.ndarray:
    """One classical Runge–Kutta step for non-linear dynamics; clamped variables held while refractory."""
    mask = np.where(refractory[:, None], dyn.clamp_mask, 1.0)

    def f(y):
        return dyn.numeric.f(y) * mask
    k1 = f(x)
    k2 = f(x + dt / 2 * k1)
    k3 = f(x + dt / 2 * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _spike_record(per_trial: list[list[list[float]]], capacity: int) -> SpikeRecord:
    batch, neurons = len(per_trial), len(per_trial[0])
    times = np.full((batch, neurons, capacity), np.nan)
    counts = np.zeros((batch, neurons), dtype=np.int64)
    overflow = np.zeros((batch, neurons), dtype=np.int64)
    for b, trial in enumerate(per_trial):
        for j, spikes in enumerate(trial):
            kept = spikes[:capacity]
            times[b, j, :len(kept)] = kept
            counts[b, j] = len(kept)
            overflow[b, j] = len(spikes) - len(kept)
    return SpikeRecord(times, counts, overflow)
