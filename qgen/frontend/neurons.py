"""Parse tree of a ``neuron`` block to a checked :class:`NeuronKind`."""

from __future__ import annotations

import math
import re

from lark import Token, Tree

from qgen.errors import Code
from qgen.frontend.expressions import ExpressionBuilder, Invalid, Scope, dim_text, unit_hint
from qgen.frontend.units import UNITS
from qgen.ir.dimension import DIMENSIONLESS, TIME, Dimension
from qgen.ir.evaluate import names_in
from qgen.ir.nodes import (
    Assignment,
    Equation,
    EventHandler,
    Expr,
    NeuronKind,
    Parameter,
    StateVariable,
    Threshold,
)

RESERVED = {"t", "dt", "true", "false", "input"}
_DERIVATIVE = re.compile(r"d([A-Za-z_]\w*)\s*/\s*dt")


class NeuronBuilder(ExpressionBuilder):
    def build_neuron(self, tree: Tree) -> NeuronKind | None:
        name_token, *blocks = tree.children
        self.kind = str(name_token)
        self.rejected: set[str] = set()  # declarations refused with an error: no further errors on their uses
        seen: dict[str, Tree] = {}
        for block in blocks:
            if block.data in seen:
                self.fail(Code.DUPLICATE_NAME, f"neuron {self.kind} has a second {block.data} block", block,
                          f"merge it into the first one (line {seen[block.data].meta.line})")
            else:
                seen[block.data] = block
        before = len(self.diag.errors)
        parameters = self._parameters(seen.get("parameters"))
        self.params_scope = Scope({**self._invalid(), **{p.name: ("parameter", p.dim) for p in parameters}},
                                  {p.name: p.value for p in parameters})
        state = self._state(seen.get("state"), {p.name for p in parameters})
        self.scope = self.params_scope.with_names({**self._invalid(), **{s.name: ("state", s.dim) for s in state}})
        self.state_dims = {s.name: s.dim for s in state}
        equations = self._equations(seen.get("equations"))
        threshold = self._threshold(seen.get("threshold"))
        reset = self._assignments(seen["reset"].children, self.scope, "reset") if "reset" in seen else ()
        refractory = self._refractory(seen.get("refractory"), threshold, reset)
        on_event = self._on_event(seen.get("on_event"))
        # A block whose every statement was refused is not missing: its errors are already reported.
        written = {name for name, block in seen.items() if block.children}
        if "state" not in written:
            self.fail(Code.MISSING_BLOCK, f"neuron {self.kind} has no state variables", name_token,
                      "declare them in a block 'state { v = 0 mV }'")
        if "reset" in written and "threshold" not in seen:
            self.fail(Code.MISSING_BLOCK, f"neuron {self.kind} has a reset but no threshold", seen["reset"],
                      "add 'threshold v >= v_th' or remove the reset")
        if "threshold" in seen and "reset" not in written:
            self.fail(Code.MISSING_BLOCK, f"neuron {self.kind} has a threshold but no reset", seen["threshold"],
                      "add 'reset { v = v_reset }': without one, the neuron would spike forever")
        if len(self.diag.errors) > before:
            return None
        return NeuronKind(self.kind, parameters, state, equations, threshold, reset, refractory, on_event,
                          self.loc(tree))

    # ------------------------------------------------------------ blocks

    def _invalid(self) -> dict[str, tuple[str, Dimension]]:
        """Scope entries for the refused declarations: their uses raise no further errors."""
        return {name: ("invalid", DIMENSIONLESS) for name in self.rejected}

    def _declared(self, token: Token, taken: set[str]) -> bool:
        name = str(token)
        if name in RESERVED:
            self.fail(Code.DUPLICATE_NAME, f"{name!r} is a reserved name", token, "choose another name")
            self.rejected.add(name)
            return False
        if name in taken:
            self.fail(Code.DUPLICATE_NAME, f"{name!r} is declared twice in neuron {self.kind}", token,
                      "parameters and state variables share one namespace; rename one of them")
            return False
        if name in UNITS:
            self.fail(Code.DUPLICATE_NAME, f"{name!r} is a unit name", token,
                      f"choose another name, e.g. {name}_m: unit names stand for their unit in expressions")
            self.rejected.add(name)
            return False
        taken.add(name)
        return True

    def _parameters(self, block: Tree | None) -> tuple[Parameter, ...]:
        params: list[Parameter] = []
        scope = Scope()
        taken: set[str] = set()
        for decl in block.children if block else ():
            name, value_tree, trainable = decl.children
            if not self._declared(name, taken):
                continue
            try:
                value, dim = self.constant(value_tree, scope, f"parameter {name}")
            except Invalid:
                self.rejected.add(str(name))
                scope = scope.with_names(self._invalid())
                continue
            params.append(Parameter(str(name), value, dim, trainable is not None, self.loc(decl)))
            scope = scope.with_names({str(name): ("parameter", dim)})
            scope.values[str(name)] = value
        return tuple(params)

    def _state(self, block: Tree | None, taken: set[str]) -> tuple[StateVariable, ...]:
        state: list[StateVariable] = []
        for decl in block.children if block else ():
            name, value_tree, trainable = decl.children
            if not self._declared(name, taken):
                continue
            try:
                initial = self.build(value_tree, self.params_scope)
            except Invalid:
                self.rejected.add(str(name))
                continue
            state.append(StateVariable(str(name), initial, initial.dim, trainable is not None, self.loc(decl)))
        return tuple(state)

    def _equations(self, block: Tree | None) -> tuple[Equation, ...]:
        equations: dict[str, Equation] = {}
        for eq in block.children if block else ():
            lhs, rhs_tree = eq.children
            var = _DERIVATIVE.fullmatch(str(lhs)).group(1)
            if var in self.rejected:
                continue
            if var not in self.state_dims:
                self.fail(Code.UNKNOWN_VARIABLE, f"equation for {var!r}, which is not a state variable of {self.kind}",
                          lhs, f"declare it in the state block, e.g. 'state {{ {var} = 0 }}'")
                continue
            if var in equations:
                self.fail(Code.DUPLICATE_NAME, f"a second equation for {var!r}", lhs,
                          f"the first is on line {equations[var].loc.line}")
                continue
            try:
                rhs = self.build(rhs_tree, self.scope)
            except Invalid:
                continue
            expected = self.state_dims[var] / TIME
            if rhs.dim != expected:
                self._equation_dimension_error(var, rhs, expected, eq)
                continue
            equations[var] = Equation(var, rhs, self.loc(eq))
        return tuple(equations.values())

    def _equation_dimension_error(self, var: str, rhs: Expr, expected: Dimension, node: Tree) -> None:
        if rhs.dim == self.state_dims[var]:
            untimed = sorted(n for n in names_in(rhs) if self.scope.names.get(n, ("", TIME))[1] == DIMENSIONLESS
                             and self.scope.names[n][0] == "parameter")
            hint = (f"give {' or '.join(untimed)} a time unit, e.g. '{untimed[0]} = 10 ms'" if untimed
                    else "divide by a time constant with a time unit")
            self.fail(Code.MISSING_TIME_UNIT,
                      f"d{var}/dt must be in {expected}, but the right-hand side has no time unit "
                      f"(it is in {rhs.dim})", node, hint)
            return
        hint = None
        if self.state_dims[var].is_dimensionless and not rhs.dim.is_dimensionless:
            hint = f"{var} is dimensionless because its initial value has no unit; give it one, e.g. '{var} = 0 {rhs.dim * TIME}'"
        self.fail(Code.DIMENSION_MISMATCH,
                  f"d{var}/dt must be in {expected}, but the right-hand side is in {rhs.dim}", node, hint)

    def _threshold(self, block: Tree | None) -> Threshold | None:
        if block is None:
            return None
        scope = Scope(self.scope.names, self.scope.values, Code.UNKNOWN_VARIABLE)
        left_tree, op, right_tree = block.children
        try:
            left, right = self.build(left_tree, scope), self.build(right_tree, scope)
        except Invalid:
            return None
        if left.dim != right.dim:
            self.fail(Code.DIMENSION_MISMATCH,
                      f"the threshold compares {dim_text(left.dim)} with {dim_text(right.dim)}", block,
                      unit_hint(left, right))
            return None
        if not (names_in(left) | names_in(right)) & set(self.state_dims):
            self.fail(Code.UNKNOWN_VARIABLE, "the threshold does not depend on any state variable", block,
                      "compare a state variable with a value, e.g. 'threshold v >= v_th'")
            return None
        return Threshold(left, str(op), right, self.loc(block))

    def _assignments(self, statements, scope: Scope, where: str) -> tuple[Assignment, ...]:
        result = []
        for stmt in statements:
            target, op, value_tree = stmt.children
            name = str(target)
            if name in self.rejected:
                continue
            if name not in self.state_dims:
                role = "a parameter" if name in self.params_scope.names else "not a state variable"
                self.fail(Code.UNKNOWN_VARIABLE, f"{where} assigns to {name!r}, which is {role} of {self.kind}",
                          target, "only state variables can change; declare it in the state block")
                continue
            try:
                value = self.build(value_tree, scope)
            except Invalid:
                continue
            dim = self.state_dims[name]
            if op in ("*=", "/="):
                if not value.dim.is_dimensionless:
                    self.fail(Code.DIMENSION_MISMATCH, f"'{name} {op} ...' needs a dimensionless factor, "
                              f"not a value in {value.dim}", stmt)
                    continue
            elif value.dim != dim:
                self.fail(Code.DIMENSION_MISMATCH, f"{name} is in {dim}, but the assigned value is in {value.dim}",
                          stmt)
                continue
            result.append(Assignment(name, str(op), value, self.loc(stmt)))
        return tuple(result)

    def _refractory(self, block: Tree | None, threshold, reset) -> Expr | None:
        if block is None:
            return None
        try:
            period, dim = self.constant(block.children[0], self.params_scope, "the refractory period")
        except Invalid:
            return None
        if dim == DIMENSIONLESS:
            self.fail(Code.MISSING_TIME_UNIT, "the refractory period has no time unit", block,
                      "write e.g. 'refractory 2 ms' (and give parameters used here a time unit)")
            return None
        if dim != TIME:
            self.fail(Code.DIMENSION_MISMATCH, f"the refractory period must be a time, not a value in {dim}", block)
            return None
        if period < 0:
            self.fail(Code.BAD_VALUE, "the refractory period is negative", block)
            return None
        if threshold is not None and not any(a.op == "=" for a in reset):
            self.fail(Code.MISSING_BLOCK, "refractory needs a reset assignment 'v = ...' to know what to clamp",
                      block, "the variables set with '=' in the reset are held at that value while refractory")
            return None
        return self.build(block.children[0], self.params_scope)

    def _on_event(self, block: Tree | None) -> EventHandler | None:
        if block is None:
            return None
        weight_token, *statements = block.children
        weight = str(weight_token)
        if weight in self.scope.names:
            free = next(n for n in ("w", "weight", "w_in", "w_event") if n not in self.scope.names)
            self.fail(Code.DUPLICATE_NAME, f"the event weight {weight!r} shadows a name of {self.kind}", weight_token,
                      f"name the weight differently, e.g. on_event({free})")
            return None
        dim = _infer_weight_dimension(statements, weight, self.scope, self.state_dims)
        if dim is None:
            if self.rejected & {str(stmt.children[0]) for stmt in statements}:
                return None
            self.fail(Code.UNKNOWN_VARIABLE, f"the event weight {weight!r} is not used in a way that fixes its unit",
                      block, f"use it in an effect such as 'i += {weight}'")
            return None
        scope = Scope({**self.scope.names, weight: ("weight", dim)}, self.scope.values, Code.UNKNOWN_VARIABLE)
        body = self._assignments(statements, scope, "on_event")
        if not body:
            return None
        return EventHandler(weight, dim, body, self.loc(block))


