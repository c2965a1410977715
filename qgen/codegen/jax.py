"""The JAX target's code generator: IR + analysis -> one readable Python module per model.

The module imports only jax (and numpy for nothing but constants); it owns no state. Its entry
point ``simulate(network, params, inputs, config)`` is a pure function of arrays: a batch of
trials runs as ``jax.vmap`` of one trial, a trial is a ``lax.scan`` over steps, and every queue is
a set of fixed-capacity arrays carried through the scan. See docs/targets.md for the layout of
the four pytrees and for what the runtime (qgen/targets/jax.py) prepares.

Neuron math (propagators, threshold, reset, event effects, right-hand sides) is printed from
sympy with sympy's JaxPrinter, as the C target prints it with its C printer; the algorithms
(queues, the exact event-to-event integration with its threshold-crossing search, grid steps)
come from the Jinja templates in templates/jax/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import jinja2
import numpy as np
import sympy as sp
from sympy.printing.numpy import JaxPrinter

from qgen.analysis import NeuronAnalysis, analyse
from qgen.analysis.propagators import augmented
from qgen.codegen.fingerprint import TEMPLATE_ROOT
from qgen.codegen.names import c_identifier
from qgen.ir.nodes import Model, Population, Projection

TEMPLATES = TEMPLATE_ROOT / "jax"


# ------------------------------------------------------------------ printing sympy as JAX


class JaxCodePrinter(JaxPrinter):
    """sympy -> jax.numpy source; ``names`` maps symbols to Python expressions (``tau_m`` -> ``p[0]``)."""

    def __init__(self, names) -> None:
        super().__init__()
        self.names = dict(names)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return self.names.get(expr, super()._print_Symbol(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        if exp == -1:
            return f"1.0 / {self.parenthesize(base, 50)}"
        if exp == sp.Rational(1, 2):
            return f"jnp.sqrt({self._print(base)})"
        if exp.is_Integer and 2 <= int(exp) <= 4:  # parenthesised: a product under a division
            return "(" + "*".join([self.parenthesize(base, 50)] * int(exp)) + ")"
        return super()._print_Pow(expr, rational=rational)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *cases, (last, _) = expr.args
        text = self._print(last)
        for value, condition in reversed(cases):
            text = f"jnp.where({self._print(condition)}, {self._print(value)}, {text})"
        return text

    def _print_Min(self, expr) -> str:
        *rest, last = expr.args
        text = self._print(last)
        for arg in reversed(rest):
            text = f"jnp.minimum({self._print(arg)}, {text})"
        return text

    def _print_Max(self, expr) -> str:
        *rest, last = expr.args
        text = self._print(last)
        for arg in reversed(rest):
            text = f"jnp.maximum({self._print(arg)}, {text})"
        return text

    def _print_And(self, expr) -> str:
        return " & ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr) -> str:
        return " | ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Not(self, expr) -> str:
        return f"~({self._print(expr.args[0])})"

    def _print_Abs(self, expr) -> str:
        return f"jnp.abs({self._print(expr.args[0])})"

    def doprint(self, expr, assign_to=None) -> str:
        return super().doprint(expr, assign_to).replace("jax.numpy.", "jnp.")


def assignments(targets: list[str], exprs, printer: JaxCodePrinter, indent: str = "    ") -> list[str]:
    """``target = expr`` lines, common subexpressions hoisted into temporaries c0, c1, ..."""
    exprs = list(exprs)
    replacements, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("c"), optimizations="basic")
    lines = []
    for symbol, value in replacements:
        printer.names[symbol] = str(symbol)
        lines.append(f"{indent}{symbol} = {printer.doprint(value)}")
    for target, value in zip(targets, reduced):
        lines.append(f"{indent}{target} = {printer.doprint(value)}")
    return lines


# ------------------------------------------------------------------ the plan of a network


@dataclass
class JaxKind:
    """One neuron kind: the printed functions and what the templates must know about it."""

    analysis: NeuronAnalysis
    name: str  # Python identifier
    functions: str

    @property
    def kind(self):
        return self.analysis.kind

    @property
    def n(self) -> int:
        return len(self.kind.state)

    @property
    def linear(self) -> bool:
        return self.analysis.linear

    @property
    def spiking(self) -> bool:
        return self.analysis.threshold is not None

    @property
    def additive(self) -> bool:
        return self.analysis.additive_event

    @property
    def has_event(self) -> bool:
        return self.kind.on_event is not None

    @property
    def differentiable(self) -> bool:
        """Exact gradients (EventProp) need linear dynamics and a linear threshold."""
        a = self.analysis
        return a.linear and (a.threshold is None or a.threshold_linear)

    @property
    def free_mask(self) -> list[int]:
        """1 for variables that evolve while refractory, 0 for the clamped ones."""
        return [0 if s in self.kind.clamped else 1 for s in self.kind.state_names]


@dataclass
class JaxPopulation:
    spec: Population
    index: int
    prefix: str
    kind: JaxKind | None
    recorded_spikes: bool = False
    traced: list[tuple[int, str]] = field(default_factory=list)  # (state index, variable)
    incoming: list["JaxProjection"] = field(default_factory=list)
    outgoing: list["JaxProjection"] = field(default_factory=list)
    drives: list[tuple[int, str, float, int, int, str]] = field(default_factory=list)  # (param index, name, value, start, stop, loc)

    @property
    def size(self) -> int:
        return self.spec.size

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def listed(self) -> list["JaxProjection"]:
        return [p for p in self.incoming if not p.summing]

    @property
    def summed(self) -> list["JaxProjection"]:
        return [p for p in self.incoming if p.summing]


@dataclass
class JaxProjection:
    spec: Projection
    index: int
    prefix: str
    pre: JaxPopulation
    post: JaxPopulation
    summing: bool  # grid timing, ring, additive effects: one summed value per slot

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def queue(self) -> str:
        return self.spec.queue.kind

    @property
    def capacity(self) -> int:
        return self.spec.queue.capacity

    @property
    def reads_tape(self) -> bool:
        """From a spiking population: the backward pass finds each synapse's events in the source's
        spike tape through a cursor per synapse, instead of running a reverse queue. A synapse's delay
        is one number in a run, so it delivered its source's spikes in their order, whatever the
        queue kind; the events a queue dropped are found in the drop log."""
        return not self.summing and self.pre.kind is not None and self.pre.kind.spiking

    @property
    def reverse_queue(self) -> str:
        """The backward pass's queue: a heap's events come back in the order a sorted array gives
        them (the reverse pops take the latest first either way), and the sorted array inserts a
        step's few events where the heap sifts every row for each."""
        return "sorted" if self.queue == "heap" else self.queue

    @property
    def levels(self) -> int:
        """Levels of a binary heap of this capacity (sift loops run this many times)."""
        return max(1, int(np.ceil(np.log2(self.capacity + 1))))


