"""The C target's code generator: IR + analysis -> one C source file, its cffi header and its layout.

The generated code owns no memory. Every array it reads or writes is described by the layout
(name, C type, shape in symbolic sizes) and allocated by the runtime with NumPy; one struct of
pointers, ``qgen_state``, binds them. So weights, delays and parameters are NumPy arrays that
Python reads and writes in place, and the manifest of a build records the layout exactly.

Symbolic sizes: ``B`` the batch, ``CAL`` the fifo calendars (B, or the threads sharing one trial),
``T`` the traced steps of a run, ``S<j>`` the synapses of projection j, ``D<j>`` the ring slots of
projection j, ``C<i>`` the spike capacity of population i, ``I<i>`` the input spikes of input
population i (all trials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import jinja2

from qgen.analysis import analyse
from qgen.codegen.fingerprint import TEMPLATES
from qgen.codegen.draws import BUILDER_CDEF, network_draws
from qgen.codegen.kinds import KindCode, kind_code
from qgen.codegen.layout import Field
from qgen.codegen.names import c_identifier
from qgen.ir.nodes import Model, Population, Projection
from qgen.runtime import streams


FIFO_BUCKETS = 1024  # steps of the fifo queues' calendar (a power of 2): longer delays wrap around it


@dataclass
class CPopulation:
    spec: Population
    index: int
    prefix: str
    kind: KindCode | None
    recorded_spikes: bool = False
    traced: list[tuple[int, str]] = field(default_factory=list)  # (state index, variable)
    incoming: list["CProjection"] = field(default_factory=list)
    outgoing: list["CProjection"] = field(default_factory=list)
    backgrounds: list = field(default_factory=list)  # (Background, its Poisson CDF table as floats)

    @property
    def size(self) -> int:
        return self.spec.size


@dataclass
class CProjection:
    spec: Projection
    index: int
    prefix: str
    pre: CPopulation
    post: CPopulation
    summing: bool  # grid timing, ring, additive effects: one summed value per slot

    @property
    def queue(self) -> str:
        return self.spec.queue.kind

    @property
    def capacity(self) -> int:
        return self.spec.queue.capacity


@dataclass(frozen=True)
class GeneratedC:
    source: str
    cdef: str
    layout: tuple[Field, ...]
    scalars: tuple[tuple[str, str], ...]  # (name, ctype) of the struct's scalar fields
    plan: dict  # populations and projections: names, C prefixes, what the runtime must know


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["repr"] = repr
    return env


def plan(model: Model, precision: str) -> tuple[list[CPopulation], list[CProjection], dict[str, KindCode]]:
    """The populations and projections of the network with their C names, and the code of each kind."""
    net = model.network
    exact = net.timing == "exact"
    pops = [CPopulation(pop, i, f"pop{i}_{c_identifier(pop.name)}", None) for i, pop in enumerate(net.populations)]
    by_name = {p.spec.name: p for p in pops}
    for record in net.records:
        pop = by_name[record.population]
        if record.variable == "spikes":
            pop.recorded_spikes = True
        else:
            pop.traced.append((model.neuron(pop.spec.kind).state_names.index(record.variable), record.variable))
    for bg in net.backgrounds:  # in-kernel sources (templates/c/background.c.j2)
        from qgen.runtime.background import cdf_table

        by_name[bg.population].backgrounds.append((bg, [float(v) for v in cdf_table(bg.rate * net.dt)]))
    projections = []
    for j, proj in enumerate(net.projections):
        pre, post = by_name[proj.pre], by_name[proj.post]
        summing = (not exact and proj.queue.kind == "ring" and analyse(model.neuron(post.spec.kind)).additive_event)
        cp = CProjection(proj, j, f"prj{j}_{c_identifier(proj.name)}", pre, post, summing)
        projections.append(cp)
        pre.outgoing.append(cp)
        post.incoming.append(cp)
    needs: dict[str, set[str]] = {}
    for pop in pops:
        if pop.spec.kind is not None:
            needs.setdefault(pop.spec.kind, set()).update(_needs(pop, analyse(model.neuron(pop.spec.kind)), exact))
    kinds = {name: kind_code(analyse(model.neuron(name)), precision, frozenset(used)) for name, used in needs.items()}
    for pop in pops:
        if pop.spec.kind is not None:
            pop.kind = kinds[pop.spec.kind]
            if pop.backgrounds and pop.kind.event_driven:
                from qgen.errors import Code, QgenError

                bg = pop.backgrounds[0][0]
                raise QgenError(Code.UNSUPPORTED, f"{bg.loc}: background sources into {pop.spec.kind}, a kind "
                                "without dynamics or threshold, are not supported on target c",
                                hint="give the kind an equation or a threshold, or feed it through an input "
                                     "population")
    return pops, projections, kinds


def _needs(pop: CPopulation, analysis, exact: bool) -> set[str]:
    """The kind functions this population's update calls."""
    spiking = analysis.threshold is not None
    used = {"propagator"} if analysis.linear else {"rhs"}
    if spiking:
        used |= {"threshold", "reset"}
        if exact:
            used |= {"system", "threshold_vector"}
    listed = [p for p in pop.incoming if not p.summing]
    if listed and (exact or not analysis.additive_event):
        used.add("event")
        if spiking:
            used.add("event_refractory")
    return used


