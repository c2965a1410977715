"""A quick check that every peer module runs (tiny sizes, about two and a half minutes on two
cores):

    python -m benchmarks.peers.smoke [--skip-brian2]

Checks: each adseq queue kind delivers, step by step, what a correct queue of its capacity
delivers on the exported arrivals (except adseq's BinaryHeap, whose no-op swap makes it deliver late; that is reported);
the recurrent network runs forward for every kind, and the gradient fails only where expected
(Ring: memory, BinaryHeap: no reverse-mode rule); NEST and Brian2 give the Brunel network
rates within a few Hz of each other. Prints ``N passed, N failed`` and exits non-zero on a
failure.
"""

from __future__ import annotations

import argparse
import sys

from . import adseq_queue, adseq_rsnn, brian2_brunel, nest_brunel


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-brian2", action="store_true")
    a = ap.parse_args(argv)
    passed, failed = 0, 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)
        passed, failed = passed + bool(ok), failed + (not ok)

    for kind in adseq_queue.PAPER_KINDS:
        r = adseq_queue.run(kind, n_queues=300, steps=3000, repeats=1, check=True)
        if r["status"] != "ok":
            check(f"queue {kind}", False, r["status"])
            continue
        exact = (r["steps_with_wrong_delivery_count"] == 0
                 and r["delivered"] == r["reference_delivered"])
        detail = (f"{r['us_per_step']:.1f} us/step, delivered {r['delivered']}, a correct queue "
                  f"{r['reference_delivered']} of {r['due_within_run']} due, "
                  f"late event-steps {r['lateness_event_steps']}")
        check(f"queue {kind}", exact if kind != "heap" else r["delivered"] > 0, detail)

    # 2000 steps: past the 7 ms maximum delay; XLA's plan for Ring's gradient grows with the
    # steps (about 17 MB a step), so a 4 GiB cap stops it as it stops the full 10,000 steps
    for kind in adseq_rsnn.KINDS:
        for mode in adseq_rsnn.MODES:
            r = adseq_rsnn.run(kind, mode, steps=2000, repeats=1, mem_cap_gb=4)
            st = r["status"]
            if mode == "grad" and kind == "ring":
                ok = st.startswith("out of memory")
            elif mode == "grad" and kind == "heap":
                ok = st.startswith("no reverse-mode rule")
            else:
                ok = st == "ok" and r["spikes"] > 0
            check(f"rsnn {kind} {mode}", ok, st if st != "ok" else
                  f"{r['us_per_step']:.0f} us/step, {r['spikes']} spikes")

    n = nest_brunel.run(N=1000, duration_ms=200, repeats=1)
    check("nest brunel N=1000", n["status"] == "ok" and 10 < n["rate_E_hz"] < 30,
          f"E {n.get('rate_E_hz')} Hz, I {n.get('rate_I_hz')} Hz")
    if not a.skip_brian2:
        b = brian2_brunel.run(N=1000, duration_ms=200, repeats=1)
        ok = (b["status"] == "ok" and n["status"] == "ok"
              and abs(b["rate_E_hz"] - n["rate_E_hz"]) < 3 and abs(b["rate_I_hz"] - n["rate_I_hz"]) < 3)
        check("brian2 brunel N=1000 (rates near NEST's)", ok,
              f"E {b.get('rate_E_hz')} Hz, I {b.get('rate_I_hz')} Hz; {b['status'][:200]}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