def plan(model: Model) -> tuple[list[JaxPopulation], list[JaxProjection], dict[str, JaxKind]]:
    net = model.network
    exact = net.timing == "exact"
    kinds: dict[str, JaxKind] = {}
    pops = []
    for i, pop in enumerate(net.populations):
        kind = None
        if pop.kind is not None:
            if pop.kind not in kinds:
                kinds[pop.kind] = kind_code(analyse(model.neuron(pop.kind)), exact)
            kind = kinds[pop.kind]
        pops.append(JaxPopulation(pop, i, f"pop{i}_{c_identifier(pop.name)}", kind))
    by_name = {p.name: p for p in pops}
    for record in net.records:
        pop = by_name[record.population]
        if record.variable == "spikes":
            pop.recorded_spikes = True
        else:
            pop.traced.append((model.neuron(pop.spec.kind).state_names.index(record.variable), record.variable))
    projections = []
    for j, proj in enumerate(net.projections):
        pre, post = by_name[proj.pre], by_name[proj.post]
        summing = not exact and proj.queue.kind == "ring" and post.kind.additive
        jp = JaxProjection(proj, j, f"prj{j}_{c_identifier(proj.name)}", pre, post, summing)
        projections.append(jp)
        pre.outgoing.append(jp)
        post.incoming.append(jp)
    for drive in net.drives:
        pop = by_name[drive.population]
        names = pop.kind.kind.parameter_names
        pop.drives.append((names.index(drive.parameter), drive.parameter, drive.value,
                           round(drive.start / net.dt), round(drive.stop / net.dt), str(drive.loc)))
    return pops, projections, kinds