def population_fields(pop: CPopulation, exact: bool) -> list[Field]:
    """An input population's spike arrays, or a neuron population's state, parameters and refractory clamp:
    the same on every target that uses this layout (C, CUDA)."""
    p, i = pop.prefix, pop.index
    if pop.kind is None:
        return [Field(f"{p}_in_time", "double", (f"I{i}",), "input spike times (ms)", "input"),
                Field(f"{p}_in_id", "int32_t", (f"I{i}",), "input spike neurons", "input"),
                Field(f"{p}_in_step", "int64_t", (f"I{i}",), "the step at whose end each is pushed", "input"),
                Field(f"{p}_in_start", "int64_t", ("B+1",), "first input spike of each trial", "input"),
                Field(f"{p}_in_cursor", "int64_t", ("B",), "next input spike of each trial")]
    k = pop.kind
    fields = [Field(f"{p}_x", "real", ("B", pop.size, k.n), f"state ({', '.join(k.kind.state_names)})"),
              Field(f"{p}_params", "real", (len(k.kind.parameters),), "parameters", "network"),
              Field(f"{p}_derived", "real", (k.derived_size,), "computed from the parameters by qgen_prepare",
                    "network")]
    if k.analysis.threshold is not None:
        fields.append(Field(f"{p}_refractory_until", "double", ("B", pop.size), "end of the clamp (ms)")
                      if exact else
                      Field(f"{p}_refractory_steps", "int32_t", ("B", pop.size), "steps left in the clamp"))
    return fields


def recording_fields(pop: CPopulation) -> list[Field]:
    """Recorded spikes and traces of a neuron population."""
    p, i = pop.prefix, pop.index
    fields = []
    if pop.recorded_spikes:
        fields += [Field(f"{p}_spike_times", "double", ("B", pop.size, f"C{i}"), "recorded spike times (ms)"),
                   Field(f"{p}_spike_count", "int32_t", ("B", pop.size), "spikes recorded"),
                   Field(f"{p}_spike_overflow", "int64_t", ("B", pop.size), "spikes that did not fit")]
    for _, var in pop.traced:
        fields.append(Field(f"{p}_trace_{c_identifier(var)}", "real", ("B", "T", pop.size), f"{var} per step"))
    return fields


def synapse_fields(proj: CProjection, exact: bool) -> list[Field]:
    """A projection's synapses (sorted by pre, then post) and its drop counter."""
    q, j = proj.prefix, proj.index
    fields = [Field(f"{q}_post", "int32_t", (f"S{j}",), "postsynaptic neuron, synapses ordered by pre", "network"),
              Field(f"{q}_out_start", "int64_t", (proj.pre.size + 1,), "first synapse of each presynaptic neuron",
                    "network"),
              Field(f"{q}_weight", "real", (f"S{j}",), "weights", "network"),
              Field(f"{q}_delay", "double", (f"S{j}",), "delays (ms)", "network"),
              Field(f"{q}_drops", "int64_t", ("B",), "events dropped by a full queue, per trial")]
    if not exact:
        fields.append(Field(f"{q}_delay_steps", "int32_t", (f"S{j}",), "delays in steps (qgen_prepare)", "network"))
    return fields


