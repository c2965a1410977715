"""Several threads sharing one trial of the C target (``simulator(threads=...)``).

Each thread updates its share of every population's neurons and pushes only into its own targets,
so every queue sees the pushes of a one-thread run in the same order: spikes, traces, drops,
final states, errors and gradients must be identical to one thread's, bit for bit, for every
queue kind and timing, with any number of threads (here more threads than cores, too).
"""

from __future__ import annotations

import numpy as np
import pytest

import qgen
from qgen.errors import Code, QgenError, SimulationError
from qgen.reference import ReferenceSimulator
from tests import gradcheck
from tests.conftest import EXAMPLES
from tests.test_adjoint import LIF, inputs as grad_inputs, network as grad_network
from tests.test_c_adjoint import PARAMETERS
from tests.test_c_target import KINDS, compare, network, poisson


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


def assert_identical(got, expected) -> None:
    for pop, record in expected.spikes.items():
        np.testing.assert_array_equal(got.spikes[pop].times, record.times, err_msg=pop)
        np.testing.assert_array_equal(got.spikes[pop].counts, record.counts, err_msg=pop)
    for key, trace in expected.traces.items():
        np.testing.assert_array_equal(got.traces[key], trace, err_msg=key)
    for name, drops in expected.drops.items():
        np.testing.assert_array_equal(got.drops[name], drops, err_msg=name)
    for name, state in expected.final_state.items():
        np.testing.assert_array_equal(got.final_state[name], state, err_msg=name)


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_threads_share_a_trial_exactly(write_model, out, queue, timing):
    """Small queues (drops decided by the push order) and a recurrent population split 7/7/6."""
    capacity = {"ring": 1, "fifo": 1, "heap": 2, "sorted": 2}[queue]
    seed = 3 + KINDS.index(queue)
    model = qgen.load(write_model(network(queue, capacity, timing, seed), f"threads_{queue}_{timing}.snn"), out=out)
    inputs = poisson(seed, 1, timing == "grid", rate_hz=200.0)
    one = model.simulator(threads=1).run(inputs, 60.0)
    for threads in (2, 3):
        sim = model.simulator(threads=threads)
        assert_identical(sim.run(inputs, 60.0), one)
        # a run in several calls of the kernel (as with a progress bar): queues and calendars carry over
        assert_identical(sim.run(inputs, 60.0, progress=lambda done, total: None), one)
    reference = ReferenceSimulator(model.simulator().data).run(inputs, 60.0)
    if not (queue == "ring" and timing == "grid"):  # a summing grid ring never drops
        assert sum(int(d.sum()) for d in one.drops.values()) > 0
    compare(one, reference, timing == "exact", "float64")


def test_threads_with_background_sources_and_examples(out):
    """Brunel (summed rings, the block update) and the microcircuit (in-kernel Poisson sources)."""
    for name, overrides, duration in [("brunel.snn", {"N": "1000"}, 50.0), ("microcircuit.snn", {"scale": "0.01"}, 40.0)]:
        model = qgen.load(EXAMPLES / name, out=out, overrides=overrides)
        one = model.simulator(threads=1).run(None, duration)
        assert sum(int(r.total.sum()) for r in one.spikes.values()) > 50
        assert_identical(model.simulator(threads=2).run(None, duration), one)


def test_the_first_error_is_the_one_thread_s(write_model, out):
    """Strict overflows in several threads' targets in the same step: the error of one thread's run."""
    model = qgen.load(write_model(network("heap", 1, "exact", 5), "threads_strict.snn"), out=out)
    inputs = poisson(5, 1, False, rate_hz=300.0)
    messages = []
    for threads in (1, 2, 3):
        with pytest.raises(SimulationError) as err:
            model.simulator(threads=threads, strict=True).run(inputs, 40.0)
        assert err.value.code is Code.QUEUE_OVERFLOW
        messages.append(str(err.value))
    assert messages[1] == messages[0] and messages[2] == messages[0]


def test_gradients_with_threads_equal_one_thread_s(write_model, out):
    """Heap queues of capacity 2 drop: the drop log is written by several threads, in any order."""
    model = qgen.load(write_model(LIF + grad_network("heap", capacity=2, trainable=PARAMETERS), "threads_grad.snn"),
                      out=out)
    given = grad_inputs(4, count=40)
    grads = []
    for threads in (1, 3):
        sim = model.simulator(threads=threads)
        result = sim.run(given, 40.0, grad=True)
        assert sum(int(d.sum()) for d in result.drops.values()) > 0
        grads.append(sim.backward(gradcheck.random_cotangents(result, np.random.default_rng(0))).flat())
    assert grads[0].keys() == grads[1].keys()
    for key, value in grads[0].items():
        np.testing.assert_array_equal(grads[1][key], value, err_msg=key)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts_are_refused(out, threads):
    with pytest.raises(QgenError) as err:
        qgen.load(EXAMPLES / "brunel.snn", out=out, overrides={"N": "100"}).simulator(threads=threads)
    assert err.value.code is Code.BAD_OPTION and "threads" in str(err.value)


def test_a_single_trial_is_shared_only_when_asked(out):
    model = qgen.load(EXAMPLES / "brunel.snn", out=out, overrides={"N": "100"})
    assert model.simulator().threads == 1
    assert model.simulator(threads=2).threads == 2
    assert model.simulator(batch=2).threads == model.build.lib.qgen_max_threads()
    for target in ("reference", "jax"):  # an option of another target is refused, never a TypeError
        with pytest.raises(QgenError) as err:
            qgen.load(EXAMPLES / "brunel.snn", target=target, out=out, overrides={"N": "100"}).simulator(threads=2)
        assert err.value.code is Code.BAD_OPTION and "threads" in str(err.value)
