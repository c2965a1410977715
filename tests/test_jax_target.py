"""The JAX target against the reference simulator, its pure function under jit and vmap, its API,
build cache and command line, and the golden file of a generated module.

Spike trains must be identical to the reference in float64 (same spikes of the same neurons, exact
times to 1e-9 ms) and close in float32; drop counts must be identical. XLA compiles one program per
model and static sizes, which takes seconds on a CPU, so the tests share compiled programs through
module-scoped fixtures: one network holding all four queue kinds per timing and precision, and the
examples at small sizes.

Update the golden file after an intended change with
``QGEN_UPDATE_GOLDEN=1 python -m pytest tests/test_jax_target.py -k golden``.
"""

from __future__ import annotations

import difflib
import json
import os
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import qgen  # noqa: E402
from qgen.errors import Code, QgenError, SimulationError  # noqa: E402
from qgen.reference import ReferenceSimulator  # noqa: E402
from tests.conftest import EXAMPLES, ROOT  # noqa: E402
from tests.test_c_target import compare, poisson  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"


def mixed(timing: str, seed: int, queues: list[str], precision: str) -> str:
    """Inputs -> LIF (refractory) -> LI readout, one queue kind per projection. float64: also an
    ALIF population and recurrent LIF connections. float32: neither (float32 rounding in a recurrent
    network diverges chaotically from the float64 reference; fewer kinds also compile faster)."""
    if precision == "float64":
        extra = f"""
    population ada = ALIF(6, tau_a = 50 ms, b = 0.3)
    connect inp -> ada all_to_all {{ weight ~ uniform(0.0, 2.5); delay = 1 ms; queue = {queues[1]} }}
    connect hid -> hid fixed_probability(0.3, autapses = false) {{
        weight ~ normal(0.0, 0.8); delay ~ uniform(0.3 ms, 2.5 ms); queue = {queues[3]}
    }}
    record ada.spikes, ada.a"""
    else:
        extra = f"""
    connect inp -> hid fixed_probability(0.4) as side {{
        weight ~ uniform(0.0, 1.5); delay ~ uniform(0.5 ms, 2 ms); queue = {queues[1]}
    }}
    connect inp -> out all_to_all {{ weight ~ normal(0.0, 0.5); delay ~ uniform(0.3 ms, 2.5 ms); queue = {queues[3]} }}"""
    return f"""
import "std/lif.snn"
import "std/alif.snn"
import "std/li.snn"
network Mixed {{
    dt = 0.1 ms
    timing = {timing}
    seed = {seed}
    population inp = input(8)
    population hid = LIF(20, tau_m = 12 ms, tau_s = 3 ms, t_ref = 1 ms, v ~ uniform(0.0, 0.8))
    population out = LI(3)
    connect inp -> hid fixed_probability(0.6) {{
        weight ~ uniform(0.5, 3.0); delay ~ uniform(0.2 ms, 3 ms); queue = {queues[0]}
    }}
    connect hid -> out all_to_all {{ weight ~ normal(0.0, 0.5); delay ~ uniform(0.5 ms, 1.5 ms); queue = {queues[2]} }}
    record hid.spikes, out.v{extra}
}}
"""


# float64: small capacities, so that every kind drops events (and the drop counts must match too);
# float32: capacities large enough for no drops.
SETUPS = {
    "float64": (["ring(capacity = 2)", "fifo(capacity = 1)", "heap(capacity = 3)", "sorted(capacity = 3)"], 150.0),
    "float32": (["ring(capacity = 64)", "fifo(capacity = 64)", "sorted(capacity = 64)", "heap(capacity = 64)"], 90.0),
}
DURATION = 80.0


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="module")
def mixed_runs(out, tmp_path_factory):
    """(timing, precision) -> (model, simulator, inputs, JAX result, reference result), each run once."""
    folder = tmp_path_factory.mktemp("models")
    cache = {}

    def get(timing: str, precision: str):
        if (timing, precision) not in cache:
            queues, rate = SETUPS[precision]
            seed = 5 + (timing == "grid")
            path = folder / f"mixed_{timing}_{precision}.snn"
            path.write_text(textwrap.dedent(mixed(timing, seed, queues, precision)))
            model = qgen.load(path, target="jax", precision=precision, out=out)
            batch = 2 if precision == "float64" else 1  # one trial is not vmapped: both forms are checked
            sim = model.simulator(batch=batch)
            inputs = poisson(seed, batch, timing == "grid", rate_hz=rate)
            result = sim.run(inputs, DURATION)
            reference = ReferenceSimulator(sim.data, batch=batch).run(inputs, DURATION)
            cache[timing, precision] = (model, sim, inputs, result, reference)
        return cache[timing, precision]
    return get


