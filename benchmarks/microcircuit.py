"""The Potjans–Diesmann cortical microcircuit: qgen (C target) against NEST's microcircuit.

    .venv/bin/python -m benchmarks.microcircuit --scale 0.1 --warmup 100 --duration 1000 --threads 2

Each simulator runs in its own process (so peak memory is its own), with the same number of
threads, the same scale and the same simulated time. qgen runs examples/microcircuit.snn; NEST
runs the model of its example pynest/examples/Potjans_2014 (network_params.py, network.py with
N_scaling = scale, K_scaling = 1, Poisson background, "optimized" initial potentials), built
here with PyNEST calls that follow that example. Printed: per-population firing rates and mean
CV of the inter-spike intervals (neurons with at least 3 spikes) over [warmup, warmup + duration),
set-up time (qgen: network instance and binding; the C compile is given apart, it is cached),
simulated seconds per wall second over the measured interval, and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
POPS = ["L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"]

# NEST's network_params.py (Potjans & Diesmann 2014)
N_FULL = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])
CONN_PROBS = np.array([
    [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0., 0.0076, 0.],
    [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0., 0.0042, 0.],
    [0.0077, 0.0059, 0.0497, 0.135, 0.0067, 0.0003, 0.0453, 0.],
    [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0., 0.1057, 0.],
    [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.],
    [0.0548, 0.0269, 0.0257, 0.0022, 0.06, 0.3158, 0.0086, 0.],
    [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
    [0.0364, 0.001, 0.0034, 0.0005, 0.0277, 0.008, 0.0658, 0.1443]])
V0_MEAN = [-68.28, -63.16, -63.33, -63.45, -63.11, -61.66, -66.72, -61.43]
V0_SD = [5.36, 4.57, 4.74, 4.94, 4.94, 4.55, 5.46, 4.48]
NEURON = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0, "E_L": -65.0,
          "V_reset": -65.0, "V_th": -50.0, "I_e": 0.0}
PSP_E, G, BG_RATE, W_REL_STD = 0.15, -4.0, 8.0, 0.1
DELAY_EXC, DELAY_INH, DELAY_REL_STD, DELAY_POISSON = 1.5, 0.75, 0.5, 1.5
DT = 0.1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def statistics(spikes: list[list[np.ndarray]], start: float, stop: float) -> dict:
    """Per population: mean rate (Hz) over all neurons, mean CV of ISIs over neurons with >= 3 spikes."""
    out = {}
    for name, trains in zip(POPS, spikes):
        counts, cvs = [], []
        for t in trains:
            t = np.sort(t[(t >= start) & (t < stop)])
            counts.append(len(t))
            if len(t) >= 3:
                isi = np.diff(t)
                cvs.append(isi.std() / isi.mean())
        out[name] = {"rate": float(np.sum(counts) / len(trains) / ((stop - start) / 1000)),
                     "cv": float(np.mean(cvs)) if cvs else float("nan"), "neurons": len(trains)}
    return out


# ---------------------------------------------------------------- qgen

def run_qgen(scale: float, warmup: float, duration: float, threads: int, out: str) -> dict:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import qgen

    t0 = time.perf_counter()
    model = qgen.load(ROOT / "examples" / "microcircuit.snn", overrides={"scale": repr(scale)}, out=out)
    t1 = time.perf_counter()
    sim = model.simulator(threads=threads)  # one trial: the threads share its neurons
    t2 = time.perf_counter()
    synapses = sum(p.size for p in sim.data.projections.values())
    # A run starts from t = 0, so warm-up and measured interval are one run: the progress callback
    # (every 1 % of the steps) marks the wall time when the warm-up is over.
    total = int(math.ceil((warmup + duration) / DT - 1e-9))
    mark = {}

    def progress(done: int, steps: int) -> None:
        if "t" not in mark and done >= round(warmup / DT):
            mark["t"], mark["done"] = time.perf_counter(), done

    t3 = time.perf_counter()
    result = sim.run(duration=warmup + duration, progress=progress)
    t4 = time.perf_counter()
    if "t" not in mark:
        mark["t"], mark["done"] = t3, 0
    spikes = []
    for name in POPS:
        rec = result.spikes[name]
        spikes.append([rec.times[0, j, :rec.counts[0, j]] for j in range(rec.times.shape[1])])
    overflow = int(sum(result.spikes[name].overflow.sum() for name in POPS))
    return {"compile_s": t1 - t0, "setup_s": t2 - t1, "run_s": t4 - mark["t"], "warmup_s": mark["t"] - t3,
            "sim_ms": (total - mark["done"]) * DT,
            "synapses": synapses, "neurons": int(sum(len(s) for s in spikes)), "overflow": overflow,
            "stats": statistics(spikes, warmup, warmup + duration), "peak_mb": peak_rss_mb()}


# ---------------------------------------------------------------- NEST

def psc_over_psp(C_m: float, tau_m: float, tau_syn: float) -> float:
    sub = 1.0 / (tau_syn - tau_m)
    pre = tau_m * tau_syn / C_m * sub
    frac = (tau_m / tau_syn) ** sub
    return 1.0 / (pre * (frac ** tau_m - frac ** tau_syn))


def run_nest(scale: float, warmup: float, duration: float, threads: int, seed: int) -> dict:
    import nest

    nest.set_verbosity("M_ERROR")
    t0 = time.perf_counter()
    nest.ResetKernel()
    nest.SetKernelStatus({"local_num_threads": threads, "resolution": DT, "rng_seed": seed, "print_time": False})
    prod = np.outer(N_FULL, N_FULL)
    full_synapses = np.log(1.0 - CONN_PROBS) / np.log((prod - 1.0) / prod)
    sizes = np.round(N_FULL * scale).astype(int)
    synapses = np.round(full_synapses * scale).astype(int)  # K_scaling = 1: in-degrees kept
    w = PSP_E * psc_over_psp(NEURON["C_m"], NEURON["tau_m"], NEURON["tau_syn_ex"])
    weights = np.full((8, 8), w)
    weights[:, 1::2] *= G
    weights[0, 2] *= 2
    delays = np.zeros((8, 8))
    delays[:, 0::2], delays[:, 1::2] = DELAY_EXC, DELAY_INH
    # NEST holds at most 2^27 - 2 connections per thread and synapse model: the full-scale network
    # on two threads needs two (identical) models, one for excitatory and one for inhibitory sources
    nest.CopyModel("static_synapse", "static_excitatory")
    nest.CopyModel("static_synapse", "static_inhibitory")
    pops = []
    for i in range(8):
        pop = nest.Create("iaf_psc_exp", sizes[i], params=NEURON)
        pop.set(V_m=nest.random.normal(V0_MEAN[i], V0_SD[i]))
        pops.append(pop)
    recorders = nest.Create("spike_recorder", 8)
    generators = nest.Create("poisson_generator", 8)
    generators.rate = BG_RATE * K_EXT
    for i, target in enumerate(pops):
        for j, source in enumerate(pops):
            if synapses[i, j] <= 0:
                continue
            low, high = (-np.inf, 0.0) if weights[i, j] < 0 else (0.0, np.inf)
            nest.Connect(source, target, {"rule": "fixed_total_number", "N": int(synapses[i, j])}, {
                "synapse_model": "static_inhibitory" if j % 2 else "static_excitatory",
                "weight": nest.math.redraw(nest.random.normal(weights[i, j], abs(weights[i, j]) * W_REL_STD),
                                           min=low, max=high),
                "delay": nest.math.redraw(nest.random.normal(delays[i, j], delays[i, j] * DELAY_REL_STD),
                                          min=DT, max=np.inf)})
        nest.Connect(target, recorders[i])
        nest.Connect(generators[i], target, "all_to_all", {"weight": w, "delay": DELAY_POISSON})
    nest.Prepare()
    nest.Cleanup()
    t1 = time.perf_counter()
    nest.Simulate(warmup)
    t2 = time.perf_counter()
    nest.Simulate(duration)
    t3 = time.perf_counter()
    spikes = []
    for i, pop in enumerate(pops):
        events = recorders[i].get("events")
        senders, times = np.asarray(events["senders"]), np.asarray(events["times"])
        first = pop[0].global_id
        order = np.argsort(senders, kind="stable")
        senders, times = senders[order], times[order]
        bounds = np.searchsorted(senders, first + np.arange(len(pop) + 1))
        spikes.append([times[bounds[k]:bounds[k + 1]] for k in range(len(pop))])
    return {"compile_s": 0.0, "setup_s": t1 - t0, "run_s": t3 - t2, "warmup_s": t2 - t1, "sim_ms": duration,
            "synapses": int(nest.GetKernelStatus("num_connections")), "neurons": int(sizes.sum()), "overflow": 0,
            "stats": statistics(spikes, warmup, warmup + duration), "peak_mb": peak_rss_mb()}


# ---------------------------------------------------------------- driver

def child(which: str, args) -> dict:
    """Run one simulator in a fresh process; its JSON result comes back on the last line of stdout."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "benchmarks.microcircuit", "--child", which, "--scale", repr(args.scale),
           "--warmup", repr(args.warmup), "--duration", repr(args.duration), "--threads", str(args.threads),
           "--seed", str(args.seed), "--out", args.out]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{which} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict, args) -> str:
    names = list(results)
    lines = [f"Microcircuit, scale {args.scale:g}, {args.threads} threads, {args.duration:g} ms measured after "
             f"{args.warmup:g} ms warm-up", "",
             "| population | " + " | ".join(f"{n} rate (Hz) | {n} CV ISI" for n in names) + " |",
             "| --- |" + " --- | --- |" * len(names)]
    for pop in POPS:
        cells = []
        for n in names:
            s = results[n]["stats"][pop]
            cells += [f"{s['rate']:.3f}", f"{s['cv']:.3f}"]
        lines.append(f"| {pop} | " + " | ".join(cells) + " |")
    lines += ["", "| | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    rows = [("neurons", lambda r: f"{r['neurons']:,}"), ("synapses", lambda r: f"{r['synapses']:,}"),
            ("compile (s, cached after the first)", lambda r: f"{r['compile_s']:.2f}"),
            ("set-up (s)", lambda r: f"{r['setup_s']:.2f}"),
            ("simulation wall (s)", lambda r: f"{r['run_s']:.2f}"),
            ("sim s per wall s", lambda r: f"{r['sim_per_wall']:.3f}"),
            ("peak RSS (MB)", lambda r: f"{r['peak_mb']:.0f}"),
            ("bytes per synapse (peak RSS / synapses)", lambda r: f"{r['peak_mb'] * 2 ** 20 / max(r['synapses'], 1):.1f}")]
    for label, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(results[n]) for n in names) + " |")
    if "qgen" in results and "nest" in results:
        lines.append("")
        lines.append(f"qgen / NEST speed: {results['qgen']['sim_per_wall'] / results['nest']['sim_per_wall']:.2f}x")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--warmup", type=float, default=100.0, help="ms")
    parser.add_argument("--duration", type=float, default=1000.0, help="ms, measured")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=55, help="NEST's rng_seed")
    parser.add_argument("--only", choices=["qgen", "nest"], default=None)
    parser.add_argument("--out", default=str(ROOT / "generated"), help="qgen's build folder")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--child", choices=["qgen", "nest"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "qgen":
            result = run_qgen(args.scale, args.warmup, args.duration, args.threads, args.out)
        else:
            result = run_nest(args.scale, args.warmup, args.duration, args.threads, args.seed)
        print(json.dumps(result))
        return
    results = {}
    for which in (["qgen", "nest"] if args.only is None else [args.only]):
        results[which] = r = child(which, args)
        r["sim_per_wall"] = (r["sim_ms"] / 1000) / r["run_s"]
        print(f"{which}: set-up {r['setup_s']:.1f} s, {r['run_s']:.1f} s wall, peak {r['peak_mb']:.0f} MB",
              file=sys.stderr)
    text = table(results, args)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
