"""Classify a neuron kind's dynamics and write its spike and event rules as maps.

dx/dt = f(x) is affine when f(x) = A x + b with A and b free of the state; then the exact
propagator exp(A Δ) exists in closed form (see :mod:`qgen.analysis.propagators`). The threshold
is normalised to g(x) >= 0, the reset to x⁺ = r(x⁻) and the event effect to x⁺ = e(x⁻, w),
each applying the block's assignments in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from qgen.analysis.symbolic import Symbols, to_sympy
from qgen.ir.nodes import Assignment, Location, NeuronKind


@dataclass(frozen=True)
class Nonlinearity:
    """Why a system is not affine: the first offending equation and the term."""

    variable: str
    term: str
    loc: Location | None


def rhs_vector(kind: NeuronKind, sym: Symbols) -> sp.ImmutableMatrix:
    """f(x): one entry per state variable (0 for a variable without an equation)."""
    names = sym.by_name()
    rows = []
    for name in kind.state_names:
        eq = kind.equation(name)
        rows.append(to_sympy(eq.rhs, names) if eq else sp.Integer(0))
    return sp.ImmutableMatrix(rows)


def affine_form(kind: NeuronKind, sym: Symbols) -> tuple[sp.ImmutableMatrix, sp.ImmutableMatrix] | Nonlinearity:
    """(A, b) with f(x) = A x + b, or the reason the dynamics are not affine."""
    f = rhs_vector(kind, sym)
    x = sp.Matrix(sym.state)
    A = f.jacobian(x)
    for row, name in enumerate(kind.state_names):
        for col in range(len(sym.state)):
            entry = A[row, col]
            if entry.free_symbols & set(sym.state):
                eq = kind.equation(name)
                return Nonlinearity(name, str(f[row]), eq.loc if eq else None)
    b = f.subs({s: 0 for s in sym.state})
    return sp.ImmutableMatrix(A.applyfunc(sp.simplify)), sp.ImmutableMatrix(b.applyfunc(sp.simplify))


def refractory_form(kind: NeuronKind, A: sp.Matrix, b: sp.Matrix) -> tuple[sp.ImmutableMatrix, sp.ImmutableMatrix]:
    """The dynamics while refractory: the clamped variables do not change."""
    A_ref, b_ref = sp.Matrix(A), sp.Matrix(b)
    for name in kind.clamped:
        row = kind.state_names.index(name)
        A_ref[row, :] = sp.zeros(1, A.shape[1])
        b_ref[row] = 0
    return sp.ImmutableMatrix(A_ref), sp.ImmutableMatrix(b_ref)


def threshold_function(kind: NeuronKind, sym: Symbols) -> sp.Expr | None:
    """g(x) such that the neuron spikes when g(x) >= 0."""
    if kind.threshold is None:
        return None
    names = sym.by_name()
    left, right = to_sympy(kind.threshold.left, names), to_sympy(kind.threshold.right, names)
    return left - right if kind.threshold.op in (">=", ">") else right - left


def is_linear_in_state(expr: sp.Expr, sym: Symbols) -> bool:
    grad = [sp.diff(expr, s) for s in sym.state]
    return not any(g.free_symbols & set(sym.state) for g in grad)


def assignment_map(kind: NeuronKind, statements: tuple[Assignment, ...], sym: Symbols,
                   frozen: tuple[str, ...] = ()) -> sp.ImmutableMatrix:
    """x⁺ as a function of x⁻ after the statements run in order; ``frozen`` variables keep x⁻."""
    names = sym.by_name()
    current = {s.name: s for s in sym.state}
    for stmt in statements:
        if stmt.target in frozen:
            continue
        value = to_sympy(stmt.value, names).subs({sym_: current[sym_.name] for sym_ in sym.state},
                                                 simultaneous=True)
        old = current[stmt.target]
        current[stmt.target] = {"=": lambda: value, "+=": lambda: old + value, "-=": lambda: old - value,
                                "*=": lambda: old * value, "/=": lambda: old / value}[stmt.op]()
    return sp.ImmutableMatrix([current[s.name] for s in sym.state])


def is_additive_event(kind: NeuronKind, sym: Symbols) -> bool:
    """True when every event effect is x += (term linear in w, free of the state): events then sum."""
    if kind.on_event is None:
        return False
    e = assignment_map(kind, kind.on_event.body, sym)
    delta = e - sp.Matrix(sym.state)
    for entry in delta:
        if entry.free_symbols & set(sym.state):
            return False
        if sp.simplify(entry - sp.diff(entry, sym.weight) * sym.weight) != 0:
            return False
    return True