@pytest.fixture(scope="module")
def examples(out):
    """name -> (simulator, inputs, duration), built once: the examples at small sizes."""
    cache = {}
    setups = {"yinyang": (None, 30.0), "rsnn": ({"N": "40", "w_max": "0.6"}, 30.0),
              "brunel": ({"N": "300"}, 40.0)}

    def get(name: str):
        if name not in cache:
            overrides, duration = setups[name]
            batch = 2 if name == "yinyang" else 1
            sim = qgen.load(EXAMPLES / f"{name}.snn", target="jax", out=out, overrides=overrides).simulator(batch=batch)
            inputs = None
            if name == "yinyang":  # two trials; in the second, input 1 spikes twice at 1.5 ms
                inputs = {"inp": [(np.array([1.0, 2.5, 3.0, 4.2, 5.0]), np.arange(5)),
                                  (np.array([0.5, 1.5, 1.5, 6.0, 2.2, 3.3]), np.array([0, 1, 1, 2, 3, 4]))]}
            cache[name] = (sim, inputs, duration)
        return cache[name]
    return get


# ---------------------------------------------------------------- agreement with the reference


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("timing", ["exact", "grid"])
def test_every_queue_kind_matches_the_reference(mixed_runs, timing, precision):
    model, sim, inputs, result, reference = mixed_runs(timing, precision)
    assert {p.queue.kind for p in model.model.network.projections} == {"ring", "fifo", "heap", "sorted"}
    assert all(r.total.sum() > 50 for r in reference.spikes.values())
    if precision == "float64":  # every kind drops (a summing grid ring never does)
        for proj, drops in reference.drops.items():
            kind = model.model.network.projection(proj).queue.kind
            assert drops.sum() > 0 or (kind == "ring" and timing == "grid"), proj
    assert not any(lost.sum() for lost in [*result.lost_events.values(), *result.lost_spikes.values()])
    compare(result, reference, timing == "exact", precision)  # the C target's criteria


@pytest.mark.parametrize("name", ["yinyang", "rsnn", "brunel"])
def test_examples_match_the_reference(examples, name):
    sim, inputs, duration = examples(name)
    result = sim.run(inputs, duration)
    reference = ReferenceSimulator(sim.data, batch=sim.batch).run(inputs, duration)
    assert sum(int(r.total.sum()) for r in reference.spikes.values()) > 50
    compare(result, reference, name != "brunel", "float64")


ODD_KINDS = """
neuron QIF {
    parameters { tau = 10 ms; v_th = 5.0; v_reset = -1.0; I = 0.3; t_ref = 0.5 ms }
    state { v = -1.0 }
    equations { dv/dt = (v * v + I) / tau }
    threshold v >= v_th
    reset { v = v_reset }
    refractory t_ref
    on_event(w) { v += w }
}
neuron Halving {
    parameters { tau_m = 10 ms; tau_s = 3 ms; v_th = 1.0; v_reset = 0.0; t_ref = 0.5 ms }
    state { v = 0.0; i = 0.0 }
    equations {
        dv/dt = (i - v) / tau_m
        di/dt = -i / tau_s
    }
    threshold v >= v_th
    reset { v = v_reset }
    refractory t_ref
    on_event(w) { i = 0.5 * i + w }
}
neuron Counter {
    state { c = 0.0 }
    on_event(w) { c += w }
}
network Odd {
    dt = 0.05 ms
    timing = grid
    population inp = input(4)
    population q = QIF(3, v ~ uniform(-1.0, 0.5))
    population m = Halving(5)
    population k = Counter(4)
    connect inp -> q all_to_all { weight = 0.4; delay = 1 ms; queue = heap(capacity = 8) }
    connect inp -> m all_to_all { weight ~ uniform(1.0, 4.0); delay ~ uniform(0.5 ms, 2 ms); queue = ring(capacity = 8) }
    connect inp -> m fixed_probability(0.0) as nothing { weight = 1.0; delay = 1 ms; queue = sorted(capacity = 4) }
    connect inp -> k one_to_one { weight = 1.0; delay = 1 ms; queue = fifo(capacity = 4) }
    record q.spikes, q.v, m.spikes, m.i, k.c
}
"""


