"""The reference simulator against the semantics of DESIGN.md §3, case by case."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from qgen.errors import Code, QgenError, SimulationError
from qgen.reference import ReferenceSimulator

LIF = """
neuron LIF {
    parameters { tau_m = 10 ms; tau_s = 2 ms; v_th = 1.0; v_reset = 0.0; t_ref = 0 ms; I_e = 0.0 }
    state { v = 0.0; i = 0.0 }
    equations {
        dv/dt = (i + I_e - v) / tau_m
        di/dt = -i / tau_s
    }
    threshold v >= v_th
    reset { v = v_reset }
    refractory t_ref
    on_event(w) { i += w }
}
"""


def single(dt="0.1 ms", timing="exact", weight="10.0", delay="1 ms", queue="heap(capacity = 8)", extra="",
           record="record out.spikes, out.v, out.i"):
    return LIF + f"""
network One {{
    dt = {dt}
    timing = {timing}
    population inp = input(3)
    population out = LIF(1{extra})
    connect inp -> out all_to_all {{ weight = {weight}; delay = {delay}; queue = {queue} }}
    {record}
}}
"""


def lif_response_crossing(w: float, tau_m=10.0, tau_s=2.0, theta=1.0) -> float:
    """First t with v(t) = theta after an event of weight w at t = 0, to 40 digits."""
    mpmath.mp.dps = 40
    v = lambda t: w * tau_s / (tau_s - tau_m) * (mpmath.exp(-t / tau_s) - mpmath.exp(-t / tau_m)) - theta
    peak = mpmath.log(tau_s / tau_m) / (1 / tau_s - 1 / tau_m) * -1
    return float(mpmath.findroot(v, (mpmath.mpf("1e-9"), peak), solver="illinois"))


def test_spike_time_is_the_analytic_crossing(build):
    data = build(single())
    result = ReferenceSimulator(data).run({"inp": (np.array([0.3]), np.array([0]))}, 10.0)
    times, ids = result.spikes["out"].trial(0)
    expected = 0.3 + 1.0 + lif_response_crossing(10.0)
    assert len(times) == 1
    assert abs(times[0] - expected) < 1e-12


def test_crossing_that_rises_and_falls_within_one_step_is_found(build):
    # With dt = 5 ms the voltage crosses threshold and falls back below it inside one step:
    # both ends of the step are below threshold, but the spike must still be found.
    # (A unit event peaks at 0.134 four ms after arrival; w = 7.55 peaks 1 % above threshold.)
    w = 7.55
    crossing = lif_response_crossing(w)
    data = build(single(dt="5 ms", weight=str(w), delay="5 ms"))
    result = ReferenceSimulator(data).run({"inp": (np.array([0.1]), np.array([0]))}, 30.0)
    times, _ = result.spikes["out"].trial(0)
    assert len(times) == 1 and abs(times[0] - (5.1 + crossing)) < 1e-12
    v = result.traces["out.v"][0, :, 0]
    assert (v < 1.0).all()  # the voltage at every step boundary is below threshold


def test_grazing_below_threshold_is_no_spike(build):
    # The same event scaled so that the peak stays 1e-6 below threshold.
    mpmath.mp.dps = 30
    peak_t = float(mpmath.log(5.0) / (0.5 - 0.1))
    peak_per_unit = 2.0 / (2.0 - 10.0) * (np.exp(-peak_t / 2) - np.exp(-peak_t / 10))
    data = build(single(dt="5 ms", weight=str((1 - 1e-6) / peak_per_unit), delay="5 ms"))
    result = ReferenceSimulator(data).run({"inp": (np.array([0.0]), np.array([0]))}, 30.0)
    assert result.spikes["out"].total.sum() == 0


RECURRENT = """
import "std/lif.snn"
network Rec {
    dt = {dt}
    timing = {timing}
    seed = 3
    population inp = input(10)
    population hid = LIF(30, tau_m = 10 ms, tau_s = 3 ms, t_ref = {t_ref})
    connect inp -> hid fixed_probability(0.5) { weight ~ uniform(0.5, 2.5); delay ~ uniform(0.4 ms, 2 ms); queue = {q} }
    connect hid -> hid fixed_probability(0.3, autapses = false) {
        weight ~ normal(0.0, 0.6); delay ~ uniform(0.6 ms, 3 ms); queue = {q2}
    }
    record hid.spikes
}
"""


def recurrent(dt="0.1 ms", timing="exact", q="heap(capacity = 64)", q2=None, t_ref="0 ms"):
    return (RECURRENT.replace("{dt}", dt).replace("{timing}", timing).replace("{t_ref}", t_ref)
            .replace("{q}", q).replace("{q2}", q2 or q))


def poisson_input(n=10, rate_hz=80.0, duration=100.0, seed=1, grid=None):
    gen = np.random.default_rng(seed)
    count = gen.poisson(rate_hz * duration / 1000 * n)
    times = gen.uniform(0, duration, count)
    if grid is not None:
        times = np.round(times / grid) * grid
    return times, gen.integers(0, n, count)


@pytest.mark.parametrize("timing", ["exact", "grid"])
def test_queue_kinds_agree_when_nothing_overflows(build, timing):
    inputs = {"inp": poisson_input(grid=0.1 if timing == "grid" else None)}
    trains = {}
    for kind in ("ring(capacity = 64)", "fifo(capacity = 64)", "heap(capacity = 256)", "sorted(capacity = 256)"):
        result = ReferenceSimulator(build(recurrent(timing=timing, q=kind))).run(inputs, 100.0)
        assert all(d.sum() == 0 for d in result.drops.values())
        trains[kind] = result.spikes["hid"].trial(0)
    first, *rest = trains.values()
    assert len(first[0]) > 50  # a network that does something
    for times, ids in rest:
        np.testing.assert_array_equal(times, first[0])
        np.testing.assert_array_equal(ids, first[1])


def test_exact_timing_does_not_depend_on_dt(build):
    # Delays and inputs are the same reals for both resolutions; only the scheduling changes.
    inputs = {"inp": poisson_input()}
    a = ReferenceSimulator(build(recurrent(dt="0.1 ms", t_ref="1 ms"))).run(inputs, 100.0)
    b = ReferenceSimulator(build(recurrent(dt="0.025 ms", t_ref="1 ms"))).run(inputs, 100.0)
    ta, ia = a.spikes["hid"].trial(0)
    tb, ib = b.spikes["hid"].trial(0)
    assert len(ta) > 50
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(ta, tb, rtol=0, atol=1e-9)


def test_refractory_clamps_and_spaces_spikes(build):
    data = build(single(extra=", I_e = 3.0, t_ref = 2 ms", weight="0.0"))
    result = ReferenceSimulator(data).run(None, 40.0)
    times, _ = result.spikes["out"].trial(0)
    assert len(times) >= 5
    assert np.diff(times).min() >= 2.0 - 1e-12
    v = result.traces["out.v"][0, :, 0]
    steps = result.trace_times
    for t in times:
        inside = (steps > t + 1e-9) & (steps < t + 2.0 - 1e-9)
        assert np.all(v[inside] == 0.0)


def test_events_at_equal_times_arrive_together(build):
    # Three inputs spiking at the same time with the same delay: one jump of 3 w in i.
    data = build(single(weight="0.2"))
    result = ReferenceSimulator(data).run({"inp": (np.array([1.0, 1.0, 1.0]), np.array([0, 1, 2]))}, 5.0)
    i = result.traces["out.i"][0, :, 0]
    step = int(round(2.0 / 0.1))  # delivered in the step containing t = 2 ms, traced at its end
    assert i[step - 1] == 0.0
    assert abs(i[step] - 0.6 * np.exp(-0.1 / 2.0)) < 1e-12


def test_grid_timing_rounds_delays_and_inputs(build):
    # Input at 0.26 ms goes to the grid point 0.3 ms; a 1.04 ms delay rounds to 10 steps:
    # the weight appears in i at the end of the step ending at 1.3 ms.
    data = build(single(timing="grid", weight="0.5", delay="1.04 ms"))
    result = ReferenceSimulator(data).run({"inp": (np.array([0.26]), np.array([0]))}, 3.0)
    i = result.traces["out.i"][0, :, 0]
    arrival = int(np.nonzero(i)[0][0])
    assert result.trace_times[arrival] == pytest.approx(1.3)
    assert i[arrival] == 0.5


def test_batch_trials_are_independent(build):
    data = build(recurrent())
    a, b = poisson_input(seed=1), poisson_input(seed=2)
    both = ReferenceSimulator(data, batch=2).run({"inp": [a, b]}, 60.0)
    alone = ReferenceSimulator(data).run({"inp": b}, 60.0)
    np.testing.assert_array_equal(both.spikes["hid"].trial(1)[0], alone.spikes["hid"].trial(0)[0])
    assert both.spikes["hid"].total.shape == (2, 30)


# ---------------------------------------------------------------- queues that overflow

def deliveries(result) -> np.ndarray:
    """The times (trace step ends) at which i jumped up, i.e. events were delivered."""
    i = result.traces["out.i"][0, :, 0]
    jumps = np.nonzero(np.diff(np.concatenate([[0.0], i])) > 1e-9)[0]
    return result.trace_times[jumps]


def test_fifo_drops_the_newest_event_of_a_full_synapse(build):
    data = build(single(queue="fifo(capacity = 2)", delay="3 ms", weight="0.1"))
    spikes = (np.array([0.05, 0.55, 1.05, 5.05]), np.array([0, 0, 0, 0]))
    result = ReferenceSimulator(data).run({"inp": spikes}, 10.0)
    assert result.drops["inp->out"][0] == 1  # the third event found two in flight
    np.testing.assert_allclose(deliveries(result), [3.1, 3.6, 8.1])


def test_heap_drops_the_newest_event_for_a_full_target(build):
    data = build(single(queue="heap(capacity = 2)", delay="2 ms", weight="0.1"))
    spikes = (np.array([0.05, 0.15, 0.25]), np.array([0, 1, 2]))
    result = ReferenceSimulator(data).run({"inp": spikes}, 5.0)
    assert result.drops["inp->out"][0] == 1
    np.testing.assert_allclose(deliveries(result), [2.1, 2.2])


def test_sorted_keeps_the_earliest_events(build, write_model):
    # Three events pushed in turn, each arriving earlier than the one before: with capacity 2
    # the queue evicts the latest (the first pushed), so the two earliest arrive.
    text = LIF + """
