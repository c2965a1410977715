"""Counter-based random streams: the NumPy twin of the generated network builder.

A drawn value is a function of (seed, what is drawn, its index, an attempt), never of the order in
which values are drawn, so the C target draws the synapses of a network in its generated code
(templates/c/network.c.j2), on as many threads as it likes, and every other target draws them
here, with the same result bit for bit:

    K       = key(seed, what)                        64 bits: SHA-256 of ``what`` mixed with the seed
    h(i, a) = mix(mix(K + (i + 1)·G) + (a + 1)·H)    arithmetic modulo 2^64; mix: SplitMix64's finaliser
    hi, lo  = the upper and lower 32 bits of h(i, a)

- ``fixed_total_number(n)``: synapse k has pre = ⌊hi(k, 0)·n_pre / 2^32⌋ and post = ⌊lo(k, a)·n_post / 2^32⌋,
  a = 0, or without autapses the first attempt with post ≠ pre. The synapses are then ordered by
  pre, and by k within a pre (a stable counting sort).
- ``uniform(low, high)``: low + (high − low)·u with u = (h(i, 0) >> 11)·2^-53.
- ``normal(mean, std)``: Marsaglia's polar method on attempts a = 0, 1, …: x = (hi + ½)·2^-31 − 1,
  y = (lo + ½)·2^-31 − 1 (both exact), s = x² + y², accepted if s < 1; z = x·√(−2·ln(s)/s) and the
  value mean + std·z, clipped to the bounds, or (``truncated_normal``) redrawn with the next
  attempt while outside them. ``ln`` is :func:`log`, made of IEEE-exact operations only, because
  the C library's ``log`` and NumPy's may differ in the last bit.

Every operation is one IEEE double operation, in the order written here; the C twin is compiled
without contracting a·b + c into one fused multiply-add, which rounds once instead of twice.
"""

from __future__ import annotations

import hashlib

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # G: SplitMix64's increment
ATTEMPT = 0xD1B54A32D192ED03  # H
MIX1, MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
MAX_ATTEMPTS = 1 << 20  # per value; a truncated normal that needs more is refused before drawing
CHUNK = 1 << 22  # values drawn at once
SQRT_HALF = 0.7071067811865476
LN2 = 0.6931471805599453
# ln(m) = 2f·Σ f^(2k)/(2k+1), f = (m − 1)/(m + 1), |f| ≤ 0.172 for m in [√½, √2): 13 terms reach 2^-60
LOG_SERIES = tuple(1.0 / (2 * k + 1) for k in range(13))

_U64 = np.uint64


def mix(z: int) -> int:
    """SplitMix64's finaliser on a Python int (modulo 2^64)."""
    z &= MASK
    z = ((z ^ (z >> 30)) * MIX1) & MASK
    z = ((z ^ (z >> 27)) * MIX2) & MASK
    return z ^ (z >> 31)