def test_non_linear_dynamics_non_additive_events_and_empty_projections(write_model, out):
    """Runge–Kutta on the grid, events applied one by one, a projection without synapses, a kind without
    parameters."""
    sim = qgen.load(write_model(ODD_KINDS), target="jax", out=out).simulator()
    gen = np.random.default_rng(1)
    inputs = {"inp": (np.round(gen.uniform(0, 50, 80), 1), gen.integers(0, 4, 80))}
    result, reference = sim.run(inputs, 50.0), ReferenceSimulator(sim.data).run(inputs, 50.0)
    assert reference.spikes["q"].total.sum() >= 5 and reference.spikes["m"].total.sum() >= 20
    assert reference.traces["k.c"][0, -1].sum() > 40  # the counters counted the inputs
    compare(result, reference, False, "float64")


COUNTER = """
neuron Counter {
    state { c = 0.0 }
    on_event(w) { c += w }
}
"""


def test_due_events_beyond_the_event_capacity_are_counted(write_model, out):
    """A target whose fifo lines (one per source) hold more due events in a step than its per-step
    event capacity keeps the first ones and counts the rest as lost."""
    path = write_model(COUNTER + """
network Fanin {
    dt = 1 ms
    timing = grid
    population src = input(12)
    population dst = Counter(3)
    connect src -> dst all_to_all { weight = 1.0; delay = 2 ms; queue = fifo(capacity = 2) }
}
""")
    sim = qgen.load(path, target="jax", out=out).simulator(event_capacity=10)
    # 12 spikes due in one step (2 beyond the capacity, for each target), 9 (more than the narrow
    # merge's 8) in another, 1 in a third
    times = np.concatenate([np.full(12, 3.5), np.full(9, 7.5), [12.5]])
    ids = np.concatenate([np.arange(12), np.arange(9), [4]])
    result = sim.run({"src": (times, ids)}, 20.0)
    assert result.lost_events["dst"].tolist() == [2 * 3]
    np.testing.assert_array_equal(result.final_state["dst"][0, :, 0], [10 + 9 + 1] * 3)


def test_heaps_of_a_large_population_work_on_the_targets_with_events(write_model, out):
    """Over 2 × ACTIVE_ROWS targets: steps where few targets push or pop (those rows alone are
    worked on) and bursts where many do (every row), dropping events, against the reference."""
    path = write_model(COUNTER + """
network Wide {
    dt = 1 ms
    timing = grid
    seed = 4
    population src = input(300)
    population dst = Counter(300)
    connect src -> dst one_to_one { weight ~ uniform(0.5, 1.5); delay ~ uniform(1 ms, 5 ms); queue = heap(capacity = 2) }
    record dst.c
}
""")
    sim = qgen.load(path, target="jax", out=out).simulator()
    gen = np.random.default_rng(2)
    quiet = (np.floor(gen.uniform(0, 40, 300)) + 0.5, gen.integers(0, 300, 300))  # ~8 per step
    burst = (np.repeat([12.5, 13.5, 14.5], 300), np.tile(np.arange(300), 3))  # every source, three steps running
    inputs = {"src": (np.concatenate([quiet[0], burst[0]]), np.concatenate([quiet[1], burst[1]]))}
    _drops_and_runs_as_the_reference(sim, inputs, 50.0, "src->dst", more_than=100)


