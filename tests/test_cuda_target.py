"""The CUDA target against the reference simulator, and its Python API.

Every test runs on two backends:

- ``gpu``: the cubin built by nvcc, loaded with pycuda and run on an NVIDIA GPU. Skipped, with
  the reason, where pycuda or a GPU is missing; ``scripts/gpu_check.sh`` runs it on a GPU machine.
- ``emulated``: the same generated kernels compiled as C++ with g++ and run on the CPU behind a
  stand-in for pycuda's driver (tests/cuda_emulation.py): ``qgen_steps`` with EMULATED_THREADS
  threads per block and EMULATED_BLOCKS blocks per trial, ``qgen_backward`` with EMULATED_THREADS
  threads per trial, as fibers that switch where they wait, so the work shared between threads and
  blocks and the barriers between phases are exercised. It
  computes what the GPU computes, up to the order of atomic additions, and checks the runtime's
  host side (the state struct, uploads, launches, downloads, errors) on every CI run, without a GPU.

Spike trains must be identical to the reference's in float64 (exact-timing spike times to
1e-9 ms) and close in float32; drop counts identical.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import qgen
import qgen.targets.cuda as cuda_target
from qgen.errors import Code, QgenError, SimulationError
from qgen.reference import ReferenceSimulator
from tests.conftest import EXAMPLES
from tests.cuda_emulation import EmulatedDriver
from tests.test_c_target import KINDS, QIF_INPUTS, QIF_NETWORK, compare, network, poisson

BACKENDS = ("gpu", "emulated")
EMULATED_THREADS = 8  # qgen_steps's threads per block in the emulation
EMULATED_BLOCKS = 3  # and the most blocks per trial (a block per 8 neurons: 3 for every network here)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    if request.param == "gpu":
        try:
            cuda_target.check_runtime()
        except QgenError as err:
            pytest.skip(f"no GPU to run CUDA kernels on: {err.message}")
        return "gpu"
    if shutil.which("g++") is None:
        pytest.skip("the emulated backend compiles the kernels with g++, which is not installed")
    monkeypatch.setattr(cuda_target, "_driver", lambda: EmulatedDriver)
    monkeypatch.setattr(cuda_target, "_MODULES", {})
    monkeypatch.setattr(cuda_target, "nvcc_version", lambda: "emulated (no nvcc)")
    monkeypatch.setattr(cuda_target, "compile_source", lambda source, cubin: Path(cubin).write_bytes(b""))
    monkeypatch.setattr(cuda_target, "FUSED_THREADS", EMULATED_THREADS)
    monkeypatch.setattr(cuda_target, "BACKWARD_THREADS", EMULATED_THREADS)
    monkeypatch.setattr(cuda_target, "_resident_blocks", lambda cuda, kernel: EMULATED_BLOCKS * 2)  # batch 2
    return "emulated"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("generated")


def load(path, backend: str, out: Path, **options):
    """qgen.load for the CUDA target, each backend in its own build folder."""
    return qgen.load(path, "cuda", out=out / backend, **options)


# ---------------------------------------------------------------- against the reference


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_cuda_matches_the_reference(backend, write_model, out, queue, timing):
    seed = KINDS.index(queue) + 10 * (timing == "grid")
    path = write_model(network(queue, 256, timing, seed), f"random_{queue}_{timing}.snn")
    sim = load(path, backend, out).simulator(batch=2)
    inputs = poisson(seed, 2, timing == "grid")
    result = sim.run(inputs, 80.0)
    reference = ReferenceSimulator(sim.data, batch=2).run(inputs, 80.0)
    assert reference.spikes["hid"].total.sum() > 40  # the network does something
    compare(result, reference, timing == "exact", "float64")


def run_small_queues(backend, write_model, out, queue, timing, seed, batch, **options):
    """A network whose queues are too small (they drop), on the CUDA target and on the reference."""
    capacity = {"ring": 1, "fifo": 1, "heap": 2, "sorted": 2}[queue]
    path = write_model(network(queue, capacity, timing, seed), f"small_{queue}_{timing}.snn")
    sim = load(path, backend, out).simulator(batch=batch, **options)
    inputs = poisson(seed, batch, timing == "grid", rate_hz=200.0)
    return sim.run(inputs, 60.0), ReferenceSimulator(sim.data, batch=batch).run(inputs, 60.0)


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_cuda_drops_like_the_reference(backend, write_model, out, queue, timing):
    # a launch per kernel and step (else: qgen_steps)
    result, reference = run_small_queues(backend, write_model, out, queue, timing, 3 + KINDS.index(queue), 1,
                                         fused=False)
    if not (queue == "ring" and timing == "grid"):  # a summing grid ring never drops
        assert sum(int(d.sum()) for d in reference.drops.values()) > 0
    compare(result, reference, timing == "exact", "float64")


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_several_blocks_per_trial_meet_at_barriers(backend, write_model, out, queue, timing):
    result, reference = run_small_queues(backend, write_model, out, queue, timing, 5 + KINDS.index(queue), 2,
                                         fused=True, blocks=3)
    compare(result, reference, timing == "exact", "float64")


@pytest.mark.parametrize("name", ["rsnn.snn", "brunel.snn", "yinyang.snn", "microcircuit.snn"])
def test_examples_match_the_reference(backend, out, name):
    overrides = {"brunel.snn": {"N": "300"}, "microcircuit.snn": {"scale": "0.002"}}.get(name)
    sim = load(EXAMPLES / name, backend, out, overrides=overrides).simulator(batch=2)
    inputs = None
    if name == "yinyang.snn":
        gen = np.random.default_rng(1)
        inputs = {"inp": [(gen.uniform(0, 10, 5), np.arange(5)) for _ in range(2)]}
    duration = 15.0 if name == "rsnn.snn" else 40.0  # rsnn: the drive, then its first waves (a slow reference)
    result = sim.run(inputs, duration)
    reference = ReferenceSimulator(sim.data, batch=2).run(inputs, duration)
    assert sum(int(r.total.sum()) for r in reference.spikes.values()) > 20
    compare(result, reference, name in ("rsnn.snn", "yinyang.snn"), "float64")


@pytest.mark.parametrize("queue", ["heap", "fifo"])
def test_float32_is_close_to_the_reference(backend, write_model, out, queue):
    path = write_model(network(queue, 256, "exact", 2, recurrent=False), f"single_{queue}.snn")
    sim = load(path, backend, out, precision="float32").simulator(batch=2)
    inputs = poisson(2, 2, False)
    result, reference = sim.run(inputs, 80.0), ReferenceSimulator(sim.data, batch=2).run(inputs, 80.0)
    compare(result, reference, True, "float32")


def test_nonlinear_grid_dynamics(backend, write_model, out):
    path = write_model(QIF_NETWORK, "qif.snn")
    sim = load(path, backend, out).simulator()
    result, reference = sim.run(QIF_INPUTS, 100.0), ReferenceSimulator(sim.data).run(QIF_INPUTS, 100.0)
    assert reference.spikes["q"].total.sum() >= 6
    compare(result, reference, False, "float64")


def test_drives_switch_parameters_between_segments(backend, out):
    """rsnn's drive sets I_e for its first 2 ms: two segments, the device state kept across them."""
    sim = load(EXAMPLES / "rsnn.snn", backend, out).simulator()
    result, reference = sim.run(None, 10.0, progress=lambda done, total: None), \
        ReferenceSimulator(sim.data).run(None, 10.0)
    assert reference.spikes["rec"].total.sum() > 0
    compare(result, reference, True, "float64")


