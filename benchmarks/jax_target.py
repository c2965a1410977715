"""Issue 5, benchmark 5: qgen's JAX target against adseq 0.9.4 on the same JAX backend.

Two workloads, per queue kind, each side measured in a fresh process of this run:

  micro  the EventQueues paper's queue micro-benchmark (as ``benchmarks.queue_micro``: 10,000
         queues, Poisson arrivals every 400 steps on average, delay 80 steps, 40,000 steps), qgen
         fed the very arrivals adseq draws; forward only.
  rsnn   the paper's recurrent network (as ``benchmarks.rsnn_grad``: examples/rsnn.snn, 10,000
         steps): the forward alone, and forward + the full reverse-mode gradient of the sum of the
         spike times with respect to every trainable quantity (the 100 × 100 weights and delays),
         qgen's ``jax.value_and_grad`` through its generated ``custom_vjp``, against adseq's
         ``jax.value_and_grad`` of its ``sim`` (the same as ``benchmarks.rsnn_grad`` runs).

Reported: µs per step (median of the timed runs after one warm-up), compile time (the first
call), the process's peak resident memory. JAX picks its default backend (CPU here; the GPU on
a machine with one and a CUDA jaxlib).

    python -m benchmarks.jax_target [--parts micro,rsnn] [--kinds ring,fifo,heap,sorted]
                                    [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.peers import adseq_queue, adseq_rsnn
from benchmarks.peers._common import peak_rss_bytes, run_in_subprocess, worker_main
from benchmarks.queue_micro import CAPACITY, MODEL as MICRO_MODEL
from benchmarks.rsnn_grad import STEPS as RSNN_STEPS, mib, model_text as rsnn_text

MICRO = {"n_queues": 10_000, "steps": 40_000, "delay": 80}


def _timed(call, repeats: int) -> tuple[float, list[float]]:
    """(the first call's seconds — compile and run —, the following ``repeats`` calls' seconds)."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        runs.append(time.perf_counter() - start)
    return first, runs


def worker(part: str, kind: str, repeats: int, folder: str, grad: bool = False) -> dict:
    import jax
    import numpy as np

    import qgen  # before JAX compiles anything: qgen's XLA:CPU settings (qgen/runtime/xla_flags.py)

    n, steps = MICRO["n_queues"], MICRO["steps"]
    if part == "micro":  # adseq's draws, made as adseq makes them: before 64-bit JAX changes the draws
        step, queue = adseq_queue.arrival_events(n_queues=n, steps=steps)
    jax.config.update("jax_enable_x64", True)
    folder = Path(folder)
    if part == "micro":
        path = folder / f"queues_{kind}.snn"
        path.write_text(MICRO_MODEL.format(kind=kind, n=n, delay=MICRO["delay"], capacity=CAPACITY[kind]))
        inputs = {"src": ((step + 1).astype(float), queue)}
        sim = qgen.load(path, target="jax", out=folder / "generated").simulator()
        box = {}
        first, runs = _timed(lambda: box.update(result=sim.run(inputs, float(steps))), repeats)
        result = box["result"]
        return {"us_per_step": statistics.median(runs) / steps * 1e6, "compile_s": first - statistics.median(runs),
                "runs_s": runs, "delivered": int(result.final_state["dst"][0, :, 0].sum()),
                "dropped": int(result.drops["src->dst"].sum()), "peak_rss_bytes": peak_rss_bytes(),
                "backend": jax.default_backend(), "status": "ok"}
    steps, dt, t_ref = RSNN_STEPS, 0.025, 2.0
    path = folder / f"rsnn_{kind}.snn"
    path.write_text(rsnn_text(kind, t_ref, int(steps * dt / t_ref) + 8))
    sim = qgen.load(path, target="jax", out=folder / "generated").simulator()
    duration = steps * dt
    if not grad:
        box = {}
        first, runs = _timed(lambda: box.update(result=sim.run(None, duration)), repeats)
        result = box["result"]
        spikes, dropped = int(result.spikes["rec"].total.sum()), int(result.drops["rec->rec"].sum())
    else:
        forward = sim.forward_fn(duration)
        encoded = forward.inputs(None)

        def loss(params):
            return jax.numpy.nansum(forward(params, encoded)["spikes"]["rec"]["times"])

        value_and_grad = jax.jit(jax.value_and_grad(loss))
        params = sim.params()
        box = {}
        first, runs = _timed(lambda: box.update(out=jax.block_until_ready(value_and_grad(params))), repeats)
        value, grads = box["out"]
        g = np.asarray(grads["weight"]["rec->rec"])
        if not np.isfinite(g).all():
            return {"status": "the gradient is not finite (a capacity of the adjoint overflowed)"}
        spikes, dropped = None, None
    return {"us_per_step": statistics.median(runs) / steps * 1e6, "compile_s": first - statistics.median(runs),
            "runs_s": runs, "spikes": spikes, "dropped": dropped, "peak_rss_bytes": peak_rss_bytes(),
            "backend": jax.default_backend(), "status": "ok"}


