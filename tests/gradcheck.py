"""Finite-difference checks of the adjoint: a loss of the recorded observables and its central differences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def random_cotangents(result, rng: np.random.Generator, trace_scale: float = 0.05) -> dict[str, np.ndarray]:
    """Random cotangents for every recorded spike time, first-spike time and trace (zero where no spike)."""
    cot = {}
    for pop, record in result.spikes.items():
        cot[f"{pop}.spikes"] = rng.normal(size=record.times.shape) * ~np.isnan(record.times)
        cot[f"{pop}.first_spike"] = rng.normal(size=record.counts.shape) * (record.counts > 0)
    for key, trace in result.traces.items():
        cot[key] = trace_scale * rng.normal(size=trace.shape)
    return cot


def loss(result, cotangents: dict[str, np.ndarray]) -> float:
    """L = Σ cotangent · observable: its gradient is the backward pass of those cotangents."""
    total = 0.0
    for key, c in cotangents.items():
        pop, what = key.split(".", 1)
        if what == "spikes":
            total += float(np.sum(c * np.nan_to_num(result.spikes[pop].times)))
        elif what == "first_spike":
            total += float(np.sum(c * np.nan_to_num(result.spikes[pop].times[:, :, 0])))
        else:
            total += float(np.sum(c * result.traces[key]))
    return total


@dataclass
class Quantity:
    label: str
    get: Callable[[], float]
    set: Callable[[float], None]
    adjoint: float


def check(quantities: list[Quantity], run: Callable[[], object], cotangents, reference_result, *,
          h: float = 1e-5, rtol: float = 1e-6) -> list[str]:
    """Compare each adjoint with a fourth-order central difference; return the failures.

    A perturbation must create or remove no spike and drop no other events: the runs are checked
    for identical spike counts and drop counts. The error is relative to max(|fd|, 1e-3·scale),
    scale being the largest gradient checked, so that gradients that are zero up to rounding
    do not demand digits the loss does not have. Where the difference with step h misses, it is
    taken again with h/10: a spike time that barely crosses (a nearly grazing threshold) has large
    higher derivatives, and the difference's h⁴ term is then the error, not the adjoint.
    """
    counts = {p: r.counts for p, r in reference_result.spikes.items()}
    drops = dict(reference_result.drops)
    scale = max(abs(q.adjoint) for q in quantities)
    failures = []
    for q in quantities:
        for step in (h, h / 10):
            fd = _difference(q, run, cotangents, counts, drops, step)
            error = abs(q.adjoint - fd) / max(abs(fd), 1e-3 * scale)
            if error <= rtol:
                break
        else:
            failures.append(f"{q.label}: adjoint {q.adjoint:.12e}, finite difference {fd:.12e}, error {error:.1e}")
    return failures


def _difference(q: Quantity, run: Callable[[], object], cotangents, counts, drops, h: float) -> float:
    base = q.get()
    values = []
    for k in (2, 1, -1, -2):
        q.set(base + k * h)
        result = run()
        assert all(np.array_equal(result.spikes[p].counts, c) for p, c in counts.items()), \
            f"{q.label}: the perturbation changed the spike counts; choose another network"
        assert all(np.array_equal(result.drops[p], d) for p, d in drops.items()), \
            f"{q.label}: the perturbation changed the drop counts"
        values.append(loss(result, cotangents))
    q.set(base)
    return (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)
