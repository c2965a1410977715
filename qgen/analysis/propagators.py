"""Closed-form propagators of affine dynamics, including the degenerate parameter cases.

For dx/dt = A x + b, the augmented state x̃ = (x, 1) obeys dx̃/dt = Ã x̃ with
Ã = [[A, b], [0, 0]], so x(t0 + Δ) = (exp(Ã Δ) x̃(t0))[:n] in one matrix. The generic closed
form of exp(Ã Δ) divides by differences of eigenvalues (1/(τ_m − τ_s) for a LIF); wherever two
eigenvalues can coincide for some parameter value, the confluent form for that case is derived
separately and selected by a Piecewise, most specific case first.
"""

from __future__ import annotations

import itertools

import sympy as sp


def augmented(A: sp.Matrix, b: sp.Matrix) -> sp.ImmutableMatrix:
    n = A.shape[0]
    M = sp.zeros(n + 1, n + 1)
    M[:n, :n] = A
    M[:n, n] = b
    return sp.ImmutableMatrix(M)


def _exp(M: sp.Matrix, delta: sp.Symbol) -> sp.Matrix:
    return (sp.Matrix(M) * delta).exp().applyfunc(_tidy)


def _tidy(entry: sp.Expr) -> sp.Expr:
    """A readable form that keeps each exponential whole.

    sympy's simplify() likes to write e^(-Δ/τs) − e^(-Δ/τm) as (e^(Δ/τm) − e^(Δ/τs))·e^(-Δ/τm-Δ/τs),
    which overflows to inf·0 for long intervals; this keeps one exponential per term instead.
    """
    entry = sp.powsimp(sp.expand(entry), combine="exp")
    entry = sp.collect(entry, sorted(entry.atoms(sp.exp), key=sp.default_sort_key))
    return sp.factor_terms(entry)


def degenerate_cases(M: sp.Matrix, params: tuple[sp.Symbol, ...]) -> list[dict[sp.Symbol, sp.Expr]]:
    """Parameter substitutions under which distinct eigenvalues of M coincide, most specific first."""
    cases: list[dict[sp.Symbol, sp.Expr]] = []
    for sub in _coincidences(M, params):
        (p, value), = sub.items()
        rest = tuple(q for q in params if q != p)
        for deeper in degenerate_cases(sp.Matrix(M).subs(sub), rest):
            combined = {p: sp.sympify(value).subs(deeper), **deeper}
            if combined not in cases:
                cases.append(combined)
        if sub not in cases:
            cases.append(sub)
    return sorted(cases, key=len, reverse=True)


def _coincidences(M: sp.Matrix, params: tuple[sp.Symbol, ...]) -> list[dict[sp.Symbol, sp.Expr]]:
    """Single substitutions p = value that make two distinct eigenvalues equal."""
    found: list[dict[sp.Symbol, sp.Expr]] = []
    for a, b in itertools.combinations(list(sp.Matrix(M).eigenvals()), 2):
        diff = sp.simplify(a - b)
        candidates = sorted(diff.free_symbols & set(params), key=lambda s: s.name)
        if not candidates:
            continue
        for solution in sp.solve(sp.Eq(diff, 0), candidates[0]):
            sub = {candidates[0]: solution}
            if sub not in found:
                found.append(sub)
    return found


def propagator(M: sp.Matrix, delta: sp.Symbol, params: tuple[sp.Symbol, ...]) -> sp.ImmutableMatrix:
    """exp(M Δ) in closed form, with Piecewise branches for degenerate parameter values."""
    generic = _exp(M, delta)
    branches = [(_exp(sp.Matrix(M).subs(sub), delta), sub) for sub in degenerate_cases(M, params)]
    result = sp.Matrix(generic)
    for i, j in itertools.product(*map(range, generic.shape)):
        _, den = sp.fraction(sp.together(generic[i, j]))
        pieces = [(special[i, j], sp.And(*(sp.Eq(p, v) for p, v in sub.items())))
                  for special, sub in branches if sp.simplify(den.subs(sub)) == 0]
        if pieces:
            result[i, j] = sp.Piecewise(*pieces, (generic[i, j], True))
    return sp.ImmutableMatrix(result)
