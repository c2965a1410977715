"""External oracle: NEST simulates the same networks as the reference simulator (DESIGN.md §7).

Exact timing against ``iaf_psc_exp_ps``: a random recurrent network of iaf_psc_exp neurons
(tau_syn != tau_m, a refractory period, a constant I_e above rheobase, heterogeneous delays on
NEST's grid, excitatory and inhibitory weights) driven by off-grid Poisson spikes. In NEST the
input goes spike_generator (precise_times) -> parrot_neuron_ps -> network; the parrots re-emit
each spike one connection delay (one resolution step) later, so qgen's input population gets the
parrots' recorded emission times. Same spike count per neuron, every spike within 1e-9 ms.

Grid timing against ``iaf_psc_exp``: the same kind of network, on-grid input straight from
spike_generators, spike times compared as integer steps: identical.

A third test pins the one known difference in semantics: a threshold crossing hidden inside a
sub-interval (the voltage rises above threshold and falls back between two events or step ends).
qgen spikes, as DESIGN.md §3 asks; NEST's iaf_psc_exp_ps checks the threshold only at the ends of
its sub-intervals and misses it (and iaf_psc_exp_ps_lossless, which should catch it, raises
NumericalInstability in NEST 3.10). The network tests use instances where this does not happen.

The qgen network is drawn by ``instantiate`` and copied into NEST synapse by synapse, so both
simulate the same instance; NEST itself draws no random numbers here.
"""

from __future__ import annotations

import math
import os

os.environ["PYNEST_QUIET"] = "1"  # no banner on import

import mpmath
import nest
import numpy as np
import pytest

from qgen.analysis import check_model
from qgen.frontend import load_model
from qgen.reference import ReferenceSimulator
from qgen.runtime.network import NetworkData, instantiate

pytestmark = pytest.mark.nest

DT = 0.1  # ms: qgen's dt and NEST's resolution
DURATION = 400.0  # ms
N_INPUT, N_NET = 20, 60
INPUT_RATE = 40.0  # Hz per input channel
TOLERANCE = 1e-9  # ms, exact timing

NETWORK = """
import "std/iaf_psc_exp.snn"

network NestOracle {{
    dt = {dt} ms
    timing = {timing}
    population inp = input({n_input})
    population net = iaf_psc_exp({n_net}, C_m = 200 pF, tau_m = 15 ms, tau_syn = 3 ms, t_ref = 2 ms,
                                 E_L = -65 mV, V_reset = -68 mV, V_th = -52 mV, I_e = 180 pA,
                                 V_m ~ uniform(-68 mV, -52 mV))
    connect inp -> net fixed_probability(0.3) as feed {{
        weight ~ uniform(50 pA, 250 pA)
        delay ~ uniform(0.5 ms, 3 ms)
        queue = heap(capacity = 64)
    }}
    connect net -> net fixed_probability(0.15, autapses = false) as rec {{
        weight ~ uniform(-300 pA, 200 pA)
        delay ~ uniform(0.5 ms, 4 ms)
        queue = ring(capacity = 16)
    }}
    record net.spikes
}}
"""

# One neuron and one input synapse, for the hidden-crossing test.
SINGLE = """
import "std/iaf_psc_exp.snn"

network NestSingle {{
    dt = {dt} ms
    timing = exact
    population inp = input(1)
    population net = iaf_psc_exp(1, C_m = 250 pF, tau_m = 10 ms, tau_syn = 2 ms, t_ref = 2 ms,
                                 E_L = -70 mV, V_reset = -70 mV, V_th = -55 mV, I_e = 0 pA)
    connect inp -> net all_to_all as feed {{ weight = 1000 pA; delay = 1 ms; queue = fifo(capacity = 4) }}
    record net.spikes
}}
"""


# ---------------------------------------------------------------- helpers


def _instance(tmp_path, text: str, seed: int) -> NetworkData:
    path = tmp_path / "nest_oracle.snn"
    path.write_text(text)
    model = load_model(path)
    check_model(model)
    return instantiate(model, seed)


def _reset_nest() -> None:
    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR  # nest.set_verbosity is deprecated in NEST 3.10
    nest.resolution = DT
    nest.rng_seed = 20251
    nest.local_num_threads = 1


