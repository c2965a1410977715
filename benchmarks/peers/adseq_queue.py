"""The EventQueues paper's queue micro-benchmark, run on adseq 0.9.4 (JAX, CPU).

The workload (Landsmeer et al., arXiv 2512.05906; ``adseq/benchmarks/profile_poisson.py``,
``time_queue_batched``): ``n_queues`` independent queues, one per synapse; at every step each
queue receives an event with probability ``1/lam`` (Poisson arrivals, mean interval ``lam`` =
400 steps) that is due ``delay`` = 80 steps later; ``steps`` = 40,000 steps. Each step is
*pop-then-enqueue*: every queue pops (at most) what is due at step t, then the step's arrivals
are enqueued with due step t + delay. The loop is a jitted ``lax.scan`` over steps of that body
over ``vmap``-ped queues, the arrivals drawn inside the loop with ``jax.random`` exactly as the
paper does (``key, key_next = split(key); uniform(key, (n,)) < 1/lam``).

adseq 0.9.4's wheel lacks the ``adseq.benchmarks`` helper module (``mkrunner_loop``,
``get_device_id``) that its own scripts import, so the loop is written here. One deliberate
difference from the published script: it enqueues into the queues *returned by the pop*, where
the published ``time_queue_batched`` enqueues into the queues from before the pop (so popped
events are never removed and XLA may drop the pop's state update). ``as_published=True`` runs
the published variant, for reference only: its delivered counts are meaningless.

The arrivals are reproducible and exportable: :func:`arrival_steps` / :func:`arrival_events`
re-run the same ``jax.random`` draws outside the benchmark and return the arrival steps as NumPy
arrays, so the qgen side can feed the very same arrivals and check the delivered count.

Usage:
    python -m benchmarks.peers.adseq_queue [--kinds ring,fifo,heap,sorted] [--n-queues 10000]
                                           [--steps 40000] [--repeats 3]
prints one JSON object with a result per queue kind (each measured in a fresh subprocess).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._common import machine_info, median, peak_rss_bytes, run_in_subprocess, worker_main

#: the paper's queue kinds, by qgen's queue names (`none` is adseq.DoNothing: the loop without a
#: queue, i.e. the cost of the arrival draws and the scan itself)
KINDS = {
    "ring": "Ring",
    "fifo": "FIFORing.sized(4)",
    "heap": "BinaryHeap.sized(7)",
    "sorted": "SortedArray.sized(4)",
    "none": "DoNothing",
}
PAPER_KINDS = ("ring", "fifo", "heap", "sorted")

DEFAULTS = dict(n_queues=10_000, steps=40_000, lam=400, delay=80, seed=0)


def queue_class(kind: str):
    import adseq
    return {
        "ring": lambda: adseq.Ring,
        "fifo": lambda: adseq.FIFORing.sized(4),
        "heap": lambda: adseq.BinaryHeap.sized(7),
        "sorted": lambda: adseq.SortedArray.sized(4),
        "none": lambda: adseq.DoNothing,
    }[kind]()


# --------------------------------------------------------------------------- arrivals

def _draw(key, n_queues: int, lam: float):
    """One step's draw, exactly as in the paper's loop: (arrivals (n,) bool, next key)."""
    import jax
    key, key_next = jax.random.split(key)
    evs = jax.random.uniform(key, shape=(n_queues,)) < 1 / lam
    return evs, key_next


def arrival_events(n_queues: int = DEFAULTS["n_queues"], steps: int = DEFAULTS["steps"],
                   lam: float = DEFAULTS["lam"], seed: int = DEFAULTS["seed"],
                   chunk: int | None = None):
    """Every arrival of the benchmark as two int64 NumPy arrays ``(step, queue)``, sorted by step
    then queue: the same draws as the benchmark loop (same key chain, same comparison)."""
    import jax
    import numpy as np

    if chunk is None:  # keep a chunk's (chunk, n_queues) bool block near 64 MB
        chunk = max(1, min(steps, (64 << 20) // max(1, n_queues)))

    @jax.jit
    def block(key):
        def body(k, _):
            evs, k = _draw(k, n_queues, lam)
            return k, evs
        return jax.lax.scan(body, key, None, length=chunk)

    key = jax.random.PRNGKey(seed)
    steps_out, queues_out = [], []
    for start in range(0, steps, chunk):
        key, evs = block(key)
        evs = np.asarray(evs)[: steps - start]
        s, q = np.nonzero(evs)
        steps_out.append(s.astype(np.int64) + start)
        queues_out.append(q.astype(np.int64))
    return np.concatenate(steps_out), np.concatenate(queues_out)


def arrival_steps(n_queues: int = DEFAULTS["n_queues"], steps: int = DEFAULTS["steps"],
                  lam: float = DEFAULTS["lam"], seed: int = DEFAULTS["seed"]):
    """Per-queue arrival steps: a list of ``n_queues`` sorted int64 NumPy arrays."""
    import numpy as np
    s, q = arrival_events(n_queues, steps, lam, seed)
    order = np.argsort(q, kind="stable")  # stable: steps stay sorted within a queue
    s, q = s[order], q[order]
    bounds = np.searchsorted(q, np.arange(n_queues + 1))
    return [s[bounds[i]:bounds[i + 1]] for i in range(n_queues)]


def expected_due(n_queues=DEFAULTS["n_queues"], steps=DEFAULTS["steps"], lam=DEFAULTS["lam"],
                 delay=DEFAULTS["delay"], seed=DEFAULTS["seed"]) -> dict:
    """Counts a lossless queue must reproduce: arrivals, and those due within the run."""
    s, _ = arrival_events(n_queues, steps, lam, seed)
    return {"arrivals": int(s.size), "due_within_run": int((s + delay <= steps - 1).sum())}


# --------------------------------------------------------------------------- the loop

def build_runner(kind: str, n_queues: int, steps: int, lam: float, delay: int, seed: int,
                 unroll: int = 1, as_published: bool = False, per_step: bool = False):
    """The jitted benchmark: returns (jitted fn, its args). The fn returns the number of events
    delivered (for kind "none", which has no queue, the number of arrivals, so that XLA cannot
    drop the draws); with ``per_step`` also the events delivered at each step (a check run, not
    the timed loop)."""
    import jax
    import jax.numpy as jnp

    Q = queue_class(kind)

    def body(carry, _):
        qs, total, key, t = carry
        evs, key_next = _draw(key, n_queues, lam)
        popped, out = jax.vmap(lambda q: q.pop(t))(qs)
        base = qs if as_published else popped
        qs = jax.vmap(lambda e, q: jax.lax.cond(e, lambda: q.enqueue(t + delay), lambda: q))(evs, base)
        n_out = (evs if kind == "none" else jnp.asarray(out)).astype(jnp.int32).sum()
        return (qs, total + n_out, key_next, t + 1), (n_out if per_step else None)

    def run(key):
        init = jax.vmap(lambda _: Q.init(delay))(jnp.zeros(n_queues))
        (qs, total, _, _), ys = jax.lax.scan(body, (init, jnp.int32(0), key, jnp.int32(0)), None,
                                             length=steps, unroll=unroll)
        return (total, ys) if per_step else total

    return jax.jit(run), (jax.random.PRNGKey(seed),)


#: the capacity of each kind in the benchmark (None: unbounded; adseq's Ring has delay + 1 slots
#: of counters and never drops)
CAPACITY = {"ring": None, "fifo": 4, "heap": 7, "sorted": 4, "none": None}


def reference_kept(n_queues: int = DEFAULTS["n_queues"], steps: int = DEFAULTS["steps"],
                   lam: float = DEFAULTS["lam"], delay: int = DEFAULTS["delay"],
                   seed: int = DEFAULTS["seed"], capacity: int | None = None):
    """What a correct queue of the given capacity does with the benchmark's arrivals, in plain
    NumPy: every arrival at step a is due at a + delay and delivered then, unless the queue
    already holds ``capacity`` events when it arrives (after the pop of step a), in which case
    the new event is dropped (with one fixed delay the newest event is also the latest, so
    drop-newest and keep-earliest agree). Returns (arrival step, queue, kept) arrays."""
    import numpy as np
    s, q = arrival_events(n_queues, steps, lam, seed)
    kept = np.ones(s.size, dtype=bool)
    if capacity is not None:
        order = np.lexsort((s, q))
        s_q, q_q = s[order], q[order]
        k_q = np.ones(s.size, dtype=bool)
        # an event can only be dropped when at least `capacity` earlier arrivals of its queue are
        # still pending (arrived after a - delay); only queues with such an event are replayed
        key = q_q * (steps + delay + 1) + s_q
        lo = np.searchsorted(key, key - delay + 1, side="left")
        crowded = np.unique(q_q[(np.arange(key.size) - lo) >= capacity])
        bounds = np.searchsorted(q_q, np.arange(n_queues + 1))
        for qi in crowded:
            b0, b1 = bounds[qi], bounds[qi + 1]
            pending: list[int] = []  # due steps of the events held, in order
            for idx in range(b0, b1):
                a = s_q[idx]
                while pending and pending[0] <= a:  # the pops of steps up to a
                    pending.pop(0)
                if len(pending) >= capacity:
                    k_q[idx] = False
                else:
                    pending.append(a + delay)
        kept[order] = k_q
    return s, q, kept


def delivery_check(kind: str, n_queues: int, steps: int, lam: float, delay: int, seed: int,
                   as_published: bool = False) -> dict:
    """Compare the events delivered at each step with what a correct queue of the same capacity
    delivers on the same arrivals (:func:`reference_kept`): how many steps differ, and the
    lateness in event-steps (the sum over steps of reference-delivered-so-far minus
    delivered-so-far; 0 when every event comes at its due step, negative if early)."""
    import jax
    import numpy as np

    fn, args = build_runner(kind, n_queues, steps, lam, delay, seed, 1, as_published, per_step=True)
    _, per_step = jax.block_until_ready(fn(*args))
    got = np.asarray(per_step, dtype=np.int64)
    s, _, kept = reference_kept(n_queues, steps, lam, delay, seed, CAPACITY[kind])
    due = np.bincount(s + delay, minlength=steps + delay)[:steps]
    ref = np.bincount(s[kept] + delay, minlength=steps + delay)[:steps]
    return {
        "arrivals": int(s.size),
        "due_within_run": int(due.sum()),
        "capacity": CAPACITY[kind],
        "reference_dropped": int((~kept).sum()),
        "reference_delivered": int(ref.sum()),
        "steps_with_wrong_delivery_count": int((got != ref).sum()),
        "lateness_event_steps": int((np.cumsum(ref) - np.cumsum(got)).sum()),
    }


def worker(kind: str, n_queues: int = DEFAULTS["n_queues"], steps: int = DEFAULTS["steps"],
           lam: float = DEFAULTS["lam"], delay: int = DEFAULTS["delay"], seed: int = DEFAULTS["seed"],
           repeats: int = 3, unroll: int = 1, as_published: bool = False, check: bool = False) -> dict:
    """Measure one queue kind in this process (call it through :func:`run` for a fresh one)."""
    import jax
    import adseq  # noqa: F401

    res = {"peer": "adseq", "benchmark": "queue", "kind": kind, "adseq_class": KINDS[kind],
           "n_queues": n_queues, "steps": steps, "lam": lam, "delay": delay, "seed": seed,
           "repeats": repeats, "as_published": as_published,
           "jax": jax.__version__, "backend": jax.default_backend(), "machine": machine_info()}
    fn, args = build_runner(kind, n_queues, steps, lam, delay, seed, unroll, as_published)
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    res["compile_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = int(jax.block_until_ready(compiled(*args)))
    res["warmup_run_s"] = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tot = int(jax.block_until_ready(compiled(*args)))
        runs.append(time.perf_counter() - t0)
        assert tot == total, "the benchmark is not deterministic"
    res["run_s"] = runs
    res["us_per_step"] = median(runs) / steps * 1e6
    res["us_per_step_runs"] = [r / steps * 1e6 for r in runs]
    res["delivered"] = total
    if check and kind != "none":
        res.update(delivery_check(kind, n_queues, steps, lam, delay, seed, as_published))
    res["peak_rss_bytes"] = peak_rss_bytes()
    return res


def run(kind: str, **params) -> dict:
    """Measure one queue kind in a fresh subprocess; returns the result dict (``status`` is "ok",
    or says why there is no measurement). Parameters: n_queues, steps, lam, delay, seed, repeats,
    unroll, as_published, cpus (pin to that many cores), check (a second, untimed run that
    compares the events delivered at every step with a correct queue of the same capacity on the
    same arrivals: adds arrivals, due_within_run, capacity, reference_dropped,
    reference_delivered, steps_with_wrong_delivery_count, lateness_event_steps), timeout_s."""
    timeout = params.pop("timeout_s", 3600)
    return run_in_subprocess("adseq_queue", {"kind": kind, **params}, timeout_s=timeout)


def run_all(kinds=PAPER_KINDS, **params) -> dict:
    """Every kind, each in its own subprocess: ``{kind: result}``."""
    return {k: run(k, **params) for k in kinds}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(PAPER_KINDS),
                    help="comma-separated, from " + ",".join(KINDS))
    ap.add_argument("--n-queues", type=int, default=DEFAULTS["n_queues"])
    ap.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    ap.add_argument("--lam", type=float, default=DEFAULTS["lam"])
    ap.add_argument("--delay", type=int, default=DEFAULTS["delay"])
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--as-published", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="also check every delivery step against the arrivals (untimed run)")
    ap.add_argument("--cpus", type=int, default=0, help="pin each measurement to this many cores")
    a = ap.parse_args(argv)
    extra = {"cpus": a.cpus} if a.cpus else {}
    out = run_all(a.kinds.split(","), n_queues=a.n_queues, steps=a.steps, lam=a.lam,
                  delay=a.delay, seed=a.seed, repeats=a.repeats, as_published=a.as_published,
                  check=a.check, **extra)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if not worker_main(worker):
        main()