# ---------------------------------------------------------------- weight dimension inference
# A dimension in an on_event body is w^k * D: the pair (k, D). An equality between two such
# terms with different k fixes the dimension of w.


def _infer_weight_dimension(statements, weight: str, scope: Scope, state_dims: dict[str, Dimension]) -> Dimension | None:
    found: list[Dimension] = []

    def equate(a, b) -> None:
        if a is None or b is None or a[0] == b[0]:
            return
        k = a[0] - b[0]
        ratio = b[1] / a[1]
        dim = ratio.root(abs(k))
        if dim is not None:
            found.append(dim if k > 0 else DIMENSIONLESS / dim)

    def term(tree):
        if isinstance(tree, Token):
            return _name_term(str(tree))
        kind = tree.data
        if kind == "number":
            return 0, DIMENSIONLESS
        if kind == "quantity":
            unit = str(tree.children[0]).split()[-1].lstrip("0123456789.eE+-")
            return 0, UNITS.get(unit, (1.0, DIMENSIONLESS))[1]
        if kind == "name":
            return _name_term(str(tree.children[0]))
        if kind in ("neg", "pos"):
            return term(tree.children[0])
        if kind in ("add", "sub"):
            a, b = term(tree.children[0]), term(tree.children[1])
            equate(a, b)
            return a if a is not None else b
        if kind in ("mul", "div"):
            a, b = term(tree.children[0]), term(tree.children[1])
            if a is None or b is None:
                return None
            return (a[0] + b[0], a[1] * b[1]) if kind == "mul" else (a[0] - b[0], a[1] / b[1])
        if kind == "pow":
            a, exponent = term(tree.children[0]), tree.children[1]
            if a is None or not (isinstance(exponent, Tree) and exponent.data == "number"):
                return None
            n = float(exponent.children[0])
            return (a[0] * int(n), a[1] ** int(n)) if math.isfinite(n) and n == int(n) else None
        if kind == "call":
            args = [term(a) for a in tree.children[1:] if a is not None]
            func = str(tree.children[0])
            if func in ("abs", "min", "max") and args:
                return args[0]
            for a in args:
                equate(a, (0, DIMENSIONLESS))
            return 0, DIMENSIONLESS
        return None

    def _name_term(name: str):
        if name == weight:
            return 1, DIMENSIONLESS
        if name in scope.names:
            return 0, scope.names[name][1]
        return 0, UNITS.get(name, (1.0, DIMENSIONLESS))[1]

    for stmt in statements:
        target, op, value_tree = stmt.children
        value = term(value_tree)
        if str(target) not in state_dims:
            continue
        goal = (0, DIMENSIONLESS) if op in ("*=", "/=") else (0, state_dims[str(target)])
        equate(value, goal)
    return found[0] if found else None
