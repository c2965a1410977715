"""The Potjans–Diesmann microcircuit (examples/microcircuit.snn) and the language features it uses:
fixed_total_number connectivity, truncated-normal weights and delays, in-kernel Poisson
background sources with a counter-based generator that every target draws identically.

Fast on purpose: the model runs at a tiny scale (the in-degrees are kept, so it is still the
microcircuit's input per neuron), and the C target is compared with the reference simulator
on a short run. benchmarks/microcircuit.py runs it at scale against NEST.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import qgen
from qgen.errors import Code, QgenError
from qgen.frontend import load_model
from qgen.runtime import background, streams
from qgen.runtime.network import instantiate
from tests.conftest import EXAMPLES
from tests.test_frontend_errors import Case, net
from tests.test_frontend_errors import test_bad_model_is_rejected_with_a_located_error as check_case

MICROCIRCUIT = EXAMPLES / "microcircuit.snn"
POPS = ["L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"]
N_FULL = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])


def test_the_model_has_nests_sizes_synapse_counts_and_weights():
    model = load_model(MICROCIRCUIT, {"scale": "0.1"})
    net_ = model.network
    assert [p.name for p in net_.populations] == POPS
    assert [p.size for p in net_.populations] == list(np.round(N_FULL * 0.1).astype(int))
    assert net_.timing == "grid" and net_.dt == 0.1
    # NEST's helpers.num_synapses_from_conn_probs with the full-scale sizes, times N_scaling (K_scaling = 1)
    prod = float(N_FULL[2] * N_FULL[0])
    expected = round(math.log(1 - 0.0437) / math.log((prod - 1) / prod) * 0.1)
    proj = net_.projection("L4E->L23E")
    assert proj.connectivity.kind == "fixed_total_number" and proj.connectivity.arg("n") == expected
    assert len(net_.projections) == 55  # 64 pairs, 9 with probability 0
    total = sum(p.connectivity.arg("n") for p in net_.projections)
    assert 29.5e6 < total < 30.2e6
    w = dict((name, value) for name, value, _ in net_.constants)["w"]
    assert w == pytest.approx(87.81, abs=0.01)
    assert proj.weight.kind == "truncated_normal" and proj.weight.arg("mean") == pytest.approx(2 * w)
    inhibitory = net_.projection("L23I->L23E")
    assert inhibitory.weight.arg("mean") == pytest.approx(-4 * w) and inhibitory.weight.arg("max") == 0
    assert inhibitory.delay.arg("mean") == 0.75 and inhibitory.delay.arg("min") == 0.1
    assert [b.rate for b in net_.backgrounds] == pytest.approx(
        [k * 8e-3 for k in (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100)])


def test_fixed_total_number_truncated_normals_keep_their_sign_and_delays_their_floor():
    model = load_model(MICROCIRCUIT, {"scale": "0.01"})
    data = instantiate(model)
    for name, proj in data.projections.items():
        assert proj.size == proj.spec.connectivity.arg("n")
        assert proj.post.dtype == np.int32 and np.all(np.diff(proj.out_start) >= 0)  # ordered by pre, compact
        assert proj.delay.min() >= 0.1
        inhibitory = proj.spec.pre.endswith("I")
        assert np.all(proj.weight <= 0) if inhibitory else np.all(proj.weight >= 0)
    # in-degrees kept: L4E receives about as many synapses per neuron from L4E as at full scale
    prod = float(N_FULL[2] ** 2)
    full_indegree = math.log(1 - 0.0497) / math.log((prod - 1) / prod) / N_FULL[2]
    proj = data.projections["L4E->L4E"]
    assert proj.size / data.populations["L4E"].size == pytest.approx(full_indegree, rel=0.01)


def test_fixed_total_number_without_autapses(build):
    data = build("""
        import "std/lif.snn"
        network N {
            population a = LIF(5)
            connect a -> a fixed_total_number(1000, autapses = false) { weight = 0.1 }
        }""")
    proj = data.projections["a->a"]
    assert proj.size == 1000 and not np.any(proj.pre == proj.post)
    assert len(set(zip(proj.pre.tolist(), proj.post.tolist()))) == 20  # multapses: every pair is used


def test_the_poisson_generator_is_counter_based_and_poisson():
    bg = load_model(MICROCIRCUIT, {"scale": "0.01"}).network.backgrounds[6]  # L6E: 23.2 kHz
    lam = bg.rate * 0.1
    cdf = background.cdf_table(lam)
    key = background.key(55, bg)
    assert key == background.key(55, bg) != background.key(56, bg)
    draws = np.stack([background.counts(key, n, 2000, cdf) for n in range(200)])
    assert draws.mean() == pytest.approx(lam, rel=0.02) and draws.var() == pytest.approx(lam, rel=0.05)
    # the same (key, step, neuron) gives the same count, whatever else is drawn with it
    np.testing.assert_array_equal(background.counts(key, 17, 30, cdf), draws[17, :30])
    # pinned values: a change of the generator changes every target's input, so it must show here
    assert streams.mix(1) == 0x5692161D100B05E5
    assert draws[:2, :8].tolist() == PINNED


PINNED = [[2, 1, 0, 5, 0, 2, 1, 0], [0, 4, 3, 4, 2, 2, 4, 3]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The microcircuit at scale 0.002 (154 neurons, the full in-degrees) on the C target."""
    out = tmp_path_factory.mktemp("generated")
    return qgen.load(MICROCIRCUIT, overrides={"scale": "0.002"}, out=out)


