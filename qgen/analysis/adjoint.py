"""The EventProp adjoint of a neuron kind, derived symbolically once per kind.

Conventions (see DESIGN.md §3–4): state x (order ``kind.state_names``), parameters p
(``kind.parameter_names``), dx/dt = f(x); the adjoint obeys dλ/dt = −(∂f/∂x)ᵀλ − ∂ℓ/∂x and is
integrated backwards in time. Superscripts ⁻/⁺ mean just before/after a jump in *forward* time;
the backward sweep turns λ⁺ into λ⁻.

Terms, all sympy objects in the kind's symbols plus the adjoint symbols ``lam`` (λ⁺, or λ at the
end of an interval) and ``dL_dt`` (the total dL/dt_k of a spike):

- between jumps: λ(t) = P(Δ)ᵀ λ(t+Δ) with P the top-left n×n block of exp(ÃΔ);
- a spike at t_k (g(x⁻) = 0, x⁺ = r(x⁻)): with G = ∂g/∂x, R = ∂r/∂x, f⁻ = f(x⁻),
  f⁺ = f_ref(r(x⁻)) (or f(r(x⁻)) without refractoriness) and ġ⁻ = G f⁻, the saltation matrix
  S = R + (f⁺ − R f⁻) G / ġ⁻ gives λ⁻ = Sᵀλ⁺ − Gᵀ dL/dt_k / ġ⁻, where
  dL/dt_k = ∂L/∂t_k (direct) + Σ dL/dt_a (events the spike emitted) + dL/dτ (its refractory end).
  The crossing moves as δt_k = −(G δx⁻ + ∂g/∂p δp)/ġ⁻, so the spike adds
  dL/dp += λ⁺ᵀ ∂r/∂p − (λ⁺ᵀ(R f⁻ − f⁺) + dL/dt_k) (∂g/∂p)/ġ⁻;
- an event at a fixed time t_a (x⁺ = e(x⁻, w)): λ⁻ = Eᵀλ⁺, dL/dw = λ⁺ᵀ ∂e/∂w,
  dL/dt_a = λ⁺ᵀ(E f⁻ − f⁺);
- the end of a refractory period at τ = t_k + t_ref: λ is continuous, dL/dτ = λᵀ(f_ref − f)(x(τ));
- parameter gradients: each jump's explicit terms, plus per sub-interval
  λ_endᵀ ∂/∂p [exp(ÃΔ) x̃0]_{:n} = ∫ λᵀ ∂f/∂p dt over the sub-interval. ∂exp(ÃΔ)/∂p keeps
  the propagator's degenerate branches (τ_m = τ_s, ...), each differentiated off its manifold.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import sympy as sp

from qgen.analysis import NeuronAnalysis
from qgen.analysis.propagators import augmented, degenerate_cases
from qgen.ir.nodes import NeuronKind

T = TypeVar("T")

__all__ = ["AdjointTerms", "EventJump", "RefractoryEnd", "ResetJump", "SpikeJump", "adjoint_terms",
           "propagator_parameter_derivatives"]


# ------------------------------------------------------------------ jump bundles


@dataclass(frozen=True, eq=False)
class SpikeJump:
    """The adjoint at a spike, in x⁻ (state symbols), λ⁺ (``lam``), dL/dt_k (``dL_dt``) and p."""

    saltation: sp.ImmutableMatrix  # S (n×n): δx⁺ = S δx⁻
    slope: sp.Expr  # ġ⁻ = G·f(x⁻), > 0 at a transversal crossing
    adjoint: sp.ImmutableMatrix  # λ⁻ (n×1)
    time_state: sp.ImmutableMatrix  # ∂t_k/∂x⁻ = −Gᵀ/ġ⁻ (n×1)
    time_parameters: dict[str, sp.Expr]  # ∂t_k/∂p = −(∂g/∂p)/ġ⁻
    parameters: dict[str, sp.Expr]  # this spike's explicit contribution to dL/dp


@dataclass(frozen=True, eq=False)
class EventJump:
    """The adjoint at an event arrival, in x⁻ (state symbols), w, λ⁺ (``lam``) and p."""

    adjoint: sp.ImmutableMatrix  # λ⁻ = Eᵀλ⁺ (n×1)
    weight: sp.Expr  # dL/dw
    time: sp.Expr  # dL/dt_a (= dL/d(delay); add it to dL/dt_k of the emitting spike)
    parameters: dict[str, sp.Expr]  # λ⁺ᵀ ∂e/∂p


@dataclass(frozen=True, eq=False)
class ResetJump:
    """A reset at a time fixed by something else (an event lifted g to ≥ 0), in x⁻ and λ⁺.

    The spike time is then the event's arrival time, not a crossing of the flow: ``time`` plus
    the spike's own dL/dt_k is added to the event's dL/dt_a.
    """

    adjoint: sp.ImmutableMatrix  # λ⁻ = Rᵀλ⁺ (n×1)
    time: sp.Expr  # λ⁺ᵀ(R f(x⁻) − f⁺): the cost of moving the reset by one unit of time
    parameters: dict[str, sp.Expr]  # λ⁺ᵀ ∂r/∂p


@dataclass(frozen=True, eq=False)
class RefractoryEnd:
    """The switch back to normal dynamics at τ = t_k + t_ref, in x(τ) (state symbols) and λ (``lam``)."""

    time: sp.Expr  # dL/dτ: add it to dL/dt_k of the spike that began the period
    period: dict[str, sp.Expr]  # ∂t_ref/∂p: dL/dp += dL/dτ · ∂t_ref/∂p


# ------------------------------------------------------------------ the terms of one kind


class AdjointTerms:
    """Every term the EventProp backward pass needs for one neuron kind (sympy, derived lazily)."""

    def __init__(self, analysis: NeuronAnalysis) -> None:
        self.analysis = a = analysis
        self.sym = a.sym
        self.n = len(a.sym.state)
        taken = {s.name for s in (*a.sym.state, *a.sym.params, a.sym.weight, a.sym.delta)}
        self.lam = tuple(sp.Symbol(_fresh(f"lambda_{s.name}", taken), real=True) for s in a.sym.state)
        self.dL_dt = sp.Symbol(_fresh("dL_dt", taken), real=True)
        self.f = a.f
        self.f_refractory = _clamp_rows(a.f, a.kind)
        self._cache: dict[tuple, Any] = {}

    # -------------------------------------------------------------- between jumps

    def rhs(self, refractory: bool) -> sp.ImmutableMatrix:
        """f(x), or f_ref(x) (clamped rows zero) while refractory."""
        return self.f_refractory if refractory else self.f

    def propagator(self, refractory: bool = False) -> sp.ImmutableMatrix:
        """exp(ÃΔ) ((n+1)×(n+1)): the initial-state Jacobian of x(Δ) is its top-left n×n block."""
        return self.analysis.refractory_propagator if refractory else self.analysis.propagator

    def adjoint_propagator(self, refractory: bool = False) -> sp.ImmutableMatrix:
        """Q(Δ) (n×n) with λ(t) = Q(Δ) λ(t+Δ) when no running loss acts in between."""
        return sp.ImmutableMatrix(self.initial_state_jacobian(refractory).T)

    def initial_state_jacobian(self, refractory: bool = False) -> sp.ImmutableMatrix:
        """∂x(Δ)/∂x(0) (n×n): the top-left block of the propagator."""
        n = self.n
        return sp.ImmutableMatrix(self.propagator(refractory)[:n, :n])

    def propagator_time_derivative(self, refractory: bool = False) -> sp.ImmutableMatrix:
        """d exp(ÃΔ)/dΔ = Ã exp(ÃΔ): applied to x̃0 it gives dx(Δ)/dΔ = f(x(Δ))."""
        P = self.propagator(refractory)  # first: it raises the clear error for non-linear kinds
        return sp.ImmutableMatrix(self._augmented(refractory) * P)

    def end_state(self, refractory: bool = False) -> sp.ImmutableMatrix:
        """x(Δ) (n×1) from x(0) = the state symbols."""
        return sp.ImmutableMatrix((self.propagator(refractory) * self._tilde(self.sym.state))[:self.n, :])

    @functools.cached_property
    def _propagator_gradients(self) -> dict[str, sp.ImmutableMatrix]:
        return self._parameter_derivatives(refractory=False)

    @functools.cached_property
    def _refractory_propagator_gradients(self) -> dict[str, sp.ImmutableMatrix]:
        if not self.analysis.kind.clamped:  # the refractory dynamics are the normal ones
            return self._propagator_gradients
        return self._parameter_derivatives(refractory=True)

    def propagator_gradients(self, refractory: bool = False) -> dict[str, sp.ImmutableMatrix]:
        """∂ exp(ÃΔ)/∂p for every parameter name, with the propagator's degenerate branches."""
        return self._refractory_propagator_gradients if refractory else self._propagator_gradients

    def interval_parameter_gradient(self, refractory: bool = False) -> dict[str, sp.Expr]:
        """λ_endᵀ ∂/∂p [exp(ÃΔ) x̃0]_{:n} per parameter; x0 = state symbols, λ_end = ``lam``."""
        n = self.n
        lam, x0 = sp.Matrix(self.lam).T, self._tilde(self.sym.state)
        return {name: (lam * D[:n, :] * x0)[0, 0] for name, D in self.propagator_gradients(refractory).items()}

    # -------------------------------------------------------------- jumps

    def spike_jump(self, refractory: bool) -> SpikeJump:
        """The saltation at a spike; ``refractory``: the kind's refractory period is > 0."""
        return self._memo(("spike", refractory), self._spike_jump, refractory)

    def event_jump(self, refractory: bool = False) -> EventJump:
        """The adjoint terms of an event arriving at a fixed time (``refractory``: during the period)."""
        return self._memo(("event", refractory), self._event_jump, refractory)

    def reset_jump(self, refractory: bool) -> ResetJump:
        """The reset of a spike triggered by an event; ``refractory``: the kind's period is > 0."""
        return self._memo(("reset", refractory), self._reset_jump, refractory)

    def refractory_end(self) -> RefractoryEnd:
        """dL/dτ at the end of the refractory period, and ∂t_ref/∂p."""
        return self._memo(("end",), self._refractory_end)

    def _spike_jump(self, refractory: bool) -> SpikeJump:
        a = self.analysis
        if a.threshold is None:
            raise ValueError(f"{a.kind.name} has no threshold: it never spikes")
        x = sp.Matrix(self.sym.state)
        G = sp.Matrix([a.threshold]).jacobian(x)  # 1×n
        R = a.reset.jacobian(x)
        f_minus = sp.Matrix(self.f)
        f_plus = self._after(self.rhs(refractory), a.reset)
        slope = sp.simplify((G * f_minus)[0, 0])
        S = (R + (f_plus - R * f_minus) * G / slope).applyfunc(sp.simplify)
        lam = sp.Matrix(self.lam)
        adjoint = S.T * lam - G.T * self.dL_dt / slope
        # A parameter moves the crossing through g (δt_k = −g_p δp/ġ⁻) and the landing point
        # through r; the time shift costs λ⁺ᵀ(R f⁻ − f⁺) + dL/dt_k per unit time.
        time_cost = (lam.T * (R * f_minus - f_plus))[0, 0] + self.dL_dt
        time_parameters, parameters = {}, {}
        for p in self.sym.params:
            time_parameters[p.name] = -sp.diff(a.threshold, p) / slope
            parameters[p.name] = (lam.T * a.reset.diff(p))[0, 0] + time_cost * time_parameters[p.name]
        return SpikeJump(sp.ImmutableMatrix(S), slope, sp.ImmutableMatrix(adjoint),
                         sp.ImmutableMatrix(-G.T / slope), time_parameters, parameters)

    def _reset_jump(self, refractory: bool) -> ResetJump:
        a = self.analysis
        if a.threshold is None:
            raise ValueError(f"{a.kind.name} has no threshold: it never spikes")
        R = a.reset.jacobian(sp.Matrix(self.sym.state))
        lam = sp.Matrix(self.lam)
        f_plus = self._after(self.rhs(refractory), a.reset)
        time = (lam.T * (R * sp.Matrix(self.f) - f_plus))[0, 0]
        return ResetJump(sp.ImmutableMatrix(R.T * lam), time,
                         {p.name: (lam.T * a.reset.diff(p))[0, 0] for p in self.sym.params})

    def _event_jump(self, refractory: bool) -> EventJump:
        a = self.analysis
        e = a.event_refractory if refractory else a.event
        f = self.rhs(refractory)
        x = sp.Matrix(self.sym.state)
        E = e.jacobian(x)
        lam = sp.Matrix(self.lam)
        f_plus = self._after(f, e)
        time = (lam.T * (E * sp.Matrix(f) - f_plus))[0, 0]
        return EventJump(
            sp.ImmutableMatrix(E.T * lam),
            (lam.T * e.diff(self.sym.weight))[0, 0],
            time,
            {p.name: (lam.T * e.diff(p))[0, 0] for p in self.sym.params},
        )

    def _refractory_end(self) -> RefractoryEnd:
        a = self.analysis
        if a.refractory is None:
            raise ValueError(f"{a.kind.name} has no refractory period")
        lam = sp.Matrix(self.lam)
        time = (lam.T * (self.f_refractory - self.f))[0, 0]
        return RefractoryEnd(time, {p.name: sp.diff(a.refractory, p) for p in self.sym.params})

    # -------------------------------------------------------------- helpers

    def _memo(self, key: tuple, derive: Callable[..., T], *args: object) -> T:
        """Derive a term once per instance (the numeric classes ask for the same terms again)."""
        if key not in self._cache:
            self._cache[key] = derive(*args)
        return self._cache[key]

    def _after(self, vector: sp.Matrix, jump: sp.Matrix) -> sp.Matrix:
        """vector(x) evaluated at x = jump(x⁻)."""
        return sp.Matrix(vector).subs(dict(zip(self.sym.state, jump)), simultaneous=True)

    def _tilde(self, x) -> sp.Matrix:
        return sp.Matrix([*x, 1])

    def _augmented(self, refractory: bool) -> sp.ImmutableMatrix:
        a = self.analysis
        A, b = a.refractory_system if refractory else (a.A, a.b)
        return augmented(A, b)

    def _parameter_derivatives(self, refractory: bool) -> dict[str, sp.ImmutableMatrix]:
        derivatives = propagator_parameter_derivatives(
            self._augmented(refractory), self.propagator(refractory), self.sym.delta, self.sym.params)
        return {p.name: D for p, D in derivatives.items()}


