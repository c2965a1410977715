"""The C code of one kind's adjoint terms (DESIGN.md §4), printed from :mod:`qgen.analysis.adjoint`.

The building blocks of the C backward kernels: every function takes the parameters ``p``, the
state ``x`` where a term needs it (the stored pre-spike state, the state at a refractory end,
the state before an event) and the adjoint ``lam`` after the jump (λ⁺), and writes ``out``:

    <kind>_adj_event(p, x, w, lam, out)        λ⁻ (n), dL/dw, dL/dt_a, dL/dp (n_params)
    <kind>_adj_event_refractory(...)           the same during the refractory period
    <kind>_adj_spike(p, x, lam, dL_dt, out)    λ⁻ (n), dL/dp: the saltation at a threshold crossing
    <kind>_adj_reset(p, x, lam, out)           λ⁻ (n), time cost, dL/dp: a spike an event triggered
    <kind>_adj_end(p, x, lam)                  dL/dτ at the end of the refractory period
    <kind>_adj_event*_lam, _adj_spike_lam, _adj_reset_lam: the same without dL/dp (no trainable
                                               parameters: the backward pass then keeps no states)
    <kind>_adj_period(p, out)                  ∂t_ref/∂p (n_params)
    <kind>_propagator_gradients(p, delta, out) ∂exp(ÃΔ)/∂p, n_params × n × (n+1), row-major
    <kind>_propagator_gradients_refractory(...) the same for the refractory dynamics

Between jumps λ(t) = P(Δ)ᵀλ(t+Δ) with the forward propagator's top-left block, so no adjoint
propagator is printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from qgen.analysis import NeuronAnalysis
from qgen.analysis.adjoint import adjoint_terms
from qgen.codegen.kinds import _function
from qgen.codegen.layout import Field
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
            parts.append(_function(
                f"static void {cname}_adj_event{suffix}_lam(const real *p, const real *x, real w, const real *lam, "
                "real *out)", f"the same without dL/dp: out = (λ⁻ [{n}], dL/dw, dL/dt_a)",
                out(n + 2), exprs[:n + 2], printer()))
    if analysis.threshold is not None:
        with_period = analysis.refractory is not None
        jump = terms.spike_jump(refractory=with_period)
        exprs = [*jump.adjoint, *by_parameter(jump.parameters)]
        parts.append(_function(
            f"static void {cname}_adj_spike(const real *p, const real *x, const real *lam, real dL_dt, real *out)",
            f"a threshold crossing with pre-spike state x and total dL/dt_k: out = (λ⁻ [{n}], dL/dp "
            f"[{len(params)}])", out(len(exprs)), exprs, printer()))
        parts.append(_function(
            f"static void {cname}_adj_spike_lam(const real *p, const real *x, const real *lam, real dL_dt, real *out)",
            f"the same without dL/dp: out = λ⁻ [{n}]", out(n), exprs[:n], printer()))
        reset = terms.reset_jump(refractory=with_period)
        exprs = [*reset.adjoint, reset.time, *by_parameter(reset.parameters)]
        parts.append(_function(
            f"static void {cname}_adj_reset(const real *p, const real *x, const real *lam, real *out)",
            f"a reset at a time an event fixed: out = (λ⁻ [{n}], time cost, dL/dp [{len(params)}])",
            out(len(exprs)), exprs, printer()))
        parts.append(_function(
            f"static void {cname}_adj_reset_lam(const real *p, const real *x, const real *lam, real *out)",
            f"the same without dL/dp: out = (λ⁻ [{n}], time cost)", out(n + 1), exprs[:n + 1], printer()))
        if with_period:
            end = terms.refractory_end()
            parts.append(_function(f"static real {cname}_adj_end(const real *p, const real *x, const real *lam)",
                                   "dL/dτ at the end of the refractory period, state x there", ["return"],
                                   [end.time], printer()).replace("return = ", "return "))
            parts.append(_function(f"static void {cname}_adj_period(const real *p, real *out)",
                                   "∂t_ref/∂p", out(len(params)), by_parameter(end.period), printer()))
    if analysis.linear and params:
        for suffix, refractory in (("", False), ("_refractory", True)):
            if refractory and not kind.clamped:  # the refractory dynamics are the normal ones
                parts.append(f"static void {cname}_propagator_gradients_refractory(const real *p, real delta, "
                             f"real *out)\n{{\n    {cname}_propagator_gradients(p, delta, out);  /* nothing is "
                             "clamped */\n}")
                continue
            gradients = terms.propagator_gradients(refractory=refractory)
            exprs = [gradients[p][i, j] for p in params for i in range(n) for j in range(n + 1)]
            parts.append(_function(
                f"static void {cname}_propagator_gradients{suffix}(const real *p, real delta, real *out)",
                f"∂exp(Ã·delta)/∂p{' while refractory' if refractory else ''}: [{len(params)}][{n}][{n + 1}]",
                out(len(exprs)), exprs, printer()))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------- the C backward pass


@dataclass
class GradientPlan:
    """What a build with the C backward pass (templates/c/adjoint.c.j2) adds to the forward's layout.

    Symbolic sizes: ``H<i>`` the spike tape of population i (its recording capacity when its spikes
    are recorded), ``L<j>`` the drop log of projection j, ``NK`` the checkpoints, ``NSEG`` the runs
    of steps with constant parameters (drives), ``T`` the steps.
    """

    fields: list[Field]
    scalars: list[tuple[str, str]]
    cdef: str


def gradient_unsupported(model, pops, precision: str) -> str | None:
    """Why this build cannot have the C backward pass, or None."""
    net = model.network
    if net.timing != "exact":
        return "gradients need 'timing = exact': on the grid, spike times do not move with the parameters"
    if precision != "float64":
        return "the C backward pass needs a float64 build (load the model with precision='float64')"
    if getattr(net, "backgrounds", None):
        return "the C backward pass does not cover in-kernel background sources"
    for pop in pops:
        if pop.kind is None:
            continue
        a = pop.kind.analysis
        if not a.linear:
            return f"{pop.kind.kind.name} is not linear: exact gradients need linear dynamics"
        if a.threshold is not None and not a.threshold_linear:
            return f"{pop.kind.kind.name}: the C backward pass needs a threshold linear in the state"
        if pop.incoming and pop.kind.kind.on_event is not None and not a.additive_event:
            return f"{pop.kind.kind.name}: the C backward pass needs additive event effects (x += w·u)"
    return None


def gradient_plan(model, precision: str, pops, projections) -> GradientPlan | None:
    """Mark the populations and projections of a differentiable build (``.grad``) and lay out its arrays."""
    reason = gradient_unsupported(model, pops, precision)
    for item in (*pops, *projections):
        item.grad = reason is None
    if reason is not None:
        return None
    for pop in pops:  # whether λ passes an arrival unchanged (λ⁻ = λ⁺, as additive events give): the
        # backward pass then reads λ at each arrival from λ at the end of the step, in any order
        pop.lam_through_events = False
        if pop.kind is not None and pop.kind.kind.on_event is not None:
            terms = adjoint_terms(pop.kind.analysis)
            pop.lam_through_events = all(
                all(sp.simplify(a - lam) == 0 for a, lam in zip(terms.event_jump(refractory).adjoint, terms.lam))
                for refractory in (False, True))
    fields: list[Field] = []
    scalar_fields = [("grad", "int32_t"), ("ckpt_every", "int64_t"), ("NK", "int64_t"), ("NSEG", "int64_t"),
                     ("need_states", "int32_t")]
    for pop in pops:
        if pop.kind is None:
            continue
        p, i, N, n = pop.prefix, pop.index, pop.size, pop.kind.n
        n_params = len(pop.kind.kind.parameter_names)
        if pop.kind.analysis.threshold is not None:
            scalar_fields.append((f"H{i}", "int64_t"))
            fields += [Field(f"{p}_tape_time", "double", ("B", N, f"H{i}"), "spike times (gradient tape)"),
                       Field(f"{p}_tape_step", "int64_t", ("B", N, f"H{i}"), "step of each spike"),
                       Field(f"{p}_tape_proj", "int32_t", ("B", N, f"H{i}"), "projection of the event that "
                             "triggered the spike (-1: a threshold crossing)"),
                       Field(f"{p}_tape_syn", "int32_t", ("B", N, f"H{i}"), "its synapse"),
                       Field(f"{p}_tape_x", "real", ("B", N, f"H{i}", n), "state just before the reset"),
                       Field(f"{p}_tape_end", "real", ("B", N, f"H{i}", n), "state at the end of the "
                             "refractory period"),
                       Field(f"{p}_tape_count", "int32_t", ("B", N), "spikes on the tape"),
                       Field(f"{p}_tape_overflow", "int64_t", ("B", N), "spikes that did not fit"),
                       Field(f"{p}_tape_dt", "double", ("B", N, f"H{i}"), "dL/dt_k of each spike", "backward")]
        fields += [Field(f"{p}_ckpt_x", "real", ("B", "NK", N, n), "state every ckpt_every steps"),
                   Field(f"{p}_lam", "double", ("B", N, n), "the adjoint", "backward"),
                   Field(f"{p}_pgrad", "double", ("B", "NSEG", max(n_params, 1)), "dL/dp per run of constant "
                         "parameters", "backward"),
                   Field(f"{p}_seg_params", "real", ("NSEG", max(n_params, 1)), "parameters of each run", "backward"),
                   Field(f"{p}_seg_derived", "real", ("NSEG", pop.kind.derived_size), "their derived constants",
                         "backward")]
        for _, var in pop.traced:
            fields.append(Field(f"{p}_cot_{c_identifier(var)}", "double", ("B", "T", N), f"dL/d{var} per step",
                                "backward"))
    for proj in projections:
        q, j = proj.prefix, proj.index
        scalar_fields.append((f"L{j}", "int64_t"))
        fields += [Field(f"{q}_drop_syn", "int32_t", ("B", f"L{j}"), "synapse of each dropped event"),
                   Field(f"{q}_drop_key", "double", ("B", f"L{j}"), "its arrival time"),
                   Field(f"{q}_wgrad", "double", ("B", f"S{j}"), "dL/dw", "backward"),
                   Field(f"{q}_dgrad", "double", ("B", f"S{j}"), "dL/d(delay)", "backward")]
    fields.append(Field("seg_start", "int64_t", ("NSEG+1",), "first step of each run of constant parameters",
                        "backward"))
    cdef = "int qgen_backward(qgen_state *s, qgen_error *errors);\n"
    return GradientPlan(fields, scalar_fields, cdef)
