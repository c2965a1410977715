"""The C backward pass (templates/c/adjoint.c.j2) against the reference adjoint, and the JAX bridge on it.

The reference adjoint is checked against finite differences (tests/test_adjoint.py); here the C
kernels must give the same gradients to 1e-10 of the largest one, on the same random recurrent
networks with heterogeneous delays: every queue kind with drops, neuron parameters and initial
state with a batch of two, spikes that events trigger, and trace cotangents throughout.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import qgen
from qgen.errors import QgenError
from tests import gradcheck
from tests.test_adjoint import DELTA, KINDS, LIF, inputs, network

PARAMETERS = ", tau_m = 10 ms trainable, tau_s = 3 ms trainable, v_th = 1.0 trainable, " \
             "v_reset = 0.1 trainable, t_ref = 1.5 ms trainable, I_e = 0.3 trainable"
# with drives: the backward pass runs through runs of steps with different parameters
WITH_PARAMETERS = LIF.replace("state { v = 0.0; i = 0.0 }", "state { v = 0.0 trainable; i = 0.0 trainable }") \
    + network("heap", trainable=PARAMETERS).replace(
        "record hid.spikes", "drive hid.I_e = 0.9 from 2 ms to 7 ms\n    drive hid.tau_s = 2 ms from 10 ms to 12 ms\n"
        "    record hid.spikes")
TRIGGERED = DELTA + network("sorted", neuron="Delta", trainable=", tau_m = 8 ms trainable, v_th = 1.0 trainable, "
                            "v_reset = 0.0 trainable, t_ref = 1 ms trainable, I_e = 0.5 trainable") \
    .replace("uniform(0.5, 1.5)", "uniform(0.3, 0.7)").replace("uniform(-0.4, 0.6)", "uniform(-0.2, 0.4)")


@pytest.fixture(scope="module")
def load(tmp_path_factory):
    """load(text, target) -> a compiled model; C builds are cached for the module."""
    folder = tmp_path_factory.mktemp("c_adjoint")
    names: dict[str, str] = {}

    def get(text: str, target: str = "c"):
        name = names.setdefault(text, f"m{len(names)}")
        path = folder / f"{name}.snn"
        path.write_text(textwrap.dedent(text))
        return qgen.load(path, target=target, out=folder / "generated")
    return get


def both(load, text: str, batch: int = 1, seed: int = 1):
    """The C and reference backward passes of one forward run with random cotangents."""
    given = {"inp": [inputs(seed + b)["inp"] for b in range(batch)]}
    c_sim = load(text).simulator(batch=batch, seed=0)
    ref = load(text, "reference").simulator(batch=batch, seed=0)
    expected = ref.run(given, 40.0, grad=True)
    result = c_sim.run(given, 40.0, grad=True)
    assert_same_run(result, expected)
    cot = gradcheck.random_cotangents(expected, np.random.default_rng(seed))
    return c_sim.backward(cot).flat(), ref.backward(cot).flat(), expected


def assert_same_run(result, expected) -> None:
    """The same spikes (times to 1e-12 ms) and drops: the forward passes the gradients start from."""
    for pop, record in expected.spikes.items():
        np.testing.assert_array_equal(result.spikes[pop].counts, record.counts)
        np.testing.assert_allclose(result.spikes[pop].times, record.times, rtol=0, atol=1e-12)
    for name, drops in expected.drops.items():
        np.testing.assert_array_equal(result.drops[name], drops)


def assert_same(got: dict, expected: dict, rtol: float = 1e-10) -> None:
    assert set(got) == set(expected)
    scale = max(float(np.max(np.abs(v))) for v in expected.values())
    assert scale > 0
    for key, value in expected.items():
        error = np.max(np.abs(np.asarray(got[key]) - np.asarray(value))) / scale
        assert error <= rtol, f"{key}: C and reference differ by {error:.1e} of the largest gradient"


@pytest.mark.parametrize("kind", KINDS)
def test_every_queue_kind_with_drops_equals_the_reference(load, kind):
    # capacity 1 and long recurrent delays: the queues drop events, and both passes leave out the same ones
    text = LIF + network(kind, capacity=1).replace("uniform(0.3 ms, 2 ms)", "uniform(2 ms, 6 ms)")
    got, expected, result = both(load, text)
    assert sum(int(d.sum()) for d in result.drops.values()) > 0
    assert result.spikes["hid"].counts.sum() >= 4
    assert_same(got, expected)


def test_parameters_initial_state_traces_drives_and_a_batch_equal_the_reference(load):
    got, expected, result = both(load, WITH_PARAMETERS, batch=2)
    assert {"hid.tau_m", "hid.t_ref", "hid.v_th", "hid.v.initial", "hid.i.initial"} <= set(got)
    assert all(np.any(v) for v in expected.values())
    assert_same(got, expected)


def test_spikes_that_events_trigger_equal_the_reference(load):
    got, expected, result = both(load, TRIGGERED, batch=2)
    assert result.spikes["hid"].counts.sum() >= 10
    assert_same(got, expected)


def test_the_forward_tape_has_no_per_step_arrays(load):
    # the record is per spike (and per checkpoint, every ~sqrt(T) steps): nothing of shape (T, N)
    build = load(WITH_PARAMETERS).build
    tape = [f for f in build.layout if any(word in f.name for word in ("_tape_", "_ckpt_", "_drop_"))]
    assert tape and all("T" not in f.shape for f in tape)
    sim = load(WITH_PARAMETERS).simulator(seed=0)
    sim.run(inputs(), 40.0, grad=True)
    assert sim._arrays["pop1_hid_ckpt_x"].shape[1] == 20  # 400 steps, one checkpoint every 20


def test_errors_are_clear(load):
    sim = load(WITH_PARAMETERS).simulator(seed=0, spike_capacity=1)
    with pytest.raises(QgenError, match="grad=True"):
        sim.backward({})
    with pytest.raises(QgenError, match=r"hid\.spikes: .* recording capacity 1.*\n?.*capacity = 2"):
        sim.run(inputs(), 40.0, grad=True)
    sim = load(WITH_PARAMETERS).simulator(seed=0)
    result = sim.run(inputs(), 20.0, grad=True)
    with pytest.raises(QgenError, match="shape"):
        sim.backward({"hid.v": np.zeros((1, 3, 6))})
    with pytest.raises(QgenError, match="neither"):
        sim.backward({"hid.i": np.zeros_like(result.traces["hid.v"])})
    with pytest.raises(QgenError, match="no population"):
        sim.backward({"out.spikes": np.zeros(3)})
    sim.run(inputs(), 20.0)  # a run without grad forgets the record
    with pytest.raises(QgenError, match="grad=True"):
        sim.backward({})
    grid = load(LIF + network("ring").replace("timing = exact", "timing = grid")).simulator(seed=0)
    with pytest.raises(QgenError, match="timing = exact"):
        grid.run(inputs(), 10.0, grad=True)


def test_jax_bridge_on_the_c_target_equals_backward(load):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from qgen.runtime.jax_bridge import pad_inputs

    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        model = load(WITH_PARAMETERS)
        fn, params = model.as_jax(40.0, batch=2, seed=0)
        assert {"hid.tau_m", "hid.v.initial", "inp->hid.weight", "hid->hid.delay"} <= set(params)
        trials = [inputs(1 + b)["inp"] for b in range(2)]
        rng = np.random.default_rng(0)
        w_spikes, w_trace = rng.normal(size=(2, 6, 1024)), 0.05 * rng.normal(size=(2, 400, 6))

        def loss(p, x):
            out = fn(p, x)
            return jnp.nansum(out["hid.spikes"] * w_spikes) + jnp.sum(out["hid.v"] * w_trace)

        grads = jax.jit(jax.grad(loss))(params, {"inp": pad_inputs(trials)})
        sim = model.simulator(batch=2, seed=0)
        result = sim.run({"inp": trials}, 40.0, grad=True)
        cot = {"hid.spikes": np.where(np.isnan(result.spikes["hid"].times), 0.0, w_spikes), "hid.v": w_trace}
        expected = sim.backward(cot).flat()
        for key, g in grads.items():
            np.testing.assert_allclose(np.asarray(g), expected[key], rtol=1e-12, atol=1e-12)
        # a changed parameter reaches the C kernels
        changed = dict(params, **{"hid.tau_m": params["hid.tau_m"] + 1.0})
        assert not np.allclose(np.asarray(jax.jit(jax.grad(loss))(changed, {"inp": pad_inputs(trials)})["hid.tau_m"]),
                               np.asarray(grads["hid.tau_m"]))
    finally:
        jax.config.update("jax_enable_x64", previous)
