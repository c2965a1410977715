"""Benchmark 2 (DESIGN.md §8): the EventQueues paper's recurrent network, qgen C vs adseq 0.9.4 (JAX-CPU).

examples/rsnn.snn (100 LIF neurons, all-to-all, delays N(4 ms, 0.5 ms), dt 0.025 ms), 10,000
steps, simulation alone, µs per step per queue kind, side by side with adseq's
profile_recurrent_snn network measured in the same run. The two are the same network shape,
not the same model: adseq's LIF is a discrete-time one; both spike counts are printed.
qgen's heap and sorted queues are per target neuron (99 incoming synapses), so they hold more
than adseq's per-synapse ones; every capacity here holds all in-flight events (no drops).

    python -m benchmarks.rsnn [--repeats 5] [--kinds ring,fifo,heap,sorted]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import qgen
from benchmarks.peers import adseq_rsnn

ROOT = Path(__file__).resolve().parent.parent
QUEUES = {"ring": "ring(capacity = 16)", "fifo": "fifo(capacity = 4)", "heap": "heap(capacity = 256)",
          "sorted": "sorted(capacity = 256)"}
STEPS = 10_000


def qgen_rsnn(kind: str, repeats: int, folder: Path) -> dict:
    text = (ROOT / "examples" / "rsnn.snn").read_text().replace("ring(capacity = 16)", QUEUES[kind])
    path = folder / f"rsnn_{kind}.snn"
    path.write_text(text)
    sim = qgen.load(path, out=folder / "generated").simulator()
    duration = STEPS * sim.dt
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        result = sim.run(None, duration)
        times.append(time.perf_counter() - start)
    return {"us_per_step": statistics.median(times[1:]) / STEPS * 1e6, "runs_s": times[1:],
            "spikes": int(result.spikes["rec"].total.sum()), "dropped": int(result.drops["rec->rec"].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            ours = qgen_rsnn(kind, args.repeats, Path(tmp))
            peer = adseq_rsnn.run(kind, "forward", repeats=args.repeats)
            rows[kind] = {"qgen": ours, "adseq": peer}
            theirs = peer.get("us_per_step", float("nan"))
            print(f"{kind:7s} qgen C {ours['us_per_step']:9.2f} µs/step ({ours['spikes']} spikes, {ours['dropped']} "
                  f"dropped)   adseq {theirs:9.2f} µs/step ({peer.get('spikes')} spikes, {peer.get('status')})"
                  f"   ratio {theirs / ours['us_per_step']:6.1f}×", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