def test_c_matches_the_reference_with_the_same_poisson_input(tiny):
    duration = 25.0
    result = tiny.simulator().run(duration=duration)
    reference = qgen.load(MICROCIRCUIT, "reference", overrides={"scale": "0.002"}).simulator().run(duration=duration)
    total = 0
    for pop in POPS:
        (t_c, i_c), (t_r, i_r) = result.spikes[pop].trial(0), reference.spikes[pop].trial(0)
        np.testing.assert_array_equal(i_c, i_r, err_msg=pop)
        np.testing.assert_allclose(t_c, t_r, rtol=0, atol=1e-12, err_msg=pop)
        np.testing.assert_allclose(result.final_state[pop], reference.final_state[pop], rtol=1e-9, atol=1e-9)
        total += len(t_c)
    assert total > 5  # the background drives the network


def test_rates_are_plausible_and_the_seed_changes_the_input(tiny):
    sim = tiny.simulator()
    result = sim.run(duration=200.0)
    rates = {pop: result.spikes[pop].counts.sum() / result.spikes[pop].counts.shape[1] / 0.2 for pop in POPS}
    assert all(0 <= r < 60 for r in rates.values()), rates
    assert 0.5 < np.mean(list(rates.values())) < 30, rates
    other = tiny.simulator(seed=7).run(duration=50.0)
    assert any(not np.array_equal(other.spikes[p].counts, result.spikes[p].counts) for p in POPS)


def test_background_sources_are_not_supported_on_the_jax_target():
    with pytest.raises(QgenError) as info:
        qgen.load(MICROCIRCUIT, "jax", overrides={"scale": "0.002"})
    assert info.value.code is Code.UNSUPPORTED and "not supported on target jax" in str(info.value)


GRID = "timing = grid\npopulation a = iaf_psc_exp(10)\n"
IAF = 'import "std/iaf_psc_exp.snn"\n'

CASES = [
    Case("background-needs-grid", net("population a = iaf_psc_exp(10)\n"
                                      "background a poisson(rate = 8 Hz, weight = 87.8 pA)", IAF),
         Code.UNSUPPORTED, "background a", "timing = grid"),
    Case("background-rate-without-unit", net(GRID + "background a poisson(rate = 8, weight = 87.8 pA)", IAF),
         Code.DIMENSION_MISMATCH, ("8,", 1), "Hz"),
    Case("background-weight-dimension", net(GRID + "background a poisson(rate = 8 Hz, weight = 87.8 mV)", IAF),
         Code.DIMENSION_MISMATCH, "87.8 mV"),
    Case("background-unknown-source", net(GRID + "background a gamma(rate = 8 Hz, weight = 1 pA)", IAF),
         Code.UNKNOWN_NAME, "gamma", "poisson"),
    Case("background-missing-weight", net(GRID + "background a poisson(rate = 8 Hz)", IAF),
         Code.BAD_ARGUMENT, "poisson(", "weight"),
    Case("background-negative-rate", net(GRID + "background a poisson(rate = -8 Hz, weight = 1 pA)", IAF),
         Code.BAD_VALUE, "-8 Hz"),
    Case("background-unknown-population", net(GRID + "background b poisson(rate = 8 Hz, weight = 1 pA)", IAF),
         Code.UNKNOWN_NAME, ("b poisson", 1)),
    Case("fixed-total-number-negative", net(GRID + "connect a -> a fixed_total_number(-3) { weight = 1 pA }", IAF),
         Code.BAD_VALUE, "-3"),
    Case("fixed-total-number-fraction", net(GRID + "connect a -> a fixed_total_number(2.5) { weight = 1 pA }", IAF),
         Code.BAD_VALUE, "2.5", "round"),
    Case("fixed-total-number-missing", net(GRID + "connect a -> a fixed_total_number { weight = 1 pA }", IAF),
         Code.BAD_ARGUMENT, "fixed_total_number"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_misuse_is_rejected_with_a_located_error(case, tmp_path):
    check_case(case, tmp_path)


def test_background_into_a_kind_whose_events_do_not_add(write_model):
    path = write_model("""
        neuron M {
            parameters { tau = 10 ms }
            state { v = 0; g = 1 }
            equations { dv/dt = -v / tau }
            threshold v >= 1
            reset { v = 0 }
            on_event(w) { g *= w }
        }
        network N {
            timing = grid
            population a = M(3)
            background a poisson(rate = 1 kHz, weight = 2)
        }""")
    with pytest.raises(QgenError) as info:
        qgen.load(path, "reference")
    assert info.value.code is Code.UNSUPPORTED and "not additive" in str(info.value)
