"""Parse tree of a ``network`` block to a checked :class:`Network`."""

from __future__ import annotations

import math
from typing import Mapping

from lark import Token, Tree

from qgen.errors import Code
from qgen.frontend.expressions import ExpressionBuilder, Invalid, Scope, real_value
from qgen.frontend.source import did_you_mean
from qgen.ir.dimension import DIMENSIONLESS, FREQUENCY, TIME, Dimension
from qgen.ir.nodes import (
    QUEUE_KINDS,
    Background,
    Connectivity,
    Drive,
    Initializer,
    Network,
    NeuronKind,
    Population,
    Projection,
    QueueSpec,
    Record,
)

DEFAULT_DT = 0.1  # ms, as in NEST and Brian2
DEFAULT_CAPACITY = {"ring": 16, "fifo": 8, "heap": 64, "sorted": 64}

# Initialisers: their parameters, in positional order; the required ones come first.
INITIALIZERS = {
    "constant": (("value",), ()),
    "uniform": (("low", "high"), ()),
    "normal": (("mean", "std"), ("min", "max")),
    "truncated_normal": (("mean", "std"), ("min", "max")),
}
# Connectivity rules: their numeric parameters (autapses is a keyword for all but one_to_one).
RULES = {"all_to_all": (), "one_to_one": (), "fixed_probability": ("p",), "fixed_indegree": ("k",),
         "fixed_total_number": ("n",), "explicit": ()}
# In-kernel sources of a population (`background POP poisson(...)`): their arguments.
BACKGROUNDS = {"poisson": ("rate", "weight")}


