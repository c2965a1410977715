"""The JAX target's generated adjoint: gradients against the reference adjoint and finite
differences, jax.grad of a user loss inside jit, the native as_jax, and the StableHLO export.

XLA compiles the forward+backward program of a model in about a minute on a shared CPU, so the
tests share one compiled program: one network holding all four queue kinds (each of which drops
events), a LIF population (threshold crossings, refractory ends, every parameter and the initial
state trainable) and a Delta population (spikes triggered by events), two trials. The gradient
program is compiled with XLA:CPU at -O0 (it compiles in half the time and runs fast enough here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import qgen  # noqa: E402
from qgen.reference import ReferenceSimulator  # noqa: E402
from tests import gradcheck  # noqa: E402
from tests.test_adjoint import DELTA, LIF, inputs  # noqa: E402

DURATION = 40.0
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}

TRAINABLE_LIF = LIF.replace("state { v = 0.0; i = 0.0 }", "state { v = 0.0 trainable; i = 0.0 trainable }")
MIXED = TRAINABLE_LIF + DELTA + """
network Mixed {
    dt = 0.1 ms
    timing = exact
    seed = 3
    population inp = input(4)
    population hid = LIF(6, v ~ uniform(0.0, 0.5), tau_m = 10 ms trainable, tau_s = 3 ms trainable,
                         v_th = 1.0 trainable, v_reset = 0.1 trainable, t_ref = 1.5 ms trainable, I_e = 0.3 trainable)
    population del = Delta(4, v ~ uniform(0.0, 0.5), tau_m = 8 ms trainable, v_th = 1.0 trainable,
                           t_ref = 1 ms trainable, I_e = 0.5 trainable)
    connect inp -> hid all_to_all {
        weight ~ uniform(0.5, 1.5) trainable; delay ~ uniform(0.5 ms, 3 ms) trainable; queue = ring(capacity = 1)
    }
    connect inp -> del all_to_all {
        weight ~ uniform(0.3, 0.7) trainable; delay ~ uniform(0.5 ms, 3 ms) trainable; queue = fifo(capacity = 1)
    }
    connect inp -> del one_to_one as inp_del_heap {
        weight ~ uniform(0.2, 0.6) trainable; delay ~ uniform(0.5 ms, 3 ms) trainable; queue = heap(capacity = 1)
    }
    connect hid -> hid all_to_all(autapses = false) {
        weight ~ uniform(-0.4, 0.6) trainable; delay ~ uniform(2 ms, 6 ms) trainable; queue = heap(capacity = 2)
    }
    connect del -> hid all_to_all {
        weight ~ uniform(-0.2, 0.6) trainable; delay ~ uniform(2 ms, 6 ms) trainable; queue = sorted(capacity = 2)
    }
    connect hid -> del all_to_all {
        weight ~ uniform(-0.1, 0.3) trainable; delay ~ uniform(2 ms, 6 ms) trainable; queue = fifo(capacity = 1)
    }
    record hid.spikes, hid.v, del.spikes
}
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The simulator, its forward function, the reference's run, cotangents and gradients, and the
    JAX gradients of the user loss Σ cotangent · observable (one compiled program)."""
    folder = tmp_path_factory.mktemp("adjoint")
    path = folder / "mixed.snn"
    path.write_text(MIXED)
    # one trial: its steps are not vmapped, so the shortcuts for quiet steps (lax.cond) really branch;
    # the export test below runs a vmapped batch of two
    sim = qgen.load(path, target="jax", out=folder / "generated").simulator(batch=1, checkpoint_every=9)
    given = {"inp": [inputs(1, count=24)["inp"]]}
    reference = ReferenceSimulator(sim.data, batch=1)
    result = reference.run(given, DURATION, grad=True)
    cot = gradcheck.random_cotangents(result, np.random.default_rng(1))
    expected = reference.backward(cot)
    forward = sim.forward_fn(DURATION, given)
    params, encoded = sim.params(), forward.inputs(given)

    def loss(params):  # a user's loss of the outputs, inside jit
        out = forward(params, encoded)
        total = jnp.sum(cot["hid.v"] * out["traces"]["hid.v"])
        for pop in ("hid", "del"):
            times = jnp.nan_to_num(out["spikes"][pop]["times"])
            total += jnp.sum(cot[f"{pop}.spikes"] * times) + jnp.sum(cot[f"{pop}.first_spike"] * times[:, :, 0])
        return total

    with jax.enable_x64(True):
        grads = jax.device_get(jax.jit(jax.grad(loss), compiler_options=FAST_COMPILE)(params))
    return sim, given, result, cot, expected, grads


def _jax_flat(sim, grads) -> dict[str, np.ndarray]:
    """The JAX gradients under the names of Gradients.flat()."""
    out = {f"{p}.weight": g for p, g in grads["weight"].items()}
    out.update({f"{p}.delay": g for p, g in grads["delay"].items()})
    out.update({f"{pop}.{k}": np.asarray(v) for pop, d in grads["parameters"].items() for k, v in d.items()})
    for pop, lam in grads["initial"].items():
        for i, var in enumerate(sim._pops[pop]["state"]):
            out[f"{pop}.{var}.initial"] = lam[:, i]
    return out


def test_gradients_match_the_reference_adjoint_for_every_queue_kind(mixed):
    sim, _, result, _, expected, grads = mixed
    kinds = {p.spec.queue.kind for p in sim.data.projections.values()}
    assert kinds == {"ring", "fifo", "heap", "sorted"}
    assert all(d.sum() > 0 for d in result.drops.values())  # every kind drops: both passes leave them out
    assert result.spikes["hid"].counts.sum() >= 20 and result.spikes["del"].counts.sum() >= 20
    ours = _jax_flat(sim, grads)
    reference = expected.flat()
    assert {"hid.tau_m", "hid.t_ref", "hid.v.initial", "del->hid.delay", "hid->del.delay"} <= set(reference)
    checked = 0
    for key, want in reference.items():
        got = ours[key]
        scale = max(float(np.max(np.abs(want))), 1e-12)
        assert np.max(np.abs(got - want)) <= 1e-9 * scale, (key, got, want)
        checked += bool(np.any(want))
    assert checked >= 15


def test_gradients_match_the_c_target(mixed, tmp_path):
    """The same model, inputs and cotangents through the C target's adjoint kernels."""
    sim, given, _, cot, _, grads = mixed
    path = tmp_path / "mixed.snn"
    path.write_text(MIXED)
    c_sim = qgen.load(path, target="c", out=tmp_path / "generated").simulator(batch=1)
    for name in sim.weights:  # the same seed builds the same network on every target
        assert np.array_equal(c_sim.weights[name], sim.weights[name])
        assert np.array_equal(c_sim.delays[name], sim.delays[name])
    c_sim.run(given, DURATION, grad=True)
    theirs = c_sim.backward(cot).flat()
    ours = _jax_flat(sim, grads)
    assert {"hid.tau_m", "hid.v.initial", "inp->hid.delay", "del->hid.weight"} <= set(theirs)
    for key, want in theirs.items():
        scale = max(float(np.max(np.abs(want))), 1e-12)
        assert np.max(np.abs(ours[key] - want)) <= 1e-9 * scale, (key, ours[key], want)


