"""The C target against the reference simulator, and its Python API.

Spike trains must be identical in float64 (the same spikes of the same neurons; exact-timing
spike times equal to 1e-9 ms, grid steps equal) and close in float32; drop counts must be
identical whenever the push order decides them, as it does in both.
"""

from __future__ import annotations

import numpy as np
import pytest

import qgen
from qgen.errors import Code, QgenError, SimulationError
from qgen.reference import ReferenceSimulator
from tests.conftest import EXAMPLES

KINDS = ("ring", "fifo", "heap", "sorted")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


def network(queue: str, capacity: int, timing: str, seed: int, recurrent: bool = True) -> str:
    """A random network: inputs -> ALIF and LIF (with refractoriness) -> LI readout, recurrent LIF."""
    rec = f"""
    connect hid -> hid fixed_probability(0.3, autapses = false) {{
        weight ~ normal(0.0, 0.8); delay ~ uniform(0.3 ms, 2.5 ms); queue = {queue}(capacity = {capacity})
    }}""" if recurrent else ""
    return f"""
import "std/lif.snn"
import "std/alif.snn"
import "std/li.snn"
network Random {{
    dt = 0.1 ms
    timing = {timing}
    seed = {seed}
    population inp = input(8)
    population hid = LIF(20, tau_m = 12 ms, tau_s = 3 ms, t_ref = 1 ms, v ~ uniform(0.0, 0.8))
    population ada = ALIF(6, tau_a = 50 ms, b = 0.3)
    population out = LI(3)
    connect inp -> hid fixed_probability(0.6) {{
        weight ~ uniform(0.5, 3.0); delay ~ uniform(0.2 ms, 3 ms); queue = {queue}(capacity = {capacity})
    }}
    connect inp -> ada all_to_all {{ weight ~ uniform(0.0, 2.5); delay = 1 ms; queue = {queue}(capacity = {capacity}) }}
    connect hid -> out all_to_all {{ weight ~ normal(0.0, 0.5); delay ~ uniform(0.5 ms, 1.5 ms); queue = {queue}(capacity = {capacity}) }}{rec}
    record hid.spikes, ada.spikes, out.v, ada.a
}}
"""


def poisson(seed: int, batch: int, grid: bool, n: int = 8, rate_hz: float = 90.0, duration: float = 80.0):
    gen = np.random.default_rng(seed)
    trials = []
    for _ in range(batch):
        count = gen.poisson(rate_hz * duration / 1000 * n)
        times = gen.uniform(0, duration, count)
        trials.append((np.round(times, 1) if grid else times, gen.integers(0, n, count)))
    return {"inp": trials}


