"""A neuron kind's analysis with numbers for its parameters: fast NumPy callables."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import sympy as sp

from qgen.analysis import NeuronAnalysis


def _matrix_function(matrix: sp.Matrix, args: list[sp.Symbol]) -> Callable[..., np.ndarray]:
    fn = sp.lambdify(args, matrix, modules="numpy", dummify=True)

    def call(*values):
        with np.errstate(all="ignore"):  # unselected Piecewise branches may divide by zero
            return np.asarray(fn(*values), dtype=float)
    return call


def _state_function(vector: sp.Matrix, state: list[sp.Symbol], extra: list[sp.Symbol] = ()) -> Callable:
    """F(x, *extra) for states x of shape (..., n) (one or many neurons) -> shape (..., n)."""
    fn = sp.lambdify(list(state) + list(extra), list(vector), modules="numpy", dummify=True)

    def call(x, *rest):
        x = np.asarray(x, dtype=float)
        shape = np.broadcast_shapes(x.shape[:-1], *(np.shape(r) for r in rest))
        with np.errstate(all="ignore"):
            entries = fn(*np.moveaxis(x, -1, 0), *rest)
        return np.stack([np.broadcast_to(np.asarray(e, dtype=float), shape) for e in entries], axis=-1)
    return call


class NumericNeuron:
    """Propagators, threshold and jump maps of one kind, with one population's parameter values."""

    def __init__(self, analysis: NeuronAnalysis, params: Mapping[str, float]) -> None:
        self.analysis = a = analysis
        sym = a.sym
        self.n = len(sym.state)
        self.state_names = a.kind.state_names
        self.params = dict(params)
        sub = {p: sp.Float(params[p.name], 17) for p in sym.params}
        state = list(sym.state)
        self.refractory_period = float(a.refractory.subs(sub)) if a.refractory is not None else 0.0
        self.f = _state_function(a.f.subs(sub), state)
        self.reset = _state_function(a.reset.subs(sub), state)
        self.event = _state_function(a.event.subs(sub), state, [sym.weight])
        self.event_refractory = _state_function(a.event_refractory.subs(sub), state, [sym.weight])
        self.threshold = None
        if a.threshold is not None:
            g = a.threshold.subs(sub)
            g_of_x = _state_function(sp.Matrix([g]), state)
            self.threshold = lambda x: g_of_x(x)[..., 0]
            if a.threshold_linear:
                # g(x) = c·x + d, kept in augmented form c̃ = (c, d) so that g = c̃·x̃
                c = [float(sp.diff(g, s)) for s in state]
                d = float(g.subs({s: 0 for s in state}))
                self.threshold_vector = np.array(c + [d])
        if a.linear:
            self.A_aug = np.zeros((self.n + 1, self.n + 1))
            self.A_aug[:self.n, :self.n] = np.array(a.A.subs(sub), dtype=float)
            self.A_aug[:self.n, self.n] = np.array(a.b.subs(sub), dtype=float).ravel()
            self.propagate = _matrix_function(a.propagator.subs(sub), [sym.delta])
            A_ref, b_ref = a.refractory_system
            self.A_aug_ref = self.A_aug.copy()
            self.A_aug_ref[:self.n, :self.n] = np.array(A_ref.subs(sub), dtype=float)
            self.A_aug_ref[:self.n, self.n] = np.array(b_ref.subs(sub), dtype=float).ravel()
            self.propagate_refractory = (_matrix_function(a.refractory_propagator.subs(sub), [sym.delta])
                                         if a.kind.clamped else self.propagate)