@pytest.mark.parametrize("serial", [True, False], ids=["insert", "sort"])
def test_sorted_queues_insert_few_events_and_sort_bursts(write_model, out, serial, monkeypatch):
    """The sorted kind inserts a step's few events per target among the queued ones, lets the latest
    go from a full row, and sorts rows that receive more than NARROW events at once (inserts them
    all on XLA:CPU, SERIAL): quiet steps and bursts, both dropping events, against the reference
    (drops, deliveries, their order)."""
    path = write_model(COUNTER + """
network Burst {
    dt = 1 ms
    timing = exact
    seed = 6
    population src = input(16)
    population dst = Counter(3)
    connect src -> dst all_to_all { weight ~ uniform(0.5, 1.5); delay ~ uniform(1 ms, 12 ms); queue = sorted(capacity = 20) }
    record dst.c
}
""")
    sim = qgen.load(path, target="jax", out=out).simulator(event_capacity=64)
    gen = np.random.default_rng(3)
    quiet = (np.round(gen.uniform(0, 60, 40), 3), gen.integers(0, 16, 40))  # one or two per step
    # every source within one step: into a row with room (20.2), then into a full one (22.3, 41.7)
    burst = (np.round(np.repeat([20.2, 22.3, 41.7], 16) + gen.uniform(0, 0.5, 48), 3), np.tile(np.arange(16), 3))
    inputs = {"src": (np.concatenate([quiet[0], burst[0]]), np.concatenate([quiet[1], burst[1]]))}
    monkeypatch.setattr(sim.module, "SERIAL", serial)
    _drops_and_runs_as_the_reference(sim, inputs, 70.0, "src->dst", more_than=20, traced=True)


def _drops_and_runs_as_the_reference(sim, inputs, duration, projection, more_than, traced=False):
    """The run drops more than ``more_than`` events of ``projection``, as many as the reference does
    in every trial, and its outputs equal the reference's. ``traced``: the module's simulate traced
    afresh (its module-level switches are read when it is traced), not the program run() keeps."""
    if traced:
        from qgen.targets.jax import precision_scope

        steps = sim._steps(duration)
        encoded, sizes = sim.encode_inputs(inputs, steps)
        with precision_scope("float64"):
            outputs = jax.jit(sim.module.simulate, static_argnames=("config",))(
                sim._network, sim.params(), encoded, config=sim.config(steps, sizes))
        result = sim.result(jax.device_get(outputs), duration)
    else:
        result = sim.run(inputs, duration)
    reference = ReferenceSimulator(sim.data).run(inputs, duration)
    assert reference.drops[projection].sum() > more_than
    np.testing.assert_array_equal(result.drops[projection], reference.drops[projection])
    compare(result, reference, False, "float64")


def test_a_reset_above_threshold_is_an_error(write_model, out):
    path = write_model("""
import "std/lif.snn"
network R {
    population n = LIF(2, v_reset = 2.0)
    population inp = input(1)
    connect inp -> n all_to_all { weight = 50.0; delay = 1 ms }
}
""")
    with pytest.raises(SimulationError) as err:
        qgen.load(path, target="jax", out=out).simulator().run({"inp": (np.array([0.5]), np.array([0]))}, 10.0)
    assert err.value.code is Code.MODEL_RUNTIME and "above threshold" in str(err.value)


def test_strict_mode_turns_the_first_drop_into_an_error(mixed_runs):
    model, _, inputs, *_ = mixed_runs("exact", "float64")
    sim = model.simulator(batch=2, strict=True)  # the same compiled program: strict is decided on the host
    with pytest.raises(SimulationError) as err:
        sim.run(inputs, DURATION)
    assert err.value.code is Code.QUEUE_OVERFLOW and "capacity" in str(err.value)


# ---------------------------------------------------------------- the pure function


TINY = """
import "std/lif.snn"
import "std/li.snn"
network Tiny {
    dt = 0.1 ms
    population inp = input(3)
    population hid = LIF(5, t_ref = 1 ms)
    population out = LI(2)
    connect inp -> hid all_to_all { weight ~ uniform(2.0, 6.0); delay ~ uniform(0.5 ms, 2 ms); queue = heap(capacity = 8) }
    connect hid -> out all_to_all { weight ~ normal(0.0, 0.5); delay = 1 ms; queue = ring(capacity = 4) }
    record hid.spikes, out.v
}
"""


