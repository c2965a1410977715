"""The JAX bridge: jax.grad through the host simulation equals Simulation.backward."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import qgen  # noqa: E402
from qgen.errors import QgenError  # noqa: E402
from qgen.runtime.jax_bridge import pad_inputs  # noqa: E402
from tests.test_adjoint import LIF, inputs, network  # noqa: E402


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def model(write_model):
    text = LIF.replace("tau_m = 10 ms", "tau_m = 10 ms trainable") + network("fifo")
    return qgen.load(write_model(text), target="reference")


def batch_inputs(batch: int):
    return {"inp": pad_inputs([inputs(1 + b)["inp"] for b in range(batch)])}


def test_jax_grad_equals_backward(model):
    fn, params = model.as_jax(40.0, batch=2)
    assert set(params) == {"inp->hid.weight", "inp->hid.delay", "hid->hid.weight", "hid->hid.delay", "hid.tau_m"}
    given = batch_inputs(2)
    rng = np.random.default_rng(0)
    w_spikes = rng.normal(size=(2, 6, 1024))
    w_trace = 0.05 * rng.normal(size=(2, 400, 6))

    def loss(p, x):
        out = fn(p, x)
        return jnp.nansum(out["hid.spikes"] * w_spikes) + jnp.sum(out["hid.v"] * w_trace) \
            + jnp.nansum(out["hid.first_spike"]) ** 2

    value, grads = jax.jit(jax.value_and_grad(loss))(params, given)
    # the same cotangents through the simulator's own backward
    sim = model.simulator(batch=2)
    trials = [inputs(1 + b)["inp"] for b in range(2)]
    result = sim.run({"inp": trials}, 40.0, grad=True)
    times = result.spikes["hid"].times
    first = np.nan_to_num(times[:, :, 0])
    cot = {"hid.spikes": np.where(np.isnan(times), 0.0, w_spikes), "hid.v": w_trace,
           "hid.first_spike": np.where(result.spikes["hid"].counts > 0, 2 * first.sum(), 0.0)}
    expected = sim.backward(cot).flat()
    assert float(value) == pytest.approx(np.nansum(times * w_spikes) + np.sum(result.traces["hid.v"] * w_trace)
                                         + first.sum() ** 2, rel=1e-12)
    for key, g in grads.items():
        np.testing.assert_allclose(np.asarray(g), expected[key], rtol=1e-12, atol=1e-12)
    assert np.abs(np.asarray(grads["inp->hid.weight"])).max() > 0


def test_vmap_over_inputs_runs_each_trial(model):
    fn, params = model.as_jax(20.0, observables=["hid.spike_count"])
    first, second = (pad_inputs([inputs(seed)["inp"]]) for seed in (1, 2))
    width = max(first[0].shape[1], second[0].shape[1])
    pad = lambda a, fill: np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)  # noqa: E731
    stacked = {"inp": (np.stack([pad(first[0], np.nan), pad(second[0], np.nan)]),
                       np.stack([pad(first[1], 0), pad(second[1], 0)]))}
    counts = jax.vmap(fn, in_axes=(None, 0))(params, stacked)["hid.spike_count"]
    assert counts.shape == (2, 1, 6)
    sim = model.simulator()
    for b, seed in enumerate((1, 2)):
        np.testing.assert_array_equal(counts[b], sim.run(inputs(seed), 20.0).spikes["hid"].counts)
    assert not np.array_equal(counts[0], counts[1])


def test_bad_observable_is_a_clear_error(model):
    with pytest.raises(QgenError, match="no observable"):
        model.as_jax(10.0, observables=["hid.w"])