def compare(result, reference, exact: bool, precision: str) -> None:
    for pop in reference.spikes:
        for b in range(reference.spikes[pop].times.shape[0]):
            (t_c, i_c), (t_r, i_r) = result.spikes[pop].trial(b), reference.spikes[pop].trial(b)
            if precision == "float64":
                np.testing.assert_array_equal(i_c, i_r, err_msg=f"{pop}, trial {b}")
                np.testing.assert_allclose(t_c, t_r, rtol=0, atol=1e-9 if exact else 1e-12, err_msg=pop)
            else:
                # float32: every spike of the reference has a partner within 0.01 ms (near-grazes aside)
                assert abs(len(t_c) - len(t_r)) <= max(1, len(t_r) // 50), (pop, len(t_c), len(t_r))
                matched = sum(np.any((i_c == j) & (np.abs(t_c - t) <= 0.01)) for t, j in zip(t_r, i_r))
                assert matched >= 0.97 * len(t_r), (pop, matched, len(t_r))
    for key in reference.traces:
        tolerance = 1e-9 if precision == "float64" else 2e-2
        if precision == "float64":
            np.testing.assert_allclose(result.traces[key], reference.traces[key], rtol=0, atol=tolerance, err_msg=key)
    for name in reference.drops:
        np.testing.assert_array_equal(result.drops[name], reference.drops[name], err_msg=name)
    tolerance = 1e-9 if precision == "float64" else 5e-2
    for name in reference.final_state:
        np.testing.assert_allclose(result.final_state[name], reference.final_state[name], rtol=tolerance,
                                   atol=tolerance, err_msg=f"final state of {name}")


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_c_matches_the_reference(write_model, out, queue, timing, precision):
    recurrent = precision == "float64"  # float32 rounding in a recurrent network diverges chaotically
    seed = KINDS.index(queue) + 10 * (timing == "grid")
    path = write_model(network(queue, 256, timing, seed, recurrent), f"random_{queue}_{timing}.snn")
    model = qgen.load(path, precision=precision, out=out)
    sim = model.simulator(batch=2)
    inputs = poisson(seed, 2, timing == "grid")
    result = sim.run(inputs, 80.0)
    reference = ReferenceSimulator(sim.data, batch=2).run(inputs, 80.0)
    assert reference.spikes["hid"].total.sum() > 40  # the network does something
    compare(result, reference, timing == "exact", precision)


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_c_drops_like_the_reference(write_model, out, queue, timing):
    capacity = {"ring": 1, "fifo": 1, "heap": 2, "sorted": 2}[queue]
    seed = 3 + KINDS.index(queue)
    path = write_model(network(queue, capacity, timing, seed), f"small_{queue}_{timing}.snn")
    sim = qgen.load(path, out=out).simulator()
    inputs = poisson(seed, 1, timing == "grid", rate_hz=200.0)
    result = sim.run(inputs, 60.0)
    reference = ReferenceSimulator(sim.data).run(inputs, 60.0)
    if not (queue == "ring" and timing == "grid"):  # a summing grid ring never drops
        assert sum(int(d.sum()) for d in reference.drops.values()) > 0
    compare(result, reference, timing == "exact", "float64")


@pytest.mark.parametrize("name, inputs", [("rsnn.snn", None), ("brunel.snn", None)])
def test_examples_match_the_reference(out, name, inputs):
    sim = qgen.load(EXAMPLES / name, out=out, overrides={"N": "300"} if name == "brunel.snn" else None).simulator()
    result = sim.run(inputs, 40.0)
    reference = ReferenceSimulator(sim.data).run(inputs, 40.0)
    assert sum(int(r.total.sum()) for r in reference.spikes.values()) > 100
    compare(result, reference, name == "rsnn.snn", "float64")


QIF_NETWORK = """
neuron QIF {
    parameters { tau = 10 ms; v_th = 5.0; v_reset = -1.0; I = 0.3; t_ref = 0.5 ms }
    state { v = -1.0 }
    equations { dv/dt = (v * v + I) / tau }
    threshold v >= v_th
    reset { v = v_reset }
    refractory t_ref
    on_event(w) { v += w }
}
network Q {
    dt = 0.05 ms
    timing = grid
    population inp = input(2)
    population q = QIF(3, v ~ uniform(-1.0, 0.5))
    connect inp -> q all_to_all { weight = 0.4; delay = 1 ms; queue = heap(capacity = 8) }
    record q.spikes, q.v
}
"""
QIF_INPUTS = {"inp": (np.array([3.0, 7.5, 20.0]), np.array([0, 1, 0]))}


def test_nonlinear_grid_dynamics(write_model, out):
    path = write_model(QIF_NETWORK, "qif.snn")
    sim = qgen.load(path, out=out).simulator()
    result, reference = sim.run(QIF_INPUTS, 100.0), ReferenceSimulator(sim.data).run(QIF_INPUTS, 100.0)
    assert reference.spikes["q"].total.sum() >= 6
    compare(result, reference, False, "float64")


def test_two_builds_in_one_process_keep_their_own_kernels(write_model, out, tmp_path):
    """PyNEST makes Python load extensions with RTLD_GLOBAL; builds must still not share symbols."""
    import os
    import sys

    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_GLOBAL)
    try:
        sims = []
        for queue in ("ring", "sorted"):  # the same model name, different kernels
            path = write_model(network(queue, 64, "exact", 1), f"global_{queue}.snn")
            sims.append(qgen.load(path, out=tmp_path / queue).simulator(batch=2))
    finally:
        sys.setdlopenflags(flags)
    inputs = poisson(1, 2, False)
    for sim in sims + sims:
        compare(sim.run(inputs, 40.0), ReferenceSimulator(sim.data, batch=2).run(inputs, 40.0), True, "float64")


# ---------------------------------------------------------------- the Python API


