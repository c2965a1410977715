"""Benchmark 1 (DESIGN.md §8): the EventQueues paper's queue micro-benchmark, qgen C vs adseq 0.9.4.

10,000 independent queues, Poisson arrivals with a mean interval of 400 steps, delay 80 steps,
40,000 steps; µs per step, per queue kind, both measured in this run on this machine.

Three qgen times are reported: the whole ``sim.run`` call (which also checks, sorts and binds the
~10⁶ input spikes in the Python runtime), the same with the inputs bound once beforehand
(``sim.bind``, as GeNN's spike source arrays, NEST's spike generators and Brian2's
SpikeGeneratorGroup are loaded once for many runs; the binding's own time is ``bind_s``), and the
generated kernel alone (``qgen_run``); adseq's
time is its jitted loop, which draws the arrivals inside (its ``none`` kind, the loop without a
queue, is measured too: the cost of the draws and of the scan). qgen runs one thread (batch 1);
XLA uses every core. ``--target cuda`` runs qgen's CUDA target instead (on a GPU machine, where
adseq's JAX runs on the GPU too: DESIGN.md §8's GPU benchmark, issue 6).

qgen runs the workload as a network: an input population (one neuron per queue) connected
one-to-one, with an 80-step delay, to a population of counters (no dynamics, ``c += w``), in
grid timing, fed the very arrivals adseq draws (adseq pops then enqueues at step t with due step
t + 80; in qgen that is an input spike pushed at the end of step t). Both sides must deliver the
same number of events. The paper's capacities: Ring unbounded, FIFO 4, BinaryHeap 7, Sorted 4.

    python -m benchmarks.queue_micro [--queues 10000] [--steps 40000] [--repeats 5] [--target c|cuda]
                                     [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import qgen
from benchmarks._timing import format_shares, kernel_timer, phase_shares
from benchmarks.peers import adseq_queue

CAPACITY = {"ring": 16, "fifo": 4, "heap": 7, "sorted": 4}  # a grid ring sums; its capacity is unused
MODEL = """
# {kind} queues for the micro-benchmark: one queue per input neuron (one_to_one)
neuron Counter {{
    state {{ c = 0.0 }}
    on_event(w) {{ c += w }}
}}
network Queues {{
    dt = 1 ms
    timing = grid
    population src = input({n})
    population dst = Counter({n})
    connect src -> dst one_to_one {{ weight = 1.0; delay = {delay} ms; queue = {kind}(capacity = {capacity}) }}
}}
"""


def qgen_queue(kind: str, events, n: int, steps: int, delay: int, repeats: int, folder: Path,
               target: str = "c") -> dict:
    path = folder / f"queues_{kind}.snn"
    path.write_text(MODEL.format(kind=kind, n=n, delay=delay, capacity=CAPACITY[kind]))
    start = time.perf_counter()
    sim = qgen.load(path, target, out=folder / "generated").simulator()
    build = time.perf_counter() - start
    kernel = kernel_timer(sim)
    step, queue = events
    inputs = {"src": ((step + 1).astype(float), queue)}
    times, kernel_times = [], []
    for _ in range(repeats + 1):  # the first run warms caches and is not counted
        kernel.seconds = 0.0
        start = time.perf_counter()
        result = sim.run(inputs, float(steps))
        times.append(time.perf_counter() - start)
        kernel_times.append(kernel.seconds)
    delivered = int(result.final_state["dst"][0, :, 0].sum())
    start = time.perf_counter()
    bound = sim.bind(inputs, float(steps))  # once, as a spike source array is loaded once for many runs
    bind = time.perf_counter() - start
    bound_times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        again = sim.run(bound, float(steps))
        bound_times.append(time.perf_counter() - start)
    assert int(again.final_state["dst"][0, :, 0].sum()) == delivered
    return {"us_per_step": statistics.median(times[1:]) / steps * 1e6,
            "bound_us_per_step": statistics.median(bound_times[1:]) / steps * 1e6, "bind_s": bind,
            "kernel_us_per_step": statistics.median(kernel_times[1:]) / steps * 1e6, "build_s": build,
            "delivered": delivered, "events_per_step": delivered / steps,
            "dropped": int(result.drops["src->dst"].sum()), "runs_s": times[1:], "kernel_runs_s": kernel_times[1:],
            "phases": phase_shares(sim)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--target", default="c", choices=("c", "cuda"))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--no-none", dest="none", action="store_false",
                        help="skip adseq's loop without a queue (the cost of its arrival draws)")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    params = {"n_queues": args.queues, "steps": args.steps}
    events = adseq_queue.arrival_events(**params)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            ours = qgen_queue(kind, events, args.queues, args.steps, 80, args.repeats, Path(tmp), args.target)
            peer = adseq_queue.run(kind, repeats=args.repeats, **params)
            rows[kind] = {"qgen": ours, "adseq": peer}
            theirs = peer.get("us_per_step", float("nan"))
            print(f"{kind:7s} qgen {args.target} {ours['us_per_step']:8.2f} µs/step (kernel {ours['kernel_us_per_step']:6.2f}, "
                  f"inputs bound once {ours['bound_us_per_step']:6.2f})   adseq {theirs:8.2f} µs/step   ratio "
                  f"{theirs / ours['us_per_step']:6.1f}× (kernel {theirs / ours['kernel_us_per_step']:6.1f}×, bound "
                  f"{theirs / ours['bound_us_per_step']:6.1f}×)   delivered {ours['delivered']} / {peer.get('delivered')}"
                  f"   qgen drops {ours['dropped']}{format_shares(ours['phases'])}", flush=True)
        if args.none:
            rows["none"] = {"adseq": adseq_queue.run("none", repeats=args.repeats, **params)}
            print(f"none    adseq's loop without a queue (the arrival draws and the scan): "
                  f"{rows['none']['adseq'].get('us_per_step', float('nan')):8.2f} µs/step", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
