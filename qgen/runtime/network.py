"""A network instance: the IR's populations and projections as NumPy arrays.

Connectivity, weights, delays and initial states are drawn here, once, from counter-based
Philox streams keyed by (seed, a hash of what is drawn), so that every target simulates the
same instance and a change in one projection does not shift the random numbers of another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from qgen.errors import Code, QgenError
from qgen.ir.nodes import Initializer, Model, NeuronKind, Population, Projection

_CHUNK = 1 << 22  # random numbers drawn at once when building connectivity


@dataclass
class PopulationData:
    spec: Population
    kind: NeuronKind | None
    params: dict[str, float]
    initial: dict[str, np.ndarray]  # state variable -> (size,) float64

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def size(self) -> int:
        return self.spec.size


@dataclass
class ProjectionData:
    spec: Projection
    pre: np.ndarray  # (S,) int64 presynaptic index, synapses sorted by (pre, post); int32 and sorted by pre
    post: np.ndarray  # (S,) int64 postsynaptic index                   only for fixed_total_number (compact)
    weight: np.ndarray  # (S,) float64
    delay: np.ndarray  # (S,) float64, ms

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def size(self) -> int:
        return len(self.pre)


@dataclass
class NetworkData:
    model: Model
    seed: int
    populations: dict[str, PopulationData] = field(default_factory=dict)
    projections: dict[str, ProjectionData] = field(default_factory=dict)

    @property
    def network(self):
        return self.model.network

    @property
    def dt(self) -> float:
        return self.model.network.dt

    @property
    def timing(self) -> str:
        return self.model.network.timing


def rng(seed: int, *what: str) -> np.random.Generator:
    """An independent Philox stream for (seed, what)."""
    digest = hashlib.sha256("/".join(what).encode()).digest()
    return np.random.Generator(np.random.Philox(key=[seed, int.from_bytes(digest[:8], "little")]))


def draw(init: Initializer, size: int, gen: np.random.Generator) -> np.ndarray:
    """``size`` values from an initialiser (bounds clip for normal, redraw for truncated_normal)."""
    a = dict(init.args)
    if init.kind == "constant":
        return np.full(size, a["value"])
    if init.kind == "uniform":
        return gen.uniform(a["low"], a["high"], size)
    low, high = a.get("min", -np.inf), a.get("max", np.inf)
    values = gen.normal(a["mean"], a["std"], size)
    if init.kind == "normal":
        return np.clip(values, low, high)
    for _ in range(1000):
        bad = (values < low) | (values > high)
        if not bad.any():
            return values
        values[bad] = gen.normal(a["mean"], a["std"], int(bad.sum()))
    raise QgenError(Code.BAD_VALUE, f"{init.loc}: truncated_normal({a['mean']:g}, {a['std']:g}) almost never "
                    f"falls in [{low:g}, {high:g}]", hint="widen the bounds or move the mean inside them")


def instantiate(model: Model, seed: int | None = None,
                connectivity: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> NetworkData:
    """Draw the network of ``model``; ``connectivity`` gives (pre, post) for ``explicit`` projections."""
    net = model.network
    if net is None:
        raise QgenError(Code.NO_NETWORK, f"model {model.name} has no network to simulate",
                        hint="add a 'network' block, or import this file from one that has")
    seed = net.seed if seed is None else seed
    data = NetworkData(model, seed)
    for pop in net.populations:
        kind = model.kind_of(pop)
        initial = {var: draw(init, pop.size, rng(seed, "population", pop.name, var)) for var, init in pop.initial}
        data.populations[pop.name] = PopulationData(pop, kind, pop.parameter_values, initial)
    given = dict(connectivity or {})
    for proj in net.projections:
        pre, post = _connect(proj, data, seed, given.pop(proj.name, None))
        weight = draw(proj.weight, len(pre), rng(seed, "projection", proj.name, "weight"))
        delay = draw(proj.delay, len(pre), rng(seed, "projection", proj.name, "delay"))
        data.projections[proj.name] = ProjectionData(proj, pre, post, weight, delay)
    if given:
        raise QgenError(Code.BAD_INPUT, f"connectivity given for unknown or non-explicit projections: "
                        f"{', '.join(given)}", hint="only projections declared 'explicit' take arrays")
    return data


def _connect(proj: Projection, data: NetworkData, seed: int,
             given: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    n_pre, n_post = data.populations[proj.pre].size, data.populations[proj.post].size
    rule = proj.connectivity
    same = proj.pre == proj.post
    gen = rng(seed, "projection", proj.name, "connectivity")
    if rule.kind == "explicit":
        return _explicit(proj, given, n_pre, n_post)
    if rule.kind == "one_to_one":
        idx = np.arange(n_pre)
        return idx, idx.copy()
    if rule.kind == "fixed_total_number":
        return _fixed_total_number(int(rule.arg("n")), n_pre, n_post, same and not rule.autapses, gen)
    if rule.kind == "all_to_all":
        pre, post = np.repeat(np.arange(n_pre), n_post), np.tile(np.arange(n_post), n_pre)
    elif rule.kind == "fixed_probability":
        pre_parts, post_parts = [], []
        rows = max(1, _CHUNK // max(n_post, 1))
        for start in range(0, n_pre, rows):
            stop = min(n_pre, start + rows)
            i, j = np.nonzero(gen.random((stop - start, n_post)) < rule.arg("p"))
            pre_parts.append(i + start)
            post_parts.append(j)
        pre, post = np.concatenate(pre_parts), np.concatenate(post_parts)
    else:  # fixed_indegree: k distinct sources per target
        k = int(rule.arg("k"))
        pre_parts, post_parts = [], []
        rows = max(1, _CHUNK // max(n_pre, 1))
        for start in range(0, n_post, rows):
            stop = min(n_post, start + rows)
            keys = gen.random((stop - start, n_pre))
            if same and not rule.autapses:
                targets = np.arange(start, stop)
                keys[targets - start, targets] = np.inf
            chosen = np.argpartition(keys, k - 1, axis=1)[:, :k] if k else np.empty((stop - start, 0), int)
            pre_parts.append(chosen.ravel())
            post_parts.append(np.repeat(np.arange(start, stop), k))
        pre, post = np.concatenate(pre_parts), np.concatenate(post_parts)
    if same and not rule.autapses:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    order = np.lexsort((post, pre))
    return pre[order].astype(np.int64), post[order].astype(np.int64)


def _fixed_total_number(n: int, n_pre: int, n_post: int, no_autapses: bool,
                        gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n synapses whose (pre, post) are uniform and independent, multapses allowed (NEST's
    fixed_total_number). The counts per presynaptic neuron come from one multinomial draw, so the
    synapses are born ordered by pre and nothing is sorted; within a pre, posts are in draw order.
    Indices are int32, the compact form the C target binds without a copy."""
    index = np.int32 if max(n_pre, n_post) < 2 ** 31 - 1 else np.int64
    per_pre = gen.multinomial(n, np.full(n_pre, 1.0 / n_pre)) if n else np.zeros(n_pre, dtype=np.int64)
    pre = np.repeat(np.arange(n_pre, dtype=index), per_pre)
    post = gen.integers(0, n_post, n, dtype=index)
    if no_autapses:  # redraw the targets of self-connections
        bad = np.nonzero(post == pre)[0]
        while len(bad):
            post[bad] = gen.integers(0, n_post, len(bad), dtype=index)
            bad = bad[post[bad] == pre[bad]]
    return pre, post