def test_gradients_match_finite_differences(mixed):
    sim, given, result, cot, _, grads = mixed

    def run():
        return sim.run(given, DURATION)  # the JAX forward, compiled once for these sizes

    flat = _jax_flat(sim, grads)
    quantities = []
    for name in ("inp->hid", "hid->hid"):
        for what, arrays in (("weight", sim.weights), ("delay", sim.delays)):
            g = flat[f"{name}.{what}"]
            s = int(np.argmax(np.abs(g)))
            quantities.append(gradcheck.Quantity(f"{name}.{what}[{s}]", lambda a=arrays[name], s=s: float(a[s]),
                                                 lambda v, a=arrays[name], s=s: a.__setitem__(s, v), float(g[s])))
    for param in ("tau_m", "v_th"):
        values = sim.parameters["hid"]
        quantities.append(gradcheck.Quantity(f"hid.{param}", lambda p=param: float(values[p]),
                                             lambda v, p=param: values.__setitem__(p, v), float(flat[f"hid.{param}"])))
    assert gradcheck.check(quantities, run, cot, result) == []


VOLLEY = """
import "std/lif.snn"
network Volley {
    dt = 0.1 ms
    timing = exact
    seed = 4
    population inp = input(150)
    population hid = LIF(2, tau_m = 10 ms trainable, v ~ uniform(0.0, 0.3))
    connect inp -> hid all_to_all { weight ~ uniform(0.02, 0.06) trainable; delay = 1 ms; queue = fifo(capacity = 2) }
    record hid.spikes
}
"""