# ---------------------------------------------------------------- the Python API


def test_weights_delays_and_parameters_are_the_arrays_of_the_next_run(backend, out):
    sim = load(EXAMPLES / "yinyang.snn", backend, out).simulator()
    inputs = {"inp": (np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.arange(5))}
    before = sim.run(inputs, 30.0).spikes["hid"].total.sum()
    sim.weights["inp->hid"][:] = 0.0  # in place
    assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0 < before
    sim.weights["inp->hid"] = np.full(600, 5.0)
    sim.parameters["hid"]["v_th"] = 1e9
    assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0
    sim.parameters["hid"]["v_th"] = 1.0
    sim.delays["inp->hid"] = np.full(600, 2.0)
    times, _ = sim.run(inputs, 30.0).spikes["hid"].trial(0)
    assert len(times) and times.min() > 3.0  # the first input arrives at 1 + 2 ms


def host_to_device_copies(sim, monkeypatch) -> list:
    """The host arrays that ``sim``'s runs copy to the device from now on, in order."""
    device, copied = sim._state.device, []
    htod = device.cuda.memcpy_htod
    monkeypatch.setattr(device, "cuda", type("Counting", (), {
        "__getattr__": lambda self, name: getattr(cuda_target._driver(), name),
        "memcpy_htod": staticmethod(lambda dest, src: copied.append(src) or htod(dest, src))})())
    return copied


