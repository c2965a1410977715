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
- ``normal(mean, std)``: the ziggurat of Marsaglia & Tsang in Doornik's form (ZIGNOR, 256 blocks;
  tables below, computed with this module's own ``exp`` and ``log``) on attempts a = 0, 1, …:
  block i = h & 255, u = ((h >> 12) + ½)·2^-51 − 1 (exact, in (−1, 1)); accepted at once if
  |u| < ratio[i] (99 % of draws): z = u·x[i]. Otherwise the wedge test with u₂ from h(h, 0), or
  in block 0 the tail beyond r, sampled from the hashes h(h, 2k), h(h, 2k + 1), k = 0, 1, ….
  The value mean + std·z is clipped to the bounds, or (``truncated_normal``) redrawn with the
  next attempt while outside them. ``exp`` and ``log`` are made of IEEE-exact operations only,
  because the C library's and NumPy's may differ in the last bit.

Every operation is one IEEE double operation, in the order written here; the C twin is compiled
without contracting a·b + c into one fused multiply-add, which rounds once instead of twice.
"""

from __future__ import annotations

import hashlib
import math

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
# exp(t) = 2^k·exp(r), r = t − k·ln 2 in two parts (fdlibm's), |r| ≤ 0.35: 14 Taylor terms reach 2^-57
INV_LN2, LN2_HI, LN2_LO = 1.4426950408889634, 6.93147180369123816490e-01, 1.90821492927058770002e-10
EXP_SERIES = tuple(1.0 / math.factorial(k) for k in range(14))
ZIG_R, ZIG_V = 3.6541528853610088, 0.00492867323399  # the tail's start and each block's area (256 blocks)
TAIL_ATTEMPTS = 64  # pairs drawn for a tail value before the attempt is given up (P(reject) < 0.1 each)

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


def exp(t: np.ndarray) -> np.ndarray:
    """e^t for moderate t, to a few ulp, from exact operations only."""
    k = np.floor(t * INV_LN2 + 0.5)
    r = (t - k * LN2_HI) - k * LN2_LO
    p = np.full_like(r, EXP_SERIES[-1])
    for c in EXP_SERIES[-2::-1]:
        p = p * r + c
    return np.ldexp(p, k.astype(np.int64))


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray]:
    """x[0..256] (x[0] = V/f(r), x[1] = r, x[256] = 0) and ratio[i] = x[i + 1]/x[i], f(x) = e^(-x²/2)."""
    x = np.zeros(257)
    f = exp(np.array([-0.5 * ZIG_R * ZIG_R]))[0]
    x[0], x[1] = ZIG_V / f, ZIG_R
    for i in range(2, 256):
        x[i] = math.sqrt(-2.0 * log(np.array([ZIG_V / x[i - 1] + f]))[0])
        f = exp(np.array([-0.5 * x[i] * x[i]]))[0]
    return x, x[1:] / x[:-1]


ZIG_X, ZIG_RATIO = _ziggurat_tables()


def ziggurat(h: np.ndarray) -> np.ndarray:
    """One attempt of the ziggurat per hash: a standard normal value, or NaN where rejected."""
    i = (h & _U64(255)).astype(np.intp)
    u = ((h >> _U64(12)).astype(np.float64) + 0.5) * 2.0 ** -51 - 1.0
    z = np.full(len(h), np.nan)
    rectangle = np.abs(u) < ZIG_RATIO[i]
    z[rectangle] = u[rectangle] * ZIG_X[i[rectangle]]
    wedge = ~rectangle & (i != 0)
    if wedge.any():
        iw = i[wedge]
        x = u[wedge] * ZIG_X[iw]
        x2 = x * x
        f0 = exp(-0.5 * (ZIG_X[iw] * ZIG_X[iw] - x2))
        f1 = exp(-0.5 * (ZIG_X[iw + 1] * ZIG_X[iw + 1] - x2))
        u2 = (hashes(h[wedge], 0) >> _U64(11)).astype(np.float64) * 2.0 ** -53
        z[wedge] = np.where(f1 + u2 * (f0 - f1) < 1.0, x, np.nan)
    tail = ~rectangle & (i == 0)
    if tail.any():
        z[tail] = _tail(h[tail], u[tail] < 0.0)
    return z


def _tail(h: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Values beyond ±r (Marsaglia's tail method), NaN where TAIL_ATTEMPTS pairs were all rejected."""
    out, pending = np.full(len(h), np.nan), np.arange(len(h))
    for k in range(TAIL_ATTEMPTS):
        if not len(pending):
            break
        u1 = ((hashes(h[pending], 2 * k) >> _U64(12)).astype(np.float64) + 0.5) * 2.0 ** -52
        u2 = ((hashes(h[pending], 2 * k + 1) >> _U64(12)).astype(np.float64) + 0.5) * 2.0 ** -52
        x, y = log(u1) / ZIG_R, log(u2)
        accepted = -2.0 * y >= x * x
        value = np.where(negative[pending], x - ZIG_R, ZIG_R - x)
        out[pending[accepted]] = value[accepted]
        pending = pending[~accepted]
    return out


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
            z = ziggurat(hashes(base[pending], attempt))
            inside = ~np.isnan(z)
            value = mean + std * np.where(inside, z, 0.0)
            if truncate:
                inside &= (value >= low) & (value <= high)
            else:
                value = np.where(value < low, low, np.where(value > high, high, value))
            values[pending[inside]] = value[inside]
            pending, attempt = pending[~inside], attempt + 1
        failed += len(pending)
        out[start:start + len(base)] = values
    return out, failed
