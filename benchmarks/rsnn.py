"""Benchmark 2 (DESIGN.md §8): the EventQueues paper's recurrent network, qgen C vs adseq 0.9.4 (JAX-CPU).

examples/rsnn.snn (100 LIF neurons, all-to-all, delays N(4 ms, 0.5 ms), dt 0.025 ms), 10,000
steps, simulation alone, µs per step per queue kind, side by side with adseq's
profile_recurrent_snn network measured in the same run. The two are the same network shape,
not the same model: adseq's LIF is a discrete-time one; both spike counts are printed, and the
synaptic events per step (spikes × out-degree / steps: qgen's 99 per spike are all delivered,
adseq's 100 per spike are sent, most of them to full queues). adseq's network is saturated and
moves ~65× more events per step than qgen's, so compare the µs per step with that in mind.
qgen's heap and sorted queues are per target neuron (99 incoming synapses), so they hold more
than adseq's per-synapse ones; every capacity here holds all in-flight events (no drops).
qgen's time is the whole ``sim.run``; the C kernel alone is printed too. qgen runs one thread.
``--target cuda`` runs qgen's CUDA target instead (on a GPU machine, where adseq runs on the GPU).

    python -m benchmarks.rsnn [--repeats 5] [--kinds ring,fifo,heap,sorted] [--json FILE]
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
from benchmarks.peers import adseq_rsnn

ROOT = Path(__file__).resolve().parent.parent
QUEUES = {"ring": "ring(capacity = 16)", "fifo": "fifo(capacity = 4)", "heap": "heap(capacity = 256)",
          "sorted": "sorted(capacity = 256)"}
STEPS = 10_000


def qgen_rsnn(kind: str, repeats: int, folder: Path, target: str = "c") -> dict:
    text = (ROOT / "examples" / "rsnn.snn").read_text().replace("ring(capacity = 16)", QUEUES[kind])
    path = folder / f"rsnn_{kind}.snn"
    path.write_text(text)
    start = time.perf_counter()
    sim = qgen.load(path, target, out=folder / "generated").simulator()
    build = time.perf_counter() - start
    kernel = kernel_timer(sim)
    duration = STEPS * sim.dt
    times, kernel_times = [], []
    for _ in range(repeats + 1):  # the first run warms caches and is not counted
        kernel.seconds = 0.0
        start = time.perf_counter()
        result = sim.run(None, duration)
        times.append(time.perf_counter() - start)
        kernel_times.append(kernel.seconds)
    spikes = int(result.spikes["rec"].total.sum())
    out_degree = sim.data.projections["rec->rec"].size / sim.data.populations["rec"].size
    return {"us_per_step": statistics.median(times[1:]) / STEPS * 1e6,
            "kernel_us_per_step": statistics.median(kernel_times[1:]) / STEPS * 1e6, "build_s": build,
            "runs_s": times[1:], "kernel_runs_s": kernel_times[1:], "spikes": spikes,
            "events_per_step": spikes * out_degree / STEPS, "dropped": int(result.drops["rec->rec"].sum()),
            "phases": phase_shares(sim)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--target", default="c", choices=("c", "cuda"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            ours = qgen_rsnn(kind, args.repeats, Path(tmp), args.target)
            peer = adseq_rsnn.run(kind, "forward", repeats=args.repeats)
            rows[kind] = {"qgen": ours, "adseq": peer}
            theirs = peer.get("us_per_step", float("nan"))
            if "spikes" in peer:
                peer["events_per_step"] = peer["spikes"] * 100 / STEPS  # 100 × 100 synapses, each its own queue
            print(f"{kind:7s} qgen {args.target} {ours['us_per_step']:8.2f} µs/step (kernel {ours['kernel_us_per_step']:6.2f}; "
                  f"{ours['spikes']} spikes, {ours['events_per_step']:.0f} events/step, {ours['dropped']} dropped)   "
                  f"adseq {theirs:8.2f} µs/step ({peer.get('spikes')} spikes, "
                  f"{peer.get('events_per_step', float('nan')):.0f} events/step, {peer.get('status')})"
                  f"   ratio {theirs / ours['us_per_step']:6.1f}×{format_shares(ours['phases'])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