def test_unchanged_network_arrays_are_not_copied_again(backend, out, monkeypatch):
    sim = load(EXAMPLES / "yinyang.snn", backend, out).simulator()
    inputs = {"inp": (np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.arange(5))}
    weights = sim.weights["inp->hid"]
    first = sim.run(inputs, 30.0).spikes["hid"].total.sum()
    copied = host_to_device_copies(sim, monkeypatch)
    assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == first
    assert not any(src is weights or src is sim._arrays["prj0_inp__hid_post"] for src in copied)
    with pytest.raises(ValueError, match="read-only"):  # a reference from before the run: loud, not missed
        weights[:] = 0.0
    sim.weights["inp->hid"][:] = 0.0  # asked for again: writeable, copied at the next run
    assert sim.run(inputs, 30.0).spikes["hid"].total.sum() == 0 < first
    assert any(src is weights for src in copied)


def test_bound_inputs_are_not_copied_again(backend, write_model, out, monkeypatch):
    path = write_model(network("sorted", 2, "grid", 6), "bound.snn")
    sim = load(path, backend, out).simulator(batch=2)
    inputs = poisson(6, 2, True, rate_hz=200.0)
    expected = sim.run(inputs, 50.0)
    bound = sim.bind(inputs, 50.0)
    copied = host_to_device_copies(sim, monkeypatch)
    # bound, bound again (none of its arrays copied), the spikes (theirs copied), bound (copied again)
    for given, copies in ((bound, len(bound.arrays)), (bound, 0), (inputs, 0), (bound, len(bound.arrays))):
        copied.clear()
        compare(sim.run(given, 50.0), expected, False, "float64")
        assert sum(any(src is a for a in bound.arrays.values()) for src in copied) == copies
        assert given is bound or any(src.size == bound.arrays["pop0_inp_in_time"].size for src in copied)


def test_a_window_of_steps_follows_the_delays_of_each_run(backend, write_model, out):
    # every queue a ring: qgen_steps takes as many steps per phase as the shortest delay allows,
    # computed at each run from the delays as they are then
    path = write_model(network("ring", 16, "grid", 4), "window.snn")
    sim = load(path, backend, out).simulator()
    inputs = poisson(4, 1, True)
    for shortest, window in ((None, 2), (0.1, 1), (0.6, 6)):  # the network's shortest delay is 0.22 ms
        if shortest is not None:
            for name in sim.delays:
                sim.delays[name] = sim.delays[name] - sim.delays[name].min() + shortest
        result = sim.run(inputs, 40.0)
        assert sim._state.W == window
        compare(result, ReferenceSimulator(sim.data).run(inputs, 40.0), False, "float64")


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_windows_of_several_steps_drop_as_step_by_step(backend, write_model, out, queue, timing):
    # Queues too small, delays of at least 0.8 ms: windows of 7 (exact) or 8 (grid) steps, whose pushes come
    # after the window's pops; a push must still see the events due in the window's later steps.
    capacity = {"ring": 1, "fifo": 1, "heap": 2, "sorted": 2}[queue]
    seed = 20 + KINDS.index(queue)
    path = write_model(network(queue, capacity, timing, seed), f"windows_{queue}_{timing}.snn")
    sim = load(path, backend, out).simulator(batch=2)
    for name in sim.delays:
        sim.delays[name] = sim.delays[name] - sim.delays[name].min() + 0.8
    inputs = poisson(seed, 2, timing == "grid", rate_hz=200.0)
    result = sim.run(inputs, 60.0)
    assert sim._state.W == (7 if timing == "exact" else 8)
    reference = ReferenceSimulator(sim.data, batch=2).run(inputs, 60.0)
    if not (queue == "ring" and timing == "grid"):  # a summing grid ring never drops
        assert sum(int(d.sum()) for d in reference.drops.values()) > 0
    compare(result, reference, timing == "exact", "float64")


def inputs_into_lif(timing: str, seed: int, inputs: int, neurons: int, *connections: str) -> str:
    """Input spikes into LIF neurons (hid, its spikes recorded) through the given connect statements."""
    lines = "\n    ".join(connections)
    return f"""
import "std/lif.snn"
network Lif {{
    dt = 0.1 ms
    timing = {timing}
    seed = {seed}
    population inp = input({inputs})
    population hid = LIF({neurons}, tau_m = 10 ms, tau_s = 2 ms, t_ref = 1 ms)
    {lines}
    record hid.spikes
}}
"""