@pytest.fixture(scope="module")
def tiny(out, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.snn"
    path.write_text(TINY)
    sim = qgen.load(path, target="jax", out=out).simulator(batch=2)
    inputs = {"inp": [(np.array([0.5, 1.0, 2.0, 6.0, 6.5]), np.array([0, 1, 2, 0, 1])),
                      (np.array([1.5, 3.0, 3.0, 4.0]), np.array([2, 1, 0, 2]))]}
    return sim, inputs


def test_inputs_bound_once_run_as_the_spikes_do(tiny):
    sim, inputs = tiny
    expected = sim.run(inputs, 10.0)
    bound = sim.bind(inputs, 10.0)
    for _ in range(2):
        result = sim.run(bound, 10.0)
        for pop in expected.spikes:
            np.testing.assert_array_equal(result.spikes[pop].times, expected.spikes[pop].times)
    with pytest.raises(QgenError, match="bound for 100 steps, not 50"):
        sim.run(bound, 5.0)
    with pytest.raises(QgenError, match="another simulation"):
        qgen.load(EXAMPLES / "yinyang.snn", target="reference").simulator().run(bound, 10.0)


def test_the_forward_function_is_pure_under_jit_and_vmap(tiny):
    sim, inputs = tiny
    forward = sim.forward_fn(20.0, inputs)
    params, encoded = sim.params(), forward.inputs(inputs)
    base = params["weight"]["inp->hid"].copy()

    def with_weights(w):  # the network under other weights: a pure function of w
        return forward(dict(params, weight=dict(params["weight"], **{"inp->hid": w})), encoded)

    from qgen.targets.jax import CPU_COMPILER_OPTIONS  # compiles faster on CPU; any options work

    options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    with jax.enable_x64(True):
        both = jax.jit(jax.vmap(with_weights), compiler_options=options)(np.stack([base, 0.6 * base]))
    counts = []
    try:
        for k, scale in enumerate([1.0, 0.6]):
            member = forward.result(jax.tree_util.tree_map(lambda a: np.asarray(a)[k], both))
            sim.weights["inp->hid"][:] = scale * base
            expected = sim.run(inputs, 20.0)
            compare(member, expected, True, "float64")
            counts.append(member.spikes["hid"].total.sum())
    finally:
        sim.weights["inp->hid"][:] = base
    assert counts[0] > counts[1] > 0
    assert ReferenceSimulator(sim.data, batch=2).run(inputs, 20.0).spikes["hid"].total.sum() == counts[0]


def test_a_float64_build_asks_for_64_bit_jax(tiny):
    sim, inputs = tiny
    forward = sim.forward_fn(20.0, inputs)
    if jax.config.jax_enable_x64:
        pytest.skip("64-bit JAX is enabled globally")
    with pytest.raises(RuntimeError, match="enable 64-bit JAX"):
        forward(sim.params(), forward.inputs(inputs))


def test_importing_qgen_makes_xla_compile_small_loops_as_one_function():
    from qgen.runtime import xla_flags

    if jax.default_backend() != "cpu":
        pytest.skip("an XLA:CPU setting")
    assert xla_flags.in_effect()  # qgen was imported before this process compiled anything
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_backend_extra_options=a=1"}
    xla_flags.apply(environ)
    assert environ["XLA_FLAGS"] == (f"--xla_dump_to=/tmp/x --xla_backend_extra_options=a=1,"
                                    f"{xla_flags.OPTION}={xla_flags.THRESHOLD} --xla_cpu_use_fusion_emitters=false")
    unchanged = {"XLA_FLAGS": f"--xla_backend_extra_options={xla_flags.OPTION}=7 --xla_cpu_use_fusion_emitters=true",
                 "QGEN_XLA_FLAGS": "1"}
    xla_flags.apply(unchanged)
    assert unchanged["XLA_FLAGS"] == f"--xla_backend_extra_options={xla_flags.OPTION}=7 --xla_cpu_use_fusion_emitters=true"
    off = {"QGEN_XLA_FLAGS": "0"}
    xla_flags.apply(off)
    assert "XLA_FLAGS" not in off


# ---------------------------------------------------------------- the Python API


def test_weights_delays_and_parameters_are_writable(examples):
    sim, inputs, _ = examples("yinyang")  # the same sizes: no new compilation
    before = sim.run(inputs, 30.0).spikes["hid"].total.sum()
    saved = {"w": sim.weights["inp->hid"].copy(), "d": sim.delays["inp->hid"].copy()}
    try:
        sim.weights["inp->hid"][:] = 0.0  # in place
        assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0 < before
        sim.weights["inp->hid"] = np.full(600, 5.0)  # replaced, checked
        sim.parameters["hid"]["v_th"] = 1e9
        assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0
        sim.parameters["hid"]["v_th"] = 1.0
        sim.delays["inp->hid"] = np.full(600, 2.0)
        result = sim.run(inputs, 30.0)
        times, _ = result.spikes["hid"].trial(0)
        assert len(times) and times.min() > 3.0  # the first input of trial 0 arrives at 1 + 2 ms
        with pytest.raises(QgenError) as err:
            sim.weights["inp->hid"] = np.zeros(5)
        assert "has shape" in str(err.value)
        sim.delays["inp->hid"][3] = 0.01
        with pytest.raises(QgenError) as err:
            sim.run(inputs, 5.0)
        assert err.value.code is Code.BAD_DELAY
    finally:
        sim.weights["inp->hid"] = saved["w"]
        sim.delays["inp->hid"] = saved["d"]


def test_bad_inputs_and_options_are_rejected(examples, out):
    sim, _, _ = examples("yinyang")
    with pytest.raises(QgenError) as err:
        sim.run({"inp": (np.array([1.0]), np.array([5]))}, 10.0)
    assert err.value.code is Code.BAD_INPUT and "out of range" in str(err.value)
    model = qgen.load(EXAMPLES / "yinyang.snn", target="jax", out=out)
    with pytest.raises(QgenError):
        model.simulator(event_capacity=0)
    with pytest.raises(QgenError):
        qgen.load(EXAMPLES / "yinyang.snn", target="reference").simulator(event_capacity=4)  # a JAX option


# ---------------------------------------------------------------- build, cache, command line, golden file


def test_build_writes_a_module_and_manifest_and_caches_it(tmp_path):
    from qgen.targets import jax as target

    first = qgen.load(EXAMPLES / "brunel.snn", target="jax", out=tmp_path)
    folder = first.build.folder
    assert folder == tmp_path / "Brunel" / "jax" / "float64"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model_hash"] == first.model.hash and manifest["precision"] == "float64"
    assert [p["queue"] for p in manifest["plan"]["projections"]] == ["ring"] * 4
    stamp = (folder / "model.py").stat().st_mtime_ns
    again = qgen.load(EXAMPLES / "brunel.snn", target="jax", out=tmp_path)
    assert (folder / "model.py").stat().st_mtime_ns == stamp  # cached: not regenerated
    assert again.build.manifest["key"] == manifest["key"]
    other = qgen.load(EXAMPLES / "brunel.snn", target="jax", out=tmp_path, overrides={"N": "200"})
    assert other.build.manifest["key"] != manifest["key"]  # another IR, another build
    assert target.load_cached(first.model, "float32", tmp_path) is None


def test_command_line_builds_shows_and_runs(tmp_path, write_model, examples):
    from click.testing import CliRunner

    from qgen.cli import main

    path = write_model(TINY)
    runner = CliRunner()
    built = runner.invoke(main, ["build", str(path), "--target", "jax", "--out", str(tmp_path)])
    assert built.exit_code == 0, built.output
    assert "model.py" in built.output and (tmp_path / "Tiny" / "jax" / "float64" / "model.py").is_file()
    shown = runner.invoke(main, ["show", str(path), "--target", "jax", "--out", str(tmp_path)])
    assert shown.exit_code == 0 and "def simulate(" in shown.output and "_heap_push" in shown.output
    examples("brunel")  # the same model and sizes as below: the compiled program is shared
    ran = runner.invoke(main, ["run", str(EXAMPLES / "brunel.snn"), "--target", "jax", "--set", "N=300",
                               "--duration", "40ms", "--build-dir", str(tmp_path)])
    assert ran.exit_code == 0, ran.output
    assert "E " in ran.output or "│ E" in ran.output


def test_generated_module_matches_the_golden_file():
    from qgen import __version__
    from qgen.codegen.jax import generate
    from qgen.pipeline import compile_model

    source = generate(compile_model(EXAMPLES / "yinyang.snn"), "float64", __version__).source
    golden = GOLDEN / "yinyang_jax.py"
    if os.environ.get("QGEN_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(source)
    expected = golden.read_text()
    if source != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), source.splitlines(True),
                                            "tests/golden/yinyang_jax.py", "generated", n=2))
        pytest.fail("the generated JAX module changed; review the diff and, if intended, rerun with "
                    f"QGEN_UPDATE_GOLDEN=1:\n{diff[:6000]}")
