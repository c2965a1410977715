"""The intermediate representation: plain frozen dataclasses, checked and in internal units.

The IR is the contract between the stages: the frontend builds it from the parse tree and
knows nothing of targets; analysis and code generation read it and know nothing of the grammar.
All quantities are floats in internal units (ms, mV, pA, pF, nS); every expression node carries
its dimension. Locations are part of equality, so that a moved line (which changes the comments
of generated code) changes the model hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

from qgen.ir.dimension import Dimension


@dataclass(frozen=True)
class Location:
    """A span in a source file; ``file`` is relative to the root model's folder (std/ for the library)."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ------------------------------------------------------------------ expressions


@dataclass(frozen=True)
class Expr:
    dim: Dimension
    loc: Location | None


@dataclass(frozen=True)
class Number(Expr):
    value: float


@dataclass(frozen=True)
class Name(Expr):
    """A reference to a parameter, a state variable or the event weight of a neuron kind."""

    name: str
    role: str  # "parameter" | "state" | "weight"


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "-"
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # "+", "-", "*", "/", "**"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]


# ------------------------------------------------------------------ neuron kinds


@dataclass(frozen=True)
class Parameter:
    name: str
    value: float
    dim: Dimension
    trainable: bool
    loc: Location


@dataclass(frozen=True)
class StateVariable:
    name: str
    initial: Expr  # constant, or an expression of parameters
    dim: Dimension
    trainable: bool
    loc: Location


@dataclass(frozen=True)
class Equation:
    variable: str
    rhs: Expr
    loc: Location


@dataclass(frozen=True)
class Assignment:
    target: str
    op: str  # "=", "+=", "-=", "*=", "/="
    value: Expr
    loc: Location


@dataclass(frozen=True)
class Threshold:
    """Spike when ``left op right`` becomes true."""

    left: Expr
    op: str  # ">=", ">", "<=", "<"
    right: Expr
    loc: Location


@dataclass(frozen=True)
class EventHandler:
    """``on_event(weight) { body }``: the effect of an arriving event on the target neuron."""

    weight: str
    weight_dim: Dimension
    body: tuple[Assignment, ...]
    loc: Location


@dataclass(frozen=True)
class NeuronKind:
    name: str
    parameters: tuple[Parameter, ...]
    state: tuple[StateVariable, ...]
    equations: tuple[Equation, ...]
    threshold: Threshold | None
    reset: tuple[Assignment, ...]
    refractory: Expr | None
    on_event: EventHandler | None
    loc: Location

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.state)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    def equation(self, variable: str) -> Equation | None:
        return next((e for e in self.equations if e.variable == variable), None)

    @property
    def spiking(self) -> bool:
        return self.threshold is not None

    @property
    def clamped(self) -> tuple[str, ...]:
        """State variables held at their reset value while refractory."""
        if self.refractory is None:
            return ()
        return tuple(dict.fromkeys(a.target for a in self.reset if a.op == "="))


# ------------------------------------------------------------------ network


@dataclass(frozen=True)
class Initializer:
    """How per-neuron or per-synapse values are drawn. Bounds clip (normal) or redraw (truncated_normal)."""

    kind: str  # "constant" | "uniform" | "normal" | "truncated_normal"
    args: tuple[tuple[str, float], ...]  # (name, value) in internal units
    dim: Dimension
    loc: Location

    def arg(self, name: str, default: float | None = None) -> float | None:
        return dict(self.args).get(name, default)

    @property
    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value this initialiser can produce."""
        inf = float("inf")
        a = dict(self.args)
        if self.kind == "constant":
            return a["value"], a["value"]
        if self.kind == "uniform":
            return a["low"], a["high"]
        return a.get("min", -inf), a.get("max", inf)


@dataclass(frozen=True)
class Population:
    name: str
    size: int
    kind: str | None  # neuron kind name; None for an input population
    parameters: tuple[tuple[str, float], ...]  # resolved values, overrides applied
    trainable: tuple[str, ...]  # parameters with per-population gradients
    initial: tuple[tuple[str, Initializer], ...]  # per-neuron initial state, overrides applied
    loc: Location

    @property
    def is_input(self) -> bool:
        return self.kind is None

    @property
    def parameter_values(self) -> Mapping[str, float]:
        return dict(self.parameters)


@dataclass(frozen=True)
class Connectivity:
    kind: str  # "all_to_all" | "one_to_one" | "fixed_probability" | "fixed_indegree" | "fixed_total_number"
    #            | "explicit"
    args: tuple[tuple[str, float], ...]  # p, k, n
    autapses: bool
    loc: Location

    def arg(self, name: str) -> float:
        return dict(self.args)[name]


QUEUE_KINDS = ("ring", "fifo", "heap", "sorted")


@dataclass(frozen=True)
class QueueSpec:
    """The spike event queue of a projection and its capacity.

    ring: per target neuron, per-slot capacity; fifo: per synapse; heap and sorted: per target.
    """

    kind: str
    capacity: int
    loc: Location | None


@dataclass(frozen=True)
class Projection:
    name: str
    pre: str
    post: str
    connectivity: Connectivity
    weight: Initializer
    delay: Initializer
    trainable: tuple[str, ...]  # subset of ("weight", "delay")
    queue: QueueSpec
    loc: Location


@dataclass(frozen=True)
class Record:
    population: str
    variable: str  # "spikes" or a state variable
    capacity: int | None  # spikes per neuron and trial; None: the simulator's default
    loc: Location


@dataclass(frozen=True)
class Drive:
    """Parameter ``parameter`` of ``population`` is ``value`` for steps starting in [start, stop)."""

    population: str
    parameter: str
    value: float
    start: float
    stop: float
    loc: Location


@dataclass(frozen=True)
class Background:
    """An in-kernel source of ``population``: every neuron receives, in every step, Poisson(rate·dt)
    events of ``weight`` (grid timing, additive effects), drawn from a counter-based generator
    keyed by (seed, population, source index, neuron, step); ``index`` numbers the sources of
    the network in order."""

    population: str
    kind: str  # "poisson"
    rate: float  # 1/ms
    weight: float  # in the dimension of the target kind's event weight
    index: int
    loc: Location


@dataclass(frozen=True)
class Network:
    name: str
    dt: float
    timing: str  # "exact" | "grid"
    seed: int
    constants: tuple[tuple[str, float, Dimension], ...]  # let constants: name, value, dimension
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    records: tuple[Record, ...]
    drives: tuple[Drive, ...]
    loc: Location
    # Left out of repr (so the hashes of models without sources stay as they were); Model.hash adds it.
    backgrounds: tuple[Background, ...] = field(default=(), repr=False)

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def projection(self, name: str) -> Projection:
        return next(p for p in self.projections if p.name == name)


@dataclass(frozen=True)
class Model:
    """A whole program: every neuron kind defined or imported, and the network (if any)."""

    name: str
    neurons: tuple[NeuronKind, ...]
    network: Network | None
    sources: tuple[tuple[str, str], ...] = field(default=())  # (file, sha256 of its text)

    def neuron(self, name: str) -> NeuronKind:
        return next(n for n in self.neurons if n.name == name)

    def kind_of(self, population: Population) -> NeuronKind | None:
        return None if population.kind is None else self.neuron(population.kind)

    @property
    def hash(self) -> str:
        """A stable content hash: the build-cache key of the later stages."""
        text = repr(self)
        if self.network is not None and self.network.backgrounds:
            text += repr(self.network.backgrounds)
        return hashlib.sha256(text.encode()).hexdigest()