@functools.cache
def adjoint_terms(analysis: NeuronAnalysis) -> AdjointTerms:
    """The (cached) adjoint terms of an analysed kind."""
    return AdjointTerms(analysis)


# ------------------------------------------------------------------ ∂ exp(MΔ)/∂p


def propagator_parameter_derivatives(M: sp.Matrix, P: sp.Matrix, delta: sp.Symbol,
                                     params: tuple[sp.Symbol, ...]) -> dict[sp.Symbol, sp.ImmutableMatrix]:
    """∂P/∂p for P = exp(MΔ) as built by :func:`qgen.analysis.propagators.propagator`.

    The generic branch is differentiated directly. A degenerate branch (say τ_m = τ_s) holds only
    on its manifold, so differentiating it naively w.r.t. a parameter that leaves the manifold
    (τ_m or τ_s) gives a wrong (directional) derivative; there we use
    ∂/∂p exp(MΔ) = ∫₀^Δ exp(M(Δ−s)) ∂M/∂p exp(Ms) ds with the confluent exp(M s).
    """
    generic = sp.Matrix(P).applyfunc(_generic_branch)
    # the same branches as the propagator: the cases under which an entry's denominator vanishes
    cases = [(sub, sp.Matrix(P).subs(sub).applyfunc(_generic_branch)) for sub in degenerate_cases(M, params)]
    branches = {}
    for i, j in itertools.product(*map(range, P.shape)):
        _, den = sp.fraction(sp.together(generic[i, j]))
        branches[i, j] = [(sub, P_case) for sub, P_case in cases if sp.simplify(den.subs(sub)) == 0]
    result = {}
    for p in params:
        if sp.Matrix(M).diff(p).is_zero_matrix:
            result[p] = sp.ImmutableMatrix(sp.zeros(*P.shape))
            continue
        D = generic.diff(p)
        for (i, j), entry_cases in branches.items():
            if entry_cases:
                pieces = [(_degenerate_derivative(P_case, M, sub, p, delta, i, j), _condition(sub))
                          for sub, P_case in entry_cases]
                D[i, j] = sp.Piecewise(*pieces, (D[i, j], True))
        result[p] = sp.ImmutableMatrix(D)
    return result