# ------------------------------------------------------------------ the code of one neuron kind


@cache
def kind_code(analysis: NeuronAnalysis, exact: bool) -> JaxKind:
    """The printed functions of one kind, each taking the parameter vector ``p``."""
    kind, sym = analysis.kind, analysis.sym
    n = len(sym.state)
    name = c_identifier(kind.name)
    names = {s: f"x[{i}]" for i, s in enumerate(sym.state)}
    names.update({p: f"p[{k}]" for k, p in enumerate(sym.params)})
    names[sym.weight] = "w"
    names[sym.delta] = "delta"

    def printer() -> JaxCodePrinter:
        return JaxCodePrinter(names)

    parts = [f"# ---- neuron kind {kind.name} ({kind.loc}) ----",
             "# state: " + ", ".join(f"x[{i}] = {s}" for i, s in enumerate(kind.state_names)),
             "# parameters: " + ", ".join(f"p[{k}] = {s}" for k, s in enumerate(kind.parameter_names))]
    functions = []
    if analysis.linear:
        functions.append(_matrix_function(f"{name}_propagator", "p, delta", analysis.propagator, n, printer(),
                                          "exp(Ã·delta): rows of the state, columns (state, 1)."))
        if kind.clamped:
            functions.append(_matrix_function(f"{name}_propagator_refractory", "p, delta",
                                              analysis.refractory_propagator, n, printer(),
                                              "The same while refractory (clamped variables held)."))
        else:
            functions.append(f"def {name}_propagator_refractory(p, delta):\n"
                             f'    """Nothing is clamped: the free propagator."""\n'
                             f"    return {name}_propagator(p, delta)")
        if analysis.threshold is not None and analysis.threshold_linear and exact:
            system = augmented(analysis.A, analysis.b)
            functions.append(_matrix_function(f"{name}_system", "p", system, n + 1, printer(),
                                              "Ã = [[A, b], [0, 0]]: dx̃/dt = Ã x̃ for x̃ = (x, 1).",
                                              columns=n + 1))
            zero = {s: 0 for s in sym.state}
            vector = [sp.diff(analysis.threshold, s) for s in sym.state] + [analysis.threshold.subs(zero)]
            functions.append(_vector_function(f"{name}_threshold_vector", "p", vector, printer(),
                                              "g(x) = c·(x, 1)."))
    else:
        functions.append(_vector_function(f"{name}_rhs", "p, x", list(analysis.f), printer(),
                                          "dx/dt = f(x), for Runge–Kutta on the grid."))
    if analysis.threshold is not None:
        functions.append(_scalar_function(f"{name}_threshold", "p, x", analysis.threshold, printer(),
                                          f"g(x) >= 0 means a spike ({kind.threshold.loc})."))
        functions.append(_vector_function(f"{name}_reset", "p, x", list(analysis.reset), printer(),
                                          f"The reset ({kind.reset[0].loc})."))
    if kind.on_event is not None:
        functions.append(_vector_function(f"{name}_event", "p, x, w", list(analysis.event), printer(),
                                          f"An arriving event of weight w ({kind.on_event.loc})."))
        functions.append(_vector_function(f"{name}_event_refractory", "p, x, w", list(analysis.event_refractory),
                                          printer(), "The same while refractory (clamped variables unchanged)."))
    refractory = analysis.refractory if analysis.refractory is not None else sp.Integer(0)
    functions.append(_scalar_function(f"{name}_refractory_period", "p", refractory, printer(),
                                      "The refractory period (ms); 0 without one."))
    if kind.on_event is not None and analysis.additive_event:
        for suffix, effect, what in (("", analysis.event, "x += w·u"),
                                     ("_refractory", analysis.event_refractory, "the same while refractory")):
            functions.append(_vector_function(f"{name}_event_vector{suffix}", "p",
                                              [sp.diff(e, sym.weight) for e in effect], printer(),
                                              f"Additive events: {what}."))
    if exact and analysis.linear and (analysis.threshold is None or analysis.threshold_linear):
        from qgen.codegen.adjoint_jax import adjoint_functions

        functions.append(adjoint_functions(analysis))
    source = "\n".join(parts) + "\n\n\n" + "\n\n\n".join(functions)
    return JaxKind(analysis, name, source)


