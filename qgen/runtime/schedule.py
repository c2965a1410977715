"""Time on the grid: how delays and input spike times map to steps (shared by every simulator)."""

from __future__ import annotations

import numpy as np


def grid_steps(delay: np.ndarray, dt: float) -> np.ndarray:
    """Delays in steps for grid timing: rounded half up, as NEST does, and at least one."""
    return np.maximum(1, np.floor(delay / dt + 0.5)).astype(np.int64)


def grid_index(times: np.ndarray, dt: float) -> np.ndarray:
    """Input spike times on the grid: the next grid point, unless already on one (NEST's rule)."""
    ratio = times / dt
    nearest = np.floor(ratio + 0.5)
    return np.where(np.abs(ratio - nearest) <= 1e-9 * np.maximum(1.0, nearest), nearest,
                    np.ceil(ratio)).astype(np.int64)
