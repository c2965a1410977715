"""The CUDA target's launch strategies side by side, on a GPU: µs per simulated step.

``per step``: a launch per kernel and step (``simulator(fused=False)``); ``fused × G``: qgen_steps,
many steps per launch with G blocks per trial meeting at barriers (``fused=True, blocks=G``); the
default choice is marked. Workloads: the cortical microcircuit at a chosen scale, the queue
micro-benchmark's network (one-to-one, delay 80 steps, Poisson arrivals of mean interval 400
steps) at several sizes, and the recurrent network (examples/rsnn.snn) per queue kind. One load per
workload; the strategy is switched between runs of the same simulation (median of ``--repeats``
runs after a warm-up run). This chooses the defaults in qgen/targets/cuda.py; the comparisons with
peers are benchmarks/queue_micro.py and benchmarks/rsnn.py with ``--target cuda``.

    python -m benchmarks.cuda_launch [--microcircuit-scale 1.0] [--sizes 10000,100000] [--kinds ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import qgen
from benchmarks.queue_micro import CAPACITY, MODEL
from benchmarks.rsnn import QUEUES, ROOT


def strategies(blocks_default: int, fused_default: bool, resident: int) -> list[tuple[str, bool, int]]:
    counts = sorted({1, blocks_default, resident})
    rows = [("per step" + (" (default)" if not fused_default else ""), False, blocks_default)]
    for g in counts:
        mark = " (default)" if fused_default and g == blocks_default else ""
        rows.append((f"fused x {g}{mark}", True, g))
    return rows


def timed(sim, inputs, steps: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        sim.run(inputs, steps * sim.dt)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs[1:]) / steps * 1e6


def compare(label: str, sim, inputs, steps: int, repeats: int) -> None:
    device = sim._state.device
    cells = []
    for name, fused, blocks in strategies(device.blocks, device.fused, device.resident):
        device.fused, device.blocks = fused, blocks
        try:
            cells.append(f"{name}: {timed(sim, inputs, steps, repeats):.1f}")
        except Exception as err:  # a strategy that fails is reported, not fatal
            cells.append(f"{name}: failed ({err})")
    print(f"{label:28s} µs/step  " + "  ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--microcircuit-scale", type=float, default=1.0, help="0: leave it out")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    gen = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.microcircuit_scale:
            start = time.perf_counter()
            sim = qgen.load(ROOT / "examples" / "microcircuit.snn", "cuda", out=folder / "generated",
                            overrides={"scale": str(args.microcircuit_scale)}).simulator()
            print(f"microcircuit scale {args.microcircuit_scale}: set-up {time.perf_counter() - start:.1f} s", flush=True)
            compare(f"microcircuit {args.microcircuit_scale}", sim, None, 2000, args.repeats)
            del sim
        for n in map(int, args.sizes.split(",")):
            arrivals = gen.random((args.steps, n)) < 1 / 400
            step, queue = np.nonzero(arrivals)
            inputs = {"src": ((step + 1).astype(float), queue)}
            for kind in kinds:
                path = folder / f"micro_{kind}_{n}.snn"
                path.write_text(MODEL.format(kind=kind, n=n, delay=80, capacity=CAPACITY[kind]))
                sim = qgen.load(path, "cuda", out=folder / "generated").simulator()
                compare(f"micro {kind} {n} queues", sim, inputs, args.steps, args.repeats)
        for kind in kinds:
            text = (ROOT / "examples" / "rsnn.snn").read_text().replace("ring(capacity = 16)", QUEUES[kind])
            path = folder / f"rsnn_{kind}.snn"
            path.write_text(text)
            sim = qgen.load(path, "cuda", out=folder / "generated").simulator()
            compare(f"rsnn {kind}", sim, None, 10_000, args.repeats)

if __name__ == "__main__":
    main()