def mix_array(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (wrapping)."""
    z = (z ^ (z >> _U64(30))) * _U64(MIX1)
    z = (z ^ (z >> _U64(27))) * _U64(MIX2)
    return z ^ (z >> _U64(31))


def key(seed: int, *what: str) -> int:
    """The 64-bit key of the stream ``what`` of a network instance drawn from ``seed``."""
    digest = hashlib.sha256("/".join(what).encode()).digest()
    return mix(int.from_bytes(digest[:8], "little") ^ mix(seed + GOLDEN))


def bases(stream: int, index: np.ndarray) -> np.ndarray:
    """mix(K + (i + 1)·G) for each index i (int64)."""
    with np.errstate(over="ignore"):
        return mix_array(_U64(stream) + (index.astype(_U64) + _U64(1)) * _U64(GOLDEN))


def hashes(base: np.ndarray, attempt: np.ndarray | int) -> np.ndarray:
    """h(i, a) from mix(K + (i + 1)·G) and the attempt a."""
    with np.errstate(over="ignore"):
        return mix_array(base + (np.asarray(attempt).astype(_U64) + _U64(1)) * _U64(ATTEMPT))


def scaled(bits: np.ndarray, n: int) -> np.ndarray:
    """⌊bits·n / 2^32⌋ for 32-bit values ``bits`` (uint64): uniform on [0, n) for n < 2^32."""
    return (bits * _U64(n)) >> _U64(32)


def log(s: np.ndarray) -> np.ndarray:
    """The natural logarithm of positive normal numbers, to a few ulp, from exact operations only."""
    m, e = np.frexp(s)
    low = m < SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = np.where(low, e - 1, e).astype(np.float64)
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = np.full_like(f, LOG_SERIES[-1])
    for c in LOG_SERIES[-2::-1]:
        p = p * f2 + c
    t = f * p
    return (t + t) + e * LN2


def fixed_total_number(stream: int, n: int, n_pre: int, n_post: int,
                       no_autapses: bool) -> tuple[np.ndarray, np.ndarray]:
    """(out_start, post) of n synapses with uniform, independent ends (multapses allowed), ordered by pre."""
    index = np.int32 if max(n_pre, n_post) < 2 ** 31 - 1 else np.int64
    counts = np.zeros(n_pre, np.int64)
    for start in range(0, n, CHUNK):
        h = hashes(bases(stream, np.arange(start, min(n, start + CHUNK))), 0)
        counts += np.bincount(scaled(h >> _U64(32), n_pre).astype(np.int64), minlength=n_pre)
    out_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cursor = out_start[:-1].copy()
    post = np.empty(n, index)
    for start in range(0, n, CHUNK):
        base = bases(stream, np.arange(start, min(n, start + CHUNK)))
        h = hashes(base, 0)
        pre = scaled(h >> _U64(32), n_pre).astype(np.int64)
        target = scaled(h & _U64(0xFFFFFFFF), n_post).astype(np.int64)
        if no_autapses:
            bad, attempt = np.nonzero(target == pre)[0], 1
            while len(bad):
                target[bad] = scaled(hashes(base[bad], attempt) & _U64(0xFFFFFFFF), n_post).astype(np.int64)
                bad, attempt = bad[target[bad] == pre[bad]], attempt + 1
        order = np.argsort(pre, kind="stable")
        ordered = pre[order]
        rank = np.arange(len(order)) - np.searchsorted(ordered, ordered, side="left")
        post[cursor[ordered] + rank] = target[order]
        cursor += np.bincount(pre, minlength=n_pre)
    return out_start, post


def uniform(stream: int, n: int, low: float, high: float) -> np.ndarray:
    """n values uniform on [low, high)."""
    out = np.empty(n)
    for start in range(0, n, CHUNK):
        h = hashes(bases(stream, np.arange(start, min(n, start + CHUNK))), 0)
        out[start:start + len(h)] = low + (high - low) * ((h >> _U64(11)).astype(np.float64) * 2.0 ** -53)
    return out


def normal(stream: int, n: int, mean: float, std: float, low: float, high: float,
           truncate: bool) -> tuple[np.ndarray, int]:
    """(n values of a normal law clipped to, or with ``truncate`` redrawn into, [low, high]; how many
    values found no acceptable draw in MAX_ATTEMPTS attempts)."""
    out, failed = np.empty(n), 0
    for start in range(0, n, CHUNK):
        base = bases(stream, np.arange(start, min(n, start + CHUNK)))
        values = np.empty(len(base))
        pending, attempt = np.arange(len(base)), 0
        while len(pending) and attempt < MAX_ATTEMPTS:
            h = hashes(base[pending], attempt)
            x = ((h >> _U64(32)).astype(np.float64) + 0.5) * 2.0 ** -31 - 1.0
            y = ((h & _U64(0xFFFFFFFF)).astype(np.float64) + 0.5) * 2.0 ** -31 - 1.0
            s = x * x + y * y
            inside = s < 1.0
            s = np.where(inside, s, 0.5)
            value = mean + std * (x * np.sqrt(-2.0 * log(s) / s))
            if truncate:
                inside &= (value >= low) & (value <= high)
            else:
                value = np.where(value < low, low, np.where(value > high, high, value))
            values[pending[inside]] = value[inside]
            pending, attempt = pending[~inside], attempt + 1
        failed += len(pending)
        out[start:start + len(base)] = values
    return out, failed
