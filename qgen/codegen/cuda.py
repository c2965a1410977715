"""The CUDA target's code generator: IR + analysis -> one CUDA source file of kernels and its layout.

The plan (populations, projections, the C functions of each neuron kind printed from sympy) is
the C target's (:func:`qgen.codegen.c.plan`): the neuron math and the exact threshold-crossing
search are the C target's very text, compiled as device functions. What differs is the
parallelism and so the layout: every kernel runs one thread per (trial, neuron) or per
(trial, spike), and the per-trial scratch of the C target becomes device arrays.

One step n is a fixed sequence of launches (see templates/cuda/model.cu.j2):

1. ``update_<pop>`` per population, a thread per (trial, neuron): gather the events due at n
   from every incoming queue of that neuron (a ring slot, a heap, a sorted array, its fifo lines),
   sort them by (time, projection, synapse) and advance the neuron through the step (exact or
   grid timing, as the C target); its spikes are recorded and appended to the trial's spike list
   of the step (an atomic counter; a list per step parity, so that the next step's list fills while
   nothing reads it);
2. ``qgen_inputs`` appends the input spikes pushed at the end of step n;
3. ``qgen_rank`` orders each trial's spike list by (time, population, neuron), the C target's push
   order, by counting (each spike's rank is the number of spikes before it), and links the spikes
   of one neuron in time order;
4. propagation, by queue kind: per presynaptic spike over its outgoing synapses
   (``qgen_push_pre``, a block per spike) for summing rings (atomic adds) and fifo lines (a line
   belongs to one synapse, so to one thread, which pushes that neuron's spikes of the step in time
   order); heaps and sorted arrays in two phases: each spike files its events under their targets
   (in ``qgen_push_pre``, keyed by the spike's rank and the synapse), then a thread per target
   (``pull_<projection>``) sorts its few keys and enqueues them; ring lists by connectivity: where a
   target is expected to receive from at least half of the sources (``DENSE``), per target
   (``pull_<projection>``, a thread per target neuron walking the ordered spike list and finding its
   synapses by binary search), else in the two phases of heaps (O(events) rather than O(targets ×
   spikes)). Queues per target neuron so receive their events in the C target's order and drop
   exactly the events it drops.

``qgen_steps`` runs all of this for many steps in one launch, with a few blocks per trial meeting
at barriers between phases, and a window of several steps per phase (as many as the shortest delay
allows): each neuron goes through the window's steps, then the window's spikes are pushed, each push
seeing the capacity of its queue as in its step (the events popped in the window's later steps still
count: per target and step for heaps and sorted arrays, ``<q>_popped``; from the popped keys still in
a fifo line's slots); a fifo line takes a neuron's spikes of the whole window from one thread
(``<pop>_win`` finds the neuron's spikes in each list, ``<pop>_win_steps`` the steps it spiked in: a
window of fifo sources has at most 64 steps).

Arrays are those of the C layout where the runtime binds them (connectivity, weights, delays,
parameters, states, records, traces, inputs, drops) plus device-only arrays (lifetime
``"device"``: queues, spike lists, event scratch, errors), which never travel to the host.
Symbolic sizes are the C target's and: ``M`` the spike list of one trial and step, ``E<i>`` the due
events of one neuron of population i in one step (a bound from the queues' capacities).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import jinja2

from qgen.codegen.c import CPopulation, CProjection, plan, population_fields, recording_fields, summary, synapse_fields
from qgen.codegen.fingerprint import TEMPLATE_ROOT
from qgen.codegen.layout import Field
from qgen.ir.nodes import Model

TEMPLATES = TEMPLATE_ROOT / "cuda"
THREADS = 128  # threads per block of the per-neuron kernels
SPIKE_THREAD_SYNAPSES = 32  # a source with at most this many synapses is pushed by one thread (spike_threads)
DENSE = 0.5  # ring lists with at least this expected density are filled per target, sparser ones staged
PHASES = ("update", "inputs", "rank", "push", "pull")  # of a window in qgen_steps (QGEN_PHASE_* in model.cu.j2)
# The generator's own files and the C templates it includes: part of the build-cache key.
SOURCES = ("codegen/cuda.py", "codegen/c.py", "codegen/kinds.py", "codegen/layout.py", "codegen/names.py",
           "codegen/printer.py", "runtime/background.py")
C_TEMPLATES = ("neurons.c.j2", "background.c.j2", "network.c.j2")


@dataclass(frozen=True)
class GeneratedCuda:
    source: str
    layout: tuple[Field, ...]
    scalars: tuple[str, ...]  # the struct's scalar fields (all int64_t), before its pointers
    kernels: dict  # what the runtime launches, in order (see launch_plan)
    plan: dict  # populations and projections: names, prefixes, what the runtime must know


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(TEMPLATES), str(TEMPLATE_ROOT / "c")]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["repr"] = repr
    env.filters["device"] = device_functions
    return env


def device_functions(text: str) -> str:
    """C functions of the C target as device functions: ``static f(...)`` -> ``__device__ f(...)``.

    Not static: nvcc warns about (and -Werror fails on) an unreferenced static function, and a
    kind's functions are printed whether or not this network calls every one.
    """
    return re.sub(r"^static (inline )?", "__device__ ", str(text), flags=re.MULTILINE)


def pre_side(proj: CProjection) -> bool:
    """Propagated per presynaptic spike (summing rings, fifo lines); else per target neuron."""
    return proj.summing or proj.queue == "fifo"


def out_degree(proj: CProjection) -> float:
    """The expected synapses of one source, from the connectivity rule (explicit synapses: unknown when
    the kernels are built, inf)."""
    rule = proj.spec.connectivity
    if rule.kind == "all_to_all":
        return float(proj.post.size)
    if rule.kind == "one_to_one":
        return 1.0
    if rule.kind == "fixed_probability":
        return rule.arg("p") * proj.post.size
    if rule.kind == "fixed_indegree":
        return rule.arg("k") * proj.post.size / proj.pre.size
    if rule.kind == "fixed_total_number":
        return rule.arg("n") / proj.pre.size
    return float("inf")


def density(proj: CProjection) -> float:
    """The expected share of (source, target) pairs connected (explicit synapses: taken as sparse)."""
    degree = out_degree(proj)
    return degree / proj.post.size if degree != float("inf") else 0.0


def spike_threads(projections: list[CProjection]) -> bool:
    """Whether a spike's synapses are few enough everywhere (at most SPIKE_THREAD_SYNAPSES, a warp, per
    source over its propagated-per-spike projections) for one thread to push them all: a thread per spike,
    else a block per spike, a thread per synapse (which leaves a block idle but one thread where a source
    has a single synapse: the queue micro-benchmark's 2500 spikes per step then queue up behind a few
    hundred blocks)."""
    per_source: dict[int, float] = {}
    for proj in projections:
        if pre_side(proj) or staged(proj):
            per_source[proj.pre.index] = per_source.get(proj.pre.index, 0.0) + out_degree(proj)
    return bool(per_source) and max(per_source.values()) <= SPIKE_THREAD_SYNAPSES


def staged(proj: CProjection) -> bool:
    """Heaps, sorted arrays and sparse ring lists: each spike files its events under their targets (per
    presynaptic spike), then each target enqueues its own in push order (per target neuron). A dense ring
    list is filled by each target walking the step's spikes, which costs no staging rows."""
    return proj.queue in ("heap", "sorted") or (proj.queue == "ring" and not proj.summing and density(proj) < DENSE)


