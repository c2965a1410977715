"""Input spike trains: checking what Python gives, and reading them from .npz files.

Per input population, one (times, ids) pair for every trial, or a list of one pair per trial.
In an .npz file: arrays ``<pop>.times`` and ``<pop>.ids`` and, for several trials,
``<pop>.trials`` (the trial index of each spike).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from qgen.errors import Code, QgenError
from qgen.runtime.network import NetworkData
from qgen.runtime.schedule import CHUNK, input_schedule

Spikes = tuple[np.ndarray, np.ndarray]
Inputs = Mapping[str, Spikes | Sequence[Spikes]]


class BoundInputs:
    """Input spikes checked, ordered and bound once, for one simulation and one duration
    (``sim.bind``): ``run(bound, duration)`` reads them again without doing that work (and on
    the cuda target without copying them to the GPU again), as GeNN's spike source arrays, NEST's
    spike generators and Brian2's SpikeGeneratorGroup are set once for many runs. Its arrays are
    read-only."""

    def __init__(self, sim, steps: int, arrays: dict, sizes: dict) -> None:
        self._sim, self.steps, self.arrays, self.sizes = sim, steps, arrays, sizes
        self.derived: dict[str, object] = {}  # what a target computes once from them (the cuda target's list sizes)

    def check(self, sim, steps: int) -> "BoundInputs":
        """Itself, if bound by ``sim`` for runs of ``steps`` steps; else a clear error."""
        if self._sim is not sim:
            raise QgenError(Code.BAD_INPUT, "these inputs were bound by another simulation",
                            hint="bind them with this simulation's bind(), or pass the spikes")
        if self.steps != steps:
            raise QgenError(Code.BAD_INPUT, f"these inputs were bound for {self.steps} steps, not {steps}",
                            hint=f"bind them for this duration, or run for {self.steps * sim.dt:g} ms")
        return self


def _bad(message: str, hint: str | None = None) -> QgenError:
    return QgenError(Code.BAD_INPUT, message, hint=hint)


def check_inputs(inputs: Inputs | None, data: NetworkData, batch: int) -> dict[str, list[Spikes]]:
    """Per input population, ``batch`` (times, ids) pairs with ids in range and times >= 0."""
    if isinstance(inputs, BoundInputs):
        raise _bad("these inputs were bound by another simulation", "pass the spikes, or bind them with this one's bind()")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise _bad(f"inputs must be a mapping from input population to spikes, not {type(inputs).__name__}",
                   "e.g. {'inp': (times, ids)}, or {'inp': [(times, ids) per trial]}")
    inputs = dict(inputs or {})
    sources = {p.name: p for p in data.network.populations if p.is_input}
    for name in inputs:
        if name not in sources:
            raise _bad(f"input given for {name!r}, which is not an input population",
                       "input populations: " + (", ".join(sources) or "none"))
    result = {}
    for name, pop in sources.items():
        given = inputs.get(name)
        if given is None:
            trials = [(np.empty(0), np.empty(0, np.int64))] * batch
        elif isinstance(given, tuple) and len(given) == 2 and np.ndim(given[0]) == 1:
            trials = [given] * batch
        else:
            trials = list(given)
            if len(trials) != batch:
                raise _bad(f"input {name!r} has {len(trials)} trials but the batch has {batch}")
        checked = []
        for b, pair in enumerate(trials):
            try:
                times, ids = (np.asarray(a) for a in pair)
            except (TypeError, ValueError):
                raise _bad(f"input {name!r}, trial {b}: expected a pair (times, ids)") from None
            if times.ndim != 1 or ids.shape != times.shape:
                raise _bad(f"input {name!r}, trial {b}: times and ids must be 1-D arrays of equal length")
            if not np.issubdtype(times.dtype, np.number) or not np.issubdtype(ids.dtype, np.integer):
                raise _bad(f"input {name!r}, trial {b}: times must be numbers and ids integers")
            times = times.astype(np.float64)  # a copy: the C target reads it again in the backward pass
            if not np.all(np.isfinite(times)) or (times < 0).any():
                raise _bad(f"input {name!r}, trial {b}: spike times must be finite and >= 0 ms")
            if len(ids) and (ids.min() < 0 or ids.max() >= pop.size):
                raise _bad(f"input {name!r}, trial {b}: spike index {int(ids.max() if ids.max() >= pop.size else ids.min())} "
                           f"is out of range", f"{name} has {pop.size} neurons (ids 0..{pop.size - 1})")
            order = lexsort_order((ids, times))
            checked.append((times[order], np.asarray(ids[order], np.int64)))  # ids: bound as int32 copies
        result[name] = checked
    return result


def pushed_in_order(times: np.ndarray, ids: np.ndarray, dt: float, exact: bool,
                    steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One trial's input spikes pushed within ``steps``, in (step, time, neuron) order: their steps,
    the times they are sent at (``input_schedule``) and their neurons. The spikes come in (time,
    neuron) order (``check_inputs``) and a spike's step grows with its time, so only grid timing,
    where the spikes snapped to one grid point go by neuron, may need ordering again (checked in
    O(n): a run's input can be ten million spikes); the end is found by a binary search."""
    step, sent = input_schedule(times, dt, exact)
    if not exact:
        order = lexsort_order((ids, step))
        if not isinstance(order, slice):
            step, sent, ids = step[order], sent[order], ids[order]
    end = int(np.searchsorted(step, steps))
    return step[:end], sent[:end], ids[:end]


