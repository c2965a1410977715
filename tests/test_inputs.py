"""Input spike handling shared by every target."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, strategies as st

import qgen
from qgen.errors import Code, QgenError
from qgen.runtime import inputs, schedule
from qgen.runtime.inputs import lexsort_order
from qgen.targets.cuda import _most_per_group
from tests.test_c_target import network

small = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=12)


@given(small, st.booleans())
def test_lexsort_order_matches_numpy_whether_sorted_or_not(rows, presort):
    if presort:
        rows = sorted(rows, key=lambda r: (r[2], r[1], r[0]))
    keys = tuple(np.array([r[k] for r in rows], dtype=np.int64) for k in range(3))
    order, expected = lexsort_order(keys), np.lexsort(keys)
    for key in keys:
        np.testing.assert_array_equal(key[order], key[expected])


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=40), st.booleans())
def test_lexsort_order_checks_across_chunks(rows, presort):
    if presort:
        rows = sorted(rows, key=lambda r: (r[1], r[0]))
    keys = tuple(np.array([r[k] for r in rows], dtype=np.int64) for k in range(2))
    with mock.patch.object(inputs, "CHUNK", 3):  # a fall between two chunks must be seen too
        order = lexsort_order(keys)
    for key in keys:
        np.testing.assert_array_equal(key[order], key[np.lexsort(keys)])


@given(st.lists(st.floats(0, 50, allow_nan=False), max_size=40), st.sampled_from([0.1, 0.25, 1.0]))
def test_the_input_schedule_written_a_chunk_at_a_time_is_each_spikes_own(times, dt):
    times = np.array(times + [0.3, 0.3 + 1e-12, 0.35], dtype=np.float64)
    with mock.patch.object(schedule, "CHUNK", 4):
        exact, grid = schedule.input_schedule(times, dt, True), schedule.input_schedule(times, dt, False)
    for k, t in enumerate(times):
        point = schedule.grid_point(np.array([t / dt]))[0]
        assert exact[0][k] == np.floor(t / dt) and exact[1][k] == t
        assert grid[0][k] == point - 1 and grid[1][k] == point * dt


def test_bound_input_spikes_go_by_step_then_neuron_and_stop_at_the_end(tmp_path):
    """Spikes snapped to one grid point go by neuron, whatever their times; those pushed after the
    last step are left out; exact timing keeps each spike's time."""
    path = tmp_path / "net.snn"
    times = np.array([0.05, 0.13, 0.17, 0.2, 0.31, 0.38, 4.96, 5.0, 5.02])
    ids = np.array([7, 5, 2, 1, 4, 4, 0, 3, 6])
    for timing in ("grid", "exact"):
        path.write_text(network("fifo", 4, timing, 1))
        sim = qgen.load(path, out=tmp_path / "generated").simulator(batch=2)
        sim.run({"inp": [(times, ids), (times[::-1].copy(), ids[::-1].copy())]}, 5.0)
        prefix = sim._pops["inp"]["prefix"]
        bound = {k: sim._arrays[f"{prefix}_in_{k}"] for k in ("time", "id", "step", "start")}
        steps, sent = schedule.input_schedule(times, 0.1, timing == "exact")
        expected = sorted((s, t, i) for s, t, i in zip(steps, sent, ids) if s < 50)
        assert len(expected) == (7 if timing == "exact" else 8)  # 5.0 ms: the last grid point, after the last step
        for trial in range(2):
            part = slice(bound["start"][trial], bound["start"][trial + 1])
            got = list(zip(bound["step"][part], bound["time"][part], bound["id"][part]))
            assert got == expected


def test_inputs_bound_once_run_as_the_spikes_do(tmp_path):
    """sim.bind checks, orders and binds input spikes once for a duration; runs with them equal runs with
    the spikes (records, drops, gradients), their arrays are copies and read-only, and a run of another
    duration or another simulation refuses them."""
    path = tmp_path / "net.snn"
    path.write_text(network("heap", 2, "exact", 3))
    model = qgen.load(path, out=tmp_path / "generated")
    sim = model.simulator(batch=2)
    gen = np.random.default_rng(3)
    trials = [(gen.uniform(0, 40, 150), gen.integers(0, 8, 150)) for _ in range(2)]
    given = {"inp": [(t.copy(), i.copy()) for t, i in trials]}
    bound = sim.bind(given, 40.0)
    given["inp"][0][0][:] = 1.0  # the caller's arrays change: the bound copies do not
    expected = sim.run({"inp": trials}, 40.0)
    for _ in range(2):
        result = sim.run(bound, 40.0)
        for pop in expected.spikes:
            np.testing.assert_array_equal(result.spikes[pop].times, expected.spikes[pop].times)
        assert {k: v.tolist() for k, v in result.drops.items()} == {k: v.tolist() for k, v in expected.drops.items()}
        assert sum(int(v.sum()) for v in result.drops.values()) > 0
    assert all(not array.flags.writeable for array in bound.arrays.values())
    cot = {"hid.spikes": np.ones_like(expected.spikes["hid"].times)}
    sim.run({"inp": trials}, 40.0, grad=True)
    unbound = sim.backward(cot).flat()
    sim.run(bound, 40.0, grad=True)
    np.testing.assert_array_equal(sim.backward(cot).flat(), unbound)
    for run, code in ((lambda: sim.run(bound, 30.0), "for 400 steps, not 300"),
                      (lambda: model.simulator(batch=2).run(bound, 40.0), "another simulation")):
        with pytest.raises(QgenError) as err:
            run()
        assert err.value.code == Code.BAD_INPUT and code in err.value.message


@given(st.lists(st.integers(0, 5), min_size=1, max_size=30), st.booleans())
def test_the_cuda_staging_rows_fit_the_most_spikes_of_a_neuron_in_a_step(keys, presort):
    keys = np.array(sorted(keys) if presort else keys, dtype=np.int64)
    assert _most_per_group(keys) == np.unique(keys, return_counts=True)[1].max()
