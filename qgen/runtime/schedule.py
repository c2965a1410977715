"""Time on the grid: how delays and input spike times map to steps (shared by every simulator)."""

from __future__ import annotations

import math

import numpy as np

from qgen.errors import Code, QgenError

CHUNK = 1 << 16  # input spikes converted or checked at a time: the temporaries stay in cache


def run_steps(duration: float, dt: float) -> int:
    """The steps of a run of ``duration`` ms (a clear error unless it is a positive number)."""
    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise QgenError(Code.BAD_OPTION, f"the duration must be a positive number of ms, not {duration!r}")
    return int(math.ceil(duration / dt - 1e-9))


def grid_steps(delay: np.ndarray, dt: float) -> np.ndarray:
    """Delays in steps for grid timing: rounded half up, as NEST does, and at least one."""
    return np.maximum(1, np.floor(delay / dt + 0.5)).astype(np.int64)


def grid_point(ratio, xp=np):
    """The grid point of each time / dt: the next one, unless already on one (NEST's rule).
    ``xp``: the array module (numpy, or jax.numpy inside a traced function)."""
    nearest = xp.floor(ratio + 0.5)
    return xp.where(xp.abs(ratio - nearest) <= 1e-9 * xp.maximum(1.0, nearest), nearest, xp.ceil(ratio))


def input_schedule(times: np.ndarray, dt: float, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per input spike, the step at whose end it is pushed (-1: before the first step) and the time
    it is sent at: its own with exact timing, its grid point (``grid_point``) with grid timing.

    A run's input can be ten million spikes: each output is written a chunk at a time, so that the
    temporaries stay in cache and no array the size of the input is allocated but the outputs."""
    times = np.asarray(times, dtype=np.float64)
    step = np.empty(len(times), np.int64)
    sent = times if exact else np.empty(len(times))
    for first in range(0, len(times), CHUNK):
        part = slice(first, first + CHUNK)
        ratio = times[part] / dt
        if exact:
            step[part] = np.floor(ratio)
        else:
            index = grid_point(ratio)
            sent[part] = index * dt
            step[part] = index - 1
    return step, sent
