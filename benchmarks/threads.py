"""Threads sharing one trial on the C target (``simulator(threads=N)``): speed-up over one thread.

For each model, one network instance is simulated with 1, 2, ... threads, alternating, each run a
median of ``--repeats`` after one untimed warm-up run; the generated kernel (``qgen_run``) and the
whole ``sim.run`` are timed apart. The spike counts must be identical for every thread count (the
threads reproduce one thread's run bit for bit).

    python -m benchmarks.threads [--threads 1,2] [--repeats 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import qgen
from benchmarks._timing import kernel_timer

ROOT = Path(__file__).resolve().parent.parent
MODELS = [("brunel.snn", {"N": "10000"}, 500.0), ("microcircuit.snn", {"scale": "0.1"}, 200.0)]


def measure(name: str, overrides: dict, duration: float, threads: list[int], repeats: int, out: str) -> dict:
    model = qgen.load(ROOT / "examples" / name, overrides=overrides, out=out)
    sims = {}
    for count in threads:
        sim = model.simulator(threads=count)
        sims[count] = (sim, kernel_timer(sim))
        sim.run(None, duration)  # warm-up
    runs = {count: ([], []) for count in threads}
    spikes = {}
    for _ in range(repeats):
        for count in threads:  # alternating, so that drifts of the machine hit every count alike
            sim, kernel = sims[count]
            kernel.seconds = 0.0
            start = time.perf_counter()
            result = sim.run(None, duration)
            runs[count][0].append(time.perf_counter() - start)
            runs[count][1].append(kernel.seconds)
            spikes[count] = sum(int(r.total.sum()) for r in result.spikes.values())
    if len(set(spikes.values())) != 1:
        raise SystemExit(f"{name}: the spike counts differ between thread counts: {spikes}")
    rows = {count: {"run_s": statistics.median(runs[count][0]), "kernel_s": statistics.median(runs[count][1]),
                    "runs_s": runs[count][0], "kernel_runs_s": runs[count][1]} for count in threads}
    one = rows[threads[0]]
    for count, row in rows.items():
        row["speedup_run"] = one["run_s"] / row["run_s"]
        row["speedup_kernel"] = one["kernel_s"] / row["kernel_s"]
    return {"model": name, "overrides": overrides, "duration_ms": duration, "spikes": spikes[threads[0]],
            "threads": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides, duration in MODELS:
            row = measure(name, overrides, duration, threads, args.repeats, tmp)
            results.append(row)
            for count, r in row["threads"].items():
                print(f"{name:17s} {overrides}  {count} threads: kernel {r['kernel_s']:.3f} s ({r['speedup_kernel']:.2f}×), "
                      f"sim.run {r['run_s']:.3f} s ({r['speedup_run']:.2f}×) for {duration:g} ms", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
