"""The first threshold crossing of linear dynamics inside an interval, to machine precision.

The augmented state evolves as x̃(s) = exp(Ã s) x̃(0) and the threshold function is linear,
g(s) = c̃·x̃(s). A crossing may hide between the ends of an interval (the voltage rises above
threshold and falls back, as Bullet Trains points out), so ends alone prove nothing. What does:
on an interval of width h, g lies below the chord of its end values plus h²/8·sup|g''|, and
|g''(s)| = |c̃ Ã² x̃(s)| <= |c̃ Ã²|·exp(|Ã| h)·|x̃(0)|. An interval whose bound stays below
zero holds no crossing; the others are halved, left first, until the first crossing is bracketed
on a piece where g is provably increasing, and a bracketed Newton iteration then finds it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class CrossingSearch:
    def __init__(self, threshold: np.ndarray, A: np.ndarray, propagate: Callable[[float], np.ndarray]) -> None:
        self.c = threshold  # c̃: g(x̃) = c̃·x̃
        self.c_A = threshold @ A  # g' = c̃ Ã x̃
        self.c_A2_norm = float(np.linalg.norm(threshold @ A @ A))
        self.A_norm = float(np.linalg.norm(A, 2))
        self.propagate = propagate

    def curvature_bound(self, x: np.ndarray, width: float) -> np.ndarray:
        """sup |g''| over [0, width] from state(s) x (..., n+1)."""
        return self.c_A2_norm * np.exp(self.A_norm * width) * np.linalg.norm(x, axis=-1)

    def may_cross(self, x0: np.ndarray, x1: np.ndarray, width: float) -> np.ndarray:
        """For many neurons at once: False where no crossing in [0, width] is possible."""
        g0, g1 = x0 @ self.c, x1 @ self.c
        margin = width * width / 8 * self.curvature_bound(x0, width)
        return np.maximum(g0, g1) + margin * (1 + 1e-12) >= -1e-300

    def first(self, x0: np.ndarray, width: float, t0: float) -> tuple[float, np.ndarray] | None:
        """(s, x̃(s)) of the first s in [0, width] with g >= 0, or None; t0 is the absolute start time."""
        c = self.c
        if c @ x0 >= 0:
            return 0.0, x0
        # The smallest width worth examining: below it, times are equal in floating point.
        floor = 4 * np.spacing(abs(t0) + width)
        stack = [(0.0, x0, width)]
        while stack:
            a, xa, b = stack.pop()
            h = b - a
            xb = self.propagate(h) @ xa
            ga, gb = c @ xa, c @ xb
            bound = self.curvature_bound(xa, h)
            if gb >= 0:
                slope_low = 0.5 * (self.c_A @ xa + self.c_A @ xb - bound * h)
                if slope_low > 0 or h <= floor:
                    return self._solve(a, xa, h, t0)
            elif max(ga, gb) + h * h / 8 * bound * (1 + 1e-12) < 0 or h <= floor:
                continue
            mid = a + h / 2
            stack.append((mid, self.propagate(h / 2) @ xa, b))
            stack.append((a, xa, mid))
        return None

    def _solve(self, a: float, xa: np.ndarray, h: float, t0: float) -> tuple[float, np.ndarray]:
        """g(a) < 0 <= g(a + h), g increasing: the crossing, by Newton kept inside the bracket.

        Returns the end of a bracket one or two ulps of the absolute time wide, where g >= 0.
        """
        c = self.c
        tol = 2 * np.spacing(abs(t0 + a) + h)
        lo, hi, x_hi = 0.0, h, self.propagate(h) @ xa
        g_lo, g_hi = c @ xa, c @ x_hi
        s = h * -g_lo / (g_hi - g_lo)
        for _ in range(200):
            if not lo < s < hi:
                s = 0.5 * (lo + hi)
            xs = self.propagate(s) @ xa
            gs = c @ xs
            if gs >= 0:
                hi, x_hi = s, xs
            else:
                lo = s
            if hi - lo <= tol:
                break
            slope = self.c_A @ xs
            step = gs / slope if slope > 0 else np.inf
            if abs(step) <= tol / 2:  # converged: close the bracket just across the root
                step = -tol if gs < 0 else tol
            s = s - step
        return a + hi, x_hi