network S {
    dt = 0.1 ms
    population inp = input(3)
    population out = LIF(1)
    connect inp -> out explicit { weight = 0.1; delay = 1 ms; queue = sorted(capacity = 2) }
    record out.i
}
"""
    from qgen.frontend import load_model
    from qgen.runtime.network import instantiate

    data = instantiate(load_model(write_model(text)), connectivity={"inp->out": (np.arange(3), np.zeros(3, int))})
    data.projections["inp->out"].delay[:] = [5.0, 3.0, 1.5]
    spikes = (np.array([0.05, 0.15, 0.25]), np.array([0, 1, 2]))
    result = ReferenceSimulator(data).run({"inp": spikes}, 8.0)
    assert result.drops["inp->out"][0] == 1
    np.testing.assert_allclose(deliveries(result), [1.8, 3.2])


def test_explicit_connectivity_must_be_sorted_by_pre(write_model):
    text = LIF + """
network S {
    dt = 0.1 ms
    population inp = input(3)
    population out = LIF(2)
    connect inp -> out explicit { weight = 0.1; delay = 1 ms }
}
"""
    from qgen.frontend import load_model
    from qgen.runtime.network import instantiate

    model = load_model(write_model(text))
    with pytest.raises(QgenError) as err:
        instantiate(model, connectivity={"inp->out": (np.array([2, 0, 1]), np.array([0, 1, 1]))})
    assert "sorted" in str(err.value) and "lexsort" in err.value.hint
    data = instantiate(model, connectivity={"inp->out": (np.array([0, 1, 2]), np.array([1, 1, 0]))})
    np.testing.assert_array_equal(data.projections["inp->out"].post, [1, 1, 0])


def test_ring_drops_when_a_slot_is_full(build):
    data = build(single(queue="ring(capacity = 2)", delay="2 ms", weight="0.1"))
    spikes = (np.array([0.01, 0.02, 0.03, 0.55]), np.array([0, 1, 2, 0]))
    result = ReferenceSimulator(data).run({"inp": spikes}, 5.0)
    assert result.drops["inp->out"][0] == 1  # three events for one slot; another slot is free
    assert len(deliveries(result)) == 2


def test_strict_mode_raises_on_the_first_drop(build):
    data = build(single(queue="heap(capacity = 2)", delay="2 ms"))
    spikes = (np.array([0.05, 0.15, 0.25]), np.array([0, 1, 2]))
    with pytest.raises(SimulationError) as err:
        ReferenceSimulator(data, strict=True).run({"inp": spikes}, 5.0)
    assert err.value.code is Code.QUEUE_OVERFLOW
    assert "inp->out" in str(err.value) and "capacity" in str(err.value)


def test_grid_ring_sums_without_capacity(build):
    data = build(single(timing="grid", queue="ring(capacity = 1)", weight="0.1"))
    spikes = (np.array([0.1, 0.1, 0.1]), np.array([0, 1, 2]))
    result = ReferenceSimulator(data).run({"inp": spikes}, 3.0)
    assert result.drops["inp->out"][0] == 0
    assert result.traces["out.i"][0].max() == pytest.approx(0.3)


# ---------------------------------------------------------------- recording and inputs

def test_recording_overflow_is_counted_and_reported(build):
    data = build(single(extra=", I_e = 3.0", weight="0.0", record="record out.spikes(capacity = 2)"))
    result = ReferenceSimulator(data).run(None, 50.0)
    record = result.spikes["out"]
    assert record.counts[0, 0] == 2 and record.overflow[0, 0] >= 3
    assert any("not recorded" in w for w in result.warnings())


@pytest.mark.parametrize("inputs, message", [
    ({"inp": (np.array([1.0]), np.array([3]))}, "out of range"),
    ({"inp": (np.array([-1.0]), np.array([0]))}, ">= 0"),
    ({"inp": (np.array([np.nan]), np.array([0]))}, "finite"),
    ({"inp": (np.array([1.0, 2.0]), np.array([0]))}, "equal length"),
    ({"inp": (np.array([1.0]), np.array([0.5]))}, "integers"),
    ({"out": (np.array([1.0]), np.array([0]))}, "not an input population"),
    ({"inp": [(np.array([1.0]), np.array([0]))] * 3}, "3 trials"),
])
def test_bad_inputs_are_rejected(build, inputs, message):
    data = build(single())
    with pytest.raises(QgenError) as err:
        ReferenceSimulator(data).run(inputs, 5.0)
    assert err.value.code is Code.BAD_INPUT and message in str(err.value)


def test_drive_is_active_only_in_its_window(build):
    text = single(weight="0.0") .replace("record out.spikes", "drive out.I_e = 5.0 from 1 ms to 3 ms\n    record out.spikes")
    result = ReferenceSimulator(build(text)).run(None, 20.0)
    v = result.traces["out.v"][0, :, 0]
    t = result.trace_times
    assert np.all(v[t <= 1.0 + 1e-9] == 0.0)
    assert v[np.argmin(abs(t - 3.0))] > 0.5
    assert np.all(np.diff(v[t > 3.05]) < 0)  # decays once the drive stops


# ---------------------------------------------------------------- non-linear and failing models

QIF = """
neuron QIF {
    parameters { tau = 10 ms; v_th = 5.0; v_reset = -1.0; I = 0.3 }
    state { v = -1.0 }
    equations { dv/dt = (v * v + I) / tau }
    threshold v >= v_th
    reset { v = v_reset }
    on_event(w) { v += w }
}
network Q {
    dt = 0.05 ms
    timing = grid
    population q = QIF(2)
    record q.spikes, q.v
}
"""


def test_nonlinear_dynamics_run_on_the_grid(build):
    result = ReferenceSimulator(build(QIF)).run(None, 200.0)
    times, _ = result.spikes["q"].trial(0)
    assert len(times) >= 4
    # The quadratic neuron's period is known in closed form when the threshold is far out:
    # T = tau / sqrt(I) (atan(v_th / sqrt(I)) - atan(v_reset / sqrt(I))).
    s = np.sqrt(0.3)
    period = 10 / s * (np.arctan(5 / s) - np.arctan(-1 / s))
    np.testing.assert_allclose(np.diff(times[::2]).mean(), period, rtol=2e-3)


def test_non_finite_state_is_an_error(build):
    text = """
neuron Blow {
    parameters { tau = 10 ms }
    state { v = 1.0 }
    equations { dv/dt = v * v / tau }
}
network B {
    timing = grid
    population b = Blow(1)
}
"""
    with pytest.raises(SimulationError) as err:
        ReferenceSimulator(build(text)).run(None, 100.0)  # v = 1 / (1 - t/tau) blows up at t = 10 ms
    assert err.value.code is Code.NON_FINITE and "t = " in str(err.value)


def test_reset_above_threshold_is_an_error(build):
    text = single(extra=", I_e = 3.0, v_reset = 2.0", weight="0.0")
    with pytest.raises(SimulationError) as err:
        ReferenceSimulator(build(text)).run(None, 20.0)
    assert err.value.code is Code.MODEL_RUNTIME and "above threshold" in str(err.value)
