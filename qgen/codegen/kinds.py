"""The C code of one neuron kind, printed from its symbolic analysis.

Every function takes the population's parameter array ``p`` (in ``kind.parameter_names``
order); states are arrays ``x`` of the kind's state variables in ``kind.state_names`` order.
Nothing here is written by hand for a particular model: propagators, threshold, reset, event
effects and right-hand sides all come from sympy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from qgen.analysis import NeuronAnalysis
from qgen.analysis.propagators import augmented
from qgen.codegen.names import c_identifier
from qgen.codegen.printer import CPrinter, assignments
from qgen.ir.nodes import NeuronKind


@dataclass(frozen=True)
class KindCode:
    kind: NeuronKind
    analysis: NeuronAnalysis
    cname: str
    functions: str  # the C functions of this kind
    derived: dict[str, int]  # offsets into the derived array
    derived_size: int

    @property
    def n(self) -> int:
        return len(self.kind.state)

    @property
    def event_driven(self) -> bool:
        """No dynamics (dx/dt = 0) and no threshold: the state changes only where events arrive."""
        a = self.analysis
        return a.linear and a.threshold is None and a.A.is_zero_matrix and a.b.is_zero_matrix


# The functions a kind can have; kind_code emits those a network uses.
FUNCTIONS = frozenset({"propagator", "system", "rhs", "threshold", "threshold_vector", "reset", "event",
                       "event_refractory"})


def kind_code(analysis: NeuronAnalysis, precision: str, needs: frozenset[str] = FUNCTIONS) -> KindCode:
    kind, sym = analysis.kind, analysis.sym
    n = len(sym.state)
    cname = c_identifier(kind.name)
    names = {s: f"x[{i}]" for i, s in enumerate(sym.state)}
    names.update({p: f"p[{k}]" for k, p in enumerate(sym.params)})
    names[sym.weight] = "w"
    names[sym.delta] = "delta"

    def printer() -> CPrinter:
        return CPrinter(precision, names)

    offsets, size = {}, 0
    for key, length in (("P", n * (n + 1)), ("PREF", n * (n + 1)), ("C", n + 1), ("CA", n + 1),
                        ("NORM_CA2", 1), ("NORM_A", 1), ("NORM_C", 1),
                        ("NORM_CA", 1), ("GROWTH", 1), ("TREF", 1), ("REFSTEPS", 1), ("U", n), ("UREF", n)):
        offsets[key] = size
        size += length

    parts = [f"/* ---- neuron kind {kind.name} ({kind.loc}) ---- */"]
    state_list = ", ".join(f"x[{i}] = {s}" for i, s in enumerate(kind.state_names))
    param_list = ", ".join(f"p[{k}] = {p}" for k, p in enumerate(kind.parameter_names))
    parts.append(f"/* state: {state_list}\n   parameters: {param_list} */")

    if analysis.linear and "propagator" in needs:
        parts.append(_matrix_function(f"{cname}_propagator", analysis.propagator, n, printer(),
                                      "exp(Ã·delta): rows of the state, columns (state, 1)"))
        A_ref, b_ref = analysis.refractory_system
        parts.append(_matrix_function(f"{cname}_propagator_refractory", analysis.refractory_propagator, n,
                                      printer(), "the same while refractory (clamped variables held)")
                     if kind.clamped else
                     f"static void {cname}_propagator_refractory(const real *p, real delta, real *P)\n"
                     f"{{\n    {cname}_propagator(p, delta, P);  /* nothing is clamped */\n}}")
    if analysis.linear and "system" in needs:
        system = augmented(analysis.A, analysis.b)
        parts.append(_function(f"static void {cname}_system(const real *p, real *M)",
                               "Ã = [[A, b], [0, 0]], row-major (n+1)×(n+1)",
                               [f"M[{i * (n + 1) + j}]" for i in range(n) for j in range(n + 1)],
                               [system[i, j] for i in range(n) for j in range(n + 1)], printer()))
    if not analysis.linear:
        parts.append(_function(f"static void {cname}_rhs(const real *p, const real *x, real *dx)",
                               "dx/dt = f(x), for Runge–Kutta on the grid",
                               [f"dx[{i}]" for i in range(n)], list(analysis.f), printer()))

    if analysis.threshold is not None:
        parts.append(_function(f"static real {cname}_threshold(const real *p, const real *x)",
                               f"g(x) >= 0 means a spike ({kind.threshold.loc})", ["return"],
                               [analysis.threshold], printer()).replace("return = ", "return "))
        if analysis.threshold_linear and "threshold_vector" in needs:
            zero = {s: 0 for s in sym.state}
            vector = [sp.diff(analysis.threshold, s) for s in sym.state] + [analysis.threshold.subs(zero)]
            parts.append(_function(f"static void {cname}_threshold_vector(const real *p, real *c)",
                                   "g(x) = c·(x, 1)", [f"c[{i}]" for i in range(n + 1)], vector, printer()))
        parts.append(_map_function(f"{cname}_reset", "", analysis.reset, sym, printer(),
                                   f"reset ({kind.reset[0].loc})"))
    if kind.on_event is not None and "event" in needs:
        parts.append(_map_function(f"{cname}_event", ", real w", analysis.event, sym, printer(),
                                   f"an arriving event of weight w ({kind.on_event.loc})"))
    if kind.on_event is not None and "event_refractory" in needs:
        parts.append(_map_function(f"{cname}_event_refractory", ", real w", analysis.event_refractory, sym,
                                   printer(), "the same while refractory (clamped variables unchanged)"))
    refractory = analysis.refractory if analysis.refractory is not None else sp.Integer(0)
    derived_targets, derived_exprs = [f"d[{offsets['TREF']}]"], [refractory]
    if kind.on_event is not None:
        for key, effect in (("U", analysis.event), ("UREF", analysis.event_refractory)):
            derived_targets += [f"d[{offsets[key] + i}]" for i in range(n)]
            derived_exprs += [sp.diff(e, sym.weight) if analysis.additive_event else sp.Integer(0)
                              for e in effect]
    parts.append(_function(f"static void {cname}_constants(const real *p, real *d)",
                           "refractory period; with additive events, x += w·u (u_ref while refractory)",
                           derived_targets, derived_exprs, printer()))
    return KindCode(kind, analysis, cname, "\n\n".join(parts), offsets, size)


def _function(signature: str, comment: str, targets: list[str], exprs: list[sp.Expr], printer: CPrinter) -> str:
    body = assignments(targets, exprs, printer) if targets else ""
    return f"/* {comment} */\n{signature}\n{{\n{_unused(signature, body)}{body}\n}}"


def _unused(signature: str, body: str) -> str:
    """``(void)name;`` for each parameter the body does not use (printed bodies may not need them)."""
    names = re.findall(r"(\w+)\s*(?=[,)])", signature[signature.index("("):])
    return "".join(f"    (void){name};\n" for name in names if not re.search(rf"\b{name}\b", body))


def _matrix_function(name: str, matrix: sp.Matrix, n: int, printer: CPrinter, comment: str) -> str:
    targets = [f"P[{i * (n + 1) + j}]" for i in range(n) for j in range(n + 1)]
    exprs = [matrix[i, j] for i in range(n) for j in range(n + 1)]
    return _function(f"static void {name}(const real *p, real delta, real *P)", comment, targets, exprs, printer)


def _map_function(name: str, extra: str, mapping: sp.Matrix, sym, printer: CPrinter, comment: str) -> str:
    """x = map(x) in place: every new value computed from the old state before any is stored."""
    changed = [(i, e) for i, (s, e) in enumerate(zip(sym.state, mapping)) if sp.simplify(e - s) != 0]
    targets = [f"const real new{i}" for i, _ in changed]
    body = assignments(targets, [e for _, e in changed], printer) if changed else ""
    stores = "\n".join(f"    x[{i}] = new{i};" for i, _ in changed)
    signature = f"static void {name}(const real *p, real *x{extra})"
    return f"/* {comment} */\n{signature}\n{{\n{_unused(signature, body + stores)}{body}\n{stores}\n}}"