def run(part: str, kind: str, **params) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        return run_in_subprocess("jax_target", {"part": part, "kind": kind, "folder": folder, **params},
                                 package="benchmarks")


def _fmt(row: dict, key: str = "us_per_step", width: int = 9, digits: int = 1) -> str:
    value = row.get(key)
    return f"{value:{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'n/a':>{width}s}"


def _ratio(theirs: dict, ours: dict) -> str:
    a, b = theirs.get("us_per_step"), ours.get("us_per_step")
    return f"{a / b:7.2f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "    n/a "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="micro,rsnn")
    parser.add_argument("--kinds", default="ring,fifo,heap,sorted")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    rows: dict = {}
    for part in [p for p in args.parts.split(",") if p]:
        rows[part] = {}
        for kind in kinds:
            if part == "micro":
                entry = {"qgen": run("micro", kind, repeats=args.repeats),
                         "adseq": adseq_queue.run(kind, repeats=args.repeats, n_queues=MICRO["n_queues"],
                                                  steps=MICRO["steps"])}
                ours, theirs = entry["qgen"], entry["adseq"]
                print(f"micro {kind:7s} qgen-jax {_fmt(ours, digits=2)} µs/step (compile {_fmt(ours, 'compile_s', 5)} s, "
                      f"{mib(ours.get('peak_rss_bytes'))} MiB, delivered {ours.get('delivered')}, {ours.get('status', 'ok')})   adseq "
                      f"{_fmt(theirs, digits=2)} µs/step ({mib(theirs.get('peak_rss_bytes'))} MiB, delivered {theirs.get('delivered')}, "
                      f"{theirs.get('status')})   ratio {_ratio(theirs, ours)}", flush=True)
            else:
                entry = {"qgen_forward": run("rsnn", kind, repeats=args.repeats),
                         "qgen_grad": run("rsnn", kind, repeats=args.repeats, grad=True),
                         "adseq_forward": adseq_rsnn.run(kind, "forward", repeats=args.repeats, activity=False),
                         "adseq_grad": adseq_rsnn.run(kind, "grad", repeats=args.repeats)}
                for mode in ("forward", "grad"):
                    ours, theirs = entry[f"qgen_{mode}"], entry[f"adseq_{mode}"]
                    print(f"rsnn  {kind:7s} {mode:7s} qgen-jax {_fmt(ours)} µs/step (compile {_fmt(ours, 'compile_s', 5)} s, "
                          f"{mib(ours.get('peak_rss_bytes'))} MiB, {ours.get('status', 'ok')})   adseq {_fmt(theirs)} µs/step "
                          f"({mib(theirs.get('peak_rss_bytes'))} MiB, {theirs.get('status')})   ratio {_ratio(theirs, ours)}", flush=True)
            rows[part][kind] = entry
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    if not worker_main(worker):
        main()