def test_weights_delays_and_parameters_are_the_kernels_arrays(out):
    sim = qgen.load(EXAMPLES / "yinyang.snn", out=out).simulator()
    inputs = {"inp": (np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.arange(5))}
    before = sim.run(inputs, 30.0).spikes["hid"].total.sum()
    sim.weights["inp->hid"][:] = 0.0  # in place
    assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0 < before
    sim.weights["inp->hid"] = np.full(600, 5.0)  # replaced, checked
    sim.parameters["hid"]["v_th"] = 1e9
    assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0
    sim.parameters["hid"]["v_th"] = 1.0
    sim.delays["inp->hid"] = np.full(600, 2.0)
    times, _ = sim.run(inputs, 30.0).spikes["hid"].trial(0)
    assert len(times) and times.min() > 3.0  # the first input arrives at 1 + 2 ms
    reference = ReferenceSimulator(sim.data).run(inputs, 30.0)  # data shares nothing with the kernels' arrays
    assert not np.array_equal(reference.spikes["hid"].trial(0)[0], times)


@pytest.mark.parametrize("setter, message", [
    (lambda s: s.weights.__setitem__("inp->hid", np.zeros(5)), "has shape"),
    (lambda s: s.weights.__setitem__("inp->hid", np.full(600, np.nan)), "finite"),
    (lambda s: s.weights.__setitem__("inp->hid", np.array(["a"] * 600)), "real numbers"),
    (lambda s: s.parameters["hid"].__setitem__("tau_m", np.inf), "finite"),
])
def test_bad_arrays_are_rejected(out, setter, message):
    sim = qgen.load(EXAMPLES / "yinyang.snn", out=out).simulator()
    with pytest.raises(QgenError) as err:
        setter(sim)
    assert message in str(err.value)


def test_delays_below_dt_are_rejected_before_running(out):
    sim = qgen.load(EXAMPLES / "yinyang.snn", out=out).simulator()
    sim.delays["inp->hid"][3] = 0.01
    with pytest.raises(QgenError) as err:
        sim.run(None, 5.0)
    assert err.value.code is Code.BAD_DELAY


def test_strict_overflow_and_runtime_errors_become_exceptions(write_model, out):
    path = write_model(network("heap", 1, "exact", 5), "strict.snn")
    sim = qgen.load(path, out=out).simulator(strict=True)
    with pytest.raises(SimulationError) as err:
        sim.run(poisson(5, 1, False, rate_hz=300.0), 40.0)
    assert err.value.code is Code.QUEUE_OVERFLOW and "capacity 1" in str(err.value)

    path = write_model("""
import "std/lif.snn"
network R {
    population n = LIF(2, v_reset = 2.0)
    population inp = input(1)
    connect inp -> n all_to_all { weight = 50.0; delay = 1 ms }
}
""", "reset.snn")
    with pytest.raises(SimulationError) as err:
        qgen.load(path, out=out).simulator().run({"inp": (np.array([0.5]), np.array([0]))}, 10.0)
    assert err.value.code is Code.MODEL_RUNTIME and "above threshold" in str(err.value)


def test_bad_inputs_never_reach_the_kernels(out):
    sim = qgen.load(EXAMPLES / "yinyang.snn", out=out).simulator()
    with pytest.raises(QgenError) as err:
        sim.run({"inp": (np.array([1.0]), np.array([5]))}, 10.0)
    assert err.value.code is Code.BAD_INPUT and "out of range" in str(err.value)


@pytest.mark.parametrize("timing", ["exact", "grid"])
def test_a_network_without_connections(write_model, out, timing):
    """Nothing arrives anywhere (no event machinery is generated): it builds, runs and spikes as the reference."""
    from tests.test_adjoint import LIF

    path = write_model(LIF + f"""
network Lone {{
    dt = 0.1 ms
    timing = {timing}
    population n = LIF(3, I_e = 1.5, v ~ uniform(0.0, 0.9))
    record n.spikes, n.v
}}
""", f"lone_{timing}.snn")
    model = qgen.load(path, out=out)
    result = model.simulator().run(None, 30.0)
    reference = ReferenceSimulator(model.simulator().data).run(None, 30.0)
    assert result.spikes["n"].total.sum() > 5
    compare(result, reference, timing == "exact", "float64")
    np.testing.assert_array_equal(model.simulator(threads=2).run(None, 30.0).spikes["n"].times, result.spikes["n"].times)
