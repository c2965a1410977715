"""The CUDA target's gradient tape and backward pass (templates/cuda/adjoint.cu.j2) against the C target's.

On both backends of tests/test_cuda_target.py: the GPU where there is one, else the same kernels
compiled with g++ and run on the CPU. The forward kernels must write the tape the C target writes
(spike times, causes, states, drop logs, checkpoints) and the backward kernel, the C backward pass
as device code, must give the C target's gradients to 1e-9 of the largest one: every queue kind with
drops, neuron parameters, initial states, traces, drives, a batch of two and spikes that events
trigger (the networks of tests/test_c_adjoint.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import qgen
from qgen.errors import QgenError
from tests import gradcheck
from tests.test_adjoint import KINDS, LIF, inputs, network
from tests.test_c_adjoint import TRIGGERED, WITH_PARAMETERS, assert_same, assert_same_run
from tests.test_cuda_target import backend, load, out  # noqa: F401  (the backend and out fixtures)

TAPE = ("tape_time", "tape_step", "tape_proj", "tape_syn", "tape_count", "tape_overflow", "drop_syn", "drop_key")


@pytest.fixture(scope="module")
def write(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda_adjoint")

    def get(text: str, name: str):
        path = folder / f"{name}.snn"
        path.write_text(text)
        return path
    return get


def both(backend, write, out, text: str, name: str, batch: int = 1, seed: int = 1):
    """The CUDA and C backward passes of one forward run with the same random cotangents."""
    path = write(text, name)
    given = {"inp": [inputs(seed + b)["inp"] for b in range(batch)]}
    c_sim = qgen.load(path, out=out / "c").simulator(batch=batch, seed=0)
    cuda_sim = load(path, backend, out).simulator(batch=batch, seed=0)
    expected = c_sim.run(given, 40.0, grad=True)
    result = cuda_sim.run(given, 40.0, grad=True)
    assert_same_run(result, expected)
    for name, array in c_sim._arrays.items():  # the same tape (the drop log in any order)
        if any(name.endswith(field) for field in TAPE) or "_tape_x" in name or "_tape_end" in name \
                or "_ckpt_x" in name:
            got = cuda_sim._arrays[name]
            if "_drop_" in name:
                got, array = np.sort(got, axis=-1), np.sort(array, axis=-1)
            np.testing.assert_allclose(got, array, rtol=1e-12, atol=1e-12, err_msg=name)
    cot = gradcheck.random_cotangents(expected, np.random.default_rng(seed))
    return cuda_sim.backward(cot).flat(), c_sim.backward(cot).flat(), expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_queue_kind_with_drops_equals_the_c_target(backend, write, out, kind):
    text = LIF + network(kind, capacity=1).replace("uniform(0.3 ms, 2 ms)", "uniform(2 ms, 6 ms)")
    got, expected, result = both(backend, write, out, text, f"drops_{kind}")
    assert sum(int(d.sum()) for d in result.drops.values()) > 0
    assert result.spikes["hid"].counts.sum() >= 4
    assert_same(got, expected, rtol=1e-9)


def test_parameters_initial_state_traces_drives_and_a_batch_equal_the_c_target(backend, write, out):
    got, expected, _ = both(backend, write, out, WITH_PARAMETERS, "parameters", batch=2)
    assert {"hid.tau_m", "hid.t_ref", "hid.v_th", "hid.v.initial", "hid.i.initial"} <= set(got)
    assert all(np.any(v) for v in expected.values())
    assert_same(got, expected, rtol=1e-9)


def test_more_neurons_than_threads_equal_the_c_target(backend, write, out):
    # 30 neurons for the block's threads (8 in the emulation): each thread steps back several, finds each
    # one's arrivals by search, and adds the dL/dt of other threads' spikes; parameters: the replay too
    text = WITH_PARAMETERS.replace("population hid = LIF(6,", "population hid = LIF(30,")
    assert text != WITH_PARAMETERS
    got, expected, result = both(backend, write, out, text, "wide", batch=2)
    assert result.spikes["hid"].counts.sum() >= 30
    assert_same(got, expected, rtol=1e-9)


def test_spikes_that_events_trigger_equal_the_c_target(backend, write, out):
    got, expected, result = both(backend, write, out, TRIGGERED, "triggered", batch=2)
    assert result.spikes["hid"].counts.sum() >= 10
    assert_same(got, expected, rtol=1e-9)


def test_gradients_need_a_differentiable_cuda_build(backend, write, out):
    grid = load(write(LIF + network("ring").replace("timing = exact", "timing = grid"), "grid"), backend, out)
    with pytest.raises(QgenError, match="timing = exact"):
        grid.simulator(seed=0).run(inputs(), 10.0, grad=True)
    single = load(write(WITH_PARAMETERS, "parameters"), backend, out, precision="float32").simulator(seed=0)
    with pytest.raises(QgenError, match="float64"):
        single.run(inputs(), 10.0, grad=True)


def test_jax_bridge_on_the_cuda_target_equals_the_c_target_s(backend, write, out):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from qgen.runtime.jax_bridge import pad_inputs

    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        path = write(WITH_PARAMETERS, "parameters")
        trials = {"inp": pad_inputs([inputs(1 + b)["inp"] for b in range(2)])}
        w = np.random.default_rng(0).normal(size=(2, 6, 1024))
        grads = {}
        for name, model in (("c", qgen.load(path, out=out / "c")), ("cuda", load(path, backend, out))):
            fn, params = model.as_jax(40.0, batch=2, seed=0)
            grads[name] = jax.grad(lambda p, x: jnp.nansum(fn(p, x)["hid.spikes"] * w))(params, trials)
        assert set(grads["cuda"]) == set(grads["c"])
        assert_same({k: np.asarray(v) for k, v in grads["cuda"].items()},
                    {k: np.asarray(v) for k, v in grads["c"].items()}, rtol=1e-9)
    finally:
        jax.config.update("jax_enable_x64", previous)