def _nest_params(data: NetworkData) -> dict[str, float]:
    """The qgen parameters of population net under NEST's names (tau_syn_ex = tau_syn_in)."""
    p = data.populations["net"].params
    return dict(C_m=p["C_m"], tau_m=p["tau_m"], tau_syn_ex=p["tau_syn"], tau_syn_in=p["tau_syn"],
                t_ref=p["t_ref"], E_L=p["E_L"], V_reset=p["V_reset"], V_th=p["V_th"], I_e=p["I_e"])


def _nest_network(data: NetworkData, neuron_model: str, sources) -> tuple:
    """The network of ``data`` in NEST, fed by ``sources`` (one node per qgen input neuron)."""
    neurons = nest.Create(neuron_model, data.populations["net"].size, params=_nest_params(data))
    neurons.V_m = data.populations["net"].initial["V_m"]  # absolute in both, as is V_th
    assert not np.any(data.populations["net"].initial.get("I_syn", 0.0))  # NEST starts at 0 pA too
    ids = {"inp": np.array(sources.tolist()), "net": np.array(neurons.tolist())}
    for proj in data.projections.values():
        nest.Connect(ids[proj.spec.pre][proj.pre], ids[proj.spec.post][proj.post], "one_to_one",
                     syn_spec={"synapse_model": "static_synapse", "weight": proj.weight, "delay": proj.delay})
    recorder = nest.Create("spike_recorder")
    nest.Connect(neurons, recorder)
    return neurons, recorder


def _events(recorder, first) -> tuple[np.ndarray, np.ndarray]:
    """(times, 0-based ids) recorded by a spike_recorder, sorted by neuron, then time."""
    events = recorder.get("events")
    times, ids = np.asarray(events["times"], float), np.asarray(events["senders"]) - first.global_id
    order = np.lexsort((times, ids))
    return times[order], ids[order]


