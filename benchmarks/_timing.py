"""Time the C kernels apart from the rest of ``Simulation.run``.

``sim.run`` also checks and sorts the input spikes and allocates the per-run arrays in Python;
``kernel_timer(sim)`` wraps the build's ``qgen_run`` entry point so that the seconds spent inside
the generated C are summed separately (``timer.seconds``, reset it before each run). Nothing else
changes: the wrapper calls the very same function. ``phase_shares(sim)`` says how a CUDA run's fused
kernel divided its time between its phases (``CudaSimulation.phase_cycles``).
"""

from __future__ import annotations

import time


class _TimedLib:
    def __init__(self, lib) -> None:
        self._lib = lib
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def qgen_run(self, *args):
        start = time.perf_counter()
        try:
            return self._lib.qgen_run(*args)
        finally:
            self.seconds += time.perf_counter() - start


class _TimedBuild:
    def __init__(self, build) -> None:
        self._build = build
        self.lib = _TimedLib(build.lib)

    def __getattr__(self, name):
        return getattr(self._build, name)


def kernel_timer(sim) -> _TimedLib:
    """Make ``sim`` time its kernel calls; returns the object whose ``seconds`` add up."""
    sim.build = _TimedBuild(sim.build)
    return sim.build.lib


def phase_shares(sim) -> dict[str, float] | None:
    """The share of each phase of the CUDA target's qgen_steps in the last run (trial 0); None elsewhere."""
    cycles = getattr(sim, "phase_cycles", None)
    if cycles is None:
        return None
    total = sum(int(c[0]) for c in cycles.values())
    return {name: int(c[0]) / total for name, c in cycles.items()} if total else None


def format_shares(shares: dict[str, float] | None) -> str:
    return "" if not shares else "   phases " + " ".join(f"{name} {100 * share:.0f}%" for name, share in shares.items())