def test_a_step_with_more_events_than_scattered_adds_them_all(tmp_path):
    """Every input fires at once: 300 events arrive in one step, more than the backward pass adds at
    a time (SCATTERED), and every weight still gets its gradient, as in the reference adjoint."""
    path = tmp_path / "volley.snn"
    path.write_text(VOLLEY)
    sim = qgen.load(path, target="jax", out=tmp_path / "generated").simulator(event_capacity=160)
    assert 2 * 150 > sim.module.SCATTERED
    given = {"inp": [(np.full(150, 0.55), np.arange(150))]}
    reference = ReferenceSimulator(sim.data, batch=1)
    result = reference.run(given, 6.0, grad=True)
    assert result.spikes["hid"].counts.sum() >= 2
    cot = {"hid.spikes": np.where(np.isnan(result.spikes["hid"].times), 0.0, 1.0)}
    expected = reference.backward(cot).flat()
    forward = sim.forward_fn(6.0, given)
    encoded = forward.inputs(given)

    def loss(params):
        return jnp.sum(jnp.nan_to_num(forward(params, encoded)["spikes"]["hid"]["times"]))

    with jax.enable_x64(True):
        grads = jax.jit(jax.grad(loss), compiler_options=FAST_COMPILE)(sim.params())
    got, want = np.asarray(grads["weight"]["inp->hid"]), expected["inp->hid.weight"]
    assert np.all(want != 0)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.max(np.abs(want)))


TINY = """
import "std/lif.snn"
network Tiny {
    dt = 0.1 ms
    timing = exact
    population inp = input(3)
    population hid = LIF(4, t_ref = 1 ms, tau_m = 10 ms trainable, v_th = 1.0 trainable)
    connect inp -> hid all_to_all {
        weight ~ uniform(2.0, 6.0) trainable; delay ~ uniform(0.5 ms, 2 ms) trainable; queue = sorted(capacity = 8)
    }
    record hid.spikes
}
"""

CLEAN = """
import json, sys
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from jax import export
folder = sys.argv[1]
data = np.load(folder + "/call.npz")
params = {k[2:]: data[k] for k in data if k.startswith("p:")}
inputs = {"inp": (data["times"], data["ids"])}
options = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
forward = export.deserialize(open(folder + "/forward.stablehlo", "rb").read())
out = jax.jit(forward.call).lower(params, inputs).compile(options)(params, inputs)
vjp = export.deserialize(open(folder + "/vjp.stablehlo", "rb").read())
cot = {k: np.ones(v.shape) for k, v in out.items()}
_, grads = jax.jit(vjp.call).lower(params, inputs, cot).compile(options)(params, inputs, cot)
assert "qgen" not in sys.modules
np.savez(folder + "/result.npz", **{"o:" + k: np.asarray(v) for k, v in out.items()},
         **{"g:" + k: np.asarray(v) for k, v in grads.items()})
"""


