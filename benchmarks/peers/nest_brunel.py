"""examples/brunel.snn in NEST 3.10 (``iaf_psc_exp``), one thread.

The network of ``examples/brunel.snn`` with NEST's own connection rules: N neurons, 80 %
excitatory (E) and 20 % inhibitory (I), all ``iaf_psc_exp`` with C_m 250 pF, tau_m 20 ms,
tau_syn_ex = tau_syn_in 0.5 ms, t_ref 2 ms, E_L -70 mV, V_reset -60 mV, V_th -50 mV, I_e 270 pA
(the DC drive), V_m(0) ~ uniform(-70, -50) mV; every neuron receives ``fixed_indegree`` 0.08 N
excitatory and 0.02 N inhibitory inputs, distinct sources (no multapses), no autapses within E->E
and I->I; weights J = 60 pA and -g J with g = 5; delays ~ uniform(0.5, 3) ms (NEST rounds them to
the 0.1 ms grid); resolution dt 0.1 ms; spikes of both populations recorded.

Measured in a fresh process per run: set-up time (create + connect + Prepare, Prepare timed
also on its own), simulation wall time (nest.Run), simulated seconds per wall second, spikes and
firing rate per population, synaptic events (each spike times the out-degree of its sender, from
the actual connections; above N = 10,000 each spike times its population's mean out-degree) and
synaptic events per wall second, memory (peak RSS of the process, and the RSS the network added,
per synapse).

Usage:
    python -m benchmarks.peers.nest_brunel [--N 10000] [--duration-ms 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ._common import (current_rss_bytes, machine_info, median, peak_rss_bytes,
                      run_in_subprocess, worker_main)

#: the parameters of examples/brunel.snn and std/iaf_psc_exp.snn (NEST units: ms, mV, pA, pF)
NEURON = dict(C_m=250.0, tau_m=20.0, tau_syn_ex=0.5, tau_syn_in=0.5, t_ref=2.0, E_L=-70.0,
              V_reset=-60.0, V_th=-50.0, I_e=270.0)
V0_RANGE = (-70.0, -50.0)
J_PA = 60.0
G = 5.0
DELAY_RANGE_MS = (0.5, 3.0)
DT_MS = 0.1
EXACT_EVENTS_UP_TO = 10_000  # synaptic events from every synapse's source up to this N, estimated above


def sizes(N: int) -> dict:
    """Population sizes and in-degrees as brunel.snn computes them (round(0.8 N), ...)."""
    return {"NE": round(0.8 * N), "NI": round(0.2 * N), "KE": round(0.08 * N),
            "KI": round(0.02 * N)}


def worker(N: int = 10_000, duration_ms: float = 1000.0, seed: int = 1) -> dict:
    """Build and simulate once in this process (call it through :func:`run`)."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    import numpy as np
    rss0 = current_rss_bytes()
    t_import = time.perf_counter()
    import nest
    import_s = time.perf_counter() - t_import

    s = sizes(N)
    res = {"peer": "nest", "benchmark": "brunel", "nest": nest.__version__, "N": N, **s,
           "duration_ms": duration_ms, "dt_ms": DT_MS, "seed": seed, "threads": 1,
           "machine": machine_info(), "import_s": import_s}

    nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.set(resolution=DT_MS, local_num_threads=1, rng_seed=seed, print_time=False)
    rss_before = current_rss_bytes()

    t0 = time.perf_counter()
    E = nest.Create("iaf_psc_exp", s["NE"], params=NEURON)
    I = nest.Create("iaf_psc_exp", s["NI"], params=NEURON)
    (E + I).V_m = nest.random.uniform(*V0_RANGE)
    delay = nest.random.uniform(*DELAY_RANGE_MS)

    def conn(pre, post, k, autapses):
        return {"rule": "fixed_indegree", "indegree": k, "allow_autapses": autapses,
                "allow_multapses": False}

    nest.Connect(E, E, conn(E, E, s["KE"], False), {"synapse_model": "static_synapse", "weight": J_PA, "delay": delay})
    nest.Connect(E, I, conn(E, I, s["KE"], True), {"synapse_model": "static_synapse", "weight": J_PA, "delay": delay})
    nest.Connect(I, E, conn(I, E, s["KI"], True), {"synapse_model": "static_synapse", "weight": -G * J_PA, "delay": delay})
    nest.Connect(I, I, conn(I, I, s["KI"], False), {"synapse_model": "static_synapse", "weight": -G * J_PA, "delay": delay})
    sr_E = nest.Create("spike_recorder")
    sr_I = nest.Create("spike_recorder")
    nest.Connect(E, sr_E)
    nest.Connect(I, sr_I)
    t1 = time.perf_counter()
    nest.Prepare()
    t2 = time.perf_counter()
    res["build_s"] = t1 - t0
    res["prepare_s"] = t2 - t1
    res["setup_s"] = t2 - t0
    rss_net = current_rss_bytes()

    t3 = time.perf_counter()
    nest.Run(duration_ms)
    t4 = time.perf_counter()
    nest.Cleanup()
    res["sim_s"] = t4 - t3
    res["peak_rss_bytes"] = peak_rss_bytes()  # before the queries below
    res["rss_before_network_bytes"] = rss_before
    res["rss_network_bytes"] = rss_net - rss_before
    res["rss_process_start_bytes"] = rss0
    try:
        res["nest_time_simulate_s"] = float(nest.GetKernelStatus("time_simulate"))
    except Exception:
        pass

    # outside the timings: the synapses, their out-degrees, the spikes
    neurons = E + I
    first = int(min(E.tolist() + I.tolist()))
    ev_E, ev_I = sr_E.get("events"), sr_I.get("events")
    send = np.concatenate([np.asarray(ev_E["senders"], np.int64), np.asarray(ev_I["senders"], np.int64)])
    spikes_E, spikes_I = int(len(ev_E["senders"])), int(len(ev_I["senders"]))
    if N <= EXACT_EVENTS_UP_TO:
        # the sources of every synapse, fetched a few targets at a time: one GetConnections over
        # all 10^7 synapses of N = 10,000 takes more than 10 GB in PyNEST
        outdeg = np.zeros(N, np.int64)
        step = max(1, 200_000 // max(1, s["KE"] + s["KI"]))
        for start in range(0, N, step):
            conns = nest.GetConnections(source=neurons, target=neurons[start:min(N, start + step)])
            src = np.asarray(conns.get("source"), dtype=np.int64) if len(conns) else np.zeros(0, np.int64)
            outdeg += np.bincount(src - first, minlength=N)
            del conns, src
        n_syn = int(outdeg.sum())
        events = int(outdeg[send - first].sum())
        res["rss_after_connection_query_bytes"] = current_rss_bytes()
    else:
        # each query costs a scan of every synapse (5.8 s at N = 20,000, 200 queries): count the
        # synapses instead, and the events as each population's spikes times its mean out-degree
        # (fixed in-degree: NE·KE + NI·KE synapses leave E), exact up to the out-degrees' spread
        n_syn = int(nest.GetKernelStatus("num_connections")) - N  # less each neuron's to its recorder
        events = round(spikes_E * s["KE"] * N / s["NE"] + spikes_I * s["KI"] * N / s["NI"])
        res["synaptic_events_estimated"] = True
    T = duration_ms * 1e-3
    res.update({
        "n_synapses": n_syn,
        "bytes_per_synapse": res["rss_network_bytes"] / n_syn if n_syn else None,
        "spikes_E": spikes_E, "spikes_I": spikes_I, "spikes": spikes_E + spikes_I,
        "rate_E_hz": spikes_E / s["NE"] / T, "rate_I_hz": spikes_I / s["NI"] / T,
        "synaptic_events": events,
        "sim_seconds_per_wall_second": T / res["sim_s"],
    })
    res["synaptic_events_per_s"] = res["synaptic_events"] / res["sim_s"]
    res["status"] = "ok"
    return res


AGGREGATE = ("setup_s", "build_s", "prepare_s", "sim_s", "sim_seconds_per_wall_second",
             "synaptic_events_per_s", "peak_rss_bytes", "rss_network_bytes", "bytes_per_synapse")


def aggregate(runs: list[dict]) -> dict:
    """Medians over repeated runs (each run its own process); the activity of the first."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return {"status": runs[0].get("status", "failed") if runs else "no runs", "runs": runs}
    out = {k: v for k, v in ok[0].items() if k not in AGGREGATE and k != "subprocess_wall_s"}
    for k in AGGREGATE:
        vals = [r[k] for r in ok if r.get(k) is not None]
        out[k] = median(vals)
        out[k + "_runs"] = vals
    out["repeats"] = len(runs)
    out["repeats_ok"] = len(ok)
    out["status"] = "ok" if len(ok) == len(runs) else f"{len(runs) - len(ok)} of {len(runs)} runs failed"
    return out


def run(N: int = 10_000, duration_ms: float = 1000.0, repeats: int = 3, seed: int = 1,
        timeout_s: float = 3600, mem_cap_gb: float | None = None) -> dict:
    """``repeats`` runs, each in a fresh subprocess; medians of the timings (keys as in
    :func:`worker`, plus ``<key>_runs`` lists). The same seed every run: the same network."""
    runs = [run_in_subprocess("nest_brunel", {"N": N, "duration_ms": duration_ms, "seed": seed},
                              timeout_s=timeout_s, mem_cap_gb=mem_cap_gb)
            for _ in range(repeats)]
    return aggregate(runs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, default=10_000)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    json.dump(run(a.N, a.duration_ms, a.repeats, a.seed), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if not worker_main(worker):
        main()
