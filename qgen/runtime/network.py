"""A network instance: the IR's populations and projections as NumPy arrays.

Everything is drawn once, from random streams keyed by (seed, what is drawn), so that every target
simulates the same instance and a change in one projection does not shift the random numbers of
another. Initial values and the synapses of ``fixed_total_number`` projections come from the
counter-based streams of :mod:`qgen.runtime.streams`, which the C target draws in its generated
code (``draws``) and every other target in NumPy, bit for bit alike; the other connectivity rules
are drawn here from Philox streams.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Protocol

import numpy as np

from qgen.errors import Code, QgenError
from qgen.ir.nodes import Initializer, Model, NeuronKind, Population, Projection
from qgen.runtime import streams

_CHUNK = 1 << 22  # random numbers drawn at once when building connectivity
MIN_MASS = 1e-3  # of a truncated normal inside its bounds: below, drawing would mostly redraw


class Draws(Protocol):
    """Who draws the counter-based values: :mod:`qgen.runtime.streams` or a target's generated code."""

    def fixed_total_number(self, stream: int, n: int, n_pre: int, n_post: int,
                           no_autapses: bool) -> tuple[np.ndarray, np.ndarray]: ...

    def uniform(self, stream: int, n: int, low: float, high: float) -> np.ndarray: ...

    def normal(self, stream: int, n: int, mean: float, std: float, low: float, high: float,
               truncate: bool) -> tuple[np.ndarray, int]: ...


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
    """Synapses ordered by pre (by post within a pre, except for fixed_total_number: by draw)."""

    spec: Projection
    out_start: np.ndarray  # (n_pre + 1,) int64: the synapses of presynaptic neuron i are out_start[i:i + 2]
    post: np.ndarray  # (S,) postsynaptic index (int32 for fixed_total_number, int64 otherwise)
    weight: np.ndarray  # (S,) float64
    delay: np.ndarray  # (S,) float64, ms

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def size(self) -> int:
        return len(self.post)

    @cached_property
    def pre(self) -> np.ndarray:
        """(S,) int64 presynaptic index (computed from out_start when asked for)."""
        return np.repeat(np.arange(len(self.out_start) - 1), np.diff(self.out_start))


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


def draw(init: Initializer, size: int, stream: int, draws: Draws = streams) -> np.ndarray:
    """``size`` values from an initialiser (bounds clip for normal, redraw for truncated_normal)."""
    a = dict(init.args)
    if init.kind == "constant":
        return np.full(size, a["value"])
    if init.kind == "uniform":
        return draws.uniform(stream, size, a["low"], a["high"])
    low, high = a.get("min", -np.inf), a.get("max", np.inf)
    truncate = init.kind == "truncated_normal"
    if truncate and size and _mass(a["mean"], a["std"], low, high) < MIN_MASS:
        raise QgenError(Code.BAD_VALUE, f"{init.loc}: truncated_normal({a['mean']:g}, {a['std']:g}) almost never "
                        f"falls in [{low:g}, {high:g}]", hint="widen the bounds or move the mean inside them")
    values, failed = draws.normal(stream, size, a["mean"], a["std"], low, high, truncate)
    if failed:  # not reached above MIN_MASS: the chance is below e^-700 per value
        raise QgenError(Code.BAD_VALUE, f"{init.loc}: {failed} values of truncated_normal found no draw inside "
                        f"[{low:g}, {high:g}] in {streams.MAX_ATTEMPTS} attempts", hint="widen the bounds")
    return values


def _mass(mean: float, std: float, low: float, high: float) -> float:
    """The probability of [low, high] under a normal law."""
    if std <= 0:
        return float(low <= mean <= high)
    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-(x - mean) / (std * math.sqrt(2)))
    return cdf(high) - cdf(low)


def instantiate(model: Model, seed: int | None = None,
                connectivity: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                draws: Draws = streams) -> NetworkData:
    """Draw the network of ``model``; ``connectivity`` gives (pre, post) for ``explicit`` projections;
    ``draws`` draws the counter-based values of projections (a target's generated builder, or NumPy)."""
    net = model.network
    if net is None:
        raise QgenError(Code.NO_NETWORK, f"model {model.name} has no network to simulate",
                        hint="add a 'network' block, or import this file from one that has")
    seed = net.seed if seed is None else seed
    data = NetworkData(model, seed)
    for pop in net.populations:
        kind = model.kind_of(pop)
        initial = {var: draw(init, pop.size, streams.key(seed, "population", pop.name, var))
                   for var, init in pop.initial}
        data.populations[pop.name] = PopulationData(pop, kind, pop.parameter_values, initial)
    given = dict(connectivity or {})
    for proj in net.projections:
        out_start, post = _connect(proj, data, seed, given.pop(proj.name, None), draws)
        weight = draw(proj.weight, len(post), streams.key(seed, "projection", proj.name, "weight"), draws)
        delay = draw(proj.delay, len(post), streams.key(seed, "projection", proj.name, "delay"), draws)
        data.projections[proj.name] = ProjectionData(proj, out_start, post, weight, delay)
    if given:
        raise QgenError(Code.BAD_INPUT, f"connectivity given for unknown or non-explicit projections: "
                        f"{', '.join(given)}", hint="only projections declared 'explicit' take arrays")
    return data


def _connect(proj: Projection, data: NetworkData, seed: int, given: tuple[np.ndarray, np.ndarray] | None,
             draws: Draws) -> tuple[np.ndarray, np.ndarray]:
    """(out_start, post) of a projection."""
    n_pre, n_post = data.populations[proj.pre].size, data.populations[proj.post].size
    rule = proj.connectivity
    same = proj.pre == proj.post
    if rule.kind == "fixed_total_number":
        # the frontend refuses a population of one neuron without autapses: a redraw always ends
        return draws.fixed_total_number(streams.key(seed, "projection", proj.name, "connectivity"),
                                        int(rule.arg("n")), n_pre, n_post, same and not rule.autapses)
    if rule.kind == "explicit":
        pre, post = _explicit(proj, given, n_pre, n_post)
    elif rule.kind == "one_to_one":
        pre, post = np.arange(n_pre), np.arange(n_pre)
    else:
        pre, post = _draw_pairs(proj, n_pre, n_post, rng(seed, "projection", proj.name, "connectivity"))
    return np.searchsorted(pre, np.arange(n_pre + 1)).astype(np.int64), post


def _draw_pairs(proj: Projection, n_pre: int, n_post: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(pre, post) of all_to_all, fixed_probability and fixed_indegree, sorted by (pre, post)."""
    rule = proj.connectivity
    same = proj.pre == proj.post
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