def fifo_source(pop: CPopulation) -> bool:
    """A population whose spikes go into fifo lines: its spikes of a window are found per neuron and step."""
    return any(proj.queue == "fifo" for proj in pop.outgoing)


def layout(model: Model, pops: list[CPopulation], projections: list[CProjection]) -> list[Field]:
    exact = model.network.timing == "exact"
    fields: list[Field] = []
    for pop in pops:
        p, i = pop.prefix, pop.index
        fields += population_fields(pop, exact)
        if fifo_source(pop):
            fields += [Field(f"{p}_win", "int32_t", ("B", pop.size, "W"), "per neuron and step of a window: its "
                             "first spike in the step's list", "device"),
                       Field(f"{p}_win_steps", "int64_t", (2, "B", pop.size), "the steps of a window in which each "
                             "neuron spikes, a bit each (two windows alternate)", "device")]
        if pop.kind is None:
            continue
        if pop.backgrounds:
            fields.append(Field(f"{p}_bg_key", "int64_t", (len(pop.backgrounds),), "keys of the background sources "
                                "(from the seed)", "network"))
        if any(proj.summing for proj in pop.incoming):
            fields.append(Field(f"{p}_ring_sum", "real", ("B", f"R{i}", pop.size),
                                "summed weights per slot, shared by every summing projection into it", "device"))
        fields += recording_fields(pop)
        if any(not proj.summing for proj in pop.incoming):
            fields += [Field(f"{p}_ev_key", "double", ("B", pop.size, f"E{i}"), "due events of a step: times",
                             "device"),
                       Field(f"{p}_ev_ord", "int64_t", ("B", pop.size, f"E{i}"), "projection << 32 | synapse",
                             "device"),
                       Field(f"{p}_ev_w", "real", ("B", pop.size, f"E{i}"), "weights", "device")]
    for proj in projections:
        q, j = proj.prefix, proj.index
        n_post = proj.post.size
        fields += synapse_fields(proj, exact)
        K = proj.capacity
        if staged(proj):
            fields += [Field(f"{q}_in_start", "int64_t", (n_post + 1,), "first incoming synapse of each target "
                             "(in (post, synapse) order)", "network"),
                       Field(f"{q}_stage", "int64_t", ("B", f"SP{j}"), "a step's events filed under their targets, "
                             f"P{j} per incoming synapse: rank << 32 | synapse", "device"),
                       Field(f"{q}_stage_count", "int32_t", ("B", n_post), "events filed per target", "device")]
        if proj.queue == "ring":
            if not proj.summing:
                fields += [Field(f"{q}_ring_key", "double", ("B", f"D{j}", n_post, K), "event keys per slot", "device"),
                           Field(f"{q}_ring_syn", "int32_t", ("B", f"D{j}", n_post, K), "event synapses", "device"),
                           Field(f"{q}_ring_count", "int32_t", ("B", f"D{j}", n_post), "events per slot", "device")]
        elif proj.queue == "fifo":
            fields += [Field(f"{q}_in_syn", "int32_t", (f"S{j}",), "synapses ordered by (post, synapse)", "network"),
                       Field(f"{q}_in_start", "int64_t", (n_post + 1,), "first incoming synapse of each target",
                             "network"),
                       Field(f"{q}_in_pos", "int32_t", (f"S{j}",), "each synapse's line: its place in in_syn "
                             "(qgen_prepare)", "device"),
                       Field(f"{q}_fifo_key", "double", ("B", f"S{j}", K), "event keys per line", "device"),
                       Field(f"{q}_fifo_head", "int32_t", ("B", f"S{j}"), "oldest event", "device"),
                       Field(f"{q}_fifo_size", "int32_t", ("B", f"S{j}"), "events in flight", "device"),
                       Field(f"{q}_fifo_due", "int64_t", ("B", f"S{j}"), "step the oldest event is due (INT64_MAX: "
                             "none; 0: not looked at yet)", "device"),
                       Field(f"{q}_next_due", "int64_t", ("B", n_post), "no line of this target has an event due "
                             "before this step (INT64_MAX: none queued; 0: not looked at yet)", "device")]
        else:
            fields += [Field(f"{q}_{proj.queue}_key", "double", ("B", n_post, K), "event keys per target", "device"),
                       Field(f"{q}_{proj.queue}_syn", "int32_t", ("B", n_post, K), "event synapses", "device"),
                       Field(f"{q}_{proj.queue}_size", "int32_t", ("B", n_post), "events queued", "device"),
                       *([Field(f"{q}_sorted_head", "int32_t", ("B", n_post), "the earliest event's slot (the "
                                "array is circular)", "device")] if proj.queue == "sorted" else []),
                       Field(f"{q}_popped", "int32_t", ("B", n_post, "W"), "events popped in each step of a window",
                             "device"),
                       Field(f"{q}_next_due", "int64_t", ("B", n_post), "no event due before this step, per "
                             "target (INT64_MAX: none queued; 0: not looked at yet)", "device")]
    if projections:
        fields += [Field("spk_time", "double", (2, "W", "B", "M"), "the spikes of each step of two windows: times",
                         "device"),
                   Field("spk_pop", "int32_t", (2, "W", "B", "M"), "populations", "device"),
                   Field("spk_neuron", "int32_t", (2, "W", "B", "M"), "neurons", "device"),
                   Field("spk_count", "int32_t", (2, "W", "B"), "spikes in the list (may pass M: overflow)", "device"),
                   Field("spk_order", "int32_t", (2, "W", "B", "M"), "the list in push order (qgen_rank)", "device"),
                   Field("spk_next", "int32_t", (2, "W", "B", "M"), "the same neuron's next spike of the step (-1: none)",
                         "device"),
                   Field("spk_first", "int32_t", (2, "W", "B", "M"), "1: the neuron's first spike of the step", "device")]
    fields += [Field("phase_cycles", "int64_t", ("B", len(PHASES)), "clock cycles of each phase of qgen_steps "
                     "(PHASES), counted by each trial's first block", "run"),
               Field("sync_count", "int32_t", ("B",), "qgen_steps's blocks of each trial at its barrier", "device"),
               Field("sync_gen", "int32_t", ("B",), "barriers passed by each trial (qgen_steps)", "device"),
               Field("err_code", "int32_t", ("B",), "what stopped each trial (0: nothing)", "device"),
               Field("err_population", "int32_t", ("B",), "where", "device"),
               Field("err_projection", "int32_t", ("B",), "where", "device"),
               Field("err_neuron", "int64_t", ("B",), "which neuron", "device"),
               Field("err_time", "double", ("B",), "when (ms)", "device")]
    return fields


