"""A kind's adjoint terms with numbers for its parameters: NumPy callables for the backward pass.

The counterpart of :class:`qgen.analysis.numeric.NumericNeuron` for :mod:`qgen.analysis.adjoint`:
the parameter values are substituted into the symbolic terms (which selects the Piecewise branch
of degenerate values such as τ_m = τ_s), then the rest is lambdified. Gradients with respect to
parameters are arrays in the order of ``kind.parameter_names``.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np
import sympy as sp

from qgen.analysis import NeuronAnalysis
from qgen.analysis.adjoint import adjoint_terms
from qgen.analysis.numeric import _matrix_function

__all__ = ["EventGradients", "NumericAdjoint", "ResetGradients", "SpikeGradients"]


class SpikeGradients(NamedTuple):
    adjoint: np.ndarray  # λ⁻ (n,)
    parameters: np.ndarray  # this spike's explicit dL/dp (n_params,)


class ResetGradients(NamedTuple):
    adjoint: np.ndarray  # λ⁻ (n,)
    time: float  # add it (and the spike's dL/dt_k) to the triggering event's dL/dt_a
    parameters: np.ndarray  # λ⁺ᵀ ∂r/∂p (n_params,)


class EventGradients(NamedTuple):
    adjoint: np.ndarray  # λ⁻ (n,)
    weight: float  # dL/dw
    time: float  # dL/dt_a = dL/d(delay); add it to dL/dt_k of the emitting spike
    parameters: np.ndarray  # λ⁺ᵀ ∂e/∂p (n_params,)


class NumericAdjoint:
    """The adjoint terms of one kind with one population's parameter values.

    Each term is compiled on first use (lambdify costs tens of ms per term).
    """

    def __init__(self, analysis: NeuronAnalysis, params: Mapping[str, float]) -> None:
        self.terms = adjoint_terms(analysis)
        self.analysis = a = analysis
        self.n = self.terms.n
        self.parameter_names = a.kind.parameter_names
        self.params = dict(params)
        self._sub = {p: sp.Float(params[p.name], 17) for p in a.sym.params}
        self.refractory_period = float(a.refractory.xreplace(self._sub)) if a.refractory is not None else 0.0
        period = self.terms.refractory_end().period if a.refractory is not None else {}
        self.refractory_period_gradient = np.array(  # ∂t_ref/∂p
            [float(sp.sympify(period.get(name, 0)).xreplace(self._sub)) for name in self.parameter_names])
        self._compiled: dict[tuple, Callable[..., np.ndarray]] = {}

    # -------------------------------------------------------------- between jumps

    def rhs(self, x: np.ndarray, refractory: bool = False) -> np.ndarray:
        """f(x), or f_ref(x) while refractory."""
        fn = self._get(("rhs", refractory), lambda: self._compile(self.terms.rhs(refractory), self._state))
        return fn(*x).ravel()

    def propagator(self, delta: float, refractory: bool = False) -> np.ndarray:
        """exp(ÃΔ), (n+1)×(n+1); its top-left n×n block is ∂x(Δ)/∂x(0)."""
        fn = self._get(("propagator", refractory),
                       lambda: self._compile(self.terms.propagator(refractory), [self.analysis.sym.delta]))
        return fn(delta)

    def adjoint_propagator(self, delta: float, refractory: bool = False) -> np.ndarray:
        """Q (n×n) with λ(t) = Q λ(t+Δ) between jumps."""
        return self.propagator(delta, refractory)[:self.n, :self.n].T

    def end_state_time_derivative(self, delta: float, x0: np.ndarray, refractory: bool = False) -> np.ndarray:
        """dx(Δ)/dΔ = f(x(Δ)) for x(0) = x0."""
        end = self.propagator(delta, refractory) @ np.append(x0, 1.0)
        return self.rhs(end[:self.n], refractory)

    def propagator_gradients(self, delta: float, refractory: bool = False) -> np.ndarray:
        """∂ exp(ÃΔ)/∂p, shape (n_params, n+1, n+1)."""
        fn = self._get(("gradients", refractory), lambda: self._compile_stack(
            list(self.terms.propagator_gradients(refractory).values()), [self.analysis.sym.delta]))
        return fn(delta)

    def interval_parameter_gradient(self, delta: float, x0: np.ndarray, lam_end: np.ndarray,
                                    refractory: bool = False) -> np.ndarray:
        """λ_endᵀ ∂/∂p [exp(ÃΔ) x̃0]_{:n} = ∫ λᵀ ∂f/∂p dt over one sub-interval, (n_params,)."""
        D = self.propagator_gradients(delta, refractory)[:, :self.n, :]
        return np.einsum("i,pij,j->p", lam_end, D, np.append(x0, 1.0))

    # -------------------------------------------------------------- jumps

    def spike(self, x_minus: np.ndarray, lam_plus: np.ndarray, dL_dt: float) -> SpikeGradients:
        """The saltation at a spike with pre-spike state x⁻; dL_dt is the total dL/dt_k.

        Uses the refractory form of the jump when this population's refractory period is > 0.
        """
        def build() -> Callable[..., np.ndarray]:
            jump = self.terms.spike_jump(refractory=self.refractory_period > 0)
            column = sp.Matrix.vstack(jump.adjoint, self._vector(jump.parameters))
            return self._compile(column, self._state + self._lam + [self.terms.dL_dt])
        column = self._get(("spike",), build)(*x_minus, *lam_plus, dL_dt).ravel()
        return SpikeGradients(column[:self.n], column[self.n:])

    def reset(self, x_minus: np.ndarray, lam_plus: np.ndarray) -> ResetGradients:
        """The reset of a spike at a fixed time (an event lifted g to ≥ 0) from pre-reset state x⁻."""
        def build() -> Callable[..., np.ndarray]:
            jump = self.terms.reset_jump(refractory=self.refractory_period > 0)
            column = sp.Matrix.vstack(jump.adjoint, sp.Matrix([jump.time]), self._vector(jump.parameters))
            return self._compile(column, self._state + self._lam)
        column = self._get(("reset",), build)(*x_minus, *lam_plus).ravel()
        n = self.n
        return ResetGradients(column[:n], float(column[n]), column[n + 1:])

    def spike_time_state_gradient(self, x_minus: np.ndarray) -> np.ndarray:
        """∂t_k/∂x⁻ = −Gᵀ/ġ⁻."""
        fn = self._get(("spike time",), lambda: self._compile(
            self.terms.spike_jump(refractory=self.refractory_period > 0).time_state, self._state))
        return fn(*x_minus).ravel()

    def event(self, x_minus: np.ndarray, w: float, lam_plus: np.ndarray, refractory: bool = False) -> EventGradients:
        """The adjoint terms of an event of weight w arriving at state x⁻ (``refractory``: in the period)."""
        def build() -> Callable[..., np.ndarray]:
            # one compiled column: λ⁻ (n), dL/dw, dL/dt_a, dL/dp (n_params)
            jump = self.terms.event_jump(refractory)
            column = sp.Matrix.vstack(jump.adjoint, sp.Matrix([jump.weight, jump.time]),
                                      self._vector(jump.parameters))
            return self._compile(column, self._state + [self.analysis.sym.weight] + self._lam)
        column = self._get(("event", refractory), build)(*x_minus, w, *lam_plus).ravel()
        n = self.n
        return EventGradients(column[:n], float(column[n]), float(column[n + 1]), column[n + 2:])

    def refractory_end_time_gradient(self, x: np.ndarray, lam: np.ndarray) -> float:
        """dL/dτ at the end of a refractory period with state x(τ) and adjoint λ(τ)."""
        fn = self._get(("end",), lambda: self._compile(
            sp.Matrix([self.terms.refractory_end().time]), self._state + self._lam))
        return float(fn(*x, *lam)[0, 0])

    # -------------------------------------------------------------- helpers

    @property
    def _state(self) -> list[sp.Symbol]:
        return list(self.analysis.sym.state)

    @property
    def _lam(self) -> list[sp.Symbol]:
        return list(self.terms.lam)

    def _get(self, key: tuple, build: Callable[[], Callable[..., np.ndarray]]) -> Callable[..., np.ndarray]:
        if key not in self._compiled:
            self._compiled[key] = build()
        return self._compiled[key]

    def _compile(self, expr: sp.Matrix, args: list[sp.Symbol]) -> Callable[..., np.ndarray]:
        # xreplace rebuilds the tree, so Eq(τ_m, τ_s) conditions with numbers evaluate and the
        # Piecewise keeps only the selected branch; it is much faster than subs on large terms
        return _matrix_function(sp.Matrix(expr).xreplace(self._sub), args)

    def _compile_stack(self, matrices: list[sp.Matrix], args: list[sp.Symbol]) -> Callable[..., np.ndarray]:
        """One compiled function returning the matrices stacked along a first axis."""
        if not matrices:  # a kind without parameters
            return lambda *values: np.zeros((0, self.n + 1, self.n + 1))
        fn = self._compile(sp.Matrix.vstack(*matrices), args)
        return lambda *values: fn(*values).reshape(len(matrices), *matrices[0].shape)

    def _vector(self, by_name: Mapping[str, sp.Expr]) -> sp.Matrix:
        return sp.Matrix([by_name[name] for name in self.parameter_names])