def layout(model: Model, pops: list[CPopulation], projections: list[CProjection]) -> list[Field]:
    exact = model.network.timing == "exact"
    fields: list[Field] = []
    for pop in pops:
        p, i = pop.prefix, pop.index
        fields += population_fields(pop, exact)
        if pop.kind is None:
            continue
        if pop.backgrounds:
            fields += [Field(f"{p}_bg_key", "int64_t", (len(pop.backgrounds),), "keys of the background sources "
                             "(from the seed)", "network"),
                       Field(f"{p}_bg_input", "real", ("B", pop.size), "background input of the step")]
        if any(proj.summing for proj in pop.incoming):
            fields.append(Field(f"{p}_ring_sum", "real", ("B", f"R{i}", pop.size),
                                "summed weights per slot, shared by every summing projection into it"))
        fields += recording_fields(pop)
    for proj in projections:
        q, j = proj.prefix, proj.index
        n_post = proj.post.size
        fields += synapse_fields(proj, exact)
        fields += [Field(f"{q}_part_syn", "int32_t", (f"S{j}",), "where threads share a trial: the synapses grouped by "
                         "the thread of their target, then by pre (qgen_partition; one element otherwise)", "network"),
                   Field(f"{q}_part_start", "int64_t", ("threads", proj.pre.size + 1), "first of part_syn per "
                         "thread and presynaptic neuron", "network")]
        K = proj.capacity
        if proj.queue == "ring":
            if not proj.summing:  # slot-major, so that one step's pops sweep memory in order
                fields += [Field(f"{q}_ring_key", "double", ("B", f"D{j}", n_post, K), "event keys per slot"),
                           Field(f"{q}_ring_syn", "int32_t", ("B", f"D{j}", n_post, K), "event synapses"),
                           Field(f"{q}_ring_count", "int32_t", ("B", f"D{j}", n_post), "events per slot")]
        elif proj.queue == "fifo":
            # one line per synapse, in incoming order, so that a target's lines are contiguous; a calendar of
            # FIFO_BUCKETS steps files each non-empty line under the step its oldest event is due
            fields += [Field(f"{q}_in_syn", "int32_t", (f"S{j}",), "synapses ordered by (post, synapse)", "network"),
                       Field(f"{q}_in_start", "int64_t", (n_post + 1,), "first incoming synapse of each target",
                             "network"),
                       Field(f"{q}_in_pos", "int32_t", (f"S{j}",), "each synapse's line: its place in in_syn "
                             "(qgen_prepare)"),
                       Field(f"{q}_fifo_key", "double", ("B", f"S{j}", K), "event keys per line"),
                       Field(f"{q}_fifo_head", "int32_t", ("B", f"S{j}"), "oldest event"),
                       Field(f"{q}_fifo_size", "int32_t", ("B", f"S{j}"), "events in flight"),
                       Field(f"{q}_fifo_due", "int64_t", ("B", f"S{j}"), "step the oldest event is due"),
                       Field(f"{q}_fifo_link", "int32_t", ("B", f"S{j}"), "next line + 1 in the same calendar "
                             "bucket or due list (0: the last)"),
                       Field(f"{q}_calendar", "int32_t", ("CAL", FIFO_BUCKETS), "first line + 1 filed under each "
                             "step modulo the buckets (0: none), per trial or per thread sharing one trial"),
                       Field(f"{q}_due_lines", "int32_t", ("B", n_post), "first line + 1 of each target's list "
                             "of lines due in this step (0: none)")]
        else:
            fields += [Field(f"{q}_{proj.queue}_key", "double", ("B", n_post, K), "event keys per target"),
                       Field(f"{q}_{proj.queue}_syn", "int32_t", ("B", n_post, K), "event synapses"),
                       Field(f"{q}_{proj.queue}_size", "int32_t", ("B", n_post), "events queued")]
        if proj.queue in ("heap", "sorted"):  # what makes finding the due targets cheap
            fields.append(Field(f"{q}_next_due", "int64_t", ("B", n_post), "no event due before this step, per "
                                "target (INT64_MAX: none queued; 0: not looked at yet)"))
    return fields


