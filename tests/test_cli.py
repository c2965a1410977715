"""The command line: exit status 0 on success and 2 with a one-screen message on bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from qgen.cli import main
from tests.conftest import EXAMPLES

TINY = """
import "std/lif.snn"
import "std/li.snn"
network Tiny {
    dt = 0.1 ms
    population inp = input(2)
    population hid = LIF(4)
    population out = LI(1)
    connect inp -> hid all_to_all { weight = 8.0; delay = 1 ms }
    connect hid -> out all_to_all { weight = 0.5; delay = 1 ms; queue = fifo(capacity = 4) }
    record hid.spikes, out.v
}
"""


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_check_accepts_the_examples():
    for path in sorted(EXAMPLES.glob("*.snn")):
        result = invoke("check", path)
        assert result.exit_code == 0, result.output
        assert "ok" in result.output


def test_check_reports_errors_with_location_and_status_2(write_model):
    path = write_model("neuron X {\n    state { v = 0 }\n    equations { dv/dt = -v / 10 }\n}\n")
    result = invoke("check", path)
    assert result.exit_code == 2
    assert "m.snn:3:17: error Q031" in result.output
    assert "^" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output


def test_show_ir_prints_resolved_values(write_model):
    result = invoke("show", write_model(TINY), "--ir")
    assert result.exit_code == 0, result.output
    assert "population hid: LIF × 4" in result.output
    assert "tau_m = 20 ms" in result.output
    assert "queue  fifo(capacity = 4)" in result.output
    assert "analysis LIF: linear" in result.output


def test_run_writes_results_and_plot(write_model, tmp_path):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **{"inp.times": np.array([1.0, 2.0, 5.0]), "inp.ids": np.array([0, 1, 0]),
                        "inp.trials": np.array([0, 0, 1])})
    out, plot = tmp_path / "run.npz", tmp_path / "raster.png"
    result = invoke("run", write_model(TINY), "--duration", "20ms", "--build-dir", tmp_path / "gen",
                    "--input", inputs, "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "hid" in result.output
    with np.load(out) as saved:
        assert saved["hid.spike_times"].shape[:2] == (2, 4)  # two trials from the input file
        assert saved["trace.out.v"].shape == (2, 200, 1)
        assert saved["hid.spike_counts"][0].sum() > 0
    assert plot.stat().st_size > 1000


def test_reference_and_c_runs_agree(write_model, tmp_path):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **{"inp.times": np.array([1.0, 2.5]), "inp.ids": np.array([0, 1])})
    saved = {}
    for target in ("c", "reference"):
        out = tmp_path / f"{target}.npz"
        result = invoke("run", write_model(TINY), "--target", target, "--duration", "15ms", "--input", inputs,
                        "--build-dir", tmp_path / "gen", "--out", out)
        assert result.exit_code == 0, result.output
        saved[target] = dict(np.load(out))
    np.testing.assert_allclose(saved["c"]["hid.spike_times"], saved["reference"]["hid.spike_times"], atol=1e-9)
    assert saved["c"]["hid.spike_counts"].sum() > 0
    out = tmp_path / "threads.npz"  # two threads sharing the trial: the same spikes, bit for bit
    result = invoke("run", write_model(TINY), "--threads", "2", "--duration", "15ms", "--input", inputs,
                    "--build-dir", tmp_path / "gen", "--out", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out)["hid.spike_times"], saved["c"]["hid.spike_times"])


def test_build_writes_readable_source_and_is_cached(write_model, tmp_path):
    model, out = write_model(TINY), tmp_path / "gen"
    result = invoke("build", model, "--target", "c", "--out", out)
    assert result.exit_code == 0, result.output
    folder = out / "Tiny" / "c" / "float64"
    source = folder / "model.c"
    assert "population hid: LIF × 4 (m.snn:" in source.read_text()
    stamp = source.stat().st_mtime_ns
    assert invoke("build", model, "--out", out).exit_code == 0
    assert source.stat().st_mtime_ns == stamp  # nothing regenerated
    shown = invoke("show", model, "--target", "c", "--kernel", "forward", "--out", out)
    assert shown.exit_code == 0 and shown.output == source.read_text()


def test_run_set_overrides_a_constant():
    result = invoke("show", EXAMPLES / "brunel.snn", "--ir", "--set", "N=200")
    assert result.exit_code == 0, result.output
    assert "population E: iaf_psc_exp × 160" in result.output


@pytest.mark.parametrize("args, message", [
    (["run", "{model}", "--duration", "10"], "expected a time"),
    (["run", "{model}", "--duration", "-5ms"], "expected a time"),
    (["run", "{model}", "--set", "N"], "expected NAME=VALUE"),
    (["run", "{model}", "--set", "M=3"], "has no constant 'M'"),
    (["run", "{model}", "--input", "{bad_npz}"], "needs both"),
    (["run", "{model}", "--input", "{not_npz}"], "cannot read input file"),
    (["run", "{model}", "--target", "fpga"], "Invalid value for '--target'"),
    (["build", "{model}", "--target", "fpga"], "Invalid value for '--target'"),
    (["show", "{model}", "--target", "c", "--kernel", "backward"], "Invalid value for '--kernel'"),
    (["run", "{model}", "--bogus"], "No such option"),
    (["run", "{model}", "--threads", "0"], "Invalid value for '--threads'"),
    (["run", "{model}", "--threads", "2", "--target", "reference"], "--threads applies to the c target"),
    (["run", "missing.snn"], "does not exist"),
    (["show", "{model}"], "say what to show"),
])
def test_bad_command_lines_exit_2(write_model, tmp_path, args, message):
    model = write_model(TINY.replace("network Tiny {", "network Tiny {\n    let N = 3"))
    bad_npz, not_npz = tmp_path / "bad.npz", tmp_path / "not.npz"
    np.savez(bad_npz, **{"inp.times": np.array([1.0])})
    not_npz.write_text("not an archive")
    filled = [a.format(model=model, bad_npz=bad_npz, not_npz=not_npz) for a in args]
    result = invoke(*filled)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_input_spike_out_of_range_exits_2(write_model, tmp_path):
    inputs = tmp_path / "in.npz"
    np.savez(inputs, **{"inp.times": np.array([1.0]), "inp.ids": np.array([7])})
    result = invoke("run", write_model(TINY), "--duration", "5ms", "--input", inputs, "--target", "reference")
    assert result.exit_code == 2
    assert "error Q080" in result.output and "out of range" in result.output


def test_console_script_shows_no_traceback(write_model):
    path = write_model("network {\n")
    proc = subprocess.run([sys.executable, "-m", "qgen", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error Q001" in proc.stderr and "Traceback" not in proc.stderr
