"""IR expressions to sympy, and the symbols a neuron kind is written in."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from qgen.ir.nodes import Binary, Call, Expr, Name, NeuronKind, Number, Unary

_FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "tanh": sp.tanh, "sin": sp.sin,
    "cos": sp.cos, "min": sp.Min, "max": sp.Max, "round": lambda x: sp.floor(x + sp.Rational(1, 2)),
    "floor": sp.floor, "ceil": sp.ceiling,
}


@dataclass(frozen=True)
class Symbols:
    """The sympy symbols of one neuron kind: state x, parameters p, event weight w, interval Δ."""

    state: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    weight: sp.Symbol
    delta: sp.Symbol

    @classmethod
    def of(cls, kind: NeuronKind) -> Symbols:
        weight = kind.on_event.weight if kind.on_event else "w"
        return cls(
            tuple(sp.Symbol(name, real=True) for name in kind.state_names),
            tuple(sp.Symbol(name, real=True) for name in kind.parameter_names),
            sp.Symbol(weight, real=True),
            sp.Symbol("Delta", nonnegative=True),
        )

    def by_name(self) -> dict[str, sp.Symbol]:
        return {s.name: s for s in (*self.state, *self.params, self.weight)}


def to_sympy(expr: Expr, symbols: dict[str, sp.Symbol]) -> sp.Expr:
    """Convert an IR expression; floats that are integers become sympy integers for exact algebra."""
    if isinstance(expr, Number):
        return sp.Integer(int(expr.value)) if float(expr.value).is_integer() else sp.Float(expr.value, 17)
    if isinstance(expr, Name):
        return symbols[expr.name]
    if isinstance(expr, Unary):
        return -to_sympy(expr.operand, symbols)
    if isinstance(expr, Binary):
        a, b = to_sympy(expr.left, symbols), to_sympy(expr.right, symbols)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                "**": lambda: a ** b}[expr.op]()
    if isinstance(expr, Call):
        return _FUNCTIONS[expr.func](*(to_sympy(a, symbols) for a in expr.args))
    raise TypeError(f"not an expression: {expr!r}")
