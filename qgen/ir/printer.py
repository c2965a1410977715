"""The IR as readable text (``qgen show --ir``): every value resolved, in internal units."""

from __future__ import annotations

from qgen.ir.dimension import DIMENSIONLESS, Dimension
from qgen.ir.nodes import (
    Binary,
    Call,
    Expr,
    Initializer,
    Model,
    Name,
    Network,
    NeuronKind,
    Number,
    Projection,
    Unary,
)

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}


def number(value: float, dim: Dimension = DIMENSIONLESS) -> str:
    text = f"{value:.15g}"
    if float(text) != value:
        text = repr(value)
    return text if dim.is_dimensionless else f"{text} {dim}"


def expression(expr: Expr, parent: int = 0) -> str:
    if isinstance(expr, Number):
        text, own = number(expr.value, expr.dim), 5
        if expr.value < 0:
            own = 3
    elif isinstance(expr, Name):
        text, own = expr.name, 5
    elif isinstance(expr, Unary):
        text, own = "-" + expression(expr.operand, _PRECEDENCE["neg"]), _PRECEDENCE["neg"]
    elif isinstance(expr, Binary):
        own = _PRECEDENCE[expr.op]
        # left-associative operators need parentheses on the right for an operator of equal rank
        right_parent = own + (expr.op != "**")
        left_parent = own + (expr.op == "**")
        text = f"{expression(expr.left, left_parent)} {expr.op} {expression(expr.right, right_parent)}"
    elif isinstance(expr, Call):
        text, own = f"{expr.func}({', '.join(expression(a) for a in expr.args)})", 5
    else:
        raise TypeError(f"not an expression: {expr!r}")
    return f"({text})" if own < parent else text


def initializer(init: Initializer) -> str:
    if init.kind == "constant":
        return f"= {number(init.arg('value'), init.dim)}"
    args = ", ".join(f"{k} = {number(v, init.dim)}" for k, v in init.args)
    return f"~ {init.kind}({args})"


def neuron(kind: NeuronKind) -> list[str]:
    lines = [f"neuron {kind.name}  [{kind.loc}]"]
    lines.append("  parameters")
    width = max((len(p.name) for p in kind.parameters), default=0)
    for p in kind.parameters:
        mark = "  trainable" if p.trainable else ""
        lines.append(f"    {p.name:<{width}} = {number(p.value, p.dim)}{mark}")
    lines.append("  state")
    width = max(len(s.name) for s in kind.state)
    for s in kind.state:
        mark = "  trainable" if s.trainable else ""
        lines.append(f"    {s.name:<{width}} = {expression(s.initial)}  [{s.dim}]{mark}")
    lines.append("  equations")
    for eq in kind.equations:
        lines.append(f"    d{eq.variable}/dt = {expression(eq.rhs)}  [{eq.rhs.dim}]")
    if kind.threshold:
        th = kind.threshold
        lines.append(f"  threshold   {expression(th.left)} {th.op} {expression(th.right)}")
    if kind.reset:
        lines.append("  reset       " + "; ".join(f"{a.target} {a.op} {expression(a.value)}" for a in kind.reset))
    if kind.refractory is not None:
        lines.append(f"  refractory  {expression(kind.refractory)}  (clamps {', '.join(kind.clamped)})")
    if kind.on_event:
        ev = kind.on_event
        body = "; ".join(f"{a.target} {a.op} {expression(a.value)}" for a in ev.body)
        lines.append(f"  on_event({ev.weight} [{ev.weight_dim}])  {body}")
    return lines


def projection(proj: Projection) -> list[str]:
    rule = proj.connectivity
    args = [f"{k} = {number(v)}" for k, v in rule.args]
    if rule.kind not in ("one_to_one", "explicit"):
        args.append(f"autapses = {'true' if rule.autapses else 'false'}")
    lines = [f"  projection {proj.name}: {proj.pre} -> {proj.post} {rule.kind}({', '.join(args)})  [{proj.loc}]",
             f"    weight {initializer(proj.weight)}{'  trainable' if 'weight' in proj.trainable else ''}",
             f"    delay  {initializer(proj.delay)}{'  trainable' if 'delay' in proj.trainable else ''}",
             f"    queue  {proj.queue.kind}(capacity = {proj.queue.capacity})"]
    return lines


def network(net: Network, model: Model) -> list[str]:
    lines = [f"network {net.name}  [{net.loc}]",
             f"  dt = {number(net.dt)} ms, timing = {net.timing}, seed = {net.seed}"]
    if net.constants:
        lines.append("  constants: " + ", ".join(f"{k} = {number(v, dim)}" for k, v, dim in net.constants))
    for pop in net.populations:
        if pop.is_input:
            lines.append(f"  population {pop.name}: input × {pop.size}  [{pop.loc}]")
            continue
        lines.append(f"  population {pop.name}: {pop.kind} × {pop.size}  [{pop.loc}]")
        kind = model.neuron(pop.kind)
        lines.append("    parameters: " + ", ".join(f"{k} = {number(v, kind.parameter(k).dim)}" for k, v in pop.parameters))
        lines.append("    initial: " + ", ".join(f"{k} {initializer(i)}" for k, i in pop.initial))
        if pop.trainable:
            lines.append("    trainable: " + ", ".join(pop.trainable))
    for proj in net.projections:
        lines.extend(projection(proj))
    for rec in net.records:
        capacity = f"(capacity = {rec.capacity})" if rec.capacity else ""
        lines.append(f"  record {rec.population}.{rec.variable}{capacity}")
    for d in net.drives:
        lines.append(f"  drive {d.population}.{d.parameter} = {number(d.value)} from {number(d.start)} ms "
                     f"to {number(d.stop)} ms")
    for bg in net.backgrounds:
        weight_dim = model.neuron(net.population(bg.population).kind).on_event.weight_dim
        lines.append(f"  background {bg.population} {bg.kind}(rate = {number(bg.rate)} 1/ms, weight = "
                     f"{number(bg.weight, weight_dim)})  [{bg.loc}]")
    return lines


def format_model(model: Model) -> str:
    lines = [f"model {model.name}  (hash {model.hash[:16]})",
             "sources: " + ", ".join(f for f, _ in model.sources), ""]
    for kind in model.neurons:
        lines.extend(neuron(kind))
        lines.append("")
    if model.network is not None:
        lines.extend(network(model.network, model))
    return "\n".join(lines).rstrip() + "\n"
