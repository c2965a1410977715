"""The EventQueues paper's recurrent network, run on adseq 0.9.4 (JAX, CPU).

The network is ``sim()`` of ``adseq/benchmarks/profile_recurrent_snn.py``: 100 LIF neurons
(tau_m 10 ms, threshold 1, SuperSpike surrogate), all-to-all through 100 x 100 = 10,000
exponential synapses (tau_s 2 ms), each with its own adseq queue and delay 4 + 0.5 N(0, 1) ms
(max 7 ms), dt 0.025 ms, a drive of 1 during the first 2 ms, 10,000 steps, weights
``sqrt(23)/sqrt(n) * 0.05 * zero_diagonal(normal(key 0))**2``. Measured per queue kind (Ring,
FIFORing.sized(4), BinaryHeap.sized(7), SortedArray.sized(4)) and per mode:

  forward  jit(lambda w: sim(n, w, Q)[1][1].sum())          (the paper's benchmark_regular)
  grad     jit(value_and_grad(lambda w: sim(n, w, Q)[1][1].sum()))
           (simulation + full reverse-mode gradient w.r.t. the 100 x 100 weights; the paper's
           benchmark_grad(jax.jacrev) of the same scalar)

Each (kind, mode) runs in a fresh subprocess: compile time, one warm-up run, then the median of
``repeats`` timed runs in µs per step; the spike count of the run (the loss value); the process's
peak RSS (getrusage) and XLA's compiled memory analysis. When XLA's plan needs more memory than
the cap, the run is not started and the status says so; a kind that cannot be differentiated
reports the error as its status. The row is never dropped.

``sim`` is the paper's function with the number of steps made a parameter (the paper fixes
10,000); the neuron step, the surrogate and the synapses are adseq's own code, imported.

Usage:
    python -m benchmarks.peers.adseq_rsnn [--kinds ring,fifo,heap,sorted] [--modes forward,grad]
                                          [--steps 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time

from ._common import (DEFAULT_MEM_CAP_GB, machine_info, median, peak_rss_bytes,
                      run_in_subprocess, worker_main)

KINDS = {
    "ring": "Ring",
    "fifo": "FIFORing.sized(4)",
    "heap": "BinaryHeap.sized(7)",
    "sorted": "SortedArray.sized(4)",
}
MODES = ("forward", "grad")
N = 100
STEPS = 10_000
DT_MS = 0.025


def _paper_module():
    """Import adseq.benchmarks.profile_recurrent_snn without its side effects (it prints its
    path, changes the working directory and prepends to sys.path on import)."""
    cwd, path = os.getcwd(), list(sys.path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from adseq.benchmarks import profile_recurrent_snn as mod
    finally:
        os.chdir(cwd)
        sys.path[:] = path
    return mod


def queue_class(kind: str):
    from adseq import implementations as imp
    return {
        "ring": lambda: imp.Ring,
        "fifo": lambda: imp.FIFORing.sized(4),
        "heap": lambda: imp.BinaryHeap.sized(7),
        "sorted": lambda: imp.SortedArray.sized(4),
    }[kind]()


def default_weight(n: int = N):
    """The paper's weights (key 0)."""
    import jax
    import jax.numpy as jnp
    p = _paper_module()
    key = jax.random.PRNGKey(0)
    return jnp.sqrt(23) / jnp.sqrt(n) * 0.05 * p.zero_diagonal(jax.random.normal(key, (n, n))) ** 2


def sim(n=N, weight=None, Q=None, steps: int = STEPS):
    """profile_recurrent_snn.sim, line for line, with ``steps`` a parameter."""
    import jax
    import jax.numpy as jnp
    from adseq import synapse
    p = _paper_module()
    dt = DT_MS
    tau_syn = 2.
    tau_mem = 10.
    vthres = 1.0
    key = jax.random.PRNGKey(0)
    if weight is None:
        weight = jnp.sqrt(23) / jnp.sqrt(n) * 0.05 * p.zero_diagonal(jax.random.normal(key, (n, n))) ** 2
    delays = 4 + .5 * jax.random.normal(key, (n, n)).flatten()
    syn = synapse.mk_synapses(Q, delay_ms=delays, dt_ms=dt, vthres=vthres, tau_syn_ms=tau_syn,
                              n=n * n, max_delay_ms=7)
    syn_step = jax.jit(type(syn).timestep_spike_detect_pre)
    v = jnp.zeros(n)
    state = v, syn

    def step(state, t):
        v, syn = state
        isyn = (weight @ jnp.roll(syn.isyn.reshape((n, n)).sum(0), 1)).at[:].add(1. * (t < 2))
        vnext, s = p.lif_step(v, isyn, tau_mem, dt, vthres)
        syn = syn_step(syn, ts=t, v=jnp.repeat(v, n), vnext=jnp.repeat(vnext, n))
        state = vnext, syn
        return state, (v, s)
    ts = jnp.arange(steps) * dt
    _, trace = jax.lax.scan(step, state, xs=ts)
    return ts, trace


def _memory_analysis(compiled) -> dict | None:
    try:
        ma = compiled.memory_analysis()
    except Exception:  # not every backend/version has it
        return None
    if ma is None:
        return None
    out = {}
    for name in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
                 "alias_size_in_bytes", "generated_code_size_in_bytes",
                 "host_temp_size_in_bytes", "peak_memory_in_bytes"):
        v = getattr(ma, name, None)
        if v is not None:
            out[name] = int(v)
    return out


