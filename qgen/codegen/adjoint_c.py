"""The C code of one kind's adjoint terms (DESIGN.md §4), printed from :mod:`qgen.analysis.adjoint`.

The building blocks of the C backward kernels: every function takes the parameters ``p``, the
state ``x`` where a term needs it (the stored pre-spike state, the state at a refractory end,
the state before an event) and the adjoint ``lam`` after the jump (λ⁺), and writes ``out``:

    <kind>_adj_event(p, x, w, lam, out)        λ⁻ (n), dL/dw, dL/dt_a, dL/dp (n_params)
    <kind>_adj_event_refractory(...)           the same during the refractory period
    <kind>_adj_spike(p, x, lam, dL_dt, out)    λ⁻ (n), dL/dp: the saltation at a threshold crossing
    <kind>_adj_reset(p, x, lam, out)           λ⁻ (n), time cost, dL/dp: a spike an event triggered
    <kind>_adj_end(p, x, lam)                  dL/dτ at the end of the refractory period
    <kind>_adj_period(p, out)                  ∂t_ref/∂p (n_params)
    <kind>_propagator_gradients(p, delta, out) ∂exp(ÃΔ)/∂p, n_params × n × (n+1), row-major

Between jumps λ(t) = P(Δ)ᵀλ(t+Δ) with the forward propagator's top-left block, so no adjoint
propagator is printed.
"""

from __future__ import annotations

import sympy as sp

from qgen.analysis import NeuronAnalysis
from qgen.analysis.adjoint import adjoint_terms
from qgen.codegen.kinds import _function
from qgen.codegen.names import c_identifier
from qgen.codegen.printer import CPrinter


def adjoint_functions(analysis: NeuronAnalysis, precision: str) -> str:
    """The adjoint functions of one linear kind, as C source (after the kind's forward functions)."""
    terms = adjoint_terms(analysis)
    kind, sym = analysis.kind, analysis.sym
    n, cname = terms.n, c_identifier(kind.name)
    names = {s: f"x[{i}]" for i, s in enumerate(sym.state)}
    names.update({p: f"p[{k}]" for k, p in enumerate(sym.params)})
    names.update({lam: f"lam[{i}]" for i, lam in enumerate(terms.lam)})
    names.update({sym.weight: "w", sym.delta: "delta", terms.dL_dt: "dL_dt"})
    params = kind.parameter_names

    def printer() -> CPrinter:
        return CPrinter(precision, names)

    def out(count: int) -> list[str]:
        return [f"out[{i}]" for i in range(count)]

    def by_parameter(terms_by_name: dict[str, sp.Expr]) -> list[sp.Expr]:
        return [terms_by_name.get(p, sp.Integer(0)) for p in params]

    parts = [f"/* ---- adjoint of {kind.name} ({kind.loc}) ---- */"]
    if kind.on_event is not None:
        for suffix, refractory in (("", False), ("_refractory", True)):
            jump = terms.event_jump(refractory)
            exprs = [*jump.adjoint, jump.weight, jump.time, *by_parameter(jump.parameters)]
            parts.append(_function(
                f"static void {cname}_adj_event{suffix}(const real *p, const real *x, real w, const real *lam, "
                "real *out)",
                f"an event of weight w{' during the refractory period' if refractory else ''}: "
                f"out = (λ⁻ [{n}], dL/dw, dL/dt_a, dL/dp [{len(params)}])",
                out(len(exprs)), exprs, printer()))
    if analysis.threshold is not None:
        with_period = analysis.refractory is not None
        jump = terms.spike_jump(refractory=with_period)
        exprs = [*jump.adjoint, *by_parameter(jump.parameters)]
        parts.append(_function(
            f"static void {cname}_adj_spike(const real *p, const real *x, const real *lam, real dL_dt, real *out)",
            f"a threshold crossing with pre-spike state x and total dL/dt_k: out = (λ⁻ [{n}], dL/dp "
            f"[{len(params)}])", out(len(exprs)), exprs, printer()))
        reset = terms.reset_jump(refractory=with_period)
        exprs = [*reset.adjoint, reset.time, *by_parameter(reset.parameters)]
        parts.append(_function(
            f"static void {cname}_adj_reset(const real *p, const real *x, const real *lam, real *out)",
            f"a reset at a time an event fixed: out = (λ⁻ [{n}], time cost, dL/dp [{len(params)}])",
            out(len(exprs)), exprs, printer()))
        if with_period:
            end = terms.refractory_end()
            parts.append(_function(f"static real {cname}_adj_end(const real *p, const real *x, const real *lam)",
                                   "dL/dτ at the end of the refractory period, state x there", ["return"],
                                   [end.time], printer()).replace("return = ", "return "))
            parts.append(_function(f"static void {cname}_adj_period(const real *p, real *out)",
                                   "∂t_ref/∂p", out(len(params)), by_parameter(end.period), printer()))
    if analysis.linear and params:
        gradients = terms.propagator_gradients(refractory=False)
        exprs = [gradients[p][i, j] for p in params for i in range(n) for j in range(n + 1)]
        parts.append(_function(f"static void {cname}_propagator_gradients(const real *p, real delta, real *out)",
                               f"∂exp(Ã·delta)/∂p: [{len(params)}][{n}][{n + 1}]", out(len(exprs)), exprs,
                               printer()))
    return "\n\n".join(parts)
