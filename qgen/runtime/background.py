"""In-kernel background sources: Poisson event counts from a counter-based generator.

Every target draws the same counts, so a seed gives the same input everywhere. The count of
source g for neuron j in step n is the inverse of the Poisson CDF of λ = rate·dt at one uniform
number u, and u comes from a hash of the counter (key_g, n, j), where key_g depends on the seed
and on the source (its population and index):

    h   = mix(mix(key_g + (n + 1)·G) + (j + 1)·H)   the streams' h(n, j) (qgen/runtime/streams.py)
    u   = (h >> 11) · 2^-53               in [0, 1), exact in float64
    k   = #{i : cdf[i] <= u}              cdf[i] = P(K <= i), one table per source

``mix`` is SplitMix64's finaliser; all arithmetic is modulo 2^64. The table is computed here,
once, and the C target prints it with every digit, so C and NumPy compare the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from qgen.ir.nodes import Background
from qgen.runtime.streams import bases, hashes
from qgen.runtime.streams import key as stream_key


def key(seed: int, bg: Background) -> int:
    """The 64-bit key of source ``bg`` of a network instance drawn from ``seed``."""
    return stream_key(seed, "background", bg.population, str(bg.index))


def cdf_table(mean: float) -> np.ndarray:
    """P(K <= i) for i = 0, 1, ... of a Poisson law of mean ``mean``, up to where the rest is below 2^-60."""
    p = math.exp(-mean)
    total, table, i = p, [p], 0
    while 1.0 - total > 2.0 ** -60 and (i < mean or p > 0):
        i += 1
        p = p * mean / i
        total += p
        table.append(total)
        if i > 10 * mean + 100:
            break
    return np.array(table)


def counts(source_key: int, step: int, size: int, cdf: np.ndarray) -> np.ndarray:
    """The counts of one source for neurons 0..size-1 in step ``step`` (int64)."""
    h = hashes(bases(source_key, np.array([step])), np.arange(size))
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.searchsorted(cdf, u, side="right").astype(np.int64)


def inputs(sources: list[tuple[int, np.ndarray, float]], step: int, size: int) -> np.ndarray:
    """Σ_g k_g·w_g per neuron, in source order, from (key, cdf, weight) of each source of a population."""
    total = np.zeros(size)
    for source_key, cdf, weight in sources:
        total = total + counts(source_key, step, size, cdf).astype(np.float64) * weight
    return total