def test_fifo_sources_spiking_in_the_last_step_of_a_window(backend, write_model, out):
    # the queue micro-benchmark's shape: delay 80 steps, so windows of 64 steps (from step -1); a spike in a
    # window's last step (bit 63 of the window's steps) once made a shift by 64, undefined, which on the CPU
    # pushed it twice
    path = write_model("""
neuron Counter {
    state { c = 0.0 }
    on_event(w) { c += w }
}
network Window {
    dt = 1 ms
    timing = grid
    population src = input(3)
    population dst = Counter(3)
    connect src -> dst one_to_one { weight = 1.0; delay = 80 ms; queue = fifo(capacity = 4) }
}
""", "last_step.snn")
    pushed = np.array([62, 126, 50, 62, 63, 190])  # the steps at whose end the spikes are pushed
    inputs = {"src": ((pushed + 1).astype(float), np.array([0, 0, 1, 1, 2, 2]))}
    sim = load(path, backend, out).simulator()
    result = sim.run(inputs, 300.0)
    assert sim._state.W == 64
    expected = ReferenceSimulator(sim.data).run(inputs, 300.0).final_state["dst"][0, :, 0]
    np.testing.assert_array_equal(expected, [2, 2, 2])
    np.testing.assert_array_equal(result.final_state["dst"][0, :, 0], expected)


@pytest.mark.parametrize("timing", ["exact", "grid"])
def test_fifo_targets_with_more_lines_than_one_scan_takes(backend, write_model, out, timing):
    # a target's fifo lines are scanned 64 at a time: 150 lines, 2 slots each (they overflow), with drops
    path = write_model(inputs_into_lif(timing, 3, 150, 3, "connect inp -> hid all_to_all { weight ~ uniform(0.0, 0.2); "
                                       "delay ~ uniform(0.5 ms, 4 ms); queue = fifo(capacity = 2) }"), f"wide_{timing}.snn")
    inputs = poisson(7, 2, timing == "grid", n=150, rate_hz=300.0, duration=40.0)
    sim = load(path, backend, out).simulator(batch=2)
    result, reference = sim.run(inputs, 40.0), ReferenceSimulator(sim.data, batch=2).run(inputs, 40.0)
    assert reference.spikes["hid"].total.sum() > 10 and reference.drops["inp->hid"].sum() > 0
    compare(result, reference, timing == "exact", "float64")


@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_sources_with_few_synapses_are_pushed_a_thread_per_spike(backend, write_model, out, queue, timing):
    # one_to_one (the queue micro-benchmark's shape) and a sparse ring: at most a warp of synapses per source,
    # so qgen_push_pre takes a thread per spike; small queues drop
    queued = f"queue = {queue}(capacity = {({'ring': 1, 'fifo': 1, 'heap': 2, 'sorted': 2}[queue])})"
    path = write_model(inputs_into_lif(
        timing, 4, 40, 40,
        f"connect inp -> hid one_to_one {{ weight ~ uniform(0.5, 2.5); delay ~ uniform(0.5 ms, 3 ms); {queued} }}",
        f"connect hid -> hid fixed_probability(0.2) {{ weight ~ normal(0.0, 0.5); delay ~ uniform(0.5 ms, 2 ms); {queued} }}"),
        f"one_to_one_{queue}_{timing}.snn")
    model = load(path, backend, out)
    assert model.build.manifest["kernels"]["spike"] == "thread"
    inputs = poisson(8, 2, timing == "grid", n=40, rate_hz=400.0, duration=40.0)
    sim = model.simulator(batch=2)
    result, reference = sim.run(inputs, 40.0), ReferenceSimulator(sim.data, batch=2).run(inputs, 40.0)
    assert reference.spikes["hid"].total.sum() > 20
    if not (queue == "ring" and timing == "grid"):  # a summing grid ring never drops
        assert sum(int(d.sum()) for d in reference.drops.values()) > 0
    compare(result, reference, timing == "exact", "float64")


def test_strict_overflow_and_runtime_errors_become_exceptions(backend, write_model, out):
    path = write_model(network("heap", 1, "exact", 5), "strict.snn")
    sim = load(path, backend, out).simulator(strict=True)
    with pytest.raises(SimulationError) as err:
        sim.run(poisson(5, 1, False, rate_hz=300.0), 40.0)
    assert err.value.code is Code.QUEUE_OVERFLOW and "capacity 1" in str(err.value)

    path = write_model("""
import "std/lif.snn"
network R {
    population n = LIF(2, v_reset = 2.0)
    population inp = input(1)
    connect inp -> n all_to_all { weight = 50.0; delay = 1 ms }
}
""", "reset.snn")
    with pytest.raises(SimulationError) as err:
        load(path, backend, out).simulator().run({"inp": (np.array([0.5]), np.array([0]))}, 10.0)
    assert err.value.code is Code.MODEL_RUNTIME and "above threshold" in str(err.value)