def scalars(pops: list[CPopulation], projections: list[CProjection]) -> list[tuple[str, str]]:
    result = [("B", "int64_t"), ("T", "int64_t"), ("step", "int64_t"), ("trace_start", "int64_t"),
              ("strict", "int32_t"), ("threads", "int32_t")]
    result += [(f"C{p.index}", "int64_t") for p in pops if p.recorded_spikes]
    result += [(f"R{p.index}", "int64_t") for p in pops if any(j.summing for j in p.incoming)]
    for proj in projections:
        result.append((f"S{proj.index}", "int64_t"))
        if proj.queue == "ring" and not proj.summing:
            result.append((f"D{proj.index}", "int64_t"))
    return result


def generate(model: Model, precision: str, version: str) -> GeneratedC:
    from qgen.codegen.adjoint_c import adjoint_functions, gradient_plan, gradient_unsupported

    pops, projections, kinds = plan(model, precision)
    grad = gradient_plan(model, precision, pops, projections)  # the C backward pass (templates/c/adjoint.c.j2)
    fields = layout(model, pops, projections) + (grad.fields if grad else [])
    scalar_fields = scalars(pops, projections) + (grad.scalars if grad else [])
    draws = network_draws(model)
    env = _environment()
    real = "double" if precision == "float64" else "float"
    struct = env.get_template("state.h.j2").render(fields=fields, scalars=scalar_fields, real=real)
    source = env.get_template("model.c.j2").render(
        model=model, net=model.network, exact=model.network.timing == "exact", precision=precision, real=real,
        version=version, struct=struct, kinds=list(kinds.values()), populations=pops, projections=projections,
        buckets=FIFO_BUCKETS, uses_backgrounds=bool(model.network.backgrounds), draws=draws,
        streams=streams,
        uses_events=any(not p.summing for p in projections),
        uses_spikes=any(p.kind is None or p.kind.analysis.threshold is not None for p in pops if p.outgoing),
        grad=grad is not None,
        adjoints=[adjoint_functions(k.analysis, precision) for k in kinds.values()] if grad else [])
    cdef = struct + ("\nint qgen_prepare(qgen_state *s);\nint qgen_run(qgen_state *s, int64_t steps, qgen_error *errors);\n"
                     "int qgen_max_threads(void);\nint qgen_partition(qgen_state *s);\n")
    cdef += "".join(BUILDER_CDEF[d] for d in sorted(draws))
    cdef += grad.cdef if grad else ""
    plan_summary = summary(pops, projections)
    plan_summary["gradients"] = gradient_unsupported(model, pops, precision) or "c"
    return GeneratedC(source, cdef, tuple(fields), tuple(scalar_fields), plan_summary)


def summary(pops: list[CPopulation], projections: list[CProjection]) -> dict:
    """What the runtime needs to bind the arrays of each population and projection."""
    return {
        "populations": [{"name": p.spec.name, "prefix": p.prefix, "index": p.index, "size": p.size,
                         "kind": p.spec.kind, "state": list(p.kind.kind.state_names) if p.kind else [],
                         "parameters": list(p.kind.kind.parameter_names) if p.kind else [],
                         "spiking": bool(p.kind and p.kind.analysis.threshold is not None),
                         "recorded_spikes": p.recorded_spikes, "traced": [list(t) for t in p.traced],
                         "backgrounds": [bg.index for bg, _ in p.backgrounds]}
                        for p in pops],
        "projections": [{"name": j.spec.name, "prefix": j.prefix, "index": j.index, "pre": j.pre.spec.name,
                         "post": j.post.spec.name, "queue": j.queue, "capacity": j.capacity, "summing": j.summing}
                        for j in projections],
    }
