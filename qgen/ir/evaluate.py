"""Numeric evaluation of IR expressions (constant folding, initial values, the reference simulator)."""

from __future__ import annotations

import math
from typing import Callable, Mapping

from qgen.ir.nodes import Binary, Call, Expr, Name, Number, Unary

FUNCTIONS: dict[str, Callable[..., float]] = {
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs, "tanh": math.tanh,
    "sin": math.sin, "cos": math.cos, "min": min, "max": max,
    "round": lambda x: float(round(x)), "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
}


def evaluate(expr: Expr, values: Mapping[str, float]) -> float:
    """Evaluate ``expr`` with ``values`` for its names; raises KeyError for a missing name."""
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Name):
        return values[expr.name]
    if isinstance(expr, Unary):
        return -evaluate(expr.operand, values)
    if isinstance(expr, Binary):
        a, b = evaluate(expr.left, values), evaluate(expr.right, values)
        if expr.op == "+":
            return a + b
        if expr.op == "-":
            return a - b
        if expr.op == "*":
            return a * b
        if expr.op == "/":
            return a / b
        return a ** b
    if isinstance(expr, Call):
        return FUNCTIONS[expr.func](*(evaluate(a, values) for a in expr.args))
    raise TypeError(f"not an expression: {expr!r}")


def names_in(expr: Expr) -> set[str]:
    if isinstance(expr, Name):
        return {expr.name}
    if isinstance(expr, Unary):
        return names_in(expr.operand)
    if isinstance(expr, Binary):
        return names_in(expr.left) | names_in(expr.right)
    if isinstance(expr, Call):
        return set().union(*(names_in(a) for a in expr.args)) if expr.args else set()
    return set()
