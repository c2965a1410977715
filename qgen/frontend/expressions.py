"""Parse-tree expressions to typed IR expressions: name resolution, units and dimension checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from lark import Token, Tree

from qgen.errors import Code
from qgen.frontend.source import Diagnostics, SourceFile, did_you_mean
from qgen.frontend.units import UNITS
from qgen.ir.dimension import DIMENSIONLESS, Dimension
from qgen.ir.evaluate import evaluate
from qgen.ir.nodes import Binary, Call, Expr, Location, Name, Number, Unary

_QUANTITY = re.compile(r"((?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)[ \t]*([A-Za-z_]\w*)")

# Functions the language knows; the arguments of all but abs/min/max/sqrt must be dimensionless.
_TRANSCENDENTAL = {"exp", "log", "tanh", "sin", "cos"}
_ROUNDING = {"round", "floor", "ceil"}
_SAME_DIM = {"abs", "min", "max"}
MAX_EXPONENT = 1000
ARITY = {**{f: 1 for f in _TRANSCENDENTAL | _ROUNDING}, "abs": 1, "sqrt": 1, "min": 2, "max": 2}


class Invalid(Exception):
    """An expression was rejected; the error is already in the diagnostics."""


@dataclass
class Scope:
    """What names mean where an expression appears."""

    names: dict[str, tuple[str, Dimension]] = field(default_factory=dict)  # name -> (role, dim)
    values: dict[str, float] = field(default_factory=dict)  # known constant values
    unknown_code: Code = Code.UNKNOWN_NAME

    def with_names(self, extra: dict[str, tuple[str, Dimension]]) -> Scope:
        return Scope({**self.names, **extra}, dict(self.values), self.unknown_code)


class ExpressionBuilder:
    def __init__(self, source: SourceFile, diag: Diagnostics) -> None:
        self.source = source
        self.diag = diag

    def loc(self, node) -> Location:
        return self.source.location(node)

    def fail(self, code: Code, message: str, node, hint: str | None = None) -> Invalid:
        self.diag.error(code, message, self.loc(node), hint)
        return Invalid()

    # ------------------------------------------------------------ building

    def build(self, tree, scope: Scope) -> Expr:
        loc = self.loc(tree)
        if isinstance(tree, Token):  # a bare NAME token used as an expression
            return self._name(tree, scope, loc)
        kind = tree.data
        if kind == "number":
            return Number(DIMENSIONLESS, loc, self._finite(tree.children[0], str(tree.children[0])))
        if kind == "quantity":
            return self._quantity(tree.children[0], loc)
        if kind == "name":
            return self._name(tree.children[0], scope, loc)
        if kind in ("neg", "pos"):
            operand = self.build(tree.children[0], scope)
            return operand if kind == "pos" else Unary(operand.dim, loc, "-", operand)
        if kind in ("add", "sub", "mul", "div"):
            left, right = (self.build(c, scope) for c in tree.children)
            op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
            if op in "+-":
                if left.dim != right.dim:
                    raise self.fail(Code.DIMENSION_MISMATCH,
                                    f"cannot {'add' if op == '+' else 'subtract'} {dim_text(right.dim)} "
                                    f"{'to' if op == '+' else 'from'} {dim_text(left.dim)}", tree,
                                    unit_hint(left, right))
                dim = left.dim
            else:
                dim = left.dim * right.dim if op == "*" else left.dim / right.dim
            return Binary(dim, loc, op, left, right)
        if kind == "pow":
            return self._power(tree, scope, loc)
        if kind == "call":
            return self._call(tree, scope, loc)
        if kind == "keyword":
            raise self.fail(Code.BAD_ARGUMENT, "keyword arguments are not allowed here", tree)
        raise self.fail(Code.SYNTAX, f"unexpected {kind}", tree)

    def _quantity(self, token: Token, loc: Location) -> Number:
        number, unit = _QUANTITY.fullmatch(str(token)).groups()
        if unit not in UNITS:
            hint = did_you_mean(unit, UNITS, "known units: " + ", ".join(UNITS), n=3, cutoff=0.5)
            raise self.fail(Code.UNKNOWN_UNIT, f"unknown unit {unit!r}", token, hint)
        factor, dim = UNITS[unit]
        return Number(dim, loc, self._finite(token, number) * factor)

    def _finite(self, token: Token, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise self.fail(Code.BAD_VALUE, f"the number {text} is too large", token,
                            "numbers must be below 1.8e308, the largest double-precision value")
        return value

    def _name(self, token: Token, scope: Scope, loc: Location) -> Expr:
        name = str(token)
        if name in scope.names:
            role, dim = scope.names[name]
            if role == "invalid":  # its definition was rejected with an error already
                raise Invalid()
            if role == "constant":
                return Number(dim, loc, scope.values[name])
            return Name(dim, loc, name, role)
        if name in UNITS:
            factor, dim = UNITS[name]
            return Number(dim, loc, factor)
        hint = did_you_mean(name, scope.names, _known(scope), n=3)
        raise self.fail(scope.unknown_code, f"unknown name {name!r}", token, hint)

    def _power(self, tree: Tree, scope: Scope, loc: Location) -> Expr:
        base, exponent = (self.build(c, scope) for c in tree.children)
        if not exponent.dim.is_dimensionless:
            raise self.fail(Code.DIMENSION_MISMATCH, f"an exponent must be dimensionless, not {dim_text(exponent.dim)}",
                            tree.children[1])
        value = self.try_constant(exponent)
        # Huge exponents make exact (symbolic) integer powers run for ever, and are never meant.
        if value is not None and not abs(value) <= MAX_EXPONENT:
            raise self.fail(Code.BAD_VALUE, "the exponent cannot be evaluated" if math.isnan(value) else
                            f"the exponent {value:g} is too large", tree.children[1],
                            f"constant exponents are at most {MAX_EXPONENT} in size")
        if base.dim.is_dimensionless:
            power = Binary(DIMENSIONLESS, loc, "**", base, exponent)
        elif value is None or value != int(value):
            raise self.fail(Code.DIMENSION_MISMATCH,
                            f"a quantity with a unit ({dim_text(base.dim)}) can only be raised to an integer constant",
                            tree.children[1])
        else:
            power = Binary(base.dim ** int(value), loc, "**", base, exponent)
        result = self.try_constant(power)
        if result is not None and not math.isfinite(result):
            raise self.fail(Code.BAD_VALUE, "this power has no finite real value", tree,
                            "it overflows, raises 0 to a negative power or a negative number to a fractional one")
        return power

    def _call(self, tree: Tree, scope: Scope, loc: Location) -> Expr:
        func_token, *arg_trees = tree.children
        func = str(func_token)
        arg_trees = [a for a in arg_trees if a is not None]
        if func not in ARITY:
            hint = did_you_mean(func, ARITY, "known functions: " + ", ".join(sorted(ARITY)))
            raise self.fail(Code.UNKNOWN_FUNCTION, f"unknown function {func!r}", func_token, hint)
        if len(arg_trees) != ARITY[func]:
            raise self.fail(Code.BAD_ARGUMENT,
                            f"{func}() takes {ARITY[func]} argument{'s' * (ARITY[func] > 1)}, "
                            f"got {len(arg_trees)}", tree)
        args = tuple(self.build(a, scope) for a in arg_trees)
        if func in _SAME_DIM:
            if len({a.dim for a in args}) > 1:
                raise self.fail(Code.DIMENSION_MISMATCH,
                                f"the arguments of {func}() have different dimensions: "
                                + " and ".join(dim_text(a.dim) for a in args), tree)
            dim = args[0].dim
        elif func == "sqrt":
            dim = args[0].dim.root(2)
            if dim is None:
                raise self.fail(Code.DIMENSION_MISMATCH, f"cannot take the square root of {dim_text(args[0].dim)}",
                                tree)
        else:
            if not args[0].dim.is_dimensionless:
                raise self.fail(Code.DIMENSION_MISMATCH,
                                f"the argument of {func}() must be dimensionless, not {dim_text(args[0].dim)}", tree,
                                "divide by a quantity of the same unit, e.g. exp(-t_ref / tau_m)")
            dim = DIMENSIONLESS
        return Call(dim, loc, func, args)

    # ------------------------------------------------------------ constants

    def try_constant(self, expr: Expr) -> float | None:
        try:
            return real_value(expr, {})
        except KeyError:
            return None

    def constant(self, tree, scope: Scope, what: str) -> tuple[float, Dimension]:
        """Build and evaluate an expression that must be a finite constant."""
        expr = self.build(tree, scope)
        try:
            value = real_value(expr, scope.values)
        except KeyError as missing:
            raise self.fail(Code.NOT_CONSTANT,
                            f"{what} must be a constant, but uses {missing.args[0]!r}", tree) from None
        if math.isnan(value):
            raise self.fail(Code.BAD_VALUE, f"{what} cannot be evaluated (division by zero or a domain error)",
                            tree)
        if not math.isfinite(value):
            raise self.fail(Code.BAD_VALUE, f"{what} is not finite", tree)
        return value, expr.dim


def real_value(expr: Expr, values) -> float:
    """evaluate(), with NaN for a domain error or a complex result; KeyError for a missing name."""
    try:
        value = evaluate(expr, values)
    except (ArithmeticError, ValueError, TypeError):  # TypeError: a complex value in a real function
        return math.nan
    return math.nan if isinstance(value, complex) else float(value)


def dim_text(dim: Dimension) -> str:
    return "a dimensionless value" if dim.is_dimensionless else f"a value in {dim}"


def _known(scope: Scope) -> str:
    names = sorted(n for n, (role, _) in scope.names.items() if role != "invalid")
    return "names in scope: " + ", ".join(names) if names else "no names are in scope here"


def unit_hint(left: Expr, right: Expr) -> str | None:
    for a, b in ((left, right), (right, left)):
        if isinstance(a, Number) and a.dim.is_dimensionless and not b.dim.is_dimensionless:
            return f"give the number a unit, e.g. '{a.value:g} {b.dim}'"
    return None