def test_stablehlo_export_runs_without_qgen(tmp_path):
    """`qgen build --target jax --export stablehlo` writes the forward and its VJP; a process that
    never imports qgen loads them with jax.export and reproduces the outputs and the gradients."""
    from click.testing import CliRunner

    from qgen.cli import main
    from qgen.runtime.jax_bridge import pad_inputs

    path = tmp_path / "tiny.snn"
    path.write_text(TINY)
    out = tmp_path / "generated"
    built = CliRunner().invoke(main, ["build", str(path), "--target", "jax", "--out", str(out), "--export",
                                      "stablehlo", "--duration", "15ms", "--batch", "2", "--input-spikes", "8"])
    assert built.exit_code == 0, built.output
    folder = out / "Tiny" / "jax" / "float64"
    info = json.loads((folder / "export.json").read_text())
    assert info["batch"] == 2 and set(info["params"]) == {"inp->hid.weight", "inp->hid.delay", "hid.tau_m", "hid.v_th"}

    fn, params = qgen.load(path, target="jax", out=out).as_jax(15.0, batch=2)
    times, ids = pad_inputs([(np.array([0.5, 1.0, 2.0, 6.0]), np.array([0, 1, 2, 0])),
                             (np.array([1.5, 3.0, 3.0]), np.array([2, 1, 0]))])
    times = np.pad(times, ((0, 0), (0, 8 - times.shape[1])), constant_values=np.nan)
    ids = np.pad(ids, ((0, 0), (0, 8 - ids.shape[1]))).astype(np.int32)
    np.savez(folder / "call.npz", times=times, ids=ids, **{f"p:{k}": np.asarray(v) for k, v in params.items()})
    ran = subprocess.run([sys.executable, "-c", textwrap.dedent(CLEAN), str(folder)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    loaded = np.load(folder / "result.npz")

    # the same calls in this process, through qgen (the spike record of the reference too)
    with jax.enable_x64(True):
        inputs = {"inp": (times, ids)}
        expected = jax.jit(fn, compiler_options=FAST_COMPILE)(params, inputs)
    sim = qgen.load(path, target="jax", out=out).simulator(batch=2)
    oracle = ReferenceSimulator(sim.data, batch=2)
    reference = oracle.run({"inp": [(np.array([0.5, 1.0, 2.0, 6.0]), np.array([0, 1, 2, 0])),
                                    (np.array([1.5, 3.0, 3.0]), np.array([2, 1, 0]))]}, 15.0, grad=True)
    record = reference.spikes["hid"]
    assert record.counts.sum() >= 4
    np.testing.assert_array_equal(np.asarray(expected["hid.spike_count"]), reference.spikes["hid"].counts)
    for key, value in expected.items():
        np.testing.assert_allclose(loaded[f"o:{key}"], np.asarray(value), rtol=1e-12, atol=1e-12, equal_nan=True)
    grads = {k[2:]: loaded[k] for k in loaded if k.startswith("g:")}
    assert set(grads) == set(params)
    # all-ones cotangents: every spike time, every first spike (spike counts add nothing)
    want = oracle.backward({"hid.spikes": (~np.isnan(record.times)).astype(float),
                            "hid.first_spike": (record.counts > 0).astype(float)}).flat()
    for key, value in grads.items():
        assert np.any(want[key] != 0)
        np.testing.assert_allclose(value, want[key], rtol=1e-9, atol=1e-9 * np.max(np.abs(want[key])))


@pytest.mark.parametrize("serial", [True, False], ids=["insert", "sort"])
def test_the_reverse_sorted_queue_pops_each_step_in_order(tmp_path, serial, monkeypatch):
    """The reverse queue of the sorted kind, driven directly: pushes of a few entries per row (the
    insertion by binary search) and of more than NARROW (the whole row sorted; inserted on XLA:CPU,
    SERIAL) at every sweep step, each pop against a sorted list: exactly the entries delivered in
    that step, in pop order (later arrival first, then the lower synapse)."""
    path = tmp_path / "tiny.snn"
    path.write_text(TINY)
    module = qgen.load(path, target="jax", out=tmp_path / "generated").simulator().module
    monkeypatch.setattr(module, "SERIAL", serial)
    rows, capacity, width = 3, 48, 12
    gen = np.random.default_rng(5)
    pending, popped = [[] for _ in range(rows)], 0
    push, pop = jax.jit(module._rsorted_push), jax.jit(module._rsorted_pop, static_argnums=2)  # traced with SERIAL set
    with jax.enable_x64(True):
        queue = module._rsorted_init(rows, capacity)
        for n in range(40, -1, -1):
            wide = n % 7 == 0
            count = gen.integers(module.NARROW + 1 if wide else 0, (width if wide else 4) + 1, rows)
            valid = np.arange(width)[None, :] < count[:, None]
            gen.permuted(valid, axis=1, out=valid)  # holes, as the drop log leaves them
            at = gen.integers(max(n - 6, 0), n + 1, (rows, width))
            time = (at + np.round(gen.uniform(0, 1, (rows, width)), 1)) * 0.1
            syn = gen.permutation(rows * width).reshape(rows, width) + 100 * n  # one event per synapse and time
            src = gen.integers(0, 1000, (rows, width))
            ev = {"time": jnp.asarray(time), "syn": jnp.asarray(syn, jnp.int32), "src": jnp.asarray(src, jnp.int32),
                  "at": jnp.asarray(at, jnp.int32), "valid": jnp.asarray(valid)}
            queue = push(queue, ev)
            for r in range(rows):
                pending[r] += [(at[r, c], time[r, c], syn[r, c], src[r, c]) for c in range(width) if valid[r, c]]
            queue, out, lost = pop(queue, n, capacity)
            assert int(lost) == 0
            for r in range(rows):
                due = sorted((e for e in pending[r] if e[0] == n), key=lambda e: (-e[1], e[2]))
                pending[r] = [e for e in pending[r] if e[0] != n]
                got = [(float(out["time"][r, c]), int(out["syn"][r, c]), int(out["src"][r, c]))
                       for c in range(capacity) if out["valid"][r, c]]
                assert got == [(t, s, i) for _, t, s, i in due], (n, r)
                popped += len(got)
    assert int(queue["over"]) == 0 and popped > 200 and not any(pending)