def _by_neuron(times: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((times, ids))
    return times[order], ids[order]


def _first_difference(nest_spikes, qgen_spikes, tolerance: float) -> str:
    """The earliest spike that NEST and qgen disagree on, per neuron, with its neighbours."""
    (t_n, i_n), (t_q, i_q) = nest_spikes, qgen_spikes
    worst = None
    for j in np.union1d(i_n, i_q):
        a, b = t_n[i_n == j], t_q[i_q == j]
        k = next((k for k in range(min(len(a), len(b))) if abs(a[k] - b[k]) > tolerance), min(len(a), len(b)))
        if k == len(a) == len(b):
            continue
        when = min(a[k] if k < len(a) else np.inf, b[k] if k < len(b) else np.inf)
        if worst is None or when < worst[0]:
            worst = (when, int(j), a[max(0, k - 2):k + 3], b[max(0, k - 2):k + 3], k)
    if worst is None:
        return "no difference"
    when, j, a, b, k = worst
    return (f"first difference at t = {float(when)!r} ms, neuron {j}, its spike #{k}: "
            f"NEST {a.tolist()} vs qgen {b.tolist()} (spikes #{max(0, k - 2)}..)")


def _poisson_off_grid(rng: np.random.Generator) -> list[np.ndarray]:
    """Per input channel, sorted Poisson spike times, off the grid, before DURATION - 5 ms."""
    trains = []
    for _ in range(N_INPUT):
        times = np.sort(rng.uniform(0.5, DURATION - 5.0, rng.poisson(INPUT_RATE * DURATION / 1000)))
        trains.append(times)
    return trains


def _poisson_on_grid(rng: np.random.Generator) -> list[np.ndarray]:
    """Per input channel, distinct grid times k·dt, 1 <= k < steps - 50."""
    steps = int(round(DURATION / DT))
    return [np.unique(rng.integers(1, steps - 50, rng.poisson(INPUT_RATE * DURATION / 1000))) * DT
            for _ in range(N_INPUT)]


def _check_network(data: NetworkData) -> None:
    """The test network has what the comparison is meant to exercise."""
    p = data.populations["net"].params
    assert p["tau_syn"] != p["tau_m"] and p["t_ref"] > 0
    assert p["E_L"] + p["I_e"] * p["tau_m"] / p["C_m"] > p["V_th"]  # I_e alone makes neurons fire
    rec = data.projections["rec"]
    assert (rec.weight < 0).sum() > 50 and (rec.weight > 0).sum() > 50
    for proj in data.projections.values():
        assert len(np.unique(proj.delay)) > 10


# ---------------------------------------------------------------- tests


def test_exact_timing_matches_iaf_psc_exp_ps(tmp_path):
    """About 900 spikes; measured with NEST 3.10, the largest |Δt| is 3e-11 ms (median 1e-12).

    That residual is rounding, not semantics: V is about -52 mV (one ulp: 7e-15 mV) and the
    self-driven crossings are slow (dV/dt ~ 0.03 mV/ms), so each simulator places a crossing only
    to ~1e-13 ms, and the recurrent network carries such offsets on to later spikes.
    """
    data = _instance(tmp_path, NETWORK.format(dt=DT, timing="exact", n_input=N_INPUT, n_net=N_NET), seed=7)
    for proj in data.projections.values():  # NEST's delays are whole steps: give qgen the same
        proj.delay[:] = np.round(proj.delay / DT) * DT
    _check_network(data)
    trains = _poisson_off_grid(np.random.default_rng(3))

    _reset_nest()
    generators = nest.Create("spike_generator", N_INPUT,
                             params=[{"spike_times": t, "precise_times": True} for t in trains])
    parrots = nest.Create("parrot_neuron_ps", N_INPUT)
    nest.Connect(generators, parrots, "one_to_one", syn_spec={"delay": DT})
    parrot_recorder = nest.Create("spike_recorder")
    nest.Connect(parrots, parrot_recorder)
    neurons, recorder = _nest_network(data, "iaf_psc_exp_ps", parrots)
    nest.Simulate(DURATION)

    # The parrots re-emit every input spike exactly one connection delay (one step) later.
    in_times, in_ids = _events(parrot_recorder, parrots[0])
    given_times, given_ids = _by_neuron(np.concatenate(trains),
                                        np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)]))
    np.testing.assert_array_equal(in_ids, given_ids)
    np.testing.assert_allclose(in_times, given_times + DT, rtol=0, atol=1e-12)
    assert (np.abs(in_times / DT - np.round(in_times / DT)) > 1e-6).mean() > 0.99  # off the grid

    result = ReferenceSimulator(data, strict=True).run({"inp": (in_times, in_ids)}, DURATION)
    nest_spikes = _events(recorder, neurons[0])
    qgen_spikes = _by_neuron(*result.spikes["net"].trial(0))

    counts_nest = np.bincount(nest_spikes[1], minlength=N_NET)
    counts_qgen = result.spikes["net"].total[0]
    assert counts_nest.sum() >= 500, f"too few spikes to compare: {counts_nest.sum()}"
    assert (counts_nest > 0).mean() > 0.9
    assert np.array_equal(counts_qgen, counts_nest), (
        f"spike counts differ for neurons {np.nonzero(counts_qgen != counts_nest)[0].tolist()}; "
        + _first_difference(nest_spikes, qgen_spikes, TOLERANCE))
    error = np.abs(qgen_spikes[0] - nest_spikes[0])
    assert error.max() <= TOLERANCE, _first_difference(nest_spikes, qgen_spikes, TOLERANCE)


def test_grid_timing_matches_iaf_psc_exp(tmp_path):
    data = _instance(tmp_path, NETWORK.format(dt=DT, timing="grid", n_input=N_INPUT, n_net=N_NET), seed=11)
    # Delays stay off the grid: both simulators round them to whole steps (none is near a tie).
    for proj in data.projections.values():
        fraction = proj.delay / DT - np.floor(proj.delay / DT)
        assert (fraction > 1e-3).mean() > 0.9 and (np.abs(fraction - 0.5) > 1e-6).all()
    _check_network(data)
    trains = _poisson_on_grid(np.random.default_rng(5))

    _reset_nest()
    generators = nest.Create("spike_generator", N_INPUT, params=[{"spike_times": t} for t in trains])
    neurons, recorder = _nest_network(data, "iaf_psc_exp", generators)
    nest.Simulate(DURATION)

    in_times = np.concatenate(trains)
    in_ids = np.concatenate([np.full(len(t), k) for k, t in enumerate(trains)])
    result = ReferenceSimulator(data, strict=True).run({"inp": (in_times, in_ids)}, DURATION)
    nest_times, nest_ids = _events(recorder, neurons[0])
    qgen_times, qgen_ids = _by_neuron(*result.spikes["net"].trial(0))

    assert len(nest_times) >= 500, f"too few spikes to compare: {len(nest_times)}"
    assert (np.bincount(nest_ids, minlength=N_NET) > 0).mean() > 0.9
    nest_steps, qgen_steps = np.round(nest_times / DT), np.round(qgen_times / DT)
    assert np.abs(nest_times / DT - nest_steps).max() < 1e-9 and np.abs(qgen_times / DT - qgen_steps).max() < 1e-9
    counts_nest, counts_qgen = np.bincount(nest_ids, minlength=N_NET), np.bincount(qgen_ids, minlength=N_NET)
    assert np.array_equal(counts_qgen, counts_nest), (
        f"spike counts differ for neurons {np.nonzero(counts_qgen != counts_nest)[0].tolist()}; "
        + _first_difference((nest_steps, nest_ids), (qgen_steps, qgen_ids), 0.5))
    assert np.array_equal(qgen_steps.astype(np.int64), nest_steps.astype(np.int64)), \
        _first_difference((nest_steps, nest_ids), (qgen_steps, qgen_ids), 0.5)