def _degenerate_derivative(P_case: sp.Matrix, M: sp.Matrix, sub: dict[sp.Symbol, sp.Expr], p: sp.Symbol,
                           delta: sp.Symbol, i: int, j: int) -> sp.Expr:
    """Entry (i, j) of ∂P/∂p at the degenerate case ``sub`` (P_case: P there, generic branches)."""
    involved = set(sub).union(*(sp.sympify(v).free_symbols for v in sub.values()))
    if p not in involved:  # p moves along the manifold: the confluent branch is exact there
        return sp.diff(P_case[i, j], p)
    Mp = sp.Matrix(M).diff(p).subs(sub)
    s = sp.Dummy("s", nonnegative=True)
    n = P_case.shape[0]
    integrand = sum(P_case[i, k].subs(delta, delta - s) * Mp[k, l] * P_case[l, j].subs(delta, s)
                    for k in range(n) for l in range(n) if Mp[k, l] != 0)
    # conds="none": the cases where the remaining exponents coincide too are earlier branches
    return sp.simplify(sp.integrate(sp.expand(integrand), (s, 0, delta), conds="none"))


def _condition(sub: dict[sp.Symbol, sp.Expr]) -> sp.Basic:
    return sp.And(*(sp.Eq(p, v) for p, v in sub.items()))


def _generic_branch(expr: sp.Expr) -> sp.Expr:
    """expr with every Piecewise replaced by its last (otherwise) branch."""
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[-1][0])


def _clamp_rows(f: sp.Matrix, kind: NeuronKind) -> sp.ImmutableMatrix:
    """f with the rows of the variables held during the refractory period set to zero."""
    rows = [sp.Integer(0) if name in kind.clamped else f[i] for i, name in enumerate(kind.state_names)]
    return sp.ImmutableMatrix(rows)


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name = "_" + name
    taken.add(name)
    return name
