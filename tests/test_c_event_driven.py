"""Kinds without dynamics and without threshold (counters, accumulators): the C target visits only
the neurons with events due, and must still agree with the reference simulator exactly, for every
queue kind in both timings, drops included, and report a state that becomes non-finite."""

from __future__ import annotations

import numpy as np
import pytest

import qgen
from qgen.errors import Code, SimulationError
from qgen.reference import ReferenceSimulator
from tests.test_c_target import KINDS, compare, poisson


def network(queue: str, capacity: int, timing: str, seed: int) -> str:
    return f"""
import "std/lif.snn"
neuron Counter {{
    state {{ c = 0.0; last = 0.0 }}
    on_event(w) {{ c += w; last = 0.5 * last + w }}
}}
neuron Sum {{
    state {{ total = 0.0 }}
    on_event(w) {{ total += w }}
}}
network Counting {{
    dt = 0.1 ms
    timing = {timing}
    seed = {seed}
    population inp = input(8)
    population hid = LIF(12, tau_m = 12 ms, tau_s = 3 ms, t_ref = 1 ms)
    population cnt = Counter(8)
    population sum = Sum(12)
    population idle = Sum(3)
    connect inp -> hid fixed_probability(0.6) {{
        weight ~ uniform(0.5, 3.0); delay ~ uniform(0.2 ms, 3 ms); queue = {queue}(capacity = {capacity})
    }}
    connect inp -> cnt one_to_one {{ weight ~ uniform(0.5, 2.0); delay ~ uniform(0.3 ms, 4 ms); queue = {queue}(capacity = {capacity}) }}
    connect hid -> sum all_to_all {{ weight ~ normal(0.0, 1.0); delay ~ uniform(0.5 ms, 1.5 ms); queue = {queue}(capacity = {capacity}) }}
    connect inp -> sum fixed_probability(0.5) {{ weight = 1.0; delay = 2 ms; queue = {queue}(capacity = {capacity}) }}
    record hid.spikes, cnt.c, sum.total
}}
"""


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_event_driven_kinds_match_the_reference(write_model, tmp_path, queue, timing):
    for capacity in (64, 1 if queue in ("ring", "fifo") else 2):  # roomy, then overflowing
        seed = KINDS.index(queue) + 10 * (timing == "grid")
        path = write_model(network(queue, capacity, timing, seed), f"count_{queue}_{timing}_{capacity}.snn")
        sim = qgen.load(path, out=tmp_path / "gen").simulator(batch=2)
        inputs = poisson(seed, 2, timing == "grid", rate_hz=150.0, duration=60.0)
        result = sim.run(inputs, 60.0)
        reference = ReferenceSimulator(sim.data, batch=2).run(inputs, 60.0)
        assert np.abs(reference.final_state["cnt"]).sum() > 0 and np.abs(reference.final_state["sum"]).sum() > 0
        if capacity < 64 and not (queue == "ring" and timing == "grid"):
            assert sum(int(d.sum()) for d in reference.drops.values()) > 0
        compare(result, reference, timing == "exact", "float64")
        np.testing.assert_array_equal(result.final_state["idle"], 0.0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's overflow
@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_an_event_driven_state_that_overflows_is_reported(write_model, tmp_path, queue, timing):
    path = write_model(f"""
neuron Sum {{
    state {{ total = 1e308 }}
    on_event(w) {{ total += w }}
}}
network Overflow {{
    dt = 0.1 ms
    timing = {timing}
    population inp = input(2)
    population sum = Sum(2)
    connect inp -> sum one_to_one {{ weight = 1e308; delay = 1 ms; queue = {queue}(capacity = 4) }}
}}
""", f"overflow_{queue}_{timing}.snn")
    sim = qgen.load(path, out=tmp_path / "gen").simulator()
    inputs = {"inp": (np.array([2.0]), np.array([1]))}
    with pytest.raises(SimulationError) as expected:
        ReferenceSimulator(sim.data).run(inputs, 10.0)
    with pytest.raises(SimulationError) as err:
        sim.run(inputs, 10.0)
    when = "t = 3.1 ms" if timing == "exact" else "t = 3 ms"  # the event's step ends then
    assert expected.value.code is err.value.code is Code.NON_FINITE
    assert when in str(expected.value) and when in str(err.value)


@pytest.mark.parametrize("timing", ["exact", "grid"])
def test_fifo_delays_longer_than_its_calendar(write_model, tmp_path, timing):
    """The fifo queues file lines in a calendar of 1024 steps; longer delays go round it more than once."""
    path = write_model(f"""
import "std/lif.snn"
neuron Sum {{
    state {{ total = 0.0 }}
    on_event(w) {{ total += w }}
}}
network Long {{
    dt = 0.01 ms
    timing = {timing}
    seed = 4
    population inp = input(6)
    population hid = LIF(8, tau_m = 12 ms, tau_s = 3 ms, t_ref = 1 ms)
    population sum = Sum(4)
    connect inp -> hid fixed_probability(0.7) {{ weight ~ uniform(1.0, 3.0); delay ~ uniform(2 ms, 25 ms); queue = fifo(capacity = 3) }}
    connect inp -> sum all_to_all {{ weight ~ uniform(0.5, 2.0); delay ~ uniform(0.5 ms, 32 ms); queue = fifo(capacity = 2) }}
    record hid.spikes, sum.total
}}
""", f"long_{timing}.snn")
    sim = qgen.load(path, out=tmp_path / "gen").simulator(batch=2)
    inputs = poisson(7, 2, timing == "grid", n=6, rate_hz=120.0, duration=50.0)
    result = sim.run(inputs, 70.0)
    reference = ReferenceSimulator(sim.data, batch=2).run(inputs, 70.0)
    assert reference.spikes["hid"].total.sum() > 5 and sum(int(d.sum()) for d in reference.drops.values()) > 0
    compare(result, reference, timing == "exact", "float64")
