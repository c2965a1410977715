"""qgen.analysis: propagators, classification, and the EventProp adjoint terms.

The adjoint terms are checked against central finite differences of a small float64 hybrid
simulation written here from the semantics of DESIGN.md §3 (not from qgen's code): closed-form
propagation, threshold crossings found to the last bit (regula falsi, then bisection), reset,
refractory clamp, events at given times, one optional delayed connection.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from pathlib import Path
from typing import Callable

import mpmath
import numpy as np
import pytest
import sympy as sp

from qgen.analysis import NeuronAnalysis, analyse, check_model
from qgen.analysis.adjoint import adjoint_terms
from qgen.analysis.numeric import NumericNeuron
from qgen.analysis.numeric_adjoint import NumericAdjoint
from qgen.errors import Code, QgenError
from qgen.frontend import load_model

KINDS = ("lif", "lif_alpha", "alif", "li", "iaf_psc_exp")


@pytest.fixture(scope="module")
def kind_analysis(tmp_path_factory) -> Callable[[str], NeuronAnalysis]:
    """name of a stdlib file -> its analysis (sympy work is shared across the module's tests)."""
    folder = tmp_path_factory.mktemp("std")
    cache: dict[str, NeuronAnalysis] = {}

    def get(name: str) -> NeuronAnalysis:
        if name not in cache:
            path = folder / f"{name}.snn"
            path.write_text(f'import "std/{name}.snn"\n')
            cache[name] = analyse(load_model(path).neurons[0])
        return cache[name]
    return get


def defaults(a: NeuronAnalysis) -> dict[str, float]:
    return {p.name: p.value for p in a.kind.parameters}


# ------------------------------------------------------------------ propagators

TIME_CONSTANTS = ("tau_m", "tau_s", "tau_a", "tau_syn")
DEGENERATE = {  # kind -> parameter coincidences where the generic closed form divides by zero
    "lif": [{"tau_m": "tau_s"}], "lif_alpha": [{"tau_m": "tau_s"}], "li": [{"tau_m": "tau_s"}],
    "alif": [{"tau_m": "tau_s"}, {"tau_a": "tau_m"}, {"tau_a": "tau_s", "tau_m": "tau_s"}],
    "iaf_psc_exp": [{"tau_m": "tau_syn"}],
}
DELTAS = (0.05, 0.7, 3.0, 25.0)


def random_parameters(a: NeuronAnalysis, rng: np.random.Generator) -> dict[str, float]:
    values = defaults(a)
    for name in values:
        if name in TIME_CONSTANTS:
            values[name] = rng.uniform(1.0, 30.0)
        elif name == "C_m":
            values[name] = rng.uniform(100.0, 400.0)
        elif name in ("E_L", "I_e"):
            values[name] = rng.uniform(-80.0, -60.0) if name == "E_L" else rng.uniform(0.0, 500.0)
    return values


def parameter_sets(a: NeuronAnalysis, name: str, randoms: int = 2) -> list[tuple[str, dict[str, float]]]:
    """(label, values): random values, then each degenerate coincidence (with random others)."""
    rng = np.random.default_rng(1)
    sets = [(f"random{i}", random_parameters(a, rng)) for i in range(randoms)]
    for case in DEGENERATE[name]:
        values = random_parameters(a, rng)
        for target, source in case.items():
            values[target] = values[source]
        sets.append((str(case), values))
    return sets


def expm(M: np.ndarray, delta: float) -> np.ndarray:
    with mpmath.workdps(40):
        E = mpmath.expm(mpmath.matrix(M.tolist()) * mpmath.mpf(delta))
        return np.array(E.tolist(), dtype=float)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Norm-wise (max-norm) relative error.

    Entry-wise it is not bounded by 1e-12: the generic closed forms cancel for short Δ or close
    time constants (LIFAlpha's P[v, h] keeps only ~1e-7 relative at Δ = 1 µs), although the
    absolute error stays at rounding level, which is what propagating a state sees.
    """
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("name", KINDS)
def test_propagators_match_expm(kind_analysis, name):
    a = kind_analysis(name)
    for label, values in parameter_sets(a, name):
        nn = NumericNeuron(a, values)
        for delta in DELTAS:
            err = relative_error(nn.propagate(delta), expm(nn.A_aug, delta))
            assert err <= 1e-12, (label, delta, err)
            err = relative_error(nn.propagate_refractory(delta), expm(nn.A_aug_ref, delta))
            assert err <= 1e-12, (label, delta, "refractory", err)


def van_loan(M: np.ndarray, Mp: np.ndarray, delta: float) -> np.ndarray:
    """∂/∂p exp(MΔ): the top-right block of exp([[M, ∂M/∂p], [0, M]] Δ)."""
    m = len(M)
    block = np.zeros((2 * m, 2 * m))
    block[:m, :m] = block[m:, m:] = M
    block[:m, m:] = Mp
    return expm(block, delta)[:m, m:]


def augmented_matrix(a: NeuronAnalysis, values: dict[str, float], refractory: bool,
                     wrt: str | None = None) -> np.ndarray:
    """Ã (or ∂Ã/∂wrt) with numbers, built from the analysis' (A, b)."""
    A, b = a.refractory_system if refractory else (a.A, a.b)
    M = sp.Matrix.hstack(sp.Matrix(A), sp.Matrix(b)).col_join(sp.zeros(1, len(b) + 1))
    if wrt is not None:
        M = M.diff(sp.Symbol(wrt, real=True))
    return np.array(M.subs({p: values[p.name] for p in a.sym.params}), dtype=float)


@pytest.mark.parametrize("name", KINDS)
def test_propagator_parameter_derivatives(kind_analysis, name):
    """∂P/∂p against Van Loan's block exponential, also on the degenerate branches."""
    a = kind_analysis(name)
    for label, values in parameter_sets(a, name, randoms=1):
        adj = NumericAdjoint(a, values)
        for refractory in (False, True):
            M = augmented_matrix(a, values, refractory)
            dM = [augmented_matrix(a, values, refractory, wrt=p) for p in a.kind.parameter_names]
            for delta in (0.05, 3.0):
                got = adj.propagator_gradients(delta, refractory)
                for k, p in enumerate(a.kind.parameter_names):
                    if not dM[k].any():  # p does not enter these dynamics
                        assert not got[k].any(), (label, refractory, delta, p)
                        continue
                    err = relative_error(got[k], van_loan(M, dM[k], delta))
                    assert err <= 1e-11, (label, refractory, delta, p, err)


def test_propagator_time_derivative_is_the_flow(kind_analysis):
    a = kind_analysis("lif_alpha")
    terms = adjoint_terms(a)
    values = {p: 0.5 + k for k, p in enumerate(a.sym.params)}
    values[a.sym.delta] = 1.3
    got = np.array(terms.propagator_time_derivative().subs(values), dtype=float)
    want = np.array(sp.diff(a.propagator, a.sym.delta).subs(values), dtype=float)
    assert np.allclose(got, want, rtol=1e-13, atol=0)
    adj = NumericAdjoint(a, defaults(a))
    x0 = np.array([0.3, -0.2, 0.7])
    x_end = adj.propagator(2.0) @ np.append(x0, 1.0)
    assert np.allclose(adj.end_state_time_derivative(2.0, x0), adj.rhs(x_end[:3]), rtol=1e-14)


# ------------------------------------------------------------------ classification

QUADRATIC = """
neuron Quad {{
    parameters {{ tau = 10 ms }}
    state {{ v = 0.5 }}
    equations {{ dv/dt = {rhs} }}
    threshold {threshold}
    reset {{ v = 0.0 }}
    on_event(w) {{ v += w }}
}}
network Net {{
    dt = 0.1 ms
    timing = {timing}
    population p = Quad(3)
    record p.spikes
}}
"""


@pytest.mark.parametrize("rhs, threshold", [("-v * v / tau", "v >= 1.0"), ("-v / tau", "v * v >= 1.0")])
def test_nonlinear_kinds_need_grid_timing(tmp_path: Path, rhs: str, threshold: str):
    for timing in ("exact", "grid"):
        path = tmp_path / f"{timing}.snn"
        path.write_text(QUADRATIC.format(rhs=rhs, threshold=threshold, timing=timing))
        model = load_model(path)
        if timing == "grid":
            check_model(model)
            continue
        with pytest.raises(QgenError) as info:
            check_model(model)
        assert info.value.code is Code.NONLINEAR_EXACT
    a = analyse(model.neurons[0])
    assert a.linear == (rhs == "-v / tau")
    assert a.threshold_linear == (threshold == "v >= 1.0")


def test_nonlinear_kind_has_jumps_but_no_propagator(tmp_path: Path):
    path = tmp_path / "quad.snn"
    path.write_text(QUADRATIC.format(rhs="-v * v / tau", threshold="v >= 1.0", timing="grid"))
    a = analyse(load_model(path).neurons[0])
    terms = adjoint_terms(a)
    (v,), (tau,) = a.sym.state, a.sym.params
    # g = v − 1, r = 0: S = (f(0) − 0)/ġ⁻ = 0 and λ⁻ = −dL/dt_k/ġ⁻ with ġ⁻ = −v²/τ
    jump = terms.spike_jump(refractory=False)
    assert jump.saltation == sp.zeros(1, 1)
    assert sp.simplify(jump.adjoint[0] - terms.dL_dt * tau / v**2) == 0
    with pytest.raises(ValueError, match="non-linear"):
        terms.adjoint_propagator()
    with pytest.raises(ValueError, match="non-linear"):
        terms.propagator_time_derivative()


# ------------------------------------------------------------------ the worked case (DESIGN.md §4)


def test_lif_worked_case(kind_analysis):
    a = kind_analysis("lif")
    terms = adjoint_terms(a)
    V, I = a.sym.state
    tau_m, tau_s, v_th, v_reset, _ = a.sym.params
    lam_V, lam_I = terms.lam
    w, dL = a.sym.weight, terms.dL_dt

    # between events: dλ/dt = −Aᵀλ, i.e. dQ/dΔ = Aᵀ Q for λ(t) = Q(t_end − t) λ_end
    A_T = sp.Matrix([[-1 / tau_m, 0], [1 / tau_m, -1 / tau_s]])
    assert sp.simplify(sp.Matrix(a.A).T - A_T) == sp.zeros(2, 2)
    Q = terms.adjoint_propagator()
    assert sp.simplify(Q.diff(a.sym.delta) - A_T * Q) == sp.zeros(2, 2)

    # event arrival on I
    event = terms.event_jump()
    assert list(event.adjoint) == [lam_V, lam_I]
    assert event.weight == lam_I
    assert sp.simplify(event.time - w * (lam_I / tau_s - lam_V / tau_m)) == 0

    # spike: λ_V⁻ = λ_V⁺ (I⁻ − V_r)/(I⁻ − ϑ) − (dL/dt_k)/V̇⁻, λ_I⁻ = λ_I⁺, at V⁻ = ϑ
    spike = terms.spike_jump(refractory=False)
    at_threshold = {V: v_th}
    v_dot = (I - v_th) / tau_m
    assert sp.simplify(spike.slope.subs(at_threshold) - v_dot) == 0
    lam_minus = spike.adjoint.subs(at_threshold)
    assert sp.simplify(lam_minus[0] - (lam_V * (I - v_reset) / (I - v_th) - dL / v_dot)) == 0
    assert sp.simplify(lam_minus[1] - lam_I) == 0

    # with a refractory period V is clamped after the spike: λ_V⁻ = −(dL/dt_k)/V̇⁻
    refractory = terms.spike_jump(refractory=True).adjoint.subs(at_threshold)
    assert sp.simplify(refractory[0] + dL / v_dot) == 0
    assert sp.simplify(refractory[1] - lam_I) == 0
    end = terms.refractory_end()
    assert sp.simplify(end.time + lam_V * (I - V) / tau_m) == 0
    assert end.period == {"tau_m": 0, "tau_s": 0, "v_th": 0, "v_reset": 0, "t_ref": 1}


@pytest.mark.parametrize("name", ["lif", "lif_alpha", "alif"])
def test_zero_refractory_period_limit(kind_analysis, name):
    """The refractory saltation plus an immediate end of the period is the plain saltation."""
    a = kind_analysis(name)
    terms = adjoint_terms(a)
    plain = terms.spike_jump(refractory=False)
    clamped = terms.spike_jump(refractory=True)
    after = dict(zip(a.sym.state, a.reset))
    end = terms.refractory_end().time.subs(after, simultaneous=True)
    combined = clamped.adjoint.subs(terms.dL_dt, terms.dL_dt + end)
    assert sp.simplify(combined - plain.adjoint) == sp.zeros(len(a.sym.state), 1)
    for p in a.kind.parameter_names:
        combined = clamped.parameters[p].subs(terms.dL_dt, terms.dL_dt + end)
        assert sp.simplify(combined - plain.parameters[p]) == 0


# ------------------------------------------------------------------ a small hybrid simulation


@dataclasses.dataclass(frozen=True)
class Net:
    """Neurons of one kind, external input events, and at most one delayed connection."""

    kind: str
    params: tuple[dict[str, float], ...]  # per neuron
    x0: tuple[np.ndarray, ...]  # per neuron
    inputs: tuple[tuple[float, int, float], ...]  # (arrival time, neuron, weight)
    connection: tuple[int, int, float, float] | None  # (pre, post, weight, delay)
    observe: tuple[float, ...]  # the loss reads every state at these times, and at T
    T: float


@dataclasses.dataclass
class Trace:
    """Everything the backward sweep needs, in forward time order."""

    items: list[tuple] = dataclasses.field(default_factory=list)
    spikes: list[list[float]] = dataclasses.field(default_factory=list)  # per neuron


def first_crossing(nn: NumericNeuron, x: np.ndarray, delta: float) -> float | None:
    """The earliest s in (0, Δ] with g(x(s)) >= 0, to the last bit."""
    x_tilde = np.append(x, 1.0)
    g = lambda s: float(nn.threshold_vector @ (nn.propagate(s) @ x_tilde))  # noqa: E731
    # scan on a grid fine enough to see any rise and fall (stepping is cheap; confirm exactly)
    samples = max(4, math.ceil(delta / 0.2))
    step, y, lo = nn.propagate(delta / samples), x_tilde, 0.0
    for k in range(1, samples + 1):
        y = step @ y
        hi = delta * k / samples
        if nn.threshold_vector @ y >= 0 and g(hi) >= 0:
            break
        lo = hi
    else:
        return None
    return refine_root(g, lo, hi)


def refine_root(g: Callable[[float], float], lo: float, hi: float) -> float:
    """The smallest float s in (lo, hi] found with g(s) >= 0, given g(lo) < 0 <= g(hi).

    Illinois regula falsi to a narrow bracket, then bisection down to adjacent floats.
    """
    g_lo, g_hi, side = g(lo), g(hi), 0
    for _ in range(60):
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
        s = hi - g_hi * (hi - lo) / (g_hi - g_lo)
        if not lo < s < hi:
            s = 0.5 * (lo + hi)
        g_s = g(s)
        if g_s >= 0:
            hi, g_hi = s, g_s
            g_lo, side = (0.5 * g_lo if side == 1 else g_lo), 1
        else:
            lo, g_lo = s, g_s
            g_hi, side = (0.5 * g_hi if side == -1 else g_hi), -1
    while (mid := 0.5 * (lo + hi)) not in (lo, hi):
        lo, hi = (lo, mid) if g(mid) >= 0 else (mid, hi)
    return hi


def simulate(net: Net, neurons: list[NumericNeuron]) -> Trace:
    """Run net event by event: advance every neuron to the next thing that happens, apply it."""
    trace = Trace(spikes=[[] for _ in neurons])
    x = [np.array(x0, dtype=float) for x0 in net.x0]
    refractory_until: list[tuple[float, int] | None] = [None] * len(neurons)
    pending = [(t, j, w, ("input", k)) for k, (t, j, w) in enumerate(net.inputs)]
    observations = [*net.observe, net.T]
    t = 0.0
    while True:
        # the next scheduled thing: an event, the end of a refractory period, or an observation
        nexts = [(e[0], "event", e) for e in pending]
        nexts += [(r[0], "end", j) for j, r in enumerate(refractory_until) if r is not None]
        nexts += [(observations[0], "observe", None)]
        t_next, what, info = min(nexts, key=lambda item: item[0])
        crossings = [(first_crossing(nn, x[j], t_next - t), j) for j, nn in enumerate(neurons)
                     if nn.threshold is not None and refractory_until[j] is None and t_next > t]
        crossings = [(s, j) for s, j in crossings if s is not None]
        if crossings:
            s, spiking = min(crossings)
            t_next, what = t + s, "spike"
        for j, nn in enumerate(neurons):  # advance every neuron to t_next
            refractory = refractory_until[j] is not None
            delta = t_next - t if what != "spike" else s
            if delta > 0:
                trace.items.append(("interval", j, delta, x[j].copy(), refractory))
                propagate = nn.propagate_refractory if refractory else nn.propagate
                x[j] = (propagate(delta) @ np.append(x[j], 1.0))[:-1]
        t = t_next
        if what == "spike":
            j, nn = spiking, neurons[spiking]
            k = len(trace.spikes[j])
            trace.spikes[j].append(t)
            trace.items.append(("spike", j, k, x[j].copy()))
            x[j] = nn.reset(x[j])
            if nn.refractory_period > 0:
                refractory_until[j] = (t + nn.refractory_period, k)
            if net.connection is not None and net.connection[0] == j:
                _, post, w, d = net.connection
                pending.append((t + d, post, w, ("connection", k)))
        elif what == "event":
            pending.remove(info)
            _, j, w, source = info
            refractory = refractory_until[j] is not None
            trace.items.append(("event", j, x[j].copy(), w, refractory, source))
            x[j] = (neurons[j].event_refractory if refractory else neurons[j].event)(x[j], w)
        elif what == "end":
            trace.items.append(("end", info, refractory_until[info][1], x[info].copy()))
            refractory_until[info] = None
        else:
            trace.items.append(("observe", len(net.observe) + 1 - len(observations),
                                [xj.copy() for xj in x]))
            observations.pop(0)
            if not observations:
                return trace


class Loss:
    """A smooth loss of the observed states and of every spike time (fixed random coefficients)."""

    def __init__(self, net: Net, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        n, m = len(net.x0), len(net.x0[0])
        self.a = rng.normal(size=(len(net.observe) + 1, n, m))
        self.b = rng.normal(size=(len(net.observe) + 1, n, m))
        self.c = rng.normal(size=n)

    def __call__(self, trace: Trace) -> float:
        total = 0.0
        for item in trace.items:
            if item[0] == "observe":
                for j, x in enumerate(item[2]):
                    total += self.a[item[1], j] @ x + 0.5 * (self.b[item[1], j] @ x) ** 2
        for j, times in enumerate(trace.spikes):
            total += sum(self.c[j] * t + 0.01 * t * t for t in times)
        return total

    def state_gradient(self, index: int, j: int, x: np.ndarray) -> np.ndarray:
        return self.a[index, j] + (self.b[index, j] @ x) * self.b[index, j]

    def spike_time_gradient(self, j: int, t: float) -> float:
        return self.c[j] + 0.02 * t


def backward(net: Net, trace: Trace, loss: Loss, adjoints: list[NumericAdjoint]) -> dict[tuple, float]:
    """The EventProp sweep in reverse time, with the terms under test."""
    grad: dict[tuple, float] = defaultdict(float)
    lam = [np.zeros(len(x0)) for x0 in net.x0]
    parameters = [np.zeros(len(adj.parameter_names)) for adj in adjoints]
    spike_time = defaultdict(float)  # (neuron, spike) -> dL/dt_k from its events and refractory end
    for item in reversed(trace.items):
        kind, j = item[0], item[1]
        adj = adjoints[j] if kind != "observe" else None
        if kind == "observe":
            for n, x in enumerate(item[2]):
                lam[n] = lam[n] + loss.state_gradient(j, n, x)
        elif kind == "interval":
            _, _, delta, x0, refractory = item
            parameters[j] += adj.interval_parameter_gradient(delta, x0, lam[j], refractory)
            lam[j] = adj.adjoint_propagator(delta, refractory) @ lam[j]
        elif kind == "event":
            _, _, x_minus, w, refractory, (source, k) = item
            terms = adj.event(x_minus, w, lam[j], refractory)
            lam[j] = terms.adjoint
            parameters[j] += terms.parameters
            if source == "input":
                grad["w_in", k] += terms.weight
                grad["t_in", k] += terms.time
            else:
                grad["w_conn",] += terms.weight
                grad["d_conn",] += terms.time
                spike_time[net.connection[0], k] += terms.time
        elif kind == "end":
            _, _, k, x = item
            dL_dtau = adj.refractory_end_time_gradient(x, lam[j])
            spike_time[j, k] += dL_dtau
            parameters[j] += dL_dtau * adj.refractory_period_gradient
        else:  # spike
            _, _, k, x_minus = item
            dL_dt = loss.spike_time_gradient(j, trace.spikes[j][k]) + spike_time[j, k]
            terms = adj.spike(x_minus, lam[j], dL_dt)
            lam[j] = terms.adjoint
            parameters[j] += terms.parameters
    for j, adj in enumerate(adjoints):
        for i, value in enumerate(lam[j]):
            grad["x0", j, i] = value
        for name, value in zip(adj.parameter_names, parameters[j]):
            grad["p", j, name] = value
    return grad


def perturbed(net: Net, key: tuple, h: float) -> Net:
    """net with the quantity ``key`` (as in :func:`backward`) moved by h."""
    if key[0] in ("w_in", "t_in"):
        inputs = [list(e) for e in net.inputs]
        inputs[key[1]][0 if key[0] == "t_in" else 2] += h
        return dataclasses.replace(net, inputs=tuple(map(tuple, inputs)))
    if key[0] in ("w_conn", "d_conn"):
        pre, post, w, d = net.connection
        return dataclasses.replace(net, connection=(pre, post, w + h * (key[0] == "w_conn"),
                                                    d + h * (key[0] == "d_conn")))
    if key[0] == "x0":
        x0 = [x.copy() for x in net.x0]
        x0[key[1]][key[2]] += h
        return dataclasses.replace(net, x0=tuple(x0))
    params = [dict(p) for p in net.params]
    params[key[1]][key[2]] += h
    return dataclasses.replace(net, params=tuple(params))


def value_of(net: Net, key: tuple) -> float:
    return {"w_in": lambda: net.inputs[key[1]][2], "t_in": lambda: net.inputs[key[1]][0],
            "w_conn": lambda: net.connection[2], "d_conn": lambda: net.connection[3],
            "x0": lambda: net.x0[key[1]][key[2]], "p": lambda: net.params[key[1]][key[2]]}[key[0]]()




def run(net: Net, a: NeuronAnalysis, neurons: list[NumericNeuron], key: tuple) -> Trace:
    """Simulate net, rebuilding only the neuron whose parameter ``key`` changed."""
    if key[0] == "p":
        neurons = list(neurons)
        neurons[key[1]] = NumericNeuron(a, net.params[key[1]])
    return simulate(net, neurons)


def lif_inputs(rng: np.random.Generator, neurons: int, T: float, count: int, weight: float) -> tuple:
    times = np.sort(rng.uniform(0.5, T - 2.0, size=count))
    return tuple((float(t), int(rng.integers(neurons)), float(weight * rng.uniform(0.6, 1.4))) for t in times)


def gradient_case(name: str) -> tuple[str, Net, list[tuple]]:
    """(kind file, network, the quantities to differentiate) of one named check."""
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "lif":
        params = ({"tau_m": 10.0, "tau_s": 4.0, "v_th": 1.0, "v_reset": 0.1, "t_ref": 0.0},)
        net = Net("lif", params, (np.array([0.2, 0.5]),), lif_inputs(rng, 1, 40.0, 14, 2.0), None,
                  (7.0, 23.0), 40.0)
        names = ("tau_m", "tau_s", "v_th", "v_reset")
    elif name == "lif_refractory":
        params = ({"tau_m": 10.0, "tau_s": 4.0, "v_th": 1.0, "v_reset": 0.1, "t_ref": 2.0},
                  {"tau_m": 8.0, "tau_s": 3.0, "v_th": 0.9, "v_reset": -0.1, "t_ref": 1.5})
        net = Net("lif", params, (np.array([0.2, 0.5]), np.array([0.0, 0.3])),
                  lif_inputs(rng, 2, 40.0, 24, 2.5), (0, 1, 2.0, 1.3), (9.0, 26.0), 40.0)
        names = ("tau_m", "tau_s", "v_th", "v_reset", "t_ref")
    elif name == "lif_alpha":
        params = ({"tau_m": 10.0, "tau_s": 3.0, "v_th": 1.0, "v_reset": 0.1, "t_ref": 1.0},
                  {"tau_m": 7.0, "tau_s": 2.0, "v_th": 0.8, "v_reset": 0.0, "t_ref": 2.0})
        net = Net("lif_alpha", params, (np.array([0.2, 0.3, 0.1]), np.array([0.0, 0.1, 0.2])),
                  lif_inputs(rng, 2, 40.0, 24, 1.0), (0, 1, 1.0, 2.1), (11.0, 27.0), 40.0)
        names = ("tau_m", "tau_s", "v_th", "v_reset", "t_ref")
    elif name == "alif":
        params = ({"tau_m": 10.0, "tau_s": 4.0, "tau_a": 30.0, "b": 0.3, "v_th": 1.0, "v_reset": 0.1,
                   "t_ref": 1.0},
                  {"tau_m": 8.0, "tau_s": 3.0, "tau_a": 20.0, "b": 0.5, "v_th": 0.9, "v_reset": 0.0,
                   "t_ref": 1.5})
        net = Net("alif", params, (np.array([0.2, 0.5, 0.1]), np.array([0.0, 0.3, 0.2])),
                  lif_inputs(rng, 2, 40.0, 24, 3.0), (0, 1, 2.0, 1.7), (13.0, 29.0), 40.0)
        names = ("tau_m", "tau_s", "tau_a", "b", "v_th", "v_reset", "t_ref")
    keys = [("w_in", k) for k in range(len(net.inputs))] + [("t_in", k) for k in range(len(net.inputs))]
    keys += [("x0", j, i) for j, x0 in enumerate(net.x0) for i in range(len(x0))]
    keys += [("p", j, p) for j in range(len(params)) for p in names]
    if net.connection is not None:
        keys += [("w_conn",), ("d_conn",)]
    return net.kind, net, keys


@pytest.mark.parametrize("name", ["lif", "lif_refractory", "lif_alpha", "alif"])
def test_adjoint_matches_finite_differences(kind_analysis, name):
    kind, net, keys = gradient_case(name)
    a = kind_analysis(kind)
    neurons = [NumericNeuron(a, p) for p in net.params]
    trace = simulate(net, neurons)
    counts = [len(s) for s in trace.spikes]
    assert all(c >= 2 for c in counts), counts  # the check means nothing without spikes
    loss = Loss(net)
    grad = backward(net, trace, loss, [NumericAdjoint(a, p) for p in net.params])
    failures = []
    for key in keys:
        h = 3e-6 * max(1.0, abs(value_of(net, key)))
        up, down = (run(perturbed(net, key, step), a, neurons, key) for step in (h, -h))
        assert [len(s) for s in up.spikes] == [len(s) for s in down.spikes] == counts, key
        fd = (loss(up) - loss(down)) / (2 * h)
        if not abs(grad[key] - fd) <= 1e-6 * abs(fd):
            failures.append((key, grad[key], fd))
    assert not failures, failures


@pytest.mark.parametrize("name", ["lif", "lif_alpha", "alif", "iaf_psc_exp"])
def test_propagators_stay_finite_over_long_intervals(kind_analysis, name):
    """No exponential with a positive exponent: e^(+Δ/τ)·e^(-2Δ/τ) would give inf·0 = NaN."""
    a = kind_analysis(name)
    numeric = NumericNeuron(a, defaults(a))
    for delta in (1e3, 1e5):
        P = numeric.propagate(delta)
        assert np.all(np.isfinite(P)), P
        assert np.all(np.abs(P[:-1, :-1]) <= 1.0)  # every mode decays