def scalars(pops: list[CPopulation], projections: list[CProjection]) -> list[str]:
    """The struct's scalars; all int64_t, so that the struct is a plain array of 8-byte words."""
    result = ["B", "T", "step", "trace_start", "strict", "M", "W"]
    result += [f"C{p.index}" for p in pops if p.recorded_spikes]
    result += [f"R{p.index}" for p in pops if any(j.summing for j in p.incoming)]
    result += [f"E{p.index}" for p in pops if any(not j.summing for j in p.incoming)]
    for proj in projections:
        result.append(f"S{proj.index}")
        if proj.queue == "ring" and not proj.summing:
            result.append(f"D{proj.index}")
        if staged(proj):
            result += [f"P{proj.index}", f"SP{proj.index}"]
    return result


def launch_plan(pops: list[CPopulation], projections: list[CProjection]) -> dict:
    """The kernels of one step, in launch order, with their parallel shape."""
    return {
        "prepare": "qgen_prepare",
        "update": [{"kernel": f"update_{p.prefix}", "size": p.size} for p in pops if p.kind is not None],
        "inputs": "qgen_inputs" if any(p.kind is None and p.outgoing for p in pops) else None,
        "rank": "qgen_rank" if projections else None,
        "push_pre": "qgen_push_pre" if any(pre_side(j) or staged(j) for j in projections) else None,
        "pull": [{"kernel": f"pull_{j.prefix}", "size": j.post.size} for j in projections if not pre_side(j)],
        "spike": "thread" if spike_threads(projections) else "block",  # qgen_push_pre: a thread or a block per spike
        "steps": "qgen_steps",  # all of the above for several steps, a few blocks per trial
        "backward": "qgen_backward",  # a block per trial, its threads sharing the neurons (builds with a backward pass)
        "threads": THREADS,
    }