def lexsort_order(keys) -> np.ndarray | slice:
    """``np.lexsort(keys)``, or a slice of everything when the keys are already in order.

    Input spikes usually come sorted; checking costs O(n) where sorting ten million of them costs
    more than a short run."""
    n = len(keys[0])
    for first in range(0, max(n - 1, 0), CHUNK):
        if not _in_order([key[first:first + CHUNK + 1] for key in keys]):
            return np.lexsort(keys)
    return slice(None)


def _in_order(keys) -> bool:
    """Whether the (last key first) lexicographic order of ``keys`` never falls."""
    tied = None  # where every key compared so far is equal to the previous entry's
    for key in reversed(keys):
        step = np.diff(key)
        falls = step < 0 if tied is None else (step < 0) & tied
        if falls.any():
            return False
        tied = step == 0 if tied is None else tied & (step == 0)
        if not tied.any():
            return True
    return True


def load_inputs(path: str | Path) -> tuple[dict[str, list[Spikes]], int]:
    """Read an .npz input file; returns per population a list of trials, and the number of trials."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _bad(f"input file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise _bad(f"cannot read input file {path}: {err}", "write it with numpy.savez") from None
    with archive:
        keys = set(archive.files)
        names = sorted({k.rsplit(".", 1)[0] for k in keys})
        result, batch = {}, 1
        for name in names:
            if f"{name}.times" not in keys or f"{name}.ids" not in keys:
                raise _bad(f"{path}: {name!r} needs both {name}.times and {name}.ids",
                           "arrays are named <population>.times, <population>.ids and optionally <population>.trials")
            times, ids = archive[f"{name}.times"], archive[f"{name}.ids"]
            trials = archive[f"{name}.trials"] if f"{name}.trials" in keys else np.zeros(len(times), np.int64)
            if times.shape != ids.shape or trials.shape != times.shape or times.ndim != 1:
                raise _bad(f"{path}: {name}.times, .ids and .trials must be 1-D arrays of equal length")
            if not np.issubdtype(trials.dtype, np.integer) or (len(trials) and trials.min() < 0):
                raise _bad(f"{path}: {name}.trials must be non-negative integers")
            result[name] = (times, ids, trials)
            batch = max(batch, int(trials.max()) + 1 if len(trials) else 1)
        unknown = keys - {f"{n}.{s}" for n in names for s in ("times", "ids", "trials")}
        if unknown:
            raise _bad(f"{path}: unexpected arrays {sorted(unknown)}")
    per_trial = {name: [(t[tr == b], i[tr == b]) for b in range(batch)] for name, (t, i, tr) in result.items()}
    return per_trial, batch
