"""The CUDA target's forward + gradient against the C target's, in the same run, on one machine.

    python -m benchmarks.cuda_grad [--kinds ring,fifo,heap,sorted] [--batches 1,16,128] [--repeats 3] [--json FILE]

examples/rsnn.snn (100 LIF, 9,900 synapses, exact timing; the queue kind swapped as in
benchmarks/rsnn_grad.py), 10,000 steps, only the spikes recorded; L = the sum of every spike time.
Per target, kind and batch (each trial with the same network): the forward (`sim.run`), the
forward with the tape (`grad=True`) and `sim.backward`, medians after a warm-up, in µs per step
of one trial. The C target runs its trials one per core (OpenMP); the CUDA target's backward runs
a block per trial, its threads sharing the neurons (templates/cuda/adjoint.cu.j2). Both must give the
same gradients (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.rsnn_grad import STEPS, model_text


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def measure(target: str, kind: str, batch: int, repeats: int, folder: Path) -> dict:
    import numpy as np

    import qgen

    dt = 0.025
    path = folder / f"rsnn_{kind}.snn"
    path.write_text(model_text(kind, 2.0, int(STEPS * dt / 2.0) + 8))
    sim = qgen.load(path, target, out=folder / "generated").simulator(batch=batch, seed=0)
    duration = STEPS * dt
    forward = timed(lambda: sim.run(None, duration), repeats)
    taped = timed(lambda: sim.run(None, duration, grad=True), repeats)
    result = sim.run(None, duration, grad=True)
    cotangent = {"rec.spikes": np.ones_like(result.spikes["rec"].times)}
    backward = timed(lambda: sim.backward(cotangent), repeats)
    grads = sim.backward(cotangent)
    per_step = 1e6 / STEPS
    return {"target": target, "kind": kind, "batch": batch, "spikes": int(result.spikes["rec"].total.sum()),
            "forward_us_per_step": forward * per_step, "taped_forward_us_per_step": taped * per_step,
            "backward_us_per_step": backward * per_step,
            "weight_grad": grads.weights["rec->rec"].tolist(), "delay_grad": grads.delays["rec->rec"].tolist()}


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--batches", default="1,16,128")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"rsnn, {STEPS} steps; µs per step (whole batch); C with {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                pair = {t: measure(t, kind, batch, args.repeats, Path(tmp)) for t in ("c", "cuda")}
                c, g = pair["c"], pair["cuda"]
                scale = max(np.abs(c["weight_grad"]).max(), np.abs(c["delay_grad"]).max())
                error = max(np.abs(np.subtract(g["weight_grad"], c["weight_grad"])).max(),
                            np.abs(np.subtract(g["delay_grad"], c["delay_grad"])).max()) / scale
                rows.append({"c": c, "cuda": g, "relative_difference": float(error)})
                for row in (c, g):
                    row.pop("weight_grad"), row.pop("delay_grad")
                print(f"{kind:6s} batch {batch:4d}  spikes {c['spikes']:8d}  forward C {c['forward_us_per_step']:8.2f} "
                      f"CUDA {g['forward_us_per_step']:8.2f}  taped C {c['taped_forward_us_per_step']:8.2f} CUDA "
                      f"{g['taped_forward_us_per_step']:8.2f}  backward C {c['backward_us_per_step']:8.2f} CUDA "
                      f"{g['backward_us_per_step']:8.2f}  (CUDA/C backward {g['backward_us_per_step'] / c['backward_us_per_step']:.2f}×; "
                      f"gradients differ by {error:.1e} of the largest)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
