"""The Yin-Yang data set (Kriener, Göltz, Petrovici 2021, arXiv 2102.08211), generated procedurally.

Points (x, y) in the disc of radius ``r_big`` centred at (r_big, r_big), labelled yin (1), yang
(0) or dot (2); classes are balanced by drawing the class first and rejection-sampling a point
of that class. The same algorithm and seeds as the authors' reference implementation
(github.com/lkriener/yin_yang_data_set): train 5000 points with seed 42, validation 1000 with
seed 41, test 1000 with seed 40.
"""

from __future__ import annotations

import numpy as np

SPLITS = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}


def which_class(x: float, y: float, r_small: float = 0.1, r_big: float = 0.5) -> int:
    """0 yang, 1 yin, 2 dot."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    if d_right < r_small or d_left < r_small:
        return 2
    yin = d_right <= r_small or r_small < d_left <= 0.5 * r_big or (y > r_big and d_right > 0.5 * r_big)
    return int(yin)


def yin_yang(size: int, seed: int, r_small: float = 0.1, r_big: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(points (size, 4) = (x, y, 1 − x, 1 − y), labels (size,)) in the reference implementation's order."""
    rng = np.random.RandomState(seed)
    points, labels = np.empty((size, 4)), np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if np.hypot(x - r_big, y - r_big) > r_big:
                continue
            if which_class(x, y, r_small, r_big) == goal:
                break
        points[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = goal
    return points, labels


def split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The standard ``train``, ``validation`` or ``test`` split."""
    size, seed = SPLITS[name]
    return yin_yang(size, seed)


def spike_times(points: np.ndarray, t_early: float = 0.15, t_late: float = 2.0,
                bias: float = 0.9) -> np.ndarray:
    """Time-to-first-spike code, as in Göltz et al. 2021: value v -> t_early + v·(t_late − t_early) ms,
    plus one bias spike; shape (size, 5)."""
    times = t_early + points * (t_late - t_early)
    return np.column_stack([times, np.full(len(points), bias)])
