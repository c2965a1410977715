"""Benchmark 3 (DESIGN.md §8): the Brunel network of examples/brunel.snn, qgen C vs NEST and Brian2.

Grid timing, one thread each, the same network (iaf_psc_exp, 80 % / 20 % E/I, in-degree 10 %,
delays uniform in [0.5, 3] ms, DC drive) and the same simulated time: simulated seconds per wall
second, synaptic events per second, set-up time and memory per synapse, for several sizes.

    python -m benchmarks.brunel [--sizes 2500,5000,10000,20000] [--duration 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.peers import brian2_brunel, nest_brunel

ROOT = Path(__file__).resolve().parent.parent


def qgen_worker(N: int, duration: float, repeats: int, out: str) -> dict:
    """Run in a fresh process (OMP_NUM_THREADS=1): build, instantiate, simulate ``repeats`` times."""
    import resource

    import numpy as np

    import qgen

    start = time.perf_counter()
    model = qgen.load(ROOT / "examples" / "brunel.snn", overrides={"N": str(N)}, out=out)
    build = time.perf_counter() - start
    start = time.perf_counter()
    sim = model.simulator()
    setup = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = sim.run(None, duration)
        runs.append(time.perf_counter() - start)
    spikes = {pop: int(rec.total.sum()) for pop, rec in result.spikes.items()}
    out_degree = {name: np.bincount(p.pre, minlength=sim.data.populations[p.spec.pre].size)
                  for name, p in sim.data.projections.items()}
    events = 0
    for name, proj in sim.data.projections.items():
        times, ids = result.spikes[proj.spec.pre].trial(0)
        events += int(out_degree[name][ids].sum())
    synapses = sum(p.size for p in sim.data.projections.values())
    network_bytes = sum(a.nbytes for name, a in sim._arrays.items() if sim._fields[name].lifetime == "network")
    queue_bytes = sum(a.nbytes for name, a in sim._arrays.items() if "_ring_" in name)
    sim_s = statistics.median(runs)
    T = duration / 1000
    return {"N": N, "build_s": build, "setup_s": setup, "sim_s": sim_s, "runs_s": runs,
            "sim_seconds_per_wall_second": T / sim_s, "synaptic_events": events,
            "synaptic_events_per_s": events / sim_s, "spikes": spikes,
            "rate_E_hz": spikes["E"] / sim.data.populations["E"].size / T,
            "rate_I_hz": spikes["I"] / sim.data.populations["I"].size / T, "n_synapses": synapses,
            "bytes_per_synapse": network_bytes / synapses, "queue_bytes": queue_bytes,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def qgen_run(N: int, duration: float, repeats: int, out: str) -> dict:
    code = (f"import json; from benchmarks.brunel import qgen_worker; "
            f"print(json.dumps(qgen_worker({N}, {duration}, {repeats}, {out!r})))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode:
        return {"status": f"failed: {proc.stderr[-2000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2500,5000,10000,20000")
    parser.add_argument("--duration", type=float, default=1000.0, help="simulated ms")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for N in (int(n) for n in args.sizes.split(",")):
            ours = qgen_run(N, args.duration, args.repeats, tmp)
            nest = nest_brunel.run(N, args.duration, repeats=args.repeats)
            brian = brian2_brunel.run(N, args.duration, repeats=args.repeats)
            rows[N] = {"qgen": ours, "nest": nest, "brian2": brian}
            speed = {k: v.get("sim_seconds_per_wall_second", float("nan")) for k, v in rows[N].items()}
            print(f"N = {N:6d}  sim s / wall s: qgen {speed['qgen']:8.2f}  NEST {speed['nest']:8.2f}  "
                  f"Brian2 {speed['brian2']:8.2f}   qgen/NEST {speed['qgen'] / speed['nest']:5.1f}×  "
                  f"qgen/Brian2 {speed['qgen'] / speed['brian2']:5.1f}×   rates E "
                  f"{ours.get('rate_E_hz', float('nan')):.1f} / {nest.get('rate_E_hz', float('nan')):.1f} / "
                  f"{brian.get('rate_E_hz', float('nan')):.1f} Hz", flush=True)
            if args.json:  # after each size: a run stopped later keeps the sizes done
                args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
