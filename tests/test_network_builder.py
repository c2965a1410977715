"""The network builder: the C target's generated code draws fixed_total_number synapses, weights and
delays bit for bit as qgen.runtime.streams does in NumPy (on any number of threads), and the
streams are the laws they claim to be."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import qgen
from qgen.errors import Code, QgenError
from qgen.runtime import streams
from qgen.runtime.network import instantiate
from qgen.targets import builder as network_builder
from qgen.targets.c import GeneratedDraws

MODEL = """
import "std/lif.snn"
network Builder {
    dt = 0.1 ms
    population a = LIF(300)
    population b = LIF(7)
    connect a -> a fixed_total_number(20000, autapses = false) {
        weight ~ uniform(-0.5, 2.0); delay ~ truncated_normal(1.5 ms, 0.75 ms, min = dt)
    }
    connect a -> b fixed_total_number(3001) {
        weight ~ normal(1.0, 2.0, min = -1.0, max = 1.5); delay ~ normal(2 ms, 1 ms, min = dt)
    }
    connect b -> b fixed_total_number(40, autapses = false) { weight ~ truncated_normal(-1.0, 0.5, max = 0); delay = 1 ms }
    connect b -> a fixed_probability(0.5) { weight ~ uniform(0.0, 1.0); delay ~ uniform(0.5 ms, 3 ms) }
}
"""

FIELDS = ("out_start", "post", "weight", "delay")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("builder")
    (folder / "builder.snn").write_text(MODEL)
    return folder


@pytest.fixture(scope="module")
def compiled(folder):
    return qgen.load(folder / "builder.snn", out=folder / "generated")


def digest(data) -> str:
    h = hashlib.sha256()
    for name, proj in data.projections.items():
        for field in FIELDS:
            array = getattr(proj, field)
            h.update(f"{name}/{field}/{array.dtype}".encode())
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("seed", [0, 1, 2 ** 40 + 7])
@pytest.mark.parametrize("builder", ["model", "alone"])
def test_the_generated_builder_draws_what_numpy_draws(folder, compiled, seed, builder):
    """The builder printed into the C build, and the one compiled alone for the cuda and jax targets."""
    draws = GeneratedDraws(compiled.build) if builder == "model" else network_builder.draws(folder / "generated")
    generated = instantiate(compiled.model, seed, draws=draws)
    reference = instantiate(compiled.model, seed)
    for name, proj in reference.projections.items():
        for field in FIELDS:
            expected, got = getattr(proj, field), getattr(generated.projections[name], field)
            assert got.dtype == expected.dtype and np.array_equal(got, expected), (name, field)
    assert digest(generated) == digest(reference)


def test_every_path_of_the_generated_ziggurat_is_numpy_s(compiled):
    """200,000 draws take the wedge ~2,000 times and the tail ~50 times, each bit for bit."""
    draws = GeneratedDraws(compiled.build)
    for args in ((0.0, 1.0, -np.inf, np.inf, False), (0.5, 2.0, -1.0, 3.0, False), (1.5, 0.75, 0.1, np.inf, True)):
        got, failed = draws.normal(streams.key(11, "z"), 200_000, *args)
        expected, expected_failed = streams.normal(streams.key(11, "z"), 200_000, *args)
        assert failed == expected_failed == 0 and np.array_equal(got, expected)
    assert np.sum(np.abs(got - 1.5) > 0.75 * streams.ZIG_R) > 10


@pytest.mark.parametrize("threads", [1, 3])
def test_the_builder_draws_the_same_network_on_any_number_of_threads(folder, compiled, threads):
    script = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import qgen;"
              "from test_network_builder import digest;"
              f"m = qgen.load({str(folder / 'builder.snn')!r}, out={str(folder / 'generated')!r});"
              "print(digest(m.simulator(seed=5).data))")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == digest(instantiate(compiled.model, 5))


def test_the_jax_target_draws_with_the_builder_compiled_alone(folder, compiled, monkeypatch):
    calls = []
    monkeypatch.setattr(GeneratedDraws, "uniform", lambda self, *args: calls.append(args) or streams.uniform(*args))
    jax_model = qgen.load(folder / "builder.snn", "jax", out=folder / "generated", runtime=False)
    assert digest(instantiate(jax_model.model, 4, **jax_model._draws())) == digest(instantiate(compiled.model, 4))
    assert len(calls) == 3  # the uniform weights of a->a and b->a and the delays of b->a: the builder drew them
    reference = qgen.load(folder / "builder.snn", "reference")
    assert reference._draws() == {}  # the reference stays NumPy's


def test_the_c_simulation_binds_the_drawn_arrays_without_a_copy(compiled):
    sim = compiled.simulator(seed=3)
    proj = sim.data.projections["a->a"]
    assert np.shares_memory(sim.weights["a->a"], proj.weight) and np.shares_memory(sim.delays["a->a"], proj.delay)
    assert proj.size == 20000 and not np.any(proj.pre == proj.post)


def test_fixed_total_number_is_uniform_over_pairs():
    out_start, post = streams.fixed_total_number(streams.key(9, "t"), 400_000, 40, 50, no_autapses=False)
    per_pre, per_post = np.diff(out_start), np.bincount(post, minlength=50)
    for counts in (per_pre, per_post):  # chi-square with 39 / 49 degrees of freedom, far from its 1e-6 tail
        expected = 400_000 / len(counts)
        assert np.sum((counts - expected) ** 2 / expected) < len(counts) + 8 * math.sqrt(2 * len(counts))
    pre = np.repeat(np.arange(40), per_pre)
    assert abs(np.corrcoef(pre, post)[0, 1]) < 0.01


def test_no_autapses_redraws_only_the_target():
    out_start, post = streams.fixed_total_number(streams.key(4, "t"), 50_000, 3, 3, no_autapses=True)
    pre = np.repeat(np.arange(3), np.diff(out_start))
    assert not np.any(pre == post)
    allowed, _ = streams.fixed_total_number(streams.key(4, "t"), 50_000, 3, 3, no_autapses=False)
    np.testing.assert_array_equal(allowed, out_start)  # the same sources: only the targets were redrawn
    assert np.bincount(post, minlength=3).min() > 15_000


def test_the_normal_stream_is_normal_and_its_exp_and_log_accurate():
    values, failed = streams.normal(streams.key(1, "n"), 400_000, 0.0, 1.0, -np.inf, np.inf, truncate=False)
    assert failed == 0
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1) < 0.01
    for q, z in ((0.025, -1.959964), (0.5, 0.0), (0.975, 1.959964), (0.999, 3.090232)):
        assert np.quantile(values, q) == pytest.approx(z, abs=0.02 if q != 0.999 else 0.06)
    beyond = 2 * 0.5 * math.erfc(streams.ZIG_R / math.sqrt(2))  # the ziggurat's tail, 2.6e-4
    assert np.mean(np.abs(values) > streams.ZIG_R) == pytest.approx(beyond, rel=0.35)
    s = np.random.default_rng(0).uniform(2.0 ** -64, 1.0, 100_000)
    np.testing.assert_allclose(streams.log(s), np.log(s), rtol=4e-16, atol=1e-16)
    t = np.linspace(-8.0, 0.0, 100_001)
    np.testing.assert_allclose(streams.exp(t), np.exp(t), rtol=4e-16)
    # truncated: the law conditioned on the bounds; clipped: the mass outside sits on them
    truncated, _ = streams.normal(streams.key(1, "t"), 200_000, 1.5, 0.75, 0.1, np.inf, truncate=True)
    alpha = (0.1 - 1.5) / 0.75
    density, below = math.exp(-alpha ** 2 / 2) / math.sqrt(2 * math.pi), 0.5 * math.erfc(-alpha / math.sqrt(2))
    assert truncated.min() >= 0.1 and truncated.mean() == pytest.approx(1.5 + 0.75 * density / (1 - below), abs=0.005)
    clipped, _ = streams.normal(streams.key(1, "t"), 200_000, 1.5, 0.75, 0.1, np.inf, truncate=False)
    assert np.mean(clipped == 0.1) == pytest.approx(below, abs=0.002)


def test_uniform_stream_covers_its_interval():
    u = streams.uniform(streams.key(2, "u"), 200_000, -1.0, 3.0)
    assert u.min() >= -1.0 and u.max() < 3.0 and u.mean() == pytest.approx(1.0, abs=0.01)
    assert np.histogram(u, bins=8, range=(-1, 3))[0].min() > 24_000


def test_streams_are_pinned():
    """A change of any stream changes every network: it must show here."""
    k = streams.key(7, "projection", "a->a", "weight")
    assert k == streams.key(7, "projection", "a->a", "weight") != streams.key(8, "projection", "a->a", "weight")
    assert json.dumps(streams.uniform(k, 3, 0.0, 1.0).tolist()) == PINNED_UNIFORM
    assert json.dumps(streams.normal(k, 3, 0.0, 1.0, -np.inf, np.inf, False)[0].tolist()) == PINNED_NORMAL
    assert streams.fixed_total_number(k, 6, 4, 5, True)[1].tolist() == PINNED_POST


PINNED_UNIFORM = "[0.12413952573754317, 0.6938825986566372, 0.9683867544257774]"
PINNED_NORMAL = "[-1.3468140618254816, 0.5068591303440895, 0.9769089264054491]"
PINNED_POST = [2, 1, 1, 3, 0, 0]


def test_a_truncated_normal_that_almost_never_falls_inside_is_refused(build):
    with pytest.raises(QgenError) as err:
        build("""
            import "std/lif.snn"
            network N {
                population a = LIF(5)
                connect a -> a fixed_total_number(10) { weight ~ truncated_normal(0, 1, min = 4); delay = 1 ms }
            }""")
    assert err.value.code == Code.BAD_VALUE and "almost never" in str(err.value)
