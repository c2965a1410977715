"""Issue 4, benchmark 7: the recurrent network, simulation plus the full reverse-mode gradient.

examples/rsnn.snn (100 LIF neurons, 9,900 synapses, delays N(4 ms, 0.5 ms), dt 0.025 ms, exact
timing), 10,000 steps: µs per step of the forward alone and of forward + backward (the gradient
of a loss on every spike time with respect to the 100 × 100 weights — and the delays, which qgen
gets in the same sweep), per queue kind, side by side with adseq 0.9.4's
``jax.value_and_grad`` of its ``profile_recurrent_snn`` network (Ring, FIFORing.sized(4),
BinaryHeap.sized(7), SortedArray.sized(4)) measured in the same run. Every measurement runs in
a fresh process; its peak resident memory is reported, and for qgen also the growth of the
resident memory during the gradient run (what the forward record and the backward add).

Memory sweeps (qgen, fifo): over the duration at a fixed rate (``--sweep duration``), and over
the rate at a fixed duration (``--sweep rate``: the refractory period sets the rate of this
self-sustained network). The memory must follow the spike count, not the number of steps.

    python -m benchmarks.rsnn_grad [--repeats 5] [--kinds ring,fifo,heap,sorted] [--sweep duration,rate]
                                   [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.peers import adseq_rsnn
from benchmarks.peers._common import current_rss_bytes, peak_rss_bytes, run_in_subprocess, worker_main

ROOT = Path(__file__).resolve().parent.parent
QUEUES = {"ring": "ring(capacity = 16)", "fifo": "fifo(capacity = 4)", "heap": "heap(capacity = 256)",
          "sorted": "sorted(capacity = 256)"}
STEPS = 10_000


def model_text(kind: str, t_ref_ms: float, spike_capacity: int) -> str:
    """rsnn.snn with the queue kind, the refractory period and only the spikes recorded (adseq's loss
    is a function of the spikes alone)."""
    text = (ROOT / "examples" / "rsnn.snn").read_text()
    for old, new in (("ring(capacity = 16)", QUEUES[kind]), ("t_ref = 2 ms", f"t_ref = {t_ref_ms} ms"),
                     ("record rec.spikes, rec.v", f"record rec.spikes(capacity = {spike_capacity})")):
        assert old in text, old
        text = text.replace(old, new)
    return text


def worker(kind: str, steps: int = STEPS, repeats: int = 5, t_ref_ms: float = 2.0, folder: str = "") -> dict:
    """Forward and forward + backward of qgen's C target in this process."""
    import numpy as np

    import qgen

    dt = 0.025
    capacity = int(steps * dt / t_ref_ms) + 8  # a neuron fires at most once per refractory period
    path = Path(folder) / f"rsnn_{kind}_{t_ref_ms}.snn"
    path.write_text(model_text(kind, t_ref_ms, capacity))
    sim = qgen.load(path, out=Path(folder) / "generated").simulator()
    duration = steps * dt
    forward, gradient = [], []
    baseline = current_rss_bytes()
    for _ in range(repeats + 1):  # the first of each is a warm-up
        start = time.perf_counter()
        result = sim.run(None, duration)
        forward.append(time.perf_counter() - start)
    for _ in range(repeats + 1):
        start = time.perf_counter()
        result = sim.run(None, duration, grad=True)
        cotangent = np.ones_like(result.spikes["rec"].times)  # L = the sum of every spike time
        grads = sim.backward({"rec.spikes": cotangent})
        gradient.append(time.perf_counter() - start)
    peak = peak_rss_bytes()
    g = grads.weights["rec->rec"]
    spikes = int(result.spikes["rec"].total.sum())
    return {"kind": kind, "steps": steps, "t_ref_ms": t_ref_ms, "spikes": spikes,
            "forward_us_per_step": statistics.median(forward[1:]) / steps * 1e6,
            "gradient_us_per_step": statistics.median(gradient[1:]) / steps * 1e6,
            "forward_runs_s": forward[1:], "gradient_runs_s": gradient[1:],
            "dropped": int(result.drops["rec->rec"].sum()), "grad_finite": bool(np.isfinite(g).all()),
            "peak_rss_bytes": peak, "rss_growth_bytes": peak - baseline}


def run(kind: str, **params) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        return run_in_subprocess("rsnn_grad", {"kind": kind, "folder": folder, **params}, package="benchmarks")


def mib(b) -> str:
    return f"{b / 2**20:8.1f}" if isinstance(b, (int, float)) else "     n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--sweep", default="duration,rate", help="memory sweeps to run ('' for none)")
    parser.add_argument("--adseq-repeats", type=int, default=3, help="adseq's gradient runs are slow")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows: dict = {"kinds": {}, "sweeps": {}}
    for kind in [k for k in args.kinds.split(",") if k]:
        ours = run(kind, repeats=args.repeats)
        fwd = adseq_rsnn.run(kind, "forward", repeats=args.adseq_repeats, activity=False)
        grad = adseq_rsnn.run(kind, "grad", repeats=args.adseq_repeats)
        rows["kinds"][kind] = {"qgen": ours, "adseq_forward": fwd, "adseq_grad": grad}
        if ours.get("status") != "ok":
            print(f"{kind:7s} qgen: {ours.get('status')}", flush=True)
            continue
        theirs = grad.get("us_per_step", float("nan"))
        print(f"{kind:7s} qgen forward {ours['forward_us_per_step']:8.2f}  forward+backward "
              f"{ours['gradient_us_per_step']:8.2f} µs/step (×{ours['gradient_us_per_step'] / ours['forward_us_per_step']:.2f}"
              f" the forward; peak RSS {mib(ours['peak_rss_bytes'])} MiB, growth {mib(ours['rss_growth_bytes'])} MiB)   "
              f"adseq forward {fwd.get('us_per_step', float('nan')):9.1f}  grad {theirs:9.1f} µs/step "
              f"(peak RSS {mib(grad.get('peak_rss_bytes'))} MiB; {grad.get('status')})   "
              f"ratio {theirs / ours['gradient_us_per_step']:7.1f}×", flush=True)
    sweeps = [s for s in args.sweep.split(",") if s]
    points = {"duration": [{"steps": s} for s in (5_000, 10_000, 20_000, 40_000)],
              "rate": [{"t_ref_ms": t} for t in (2.0, 4.5, 8.5, 16.5)]}
    for sweep in sweeps:
        rows["sweeps"][sweep] = []
        for point in points[sweep]:
            ours = run("fifo", repeats=1, **point)
            rows["sweeps"][sweep].append(ours)
            if ours.get("status") != "ok":
                print(f"sweep {sweep} {point}: {ours.get('status')}", flush=True)
                continue
            print(f"sweep {sweep:8s} steps {ours['steps']:6d}  t_ref {ours['t_ref_ms']:5.1f} ms  spikes "
                  f"{ours['spikes']:7d}  RSS growth {mib(ours['rss_growth_bytes'])} MiB  peak {mib(ours['peak_rss_bytes'])}"
                  f" MiB  forward+backward {ours['gradient_us_per_step']:7.2f} µs/step", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    if not worker_main(worker):
        main()
