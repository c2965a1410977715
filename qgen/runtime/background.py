"""In-kernel background sources: Poisson event counts from a counter-based generator.

Every target draws the same counts, so a seed gives the same input everywhere. The count of
source g for neuron j in step n is the inverse of the Poisson CDF of λ = rate·dt at one uniform
number u, and u comes from a hash of the counter (key_g, n, j), where key_g depends on the seed
and on the source (its population and index):

    h_n = mix(key_g + (n + 1)·G)          G = 0x9E3779B97F4A7C15 (SplitMix64's increment)
    h   = mix(h_n + (j + 1)·H)            H = 0xD1B54A32D192ED03
    u   = (h >> 11) · 2^-53               in [0, 1), exact in float64
    k   = #{i : cdf[i] <= u}              cdf[i] = P(K <= i), one table per source

``mix`` is SplitMix64's finaliser; all arithmetic is modulo 2^64. The table is computed here,
once, and the C target prints it with every digit, so C and NumPy compare the same numbers.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from qgen.ir.nodes import Background

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
NEURON = 0xD1B54A32D192ED03
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix(z: int) -> int:
    """SplitMix64's finaliser on a Python int (modulo 2^64)."""
    z &= MASK
    z = ((z ^ (z >> 30)) * MIX1) & MASK
    z = ((z ^ (z >> 27)) * MIX2) & MASK
    return z ^ (z >> 31)


def _mix_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    return z ^ (z >> np.uint64(31))


def key(seed: int, bg: Background) -> int:
    """The 64-bit key of source ``bg`` of a network instance drawn from ``seed``."""
    digest = hashlib.sha256(f"background/{bg.population}/{bg.index}".encode()).digest()
    return mix(int.from_bytes(digest[:8], "little") ^ mix(seed + GOLDEN))


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
    with np.errstate(over="ignore"):
        h_step = mix(source_key + (step + 1) * GOLDEN)
        j = np.arange(1, size + 1, dtype=np.uint64)
        h = _mix_array(np.uint64(h_step) + j * np.uint64(NEURON))
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.searchsorted(cdf, u, side="right").astype(np.int64)


def inputs(sources: list[tuple[int, np.ndarray, float]], step: int, size: int) -> np.ndarray:
    """Σ_g k_g·w_g per neuron, in source order, from (key, cdf, weight) of each source of a population."""
    total = np.zeros(size)
    for source_key, cdf, weight in sources:
        total = total + counts(source_key, step, size, cdf).astype(np.float64) * weight
    return total