def _body(exprs: list, printer: JaxCodePrinter) -> tuple[list[str], list[str]]:
    """CSE lines and the printed value of each expression."""
    targets = [f"e{i}" for i in range(len(exprs))]
    lines = assignments(targets, exprs, printer)
    # inline the final e_i = ... lines back into the result (readable: one entry per position)
    values, head = [], []
    for line in lines:
        stripped = line.strip()
        name, _, value = stripped.partition(" = ")
        if name in targets:
            values.append(value)
        else:
            head.append(line)
    return head, values


def _docstring(comment: str) -> str:
    return f'    """{comment}"""'


def _scalar_function(name: str, args: str, expr, printer: JaxCodePrinter, comment: str) -> str:
    head, (value,) = _body([expr], printer)
    value = value if sp.sympify(expr).free_symbols else f"jnp.asarray({value}, REAL)"
    return "\n".join([f"def {name}({args}):", _docstring(comment), *head, f"    return {value}"])


def _vector_function(name: str, args: str, exprs: list, printer: JaxCodePrinter, comment: str) -> str:
    head, values = _body(exprs, printer)
    return "\n".join([f"def {name}({args}):", _docstring(comment), *head,
                      f"    return _vec({', '.join(values)})"])


def _matrix_function(name: str, args: str, matrix, rows: int, printer: JaxCodePrinter, comment: str,
                     columns: int | None = None) -> str:
    columns = rows + 1 if columns is None else columns
    head, values = _body([matrix[i, j] for i in range(rows) for j in range(columns)], printer)
    lines = [f"def {name}({args}):", _docstring(comment), *head, "    return jnp.stack(["]
    for i in range(rows):
        lines.append(f"        _vec({', '.join(values[i * columns:(i + 1) * columns])}),")
    lines.append("    ])")
    return "\n".join(lines)


# ------------------------------------------------------------------ the module


@dataclass(frozen=True)
class GeneratedJax:
    source: str
    plan: dict  # populations and projections: names, prefixes, what the runtime must know


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["repr"] = repr
    return env


def generate(model: Model, precision: str, version: str) -> GeneratedJax:
    pops, projections, kinds = plan(model)
    net = model.network
    exact = net.timing == "exact"
    no_gradients = None
    if not exact:
        no_gradients = "gradients need 'timing = exact' (on the grid, spike times do not move with the parameters)"
    else:
        for k in kinds.values():
            if not k.differentiable:
                no_gradients = f"{k.kind.name} is not linear: exact gradients need linear dynamics"
    source = _environment().get_template("model.py.j2").render(
        model=model, net=net, exact=exact, precision=precision, version=version,
        gradients=no_gradients is None, no_gradients=no_gradients,
        eps=repr(float(np.finfo(np.float64 if precision == "float64" else np.float32).eps)),
        kinds=list(kinds.values()), populations=pops, projections=projections,
        queues=sorted({p.queue for p in projections if not p.summing}),
        summing=any(p.summing for p in projections))
    return GeneratedJax(source, summary(pops, projections))


def summary(pops: list[JaxPopulation], projections: list[JaxProjection]) -> dict:
    """What the runtime needs to prepare arrays for each population and projection."""
    return {
        "populations": [{"name": p.name, "prefix": p.prefix, "index": p.index, "size": p.size,
                         "kind": p.spec.kind, "state": list(p.kind.kind.state_names) if p.kind else [],
                         "parameters": list(p.kind.kind.parameter_names) if p.kind else [],
                         "spiking": bool(p.kind and p.kind.spiking),
                         "recorded_spikes": p.recorded_spikes, "traced": [list(t) for t in p.traced],
                         "listed": [j.index for j in p.listed]}
                        for p in pops],
        "projections": [{"name": j.name, "prefix": j.prefix, "index": j.index, "pre": j.pre.name,
                         "post": j.post.name, "queue": j.queue, "capacity": j.capacity, "summing": j.summing}
                        for j in projections],
    }
