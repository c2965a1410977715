"""The JAX code of one kind's adjoint terms (DESIGN.md §4), printed from :mod:`qgen.analysis.adjoint`.

The counterpart of :mod:`qgen.codegen.adjoint_c` for the JAX target: the same sympy terms, printed
with :class:`qgen.codegen.jax.JaxCodePrinter`. Every function takes the parameter vector ``p``, the
state ``x`` where a term needs it, the adjoint ``lam`` after the jump (λ⁺), and returns one vector:

    <kind>_adj_event(p, x, w, lam)            λ⁻ (n), dL/dw, dL/dt_a, dL/dp (n_params)
    <kind>_adj_event_refractory(...)          the same during the refractory period
    <kind>_adj_spike(p, x, lam, dL_dt)        λ⁻ (n), dL/dp: the saltation at a threshold crossing
                                              (the form with a refractory period; ``_free``: without)
    <kind>_adj_reset(p, x, lam)               λ⁻ (n), time cost, dL/dp: a spike an event triggered
    <kind>_adj_end(p, x, lam)                 dL/dτ at the end of the refractory period (a scalar)
    <kind>_adj_period(p)                      ∂t_ref/∂p (n_params)
    <kind>_propagator_gradients(p, delta)     ∂exp(Ãδ)/∂p, (n_params, n, n+1) (``_refractory``: clamped)

Between jumps λ(t) = P(δ)ᵀλ(t+δ) with the forward propagator's top-left block.
"""

from __future__ import annotations

import sympy as sp

from qgen.analysis import NeuronAnalysis
from qgen.analysis.adjoint import adjoint_terms
from qgen.codegen.names import c_identifier


def adjoint_functions(analysis: NeuronAnalysis) -> str:
    """The adjoint functions of one linear kind, as Python source (after the kind's forward functions)."""
    from qgen.codegen.jax import JaxCodePrinter, _scalar_function, _vector_function

    terms = adjoint_terms(analysis)
    kind, sym = analysis.kind, analysis.sym
    n, name = terms.n, c_identifier(kind.name)
    names = {s: f"x[{i}]" for i, s in enumerate(sym.state)}
    names.update({p: f"p[{k}]" for k, p in enumerate(sym.params)})
    names.update({lam: f"lam[{i}]" for i, lam in enumerate(terms.lam)})
    names.update({sym.weight: "w", sym.delta: "delta", terms.dL_dt: "dL_dt"})
    params = kind.parameter_names

    def printer() -> JaxCodePrinter:
        return JaxCodePrinter(names)

    def by_parameter(terms_by_name: dict[str, sp.Expr]) -> list[sp.Expr]:
        return [terms_by_name.get(p, sp.Integer(0)) for p in params]

    parts = [f"# ---- adjoint of {kind.name} ({kind.loc}), printed from qgen.analysis.adjoint ----"]
    if kind.on_event is not None:
        for suffix, refractory in (("", False), ("_refractory", True)):
            jump = terms.event_jump(refractory)
            parts.append(_vector_function(
                f"{name}_adj_event{suffix}", "p, x, w, lam",
                [*jump.adjoint, jump.weight, jump.time, *by_parameter(jump.parameters)], printer(),
                f"An event of weight w{' during the refractory period' if refractory else ''}: "
                f"(λ⁻ [{n}], dL/dw, dL/dt_a, dL/dp [{len(params)}])."))
    if analysis.threshold is not None:
        for suffix, with_period in (("", True), ("_free", False)):
            if with_period and analysis.refractory is None:
                continue
            jump = terms.spike_jump(refractory=with_period)
            parts.append(_vector_function(
                f"{name}_adj_spike{suffix}", "p, x, lam, dL_dt", [*jump.adjoint, *by_parameter(jump.parameters)],
                printer(), f"A threshold crossing{'' if with_period else ' without a refractory period'}, "
                f"pre-spike state x, total dL/dt_k: (λ⁻ [{n}], dL/dp [{len(params)}])."))
            reset = terms.reset_jump(refractory=with_period)
            parts.append(_vector_function(
                f"{name}_adj_reset{suffix}", "p, x, lam", [*reset.adjoint, reset.time, *by_parameter(reset.parameters)],
                printer(), f"A reset at a time an event fixed{'' if with_period else ' (no refractory period)'}: "
                f"(λ⁻ [{n}], time cost, dL/dp [{len(params)}])."))
        if analysis.refractory is None:  # one form only: the free one serves both
            parts.append(f"{name}_adj_spike = {name}_adj_spike_free\n{name}_adj_reset = {name}_adj_reset_free")
            parts.append(f"def {name}_adj_end(p, x, lam):\n    \"\"\"No refractory period: no end.\"\"\"\n"
                         f"    return jnp.zeros((), REAL)")
            parts.append(f"def {name}_adj_period(p):\n    \"\"\"No refractory period.\"\"\"\n"
                         f"    return jnp.zeros({len(params)}, REAL)")
        else:
            end = terms.refractory_end()
            parts.append(_scalar_function(f"{name}_adj_end", "p, x, lam", end.time, printer(),
                                          "dL/dτ at the end of the refractory period, state x there."))
            parts.append(_vector_function(f"{name}_adj_period", "p", by_parameter(end.period), printer(),
                                          "∂t_ref/∂p."))
    for suffix, refractory in (("", False), ("_refractory", True)):
        gradients = terms.propagator_gradients(refractory=refractory)
        exprs = [gradients[p][i, j] for p in params for i in range(n) for j in range(n + 1)]
        parts.append(_vector_function(f"{name}_propagator_gradients{suffix}_flat", "p, delta", exprs, printer(),
                                      f"∂exp(Ã·delta)/∂p{' while refractory' if refractory else ''}, flattened."))
        parts.append(f"def {name}_propagator_gradients{suffix}(p, delta):\n"
                     f"    \"\"\"∂exp(Ã·delta)/∂p{' while refractory' if refractory else ''}: "
                     f"({len(params)}, {n}, {n + 1}).\"\"\"\n"
                     f"    return {name}_propagator_gradients{suffix}_flat(p, delta).reshape({len(params)}, {n}, {n + 1})")
    return "\n\n\n".join(parts)