def _explicit(proj: Projection, given, n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    if given is None:
        raise QgenError(Code.BAD_INPUT, f"projection {proj.name} is explicit but no connectivity was given",
                        hint=f"pass connectivity={{'{proj.name}': (pre, post)}}")
    pre, post = (np.asarray(a) for a in given)
    if pre.shape != post.shape or pre.ndim != 1 or not np.issubdtype(pre.dtype, np.integer) \
            or not np.issubdtype(post.dtype, np.integer):
        raise QgenError(Code.BAD_INPUT, f"connectivity of {proj.name}: pre and post must be 1-D integer arrays "
                        "of equal length")
    if len(pre) and (pre.min() < 0 or pre.max() >= n_pre or post.min() < 0 or post.max() >= n_post):
        raise QgenError(Code.BAD_INPUT, f"connectivity of {proj.name}: an index is out of range "
                        f"(pre < {n_pre}, post < {n_post})")
    if len(pre) > 1 and np.any(np.diff(pre) < 0):
        # Outgoing synapses are found by bisection on pre in every target, and weights and delays
        # set later are in the given order: reordering silently would pair them with other synapses.
        raise QgenError(Code.BAD_INPUT, f"connectivity of {proj.name}: pre must be sorted (non-decreasing)",
                        hint="sort both arrays first, e.g. order = np.lexsort((post, pre)); pre, post = pre[order], "
                             "post[order]")
    return pre.astype(np.int64), post.astype(np.int64)
