"""examples/brunel.snn in Brian2 (cpp_standalone), one thread.

The same network as ``nest_brunel`` (and ``examples/brunel.snn``): N neurons, 80 % E and 20 % I,
NEST's iaf_psc_exp written as Brian2 equations and integrated exactly (``method='exact'``)

    dv/dt = -(v - E_L)/tau_m + (I_syn + I_e)/C_m : volt (unless refractory)
    dI_syn/dt = -I_syn/tau_syn                    : amp

with threshold v >= V_th, reset v = V_reset, refractory 2 ms, C_m 250 pF, tau_m 20 ms, tau_syn
0.5 ms, E_L -70 mV, V_reset -60 mV, V_th -50 mV, I_e 270 pA, v(0) ~ uniform(-70, -50) mV; fixed
in-degree 0.08 N from E and 0.02 N from I, distinct sources, no autapses within E->E and I->I
(drawn uniformly with NumPy and passed to ``Synapses.connect(i=, j=)``; ``connect="brian2"``
uses Brian2's own generator in the binary, ``i = 'k + int(k >= j) for k in sample(N_pre - 1,
size=K)'``, but Brian2 2.9's standalone ``sample(n, size=K)`` is biased: its selection sampling
counts the element before testing it, so early indices are favoured and index n - 1 is never
drawn when K/n > 0.06); on_pre ``I_syn_post += J`` (60 pA) or ``-= g*J`` (g = 5); delays
~ uniform(0.5, 3) ms (Brian2 rounds them to the 0.1 ms grid); dt 0.1 ms; spikes recorded.

Brian2 lives in its own virtual environment (``.venv-brian2``, see ``benchmarks/setup_peers.sh``):
the public :func:`run` is called from the main venv and starts a worker in ``.venv-brian2``. The
worker generates the C++ project (``codegen_s``), compiles it with g++ (``compile_s``, make -j2,
OpenMP off: one thread), then runs the binary ``repeats`` times, each a fresh process: Brian2's
own measure of its simulation loop (``sim_s``, from last_run_info.txt), the binary's wall time
(``binary_wall_s``: also loading, connectivity generation, writing results) and the binary's peak
RSS. Reported as for NEST: spikes and rates per population, synaptic events (spikes times the
out-degree of the sender), simulated seconds per wall second and synaptic events per second
(both on ``sim_s``), bytes per synapse (binary peak RSS / synapses: an upper bound).

Usage (from the main venv):
    python -m benchmarks.peers.brian2_brunel [--N 10000] [--duration-ms 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from ._common import (BRIAN2_PYTHON, machine_info, median, peak_rss_bytes, run_in_subprocess,
                      worker_main)

DT_MS = 0.1

# runs the standalone binary (argv[1:]) and writes its peak RSS (bytes) to $QGEN_BRIAN2_RSS_FILE
_RSS_WRAPPER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, st, ru = os.wait4(p.pid, 0)\n"
    "open(os.environ['QGEN_BRIAN2_RSS_FILE'], 'w').write(str(ru.ru_maxrss * 1024))\n"
    "sys.exit(os.waitstatus_to_exitcode(st))\n"
)


def sizes(N: int) -> dict:
    return {"NE": round(0.8 * N), "NI": round(0.2 * N), "KE": round(0.08 * N),
            "KI": round(0.02 * N)}


def fixed_indegree(rng, n_pre: int, n_post: int, K: int, autapses: bool, chunk: int = 1000):
    """Exactly K distinct sources for every target, uniformly, without the target itself when
    ``autapses`` is false (pre and post the same population): (pre, post) index arrays."""
    import numpy as np
    pres, posts = [], []
    for start in range(0, n_post, chunk):
        rows = np.arange(start, min(n_post, start + chunk))
        keys = rng.random((rows.size, n_pre))
        if not autapses:
            keys[np.arange(rows.size), rows] = np.inf
        pre = np.argpartition(keys, K - 1, axis=1)[:, :K]
        pres.append(np.sort(pre, axis=1).ravel())
        posts.append(np.repeat(rows, K))
    return np.concatenate(pres).astype(np.int32), np.concatenate(posts).astype(np.int32)


def worker(N: int = 10_000, duration_ms: float = 1000.0, seed: int = 1, repeats: int = 3,
           connect: str = "numpy", build_dir: str | None = None, keep_build: bool = False) -> dict:
    """Build, compile and run in this process (a .venv-brian2 Python; use :func:`run`)."""
    import numpy as np
    import brian2 as b2
    from brian2 import ms, mV, pA, pF

    s = sizes(N)
    NE, NI, KE, KI = s["NE"], s["NI"], s["KE"], s["KI"]
    res = {"peer": "brian2", "benchmark": "brunel", "brian2": b2.__version__,
           "numpy": np.__version__, "N": N, **s, "duration_ms": duration_ms, "dt_ms": DT_MS,
           "seed": seed, "threads": 1, "machine": machine_info()}

    tmp = build_dir or tempfile.mkdtemp(prefix="qgen-brian2-")
    try:
        b2.set_device("cpp_standalone", directory=tmp, build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
        b2.prefs.devices.cpp_standalone.run_cmd_unix = [sys.executable, "-c", _RSS_WRAPPER, "./main"]
        b2.defaultclock.dt = DT_MS * ms
        b2.seed(seed)

        t0 = time.perf_counter()
        ns = dict(C_m=250 * pF, tau_m=20 * ms, tau_syn=0.5 * ms, E_L=-70 * mV, V_reset=-60 * mV,
                  V_th=-50 * mV, I_e=270 * pA, J=60 * pA, g=5.0)
        eqs = """
        dv/dt = -(v - E_L)/tau_m + (I_syn + I_e)/C_m : volt (unless refractory)
        dI_syn/dt = -I_syn/tau_syn : amp
        """
        G = b2.NeuronGroup(N, eqs, threshold="v >= V_th", reset="v = V_reset",
                           refractory=2 * ms, method="exact", namespace=ns, name="neurons")
        G.v = "E_L + (V_th - E_L) * rand()"
        E, I = G[:NE], G[NE:]
        syns = {}
        rng = np.random.default_rng(seed)
        gen_s = 0.0
        for pre_name, pre, post_name, post, K, on_pre in (
                ("E", E, "E", E, KE, "I_syn_post += J"),
                ("E", E, "I", I, KE, "I_syn_post += J"),
                ("I", I, "E", E, KI, "I_syn_post -= g * J"),
                ("I", I, "I", I, KI, "I_syn_post -= g * J")):
            S = b2.Synapses(pre, post, on_pre=on_pre, namespace=ns, name=f"S_{pre_name}{post_name}")
            autapses = pre_name != post_name
            if connect == "brian2":  # Brian2's own generator, run in the binary
                if autapses:
                    S.connect(i=f"k for k in sample(N_pre, size={K})")
                else:  # K of the N_pre - 1 others
                    S.connect(i=f"k + int(k >= j) for k in sample(N_pre - 1, size={K})")
            else:
                tg = time.perf_counter()
                i_pre, j_post = fixed_indegree(rng, len(pre), len(post), K, autapses)
                gen_s += time.perf_counter() - tg
                S.connect(i=i_pre, j=j_post)
            S.delay = "0.5*ms + 2.5*ms*rand()"
            syns[pre_name + post_name] = S
        M_E = b2.SpikeMonitor(E, name="spikes_E")
        M_I = b2.SpikeMonitor(I, name="spikes_I")
        # an explicit Network: Brian2's magic network would miss the Synapses kept in a dict
        net = b2.Network(G, *syns.values(), M_E, M_I)
        net.run(duration_ms * ms)
        res["connectivity"] = connect
        res["connectivity_numpy_s"] = gen_s
        t1 = time.perf_counter()
        b2.device.build(directory=tmp, compile=False, run=False)
        t2 = time.perf_counter()
        res["codegen_s"] = t2 - t0
        from brian2.codegen.cpp_prefs import get_compiler_and_args
        b2.device.compile_source(tmp, get_compiler_and_args()[0], False, False)
        res["compile_s"] = time.perf_counter() - t2
        res["build_s"] = res["codegen_s"] + res["compile_s"]

        rss_file = os.path.join(tmp, "binary_peak_rss")
        os.environ["QGEN_BRIAN2_RSS_FILE"] = rss_file
        sim, wall, rss = [], [], []
        for _ in range(repeats):
            t3 = time.perf_counter()
            b2.device.run(tmp, with_output=False)
            wall.append(time.perf_counter() - t3)
            sim.append(float(b2.device._last_run_time))
            with open(rss_file) as f:
                rss.append(int(f.read()))
        res["sim_s_runs"] = sim
        res["binary_wall_s_runs"] = wall
        res["binary_peak_rss_bytes_runs"] = rss
        res["sim_s"] = median(sim)
        res["binary_wall_s"] = median(wall)
        res["binary_peak_rss_bytes"] = median(rss)
        res["setup_s_runs"] = [w - t for w, t in zip(wall, sim)]  # binary time outside the loop
        res["setup_s"] = median(res["setup_s_runs"])

        # the last run's activity and synapses (outside every timing)
        iE = np.asarray(M_E.i[:], dtype=np.int64)
        iI = np.asarray(M_I.i[:], dtype=np.int64)
        outdeg_E = np.zeros(NE, np.int64)
        outdeg_I = np.zeros(NI, np.int64)
        n_syn = 0
        for key, S in syns.items():
            pre_i = np.asarray(S.i[:], dtype=np.int64)
            n_syn += pre_i.size
            target = outdeg_E if key[0] == "E" else outdeg_I
            target += np.bincount(pre_i, minlength=target.size)
        in_deg_ok = all(
            (np.bincount(np.asarray(S.j[:]), minlength=(NE if key[1] == "E" else NI))
             == (KE if key[0] == "E" else KI)).all() for key, S in syns.items())
        self_ok = all((np.asarray(S.i[:]) != np.asarray(S.j[:])).all()
                      for key, S in syns.items() if key[0] == key[1])
        delays = np.concatenate([np.asarray(S.delay[:] / ms) for S in syns.values()])
        T = duration_ms * 1e-3
        res.update({
            "n_synapses": int(n_syn),
            "connectivity_checked": bool(in_deg_ok and self_ok),
            "delay_ms_min": float(delays.min()), "delay_ms_max": float(delays.max()),
            "spikes_E": int(iE.size), "spikes_I": int(iI.size), "spikes": int(iE.size + iI.size),
            "rate_E_hz": iE.size / NE / T, "rate_I_hz": iI.size / NI / T,
            "synaptic_events": int(outdeg_E[iE].sum() + outdeg_I[iI].sum()),
            "sim_seconds_per_wall_second": T / res["sim_s"],
        })
        res["synaptic_events_per_s"] = res["synaptic_events"] / res["sim_s"]
        res["bytes_per_synapse"] = res["binary_peak_rss_bytes"] / n_syn if n_syn else None
        res["peak_rss_bytes"] = res["binary_peak_rss_bytes"]  # the simulating process
        res["python_peak_rss_bytes"] = peak_rss_bytes()
        res["status"] = "ok"
    finally:
        if not keep_build and build_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return res


def run(N: int = 10_000, duration_ms: float = 1000.0, repeats: int = 3, seed: int = 1,
        connect: str = "numpy", timeout_s: float = 3600, mem_cap_gb: float | None = None) -> dict:
    """Build once and run the binary ``repeats`` times, in a fresh .venv-brian2 subprocess;
    timings are medians over the binary runs (``<key>_runs`` has them all)."""
    if not BRIAN2_PYTHON.exists():
        return {"peer": "brian2", "status": "not installed: run benchmarks/setup_peers.sh "
                f"(no {BRIAN2_PYTHON})"}
    return run_in_subprocess("brian2_brunel", {"N": N, "duration_ms": duration_ms, "seed": seed,
                                               "repeats": repeats, "connect": connect},
                             python=BRIAN2_PYTHON, timeout_s=timeout_s, mem_cap_gb=mem_cap_gb)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, default=10_000)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connect", choices=("numpy", "brian2"), default="numpy")
    a = ap.parse_args(argv)
    json.dump(run(a.N, a.duration_ms, a.repeats, a.seed, a.connect), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if not worker_main(worker):
        main()
