"""sympy expressions to C: symbols renamed to array accesses, readable one-line output, CSE blocks."""

from __future__ import annotations

from typing import Iterable, Mapping

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter


class CPrinter(C99CodePrinter):
    """C99 for one precision; ``names`` maps symbols to C expressions (``tau_m`` -> ``p[0]``)."""

    def __init__(self, precision: str, names: Mapping[sp.Symbol, str]) -> None:
        super().__init__(settings={"type_aliases": {real: float32 if precision == "float32" else float64}})
        self.names = dict(names)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, super()._print_Symbol(expr))

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.args
        if exp.is_Integer and 2 <= int(exp) <= 4:
            # parenthesised: the product stands for one factor, also as a divisor (a/(b*b), not a/b*b)
            factor = self.parenthesize(base, 50)  # tighter than *
            return "(" + "*".join([factor] * int(exp)) + ")"
        if exp == -1:
            return f"{self._print_Float(sp.Float(1.0))}/{self.parenthesize(base, 50)}"
        return super()._print_Pow(expr)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *cases, (last, _) = expr.args
        text = self._print(last)
        for value, condition in reversed(cases):
            text = f"(({self._print(condition)}) ? ({self._print(value)}) : ({text}))"
        return text


def assignments(targets: list[str], exprs: Iterable[sp.Expr], printer: CPrinter, indent: str = "    ",
                temp: str = "c") -> str:
    """``target = expr;`` lines with common subexpressions hoisted into ``const real`` temporaries."""
    exprs = list(exprs)
    symbols = sp.numbered_symbols(temp)
    replacements, reduced = sp.cse(exprs, symbols=symbols, optimizations="basic")
    lines = []
    for symbol, value in replacements:
        printer.names[symbol] = str(symbol)
        lines.append(f"{indent}const real {symbol} = {printer.doprint(value)};")
    for target, value in zip(targets, reduced):
        lines.append(f"{indent}{target} = {printer.doprint(value)};")
    return "\n".join(lines)