def test_a_full_spike_list_is_an_error_with_a_hint(backend, write_model, out):
    path = write_model("""
neuron Jump {
    parameters { tau = 10 ms; v_th = 1.0; v_reset = 0.0 }
    state { v = 0.0 }
    equations { dv/dt = -v / tau }
    threshold v >= v_th
    reset { v = v_reset }
    on_event(w) { v += w }
}
network F {
    population inp = input(1)
    population n = Jump(4)
    connect inp -> n all_to_all { weight = 3.0; delay = 0.5 ms }
    connect n -> n all_to_all { weight = 0.0; delay = 1 ms }
    record n.spikes
}
""", "burst.snn")
    # no refractory period: each of ten simultaneous events makes each neuron spike (ten spikes in one step)
    inputs = {"inp": (np.full(10, 1.05), np.zeros(10, np.int64))}
    sim = load(path, backend, out).simulator(spikes_per_step=2)
    with pytest.raises(SimulationError) as err:
        sim.run(inputs, 5.0)
    assert "spikes_per_step" in str(err.value)
    result = load(path, backend, out).simulator(spikes_per_step=16).run(inputs, 5.0)
    reference = ReferenceSimulator(sim.data).run(inputs, 5.0)
    compare(result, reference, True, "float64")


@pytest.mark.parametrize("queue", ["heap", "sorted"])
def test_a_burst_that_overfills_a_target_s_staging_row_is_an_error(backend, write_model, out, queue):
    # One neuron spikes three times in one step while the spike list has room: its one-to-one target's
    # staging row holds spikes_per_step events per incoming synapse and step of a window, and overflows at
    # 2 (a launch per step: windows of one step).
    path = write_model(f"""
neuron Jump {{
    parameters {{ tau = 10 ms; v_th = 1.0; v_reset = 0.0 }}
    state {{ v = 0.0 }}
    equations {{ dv/dt = -v / tau }}
    threshold v >= v_th
    reset {{ v = v_reset }}
    on_event(w) {{ v += w }}
}}
network G {{
    population inp = input(4)
    population n = Jump(4)
    population m = Jump(4)
    connect inp -> n one_to_one {{ weight = 3.0; delay = 0.5 ms }}
    connect n -> m one_to_one {{ weight = 0.5; delay = 1 ms; queue = {queue}(capacity = 8) }}
    record m.spikes
}}
""", f"staging_{queue}.snn")
    inputs = {"inp": (np.full(3, 1.05), np.zeros(3, np.int64))}
    with pytest.raises(SimulationError) as err:
        load(path, backend, out).simulator(spikes_per_step=2, fused=False).run(inputs, 5.0)
    assert "spikes_per_step" in str(err.value)
    sim = load(path, backend, out).simulator(spikes_per_step=4)
    result, reference = sim.run(inputs, 5.0), ReferenceSimulator(sim.data).run(inputs, 5.0)
    assert reference.spikes["m"].total.sum() >= 1
    compare(result, reference, True, "float64")


def test_the_fused_kernel_counts_the_cycles_of_its_phases(backend, write_model, out):
    path = write_model(network("heap", 8, "grid", 3), "phases.snn")  # inputs, and a staged queue: every phase
    inputs = poisson(3, 2, True)
    sim = load(path, backend, out).simulator(batch=2, fused=True)
    sim.run(inputs, 20.0)
    cycles = sim.phase_cycles
    assert list(cycles) == ["update", "inputs", "rank", "push", "pull"]
    assert all(c.shape == (2,) and (c > 0).all() for c in cycles.values())
    sim = load(path, backend, out).simulator(batch=2, fused=False)  # a launch per kernel and step: no phases
    sim.run(inputs, 20.0)
    assert all((c == 0).all() for c in sim.phase_cycles.values())


def test_launch_options_are_checked(backend, write_model, out):
    path = write_model(network("heap", 8, "grid", 1), "options.snn")
    model = load(path, backend, out)
    for options in ({"fused": "yes"}, {"blocks": 0}, {"blocks": 2.5}):
        with pytest.raises(QgenError) as err:
            model.simulator(**options)
        assert err.value.code == Code.BAD_OPTION
    with pytest.raises(QgenError) as err:  # more blocks than the GPU runs at once would never meet
        model.simulator(blocks=10**6)
    assert "at most" in err.value.message and "blocks" in err.value.hint
