"""What a run returns: spike trains, state traces and queue drop counts, per trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_SPIKE_CAPACITY = 1024  # recorded spikes per neuron and trial, unless the model says otherwise


@dataclass
class SpikeRecord:
    """Spike times of one population: the first ``capacity`` spikes of each neuron and trial."""

    times: np.ndarray  # (batch, neurons, capacity) in ms, NaN where unused
    counts: np.ndarray  # (batch, neurons) spikes recorded
    overflow: np.ndarray  # (batch, neurons) spikes that did not fit

    def trial(self, b: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(times, neuron ids) of trial ``b``, ordered by time."""
        ids, slot = np.nonzero(~np.isnan(self.times[b]))
        times = self.times[b][ids, slot]
        order = np.lexsort((ids, times))
        return times[order], ids[order]

    @property
    def total(self) -> np.ndarray:
        """(batch, neurons): every spike, recorded or not."""
        return self.counts + self.overflow


@dataclass
class Result:
    duration: float
    dt: float
    spikes: dict[str, SpikeRecord] = field(default_factory=dict)
    traces: dict[str, np.ndarray] = field(default_factory=dict)  # "pop.var" -> (batch, steps, neurons)
    drops: dict[str, np.ndarray] = field(default_factory=dict)  # projection -> (batch,) events dropped
    final_state: dict[str, np.ndarray] = field(default_factory=dict)  # population -> (batch, neurons, variables)

    @property
    def trace_times(self) -> np.ndarray:
        """Traces hold the state at the end of each step."""
        steps = next(iter(self.traces.values())).shape[1] if self.traces else 0
        return self.dt * np.arange(1, steps + 1)

    def warnings(self) -> list[str]:
        """Everything that was lost: recording overflows and queue drops, one line each."""
        lines = []
        for pop, rec in self.spikes.items():
            lost = int(rec.overflow.sum())
            if lost:
                capacity = rec.times.shape[2]
                lines.append(f"{pop}.spikes: {lost} spikes not recorded (capacity {capacity} per neuron); "
                             f"raise it with 'record {pop}.spikes(capacity = {2 * capacity})'")
        for proj, dropped in self.drops.items():
            if dropped.sum():
                lines.append(f"{proj}: {int(dropped.sum())} events dropped by a full queue; raise its capacity")
        return lines

    def save(self, path: str | Path) -> None:
        arrays = {}
        for pop, rec in self.spikes.items():
            arrays[f"{pop}.spike_times"] = rec.times
            arrays[f"{pop}.spike_counts"] = rec.counts
            arrays[f"{pop}.spike_overflow"] = rec.overflow
        for key, trace in self.traces.items():
            arrays[f"trace.{key}"] = trace
        for proj, dropped in self.drops.items():
            arrays[f"drops.{proj}"] = dropped
        for pop, state in self.final_state.items():
            arrays[f"final.{pop}"] = state
        np.savez_compressed(path, duration=self.duration, dt=self.dt, **arrays)
