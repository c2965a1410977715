"""Raster and trace plots of a run, written with matplotlib (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qgen.runtime.results import Result  # noqa: E402

MAX_TRACES = 5  # neurons drawn per state trace


def plot_run(result: Result, path: str | Path, trial: int = 0, title: str = "") -> None:
    """One raster panel for all recorded spikes (populations stacked) and one panel per trace."""
    panels = (1 if result.spikes else 0) + len(result.traces)
    if panels == 0:
        raise ValueError("nothing was recorded")
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.2 + 2.0 * panels), sharex=True, squeeze=False)
    axes = axes[:, 0]
    row = 0
    if result.spikes:
        ax, offset = axes[0], 0
        for name, record in result.spikes.items():
            times, ids = record.trial(trial)
            ax.scatter(times, ids + offset, s=1.5, marker=".", linewidths=0, label=name)
            neurons = record.times.shape[1]
            ax.axhline(offset - 0.5, color="0.85", linewidth=0.5)
            rate = len(times) / max(neurons, 1) / (result.duration / 1000)  # the population's mean rate
            ax.text(1.005, (offset + neurons / 2), f"{name}\n{rate:.3g} Hz", transform=ax.get_yaxis_transform(),
                    va="center", fontsize=8)
            offset += neurons
        ax.set_ylim(-0.5, offset - 0.5)
        ax.set_ylabel("neuron")
        ax.set_title(title or "spikes")
        row = 1
    times = result.trace_times
    for key, trace in result.traces.items():
        ax = axes[row]
        for j in range(min(MAX_TRACES, trace.shape[2])):
            ax.plot(times, trace[trial, :, j], linewidth=0.8)
        ax.set_ylabel(key)
        row += 1
    axes[-1].set_xlabel("time (ms)")
    axes[-1].set_xlim(0, result.duration)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