class NetworkBuilder(ExpressionBuilder):
    def build_network(self, tree: Tree, neurons: Mapping[str, NeuronKind],
                      overrides: Mapping[str, str] | None = None,
                      parse_expression=None) -> Network | None:
        name_token, *stmts = tree.children
        self.neurons = neurons
        self.scope = Scope()
        self.dt = DEFAULT_DT
        timing, seed = "exact", 0
        overrides = dict(overrides or {})
        before = len(self.diag.errors)
        constants: list[tuple[str, float, Dimension]] = []

        # Constants, dt, timing and seed first: later statements may use them wherever they stand.
        # A constant may use the constants above it, and dt once it is set (or its default).
        settings: dict[str, Tree] = {}
        self.dt_stmt = next((stmt for stmt in stmts if stmt.data == "dt"), None)
        if self.dt_stmt is None:
            self.scope.names["dt"] = ("constant", TIME)
            self.scope.values["dt"] = self.dt
        for stmt in stmts:
            try:
                if stmt.data in ("dt", "timing", "seed"):
                    if stmt.data in settings:
                        raise self.fail(Code.DUPLICATE_NAME, f"{stmt.data} is set twice", stmt,
                                        f"the first is on line {settings[stmt.data].meta.line}; remove one")
                    settings[stmt.data] = stmt
                if stmt.data == "let":
                    constants.append(self._let(stmt, overrides, parse_expression))
                elif stmt.data == "dt":
                    self.dt = self._dt(stmt)
                    self.scope.names["dt"] = ("constant", TIME)
                    self.scope.values["dt"] = self.dt
                elif stmt.data == "timing":
                    timing = self._timing(stmt)
                elif stmt.data == "seed":
                    seed = self._seed(stmt)
            except Invalid:
                pass
        for name in overrides:
            known = [c for c, _, _ in constants]
            self.diag.error(Code.UNKNOWN_NAME, f"--set {name}: the network has no constant {name!r}", None,
                            did_you_mean(name, known, "its constants: " + ", ".join(known) if known
                                         else "it declares no 'let' constants"))
        self.scope.names["dt"] = ("constant", TIME)
        self.scope.values["dt"] = self.dt

        populations: dict[str, Population] = {}
        self.failed: set[str] = set()  # populations with errors: no further messages about them
        projections: dict[str, Projection] = {}
        records: list[Record] = []
        drives: list[Drive] = []
        backgrounds: list[Background] = []
        self.timing = timing
        for stmt in stmts:
            try:
                if stmt.data == "population":
                    populations.update(self._population_or_mark_failed(stmt, populations))
                elif stmt.data == "connect":
                    proj = self._connect(stmt, populations, projections)
                    projections[proj.name] = proj
                elif stmt.data == "record":
                    records.extend(self._record(stmt, populations, records))
                elif stmt.data == "drive":
                    drives.append(self._drive(stmt, populations))
                elif stmt.data == "background":
                    backgrounds.append(self._background(stmt, populations, len(backgrounds)))
            except Invalid:
                pass
        if not populations and len(self.diag.errors) == before:
            self.fail(Code.MISSING_BLOCK, f"network {name_token} has no populations", name_token,
                      "add e.g. 'population hid = LIF(100)'")
        if len(self.diag.errors) > before:
            return None
        return Network(str(name_token), self.dt, timing, seed, tuple(constants), tuple(populations.values()),
                       tuple(projections.values()), tuple(records), tuple(drives), self.loc(tree),
                       tuple(backgrounds))

    # ------------------------------------------------------------ settings

    def _let(self, stmt: Tree, overrides: dict[str, str], parse_expression) -> tuple[str, float, Dimension]:
        name_token, value_tree = stmt.children
        name = str(name_token)
        if name in self.scope.names or name == "dt":
            raise self.fail(Code.DUPLICATE_NAME, f"constant {name!r} is defined twice", name_token)
        builder: ExpressionBuilder = self
        if name in overrides:  # errors in the new value point into it, not into the model file
            text = overrides.pop(name)
            value_tree, source = parse_expression(text, f"--set {name}")
            builder = ExpressionBuilder(source, self.diag)
        try:
            if "dt" not in self.scope.names and "dt" in value_tree.scan_values(lambda v: v.type == "NAME"):
                raise builder.fail(Code.UNKNOWN_NAME, f"constant {name} uses dt before dt is set", value_tree,
                                   f"move 'dt = ...' (line {self.dt_stmt.meta.line}) above "
                                   f"'let {name}' (line {stmt.meta.line})")
            value, dim = builder.constant(value_tree, self.scope, f"constant {name}")
        except Invalid:
            self.scope.names[name] = ("invalid", DIMENSIONLESS)  # no further errors about its uses
            raise
        self.scope.names[name] = ("constant", dim)
        self.scope.values[name] = value
        return name, value, dim

    def _dt(self, stmt: Tree) -> float:
        value = self._time(stmt.children[0], "dt")
        if value <= 0:
            raise self.fail(Code.BAD_VALUE, "dt must be positive", stmt)
        return value

    def _timing(self, stmt: Tree) -> str:
        token = stmt.children[0]
        if str(token) not in ("exact", "grid"):
            raise self.fail(Code.BAD_ARGUMENT, f"unknown timing {str(token)!r}", token,
                            "use 'timing = exact' (event-driven, precise spike times) or 'timing = grid'")
        return str(token)

    def _seed(self, stmt: Tree) -> int:
        return self._integer(stmt.children[0], "the seed", minimum=0)

    def _time(self, tree, what: str) -> float:
        value, dim = self.constant(tree, self.scope, what)
        if dim == DIMENSIONLESS:
            raise self.fail(Code.MISSING_TIME_UNIT, f"{what} has no time unit", tree, f"write e.g. '{value:g} ms'")
        if dim != TIME:
            raise self.fail(Code.DIMENSION_MISMATCH, f"{what} must be a time, not a value in {dim}", tree)
        return value

    def _integer(self, tree, what: str, minimum: int) -> int:
        value, dim = self.constant(tree, self.scope, what)
        if dim != DIMENSIONLESS or value != int(value) or value < minimum:
            raise self.fail(Code.BAD_VALUE, f"{what} must be an integer of at least {minimum}, not {value:g}"
                            + ("" if dim == DIMENSIONLESS else f" {dim}"), tree,
                            "use round(...) to make an integer from an expression")
        return int(value)

    # ------------------------------------------------------------ populations

    def _population_or_mark_failed(self, stmt: Tree, populations: dict[str, Population]) -> dict:
        try:
            pop = self._population(stmt, populations)
        except Invalid:
            if str(stmt.children[0]) not in populations:
                self.failed.add(str(stmt.children[0]))
            raise
        return {pop.name: pop}

    def _population(self, stmt: Tree, populations: dict[str, Population]) -> Population:
        name_token, kind_token, size_tree, *overrides = stmt.children
        name, kind = str(name_token), str(kind_token)
        if name in populations:
            raise self.fail(Code.DUPLICATE_NAME, f"population {name!r} is defined twice", name_token,
                            f"the first is on line {populations[name].loc.line}")
        size = self._integer(size_tree, f"the size of population {name}", minimum=1)
        if kind == "input":
            if overrides:
                raise self.fail(Code.BAD_ARGUMENT, "an input population takes only its size", overrides[0],
                                "input spikes are given from Python or with 'qgen run --input'")
            return Population(name, size, None, (), (), (), self.loc(stmt))
        if kind not in self.neurons:
            hint = did_you_mean(kind, [*self.neurons, "input"],
                                "define it with 'neuron " + kind + " { ... }' or import it, e.g. import \"std/lif.snn\"")
            raise self.fail(Code.UNKNOWN_NAME, f"unknown neuron kind {kind!r}", kind_token, hint)
        neuron = self.neurons[kind]
        params = {p.name: p.value for p in neuron.parameters}
        trainable = {p.name for p in neuron.parameters if p.trainable}
        drawn: dict[str, Initializer] = {}
        state_dims = {s.name: s.dim for s in neuron.state}
        for override in overrides:
            target = override.children[0]
            var = str(target)
            if override.data == "set_value":
                value, dim = self.constant(override.children[1], self.scope, var)
                if var in params:
                    expected = neuron.parameter(var).dim
                    self._expect_dim(dim, expected, f"parameter {var} of {kind}", override.children[1], value)
                    params[var] = value
                    if override.children[2] is not None:
                        trainable.add(var)
                    continue
                if var in state_dims:
                    self._expect_dim(dim, state_dims[var], f"state variable {var} of {kind}", override.children[1],
                                     value)
                    drawn[var] = Initializer("constant", (("value", value),), dim, self.loc(override))
                    continue
            elif var in state_dims:
                drawn[var] = self._initializer(override.children[1], state_dims[var], f"{var} of {name}")
                continue
            elif var in params:
                raise self.fail(Code.UNSUPPORTED, f"parameter {var} cannot be drawn per neuron", target,
                                f"parameters are per population: write '{var} = value'")
            raise self.fail(Code.UNKNOWN_NAME, f"neuron {kind} has no parameter or state variable {var!r}", target,
                            did_you_mean(var, [*params, *state_dims]))
        initial = []
        for s in neuron.state:
            if s.name in drawn:
                initial.append((s.name, drawn[s.name]))
                continue
            value = real_value(s.initial, params)
            if not math.isfinite(value):
                raise self.fail(Code.BAD_VALUE, f"the initial value of {s.name} cannot be evaluated"
                                + ("" if math.isnan(value) else " (it is not finite)"), stmt,
                                f"it is given on line {s.loc.line} of {s.loc.file}")
            initial.append((s.name, Initializer("constant", (("value", value),), s.dim, s.loc)))
        return Population(name, size, kind, tuple(params.items()), tuple(sorted(trainable)), tuple(initial),
                          self.loc(stmt))

    def _expect_dim(self, dim: Dimension, expected: Dimension, what: str, node, value: float) -> None:
        if dim == expected:
            return
        if dim == DIMENSIONLESS:
            code = Code.MISSING_TIME_UNIT if expected == TIME else Code.DIMENSION_MISMATCH
            raise self.fail(code, f"{what} is in {expected}, but {value:g} has no unit", node,
                            f"write e.g. '{value:g} {expected}'")
        raise self.fail(Code.DIMENSION_MISMATCH, f"{what} is in {expected}, not in {dim}", node)

    # ------------------------------------------------------------ initialisers

    def _initializer(self, call: Tree, dim: Dimension, what: str) -> Initializer:
        func_token, *arg_trees = call.children
        func = str(func_token)
        if func not in INITIALIZERS:
            raise self.fail(Code.UNKNOWN_INITIALIZER, f"unknown initialiser {func!r}", func_token,
                            did_you_mean(func, INITIALIZERS, "known initialisers: " + ", ".join(INITIALIZERS)))
        required, optional = INITIALIZERS[func]
        values = self._arguments(call, arg_trees, required + optional, required, func)
        args = []
        for key, (value, got_dim, node) in values.items():
            self._expect_dim(got_dim, dim, f"{key} of {func}() for {what}", node, value)
            args.append((key, value))
        a = dict(args)
        if func == "uniform" and a["low"] > a["high"]:
            raise self.fail(Code.BAD_VALUE, f"uniform({a['low']:g}, {a['high']:g}): low is above high", call)
        if func in ("normal", "truncated_normal"):
            if a["std"] < 0:
                raise self.fail(Code.BAD_VALUE, "the standard deviation is negative", call)
            if "min" in a and "max" in a and a["min"] >= a["max"]:
                raise self.fail(Code.BAD_VALUE, "min must be below max", call)
        return Initializer(func, tuple(args), dim, self.loc(call))

    def _arguments(self, node, arg_trees, names: tuple[str, ...], required: tuple[str, ...], func: str,
                   flags: tuple[str, ...] = ()) -> dict:
        """Positional and keyword arguments to {name: (value, dim, node)}; flags take true/false."""
        result: dict[str, tuple] = {}
        arg_trees = [a for a in arg_trees if a is not None]
        positional = [a for a in arg_trees if not (isinstance(a, Tree) and a.data == "keyword")]
        keywords = [a for a in arg_trees if isinstance(a, Tree) and a.data == "keyword"]
        if len(positional) > len(names):
            raise self.fail(Code.BAD_ARGUMENT, f"{func}() takes at most {len(names)} positional arguments",
                            positional[len(names)])
        for key, tree in zip(names, positional):
            value, dim = self.constant(tree, self.scope, f"{key} of {func}()")
            result[key] = (value, dim, tree)
        for kw in keywords:
            key_token, tree = kw.children
            key = str(key_token)
            if key in result:
                raise self.fail(Code.BAD_ARGUMENT, f"argument {key!r} of {func}() is given twice", key_token)
            if key in flags:
                if not (isinstance(tree, Tree) and tree.data == "name" and str(tree.children[0]) in ("true", "false")):
                    raise self.fail(Code.BAD_ARGUMENT, f"{key} must be true or false", tree)
                result[key] = (str(tree.children[0]) == "true", DIMENSIONLESS, tree)
                continue
            if key not in names:
                known = ", ".join(names + flags) or "none"
                raise self.fail(Code.BAD_ARGUMENT, f"{func}() has no argument {key!r}", key_token,
                                f"its arguments: {known}")
            value, dim = self.constant(tree, self.scope, f"{key} of {func}()")
            result[key] = (value, dim, tree)
        missing = [k for k in required if k not in result]
        if missing:
            raise self.fail(Code.BAD_ARGUMENT, f"{func}() needs {', '.join(missing)}", node,
                            f"write {func}({', '.join(names[:len(required)])})")
        return result

    # ------------------------------------------------------------ projections

    def _connect(self, stmt: Tree, populations: dict[str, Population],
                 projections: dict[str, Projection]) -> Projection:
        pre_token, post_token, rule_tree, alias, *body = stmt.children
        pre, post = (self._known_population(t, populations) for t in (pre_token, post_token))
        if post.is_input:
            raise self.fail(Code.BAD_ARGUMENT, f"cannot connect to input population {post.name}", post_token,
                            "input populations only send spikes")
        if not pre.is_input and not self.neurons[pre.kind].spiking:
            raise self.fail(Code.BAD_ARGUMENT, f"{pre.name} ({pre.kind}) has no threshold, so it never sends events",
                            pre_token, "connect from a population that spikes, or from an input population")
        kind = self.neurons[post.kind]
        if kind.on_event is None:
            raise self.fail(Code.MISSING_BLOCK, f"neuron {kind.name} has no on_event block, so {post.name} cannot "
                            "receive events", post_token, "add e.g. 'on_event(w) { i += w }' to the neuron")
        name = str(alias) if alias is not None else f"{pre.name}->{post.name}"
        if name in projections:
            raise self.fail(Code.DUPLICATE_NAME, f"a second projection named {name!r}", stmt,
                            "name it with 'as', e.g. 'connect a -> b all_to_all as a_to_b_slow { ... }'")
        connectivity = self._rule(rule_tree, pre, post)
        weight = delay = queue = None
        trainable = []
        for item in body:
            if item.data in ("weight", "delay"):
                if (weight if item.data == "weight" else delay) is not None:
                    raise self.fail(Code.DUPLICATE_NAME, f"{item.data} is given twice", item)
                init_tree, mark = item.children
                dim = kind.on_event.weight_dim if item.data == "weight" else TIME
                init = self._value(init_tree, dim, f"the {item.data} of {name}")
                if item.data == "weight":
                    weight = init
                else:
                    delay = self._check_delay(init, init_tree)
                if mark is not None:
                    trainable.append(str(item.data))  # a plain str: lark may hand a Token here
            else:
                if queue is not None:
                    raise self.fail(Code.DUPLICATE_NAME, "queue is given twice", item)
                queue = self._queue(item)
        if weight is None:
            raise self.fail(Code.MISSING_BLOCK, f"projection {name} has no weight", stmt,
                            "add e.g. 'weight = 0.5' or 'weight ~ normal(0, 0.1)' inside the braces")
        if delay is None:
            delay = Initializer("constant", (("value", self.dt),), TIME, self.loc(stmt))
        if queue is None:
            queue = QueueSpec("ring", DEFAULT_CAPACITY["ring"], None)
        return Projection(name, pre.name, post.name, connectivity, weight, delay, tuple(trainable), queue,
                          self.loc(stmt))

    def _known_population(self, token: Token, populations: dict[str, Population]) -> Population:
        if str(token) in self.failed:
            raise Invalid()
        if str(token) not in populations:
            raise self.fail(Code.UNKNOWN_NAME, f"unknown population {str(token)!r}", token,
                            did_you_mean(str(token), populations,
                                         "populations must be defined before they are connected or recorded"))
        return populations[str(token)]

    def _rule(self, tree: Tree, pre: Population, post: Population) -> Connectivity:
        kind_token, *arg_trees = tree.children
        kind = str(kind_token)
        if kind not in RULES:
            raise self.fail(Code.UNKNOWN_CONNECTIVITY, f"unknown connectivity {kind!r}", kind_token,
                            did_you_mean(kind, RULES, "known: " + ", ".join(RULES)))
        flags = () if kind in ("one_to_one", "explicit") else ("autapses",)
        values = self._arguments(tree, arg_trees, RULES[kind], RULES[kind], kind, flags)
        autapses = bool(values.pop("autapses", (True,))[0])
        args = []
        if kind == "one_to_one" and pre.size != post.size:
            raise self.fail(Code.BAD_VALUE, f"one_to_one needs equal sizes, but {pre.name} has {pre.size} "
                            f"and {post.name} has {post.size} neurons", tree)
        if "p" in values:
            p, dim, node = values["p"]
            if dim != DIMENSIONLESS or not 0 <= p <= 1:
                raise self.fail(Code.BAD_VALUE, f"the connection probability must be in [0, 1], not {p:g}", node)
            args.append(("p", p))
        if "n" in values:  # fixed_total_number: n synapses, each (pre, post) drawn uniformly; multapses allowed
            count, dim, node = values["n"]
            if dim != DIMENSIONLESS or count != int(count) or count < 0:
                raise self.fail(Code.BAD_VALUE, f"the number of synapses must be an integer of at least 0, "
                                f"not {count:g}", node, "use round(...) to make an integer from an expression")
            if count > 0 and not autapses and pre.name == post.name and pre.size < 2:
                raise self.fail(Code.BAD_VALUE, f"{pre.name} has one neuron, so without autapses it has no "
                                "synapse to make", node)
            if count >= 2 ** 31 - 1:
                raise self.fail(Code.BAD_VALUE, f"{count:g} synapses in one projection is too many (at most "
                                f"{2 ** 31 - 2})", node, "split the projection with 'as NAME'")
            args.append(("n", count))
        if "k" in values:
            k, dim, node = values["k"]
            available = pre.size - (0 if autapses or pre.name != post.name else 1)
            if dim != DIMENSIONLESS or k != int(k) or not 0 <= k <= available:
                raise self.fail(Code.BAD_VALUE, f"the in-degree must be an integer in [0, {available}], not {k:g}",
                                node, f"{pre.name} has {pre.size} neurons")
            args.append(("k", k))
        return Connectivity(kind, tuple(args), autapses, self.loc(tree))

    def _value(self, tree: Tree, dim: Dimension, what: str) -> Initializer:
        if tree.data == "random_value":
            return self._initializer(tree.children[0], dim, what)
        value, got = self.constant(tree.children[0], self.scope, what)
        self._expect_dim(got, dim, what, tree.children[0], value)
        return Initializer("constant", (("value", value),), dim, self.loc(tree))

    def _check_delay(self, init: Initializer, node) -> Initializer:
        low, _ = init.bounds
        dt = self.dt
        if math.isinf(low):
            raise self.fail(Code.BAD_DELAY, f"{init.kind}() has no lower bound, so delays can be below dt", node,
                            f"bound it: {init.kind}(..., min = {dt:g} ms)")
        if low < 0:
            raise self.fail(Code.BAD_DELAY, f"the delay can be negative ({low:g} ms)", node,
                            f"delays are at least dt = {dt:g} ms")
        if low < dt * (1 - 1e-12):
            hint = f"delays are at least dt = {dt:g} ms; use a larger delay or a smaller dt"
            raise self.fail(Code.BAD_DELAY, f"the delay can be below dt ({_fmt(low)} ms < {dt:g} ms)", node, hint)
        return init

    def _queue(self, tree: Tree) -> QueueSpec:
        kind_token, *arg_trees = tree.children
        kind = str(kind_token)
        if kind not in QUEUE_KINDS:
            suggestion = did_you_mean(kind, QUEUE_KINDS, "")
            raise self.fail(Code.UNKNOWN_QUEUE, f"unknown queue kind {kind!r}", kind_token,
                            f"{suggestion} queue kinds: ".lstrip() + ", ".join(QUEUE_KINDS))
        values = self._arguments(tree, arg_trees, ("capacity",), (), kind)
        capacity = DEFAULT_CAPACITY[kind]
        if "capacity" in values:
            value, dim, node = values["capacity"]
            if dim != DIMENSIONLESS or value != int(value) or value < 1:
                raise self.fail(Code.BAD_CAPACITY, f"the capacity must be an integer of at least 1, not {value:g}",
                                node, f"e.g. queue = {kind}(capacity = {DEFAULT_CAPACITY[kind]})")
            capacity = int(value)
        return QueueSpec(kind, capacity, self.loc(tree))

    # ------------------------------------------------------------ records and drives

    def _record(self, stmt: Tree, populations: dict[str, Population], earlier: list[Record]) -> list[Record]:
        records = []
        for probe in stmt.children:
            pop_token, var_token, *arg_trees = probe.children
            pop = self._known_population(pop_token, populations)
            var = str(var_token)
            kind = None if pop.is_input else self.neurons[pop.kind]
            if var == "spikes":
                if kind is not None and not kind.spiking:
                    raise self.fail(Code.BAD_ARGUMENT, f"{pop.name} ({kind.name}) has no threshold and never spikes",
                                    var_token, f"record one of its state variables instead: "
                                    + ", ".join(kind.state_names))
                values = self._arguments(probe, arg_trees, ("capacity",), (), "spikes")
            else:
                if kind is None or var not in kind.state_names:
                    choices = ["spikes"] + ([] if kind is None else list(kind.state_names))
                    raise self.fail(Code.UNKNOWN_NAME, f"{pop.name} has no state variable {var!r}", var_token,
                                    "recordable: " + ", ".join(choices))
                if any(a is not None for a in arg_trees):
                    raise self.fail(Code.BAD_ARGUMENT, "a state trace takes no arguments", probe)
                values = {}
            if any(r.population == pop.name and r.variable == var for r in earlier + records):
                raise self.fail(Code.DUPLICATE_NAME, f"{pop.name}.{var} is recorded twice", probe)
            capacity = None
            if "capacity" in values:
                value, dim, node = values["capacity"]
                if dim != DIMENSIONLESS or value != int(value) or value < 1:
                    raise self.fail(Code.BAD_CAPACITY, f"the capacity must be an integer of at least 1, not {value:g}",
                                    node)
                capacity = int(value)
            records.append(Record(pop.name, var, capacity, self.loc(probe)))
        return records

    def _drive(self, stmt: Tree, populations: dict[str, Population]) -> Drive:
        pop_token, param_token, value_tree, start_tree, stop_tree = stmt.children
        pop = self._known_population(pop_token, populations)
        if pop.is_input:
            raise self.fail(Code.BAD_ARGUMENT, "an input population has no parameters to drive", pop_token)
        kind = self.neurons[pop.kind]
        param = str(param_token)
        if param not in kind.parameter_names:
            raise self.fail(Code.UNKNOWN_NAME, f"{kind.name} has no parameter {param!r}", param_token,
                            "parameters: " + ", ".join(kind.parameter_names))
        value, dim = self.constant(value_tree, self.scope, f"the value of {param}")
        self._expect_dim(dim, kind.parameter(param).dim, f"parameter {param}", value_tree, value)
        start, stop = self._time(start_tree, "the start"), self._time(stop_tree, "the stop")
        for t, node in ((start, start_tree), (stop, stop_tree)):
            steps = t / self.dt
            if t < 0 or abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
                raise self.fail(Code.BAD_VALUE, f"drive times must be non-negative multiples of dt = {self.dt:g} ms",
                                node)
        if stop <= start:
            raise self.fail(Code.BAD_VALUE, "the drive stops before it starts", stmt)
        return Drive(pop.name, param, value, start, stop, self.loc(stmt))


    def _background(self, stmt: Tree, populations: dict[str, Population], index: int) -> Background:
        pop_token, call = stmt.children
        pop = self._known_population(pop_token, populations)
        if pop.is_input:
            raise self.fail(Code.BAD_ARGUMENT, f"{pop.name} is an input population; a background source drives "
                            "neurons", pop_token, "give the input population's spikes from Python instead")
        func_token, *arg_trees = call.children
        func = str(func_token)
        if func not in BACKGROUNDS:
            raise self.fail(Code.UNKNOWN_NAME, f"unknown background source {func!r}", func_token,
                            did_you_mean(func, BACKGROUNDS, "known: " + ", ".join(BACKGROUNDS)))
        if self.timing != "grid":
            raise self.fail(Code.UNSUPPORTED, "background sources need grid timing", stmt,
                            "add 'timing = grid' to the network (Poisson events arrive summed per step)")
        kind = self.neurons[pop.kind]
        if kind.on_event is None:
            raise self.fail(Code.MISSING_BLOCK, f"neuron {kind.name} has no on_event block, so {pop.name} cannot "
                            "receive background events", pop_token, "add e.g. 'on_event(w) { i += w }' to the neuron")
        names = BACKGROUNDS[func]
        values = self._arguments(call, arg_trees, names, names, func)
        rate, dim, node = values["rate"]
        if dim != FREQUENCY:
            raise self.fail(Code.DIMENSION_MISMATCH, f"the rate of {func}() is a frequency, not "
                            + (f"a value in {dim}" if dim != DIMENSIONLESS else "a number without unit"), node,
                            f"write e.g. 'rate = {rate:g} Hz'")
        if not (math.isfinite(rate) and rate >= 0):
            raise self.fail(Code.BAD_VALUE, f"the rate must be finite and non-negative, not {rate:g}", node)
        if rate * self.dt > 700:
            raise self.fail(Code.BAD_VALUE, f"the rate is {rate * self.dt:g} events per step; at most 700 per step "
                            "can be drawn", node, "split the source, or use a DC current for such a drive")
        weight, wdim, wnode = values["weight"]
        self._expect_dim(wdim, kind.on_event.weight_dim, f"the weight of {func}() into {pop.name}", wnode, weight)
        return Background(pop.name, func, rate, weight, index, self.loc(stmt))


def _fmt(value: float) -> str:
    return "-inf" if value == -math.inf else f"{value:g}"