def _status_of(ex: BaseException) -> str:
    msg = str(ex).strip().splitlines()
    first = msg[0] if msg else ""
    text = f"{type(ex).__name__}: {first}"[:300]
    low = str(ex).lower()
    if "reverse-mode differentiation does not work" in low or "transpose" in low \
            or "linearize" in low and "while_loop" in low:
        return "no reverse-mode rule: " + text
    if "resource_exhausted" in low or "out of memory" in low or isinstance(ex, MemoryError):
        return "out of memory: " + text
    return "failed: " + text


def _activity(Q, w, steps: int) -> dict:
    """An untimed extra run: spikes per step, to compare the activity with qgen's rsnn.snn."""
    import jax
    import numpy as np
    per_step = np.asarray(jax.jit(lambda w: sim(N, w, Q=Q, steps=steps)[1][1].sum(1))(w))
    drive_steps = int(round(2.0 / DT_MS))
    after = per_step[drive_steps:]
    return {
        "spikes_during_drive": int(per_step[:drive_steps].sum()),
        "spikes_after_drive": int(after.sum()),
        "rate_hz_per_neuron_after_drive":
            float(after.sum() / N / (after.size * DT_MS * 1e-3)) if after.size else None,
        "steps_with_spikes": int((per_step > 0).sum()),
        "spikes_last_1000_steps": int(per_step[-1000:].sum()),
    }


def worker(kind: str, mode: str = "forward", steps: int = STEPS, repeats: int = 3,
           mem_cap_gb: float = DEFAULT_MEM_CAP_GB, activity: bool = True) -> dict:
    """Measure one (kind, mode) in this process (call it through :func:`run` for a fresh one)."""
    import jax
    import jax.numpy as jnp

    res = {"peer": "adseq", "benchmark": "rsnn", "kind": kind, "adseq_class": KINDS[kind],
           "mode": mode, "n": N, "steps": steps, "dt_ms": DT_MS, "repeats": repeats,
           "jax": jax.__version__, "backend": jax.default_backend(), "machine": machine_info()}
    Q = queue_class(kind)
    w = default_weight()

    def loss(w):
        return sim(N, w, Q=Q, steps=steps)[1][1].sum()

    fn = jax.jit(loss) if mode == "forward" else jax.jit(jax.value_and_grad(loss))
    try:
        t0 = time.perf_counter()
        compiled = fn.lower(w).compile()
        res["compile_s"] = time.perf_counter() - t0
    except Exception as ex:  # e.g. no reverse-mode rule
        res["status"] = _status_of(ex)
        res["peak_rss_bytes"] = peak_rss_bytes()
        return res
    ma = _memory_analysis(compiled)
    res["xla_memory_analysis"] = ma
    if ma:
        planned = sum(ma.get(k, 0) for k in ("temp_size_in_bytes", "argument_size_in_bytes",
                                              "output_size_in_bytes"))
        res["xla_planned_bytes"] = planned
        if planned > mem_cap_gb * 2**30:
            res["status"] = (f"out of memory: XLA's plan needs {planned / 2**30:.1f} GiB "
                             f"(temporaries {ma.get('temp_size_in_bytes', 0) / 2**30:.1f} GiB), "
                             f"above the {mem_cap_gb:g} GiB cap; not run")
            res["peak_rss_bytes"] = peak_rss_bytes()
            return res
    try:
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(w))
        res["warmup_run_s"] = time.perf_counter() - t0
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(w))
            runs.append(time.perf_counter() - t0)
    except Exception as ex:
        res["status"] = _status_of(ex)
        res["peak_rss_bytes"] = peak_rss_bytes()
        return res
    value = out if mode == "forward" else out[0]
    res["run_s"] = runs
    res["us_per_step"] = median(runs) / steps * 1e6
    res["us_per_step_runs"] = [r / steps * 1e6 for r in runs]
    res["spikes"] = int(round(float(value)))
    res["rate_hz_per_neuron"] = res["spikes"] / N / (steps * DT_MS * 1e-3)
    if mode == "forward" and activity:
        res.update(_activity(Q, w, steps))
    if mode == "grad":
        g = out[1]
        res["grad_finite"] = bool(jnp.isfinite(g).all())
        res["grad_abs_sum"] = float(jnp.abs(g).sum())
    res["peak_rss_bytes"] = peak_rss_bytes()
    res["status"] = "ok"
    return res


def run(kind: str, mode: str = "forward", **params) -> dict:
    """Measure one queue kind and mode ("forward" or "grad") in a fresh subprocess. Parameters:
    steps (10,000), repeats (3), mem_cap_gb (the process is killed above it, and a run whose
    XLA plan exceeds it is not started), activity (forward: one more, untimed run for the spikes
    per step), cpus (pin to that many cores), timeout_s."""
    timeout = params.pop("timeout_s", 3600)
    cap = params.get("mem_cap_gb", DEFAULT_MEM_CAP_GB)
    return run_in_subprocess("adseq_rsnn", {"kind": kind, "mode": mode, **params},
                             timeout_s=timeout, mem_cap_gb=cap)


def run_all(kinds=tuple(KINDS), modes=MODES, **params) -> dict:
    """``{mode: {kind: result}}``, each in its own subprocess."""
    return {m: {k: run(k, m, **params) for k in kinds} for m in modes}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mem-cap-gb", type=float, default=DEFAULT_MEM_CAP_GB)
    ap.add_argument("--cpus", type=int, default=0, help="pin each measurement to this many cores")
    a = ap.parse_args(argv)
    extra = {"cpus": a.cpus} if a.cpus else {}
    out = run_all(a.kinds.split(","), a.modes.split(","), steps=a.steps, repeats=a.repeats,
                  mem_cap_gb=a.mem_cap_gb, **extra)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if not worker_main(worker):
        main()
