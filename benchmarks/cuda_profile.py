"""Where a CUDA simulation's time goes, on a GPU: the run's set-up and each kernel of a step.

    python -m benchmarks.cuda_profile [--model examples/microcircuit.snn] [--set scale=1.0] [--steps 1000]

Runs the model with a launch per kernel and step (``simulator(fused=False)``) and synchronises
after every launch, so each kernel's time is its own (the sum is more than an unsynchronised run
takes: launches no longer overlap). Also times the parts of ``sim.run`` outside the steps (copying
the network and the run's arrays to the GPU, the results back) and the whole run fused and not.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import qgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="examples/microcircuit.snn")
    parser.add_argument("--set", action="append", help="NAME=VALUE overrides (default: scale=1.0)")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set or ["scale=1.0"])
    start = time.perf_counter()
    sim = qgen.load(args.model, "cuda", overrides=overrides).simulator(fused=False)
    print(f"{args.model} {overrides}: set-up {time.perf_counter() - start:.1f} s", flush=True)
    device = sim._state.device
    cuda = device.cuda
    duration = args.steps * sim.dt
    sim.run(None, 5 * sim.dt)  # module load, allocation

    spent: dict[str, float] = defaultdict(float)
    for name in ("upload", "allocate_device_only", "download", "write_struct"):
        method = getattr(device, name)

        def wrapped(*a, _method=method, _name=name, **k):
            cuda.Context.synchronize()
            t = time.perf_counter()
            out = _method(*a, **k)
            cuda.Context.synchronize()
            spent[_name] += time.perf_counter() - t
            return out
        setattr(device, name, wrapped)
    launch = device.launch

    def timed_launch(name, n, grid):
        t = time.perf_counter()
        launch(name, n, grid)
        cuda.Context.synchronize()
        spent[name] += time.perf_counter() - t
    device.launch = timed_launch
    start = time.perf_counter()
    sim.run(None, duration)
    total = time.perf_counter() - start
    print(f"synchronised per kernel, {args.steps} steps: {total:.2f} s", flush=True)
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {seconds * 1e3:10.1f} ms  {seconds / args.steps * 1e6:9.1f} µs/step", flush=True)
    device.launch = launch
    for name in ("upload", "allocate_device_only", "download", "write_struct"):
        del device.__dict__[name]
    for fused in (False, True):
        device.fused = fused
        sim.run(None, duration)
        start = time.perf_counter()
        sim.run(None, duration)
        print(f"fused={fused}: {(time.perf_counter() - start) / args.steps * 1e6:.1f} µs/step (whole run, "
              f"{device.blocks} blocks per trial when fused)", flush=True)


if __name__ == "__main__":
    main()