def generate(model: Model, precision: str, version: str) -> GeneratedCuda:
    from qgen.codegen.adjoint_c import adjoint_functions, gradient_plan, gradient_unsupported

    pops, projections, kinds = plan(model, precision)
    grad = gradient_plan(model, precision, pops, projections)  # the C target's tape and backward pass
    fields = layout(model, pops, projections) + (grad.fields if grad else [])
    scalar_fields = scalars(pops, projections) + ([name for name, _ in grad.scalars] if grad else [])
    env = _environment()
    real = "double" if precision == "float64" else "float"
    source = env.get_template("model.cu.j2").render(
        model=model, net=model.network, exact=model.network.timing == "exact", precision=precision, real=real,
        version=version, fields=fields, scalars=scalar_fields, kinds=list(kinds.values()), populations=pops,
        projections=projections, pre_side=pre_side, staged=staged, threads=THREADS,
        spike_threads=spike_threads(projections),
        pre=[j for j in projections if pre_side(j) or staged(j)], any_staged=any(staged(j) for j in projections),
        pre_sources={j.pre.index for j in projections if pre_side(j) or staged(j)},
        fifo_sources={p.index for p in pops if fifo_source(p)},
        inputs=[p for p in pops if p.kind is None and p.outgoing], uses_backgrounds=bool(model.network.backgrounds),
        grad=grad is not None,
        adjoints=[adjoint_functions(k.analysis, precision) for k in kinds.values()] if grad else [])
    info = summary(pops, projections)
    info["gradients"] = gradient_unsupported(model, pops, precision) or "cuda"
    for entry, pop in zip(info["populations"], pops):
        entry["listed"] = [j.index for j in pop.incoming if not j.summing]
    for entry, proj in zip(info["projections"], projections):
        entry["pre_side"] = pre_side(proj)
        entry["staged"] = staged(proj)
    return GeneratedCuda(source, tuple(fields), tuple(scalar_fields), launch_plan(pops, projections), info)