@pytest.mark.parametrize("excess, nest_sees_it", [(1e-5, False), (1e-3, True)])
def test_hidden_threshold_crossing(tmp_path, excess, nest_sees_it):
    """One PSP whose peak tops the threshold by ``excess`` (relative), peaking mid-step.

    With 1e-5 the voltage stays above threshold for 0.04 ms, inside one step and between
    events: qgen spikes at the first crossing, iaf_psc_exp_ps does not. With 1e-3 it is still
    above threshold at the end of the step and both spike at the same time.
    """
    data = _instance(tmp_path, SINGLE.format(dt=DT), seed=1)
    p = data.populations["net"].params
    tau_m, tau_s, c_m = p["tau_m"], p["tau_syn"], p["C_m"]
    gap = p["V_th"] - p["E_L"]
    peak = math.log(tau_m / tau_s) * tau_m * tau_s / (tau_m - tau_s)  # ms after the event

    def psp(s, weight):  # mV above rest, s ms after an event of ``weight`` pA
        return weight / c_m * tau_m * tau_s / (tau_m - tau_s) * (mpmath.exp(-s / tau_m) - mpmath.exp(-s / tau_s))

    weight = gap / float(psp(peak, 1.0)) * (1 + excess)
    data.projections["feed"].weight[:] = weight
    delay = float(data.projections["feed"].delay[0])
    arrival = 10.0 + 0.5 * DT - peak  # the peak falls in the middle of the step [10, 10.1)
    generator_time = arrival - delay - DT  # the parrot adds one step

    _reset_nest()
    generator = nest.Create("spike_generator", params={"spike_times": [generator_time], "precise_times": True})
    parrot = nest.Create("parrot_neuron_ps")
    nest.Connect(generator, parrot, syn_spec={"delay": DT})
    parrot_recorder = nest.Create("spike_recorder")
    nest.Connect(parrot, parrot_recorder)
    neurons, recorder = _nest_network(data, "iaf_psc_exp_ps", parrot)
    nest.Simulate(20.0)
    in_times, in_ids = _events(parrot_recorder, parrot[0])
    nest_times, _ = _events(recorder, neurons[0])

    result = ReferenceSimulator(data, strict=True).run({"inp": (in_times, in_ids)}, 20.0)
    qgen_times, _ = result.spikes["net"].trial(0)

    # The supra-threshold window, to 30 digits: the roots of psp = gap either side of the peak.
    with mpmath.workdps(30):
        start = mpmath.mpf(in_times[0]) + delay
        first, last = (start + mpmath.findroot(lambda s: psp(s, weight) - gap, bracket, solver="anderson")
                       for bracket in ((peak - 1.0, peak), (peak, peak + 1.0)))
    assert len(qgen_times) == 1 and abs(qgen_times[0] - float(first)) < 1e-11
    hidden = int(mpmath.floor(first / DT)) == int(mpmath.floor(last / DT))
    assert hidden != nest_sees_it  # NEST misses the spike iff the window lies inside one step
    if nest_sees_it:
        assert len(nest_times) == 1 and abs(nest_times[0] - qgen_times[0]) < TOLERANCE
    else:
        assert len(nest_times) == 0
