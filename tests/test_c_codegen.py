"""The generated C: clean under -Wall -Wextra -Werror, clean under ASan and UBSan, and under review
(golden files: a change of a kernel shows up as a change of tests/golden/*.c).

Update the golden files after an intended change with
``QGEN_UPDATE_GOLDEN=1 python -m pytest tests/test_c_codegen.py``.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qgen import __version__
from qgen.codegen.c import GeneratedC, generate
from qgen.pipeline import compile_model
from tests.conftest import EXAMPLES, ROOT
from tests.test_c_target import KINDS, network

GOLDEN = ROOT / "tests" / "golden"


def compile_strict(generated: GeneratedC, folder: Path) -> subprocess.CompletedProcess:
    """Compile with every warning an error; every (static) function that cffi binds is referenced, as
    cffi's wrapper does, so that the file compiles on its own."""
    entry_points = re.findall(r"^\w[\w ]*?\**\b(qgen_\w+)\(", generated.cdef, flags=re.M)
    wrapper = ("\nvoid *const qgen_entry_points[] = {"
               + ", ".join(f"(void *)&{name}" for name in entry_points) + "};\n")
    path = folder / "model.c"
    path.write_text(generated.source + wrapper)
    return subprocess.run(["gcc", "-std=c11", "-O2", "-fopenmp", "-Wall", "-Wextra", "-Werror", "-c", str(path),
                           "-o", str(folder / "model.o")], capture_output=True, text=True)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("name", ["yinyang.snn", "rsnn.snn", "brunel.snn"])
def test_examples_compile_with_warnings_as_errors(tmp_path, name, precision):
    result = compile_strict(generate(compile_model(EXAMPLES / name), precision, __version__), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("timing", ["exact", "grid"])
def test_a_network_without_connections_compiles_with_warnings_as_errors(write_model, tmp_path, timing):
    from tests.test_adjoint import LIF

    model = compile_model(write_model(LIF + f"""
network Lone {{
    timing = {timing}
    population n = LIF(3)
    record n.spikes
}}
"""))
    result = compile_strict(generate(model, "float64", __version__), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("timing", ["exact", "grid"])
@pytest.mark.parametrize("queue", KINDS)
def test_every_queue_kind_compiles_with_warnings_as_errors(write_model, tmp_path, queue, timing, precision):
    model = compile_model(write_model(network(queue, 4, timing, 1)))
    result = compile_strict(generate(model, precision, __version__), tmp_path)
    assert result.returncode == 0, result.stderr


SANITIZED_RUN = """
import numpy as np
from qgen.pipeline import compile_model
from qgen.runtime.network import instantiate
from qgen.runtime.simulation import Simulation
from qgen.targets.c import build

for queue, timing in {cases!r}:
    model = compile_model({folder!r} + f"/{{queue}}_{{timing}}.snn")
    sim = Simulation(build(model, "float64", {out!r}, sanitize=True), instantiate(model), batch=2)
    gen = np.random.default_rng(0)
    trials = [(gen.uniform(0, 60, 400), gen.integers(0, 8, 400)) for _ in range(2)]
    result = sim.run({{"inp": trials}}, 60.0)
    assert sum(int(r.total.sum()) for r in result.spikes.values()) > 0, (queue, timing)
    assert sum(int(d.sum()) for d in result.drops.values()) > 0, (queue, timing)  # full queues too
    print(queue, timing, "ok")
"""


def libasan() -> str:
    return subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()


# Each kind once and each timing twice (a sanitized build is slow); the ring in exact timing, where it keeps
# events and can drop (in grid timing it sums).
SANITIZED_CASES = [("ring", "exact"), ("fifo", "grid"), ("heap", "exact"), ("sorted", "grid")]


def test_every_queue_kind_runs_clean_under_sanitizers(tmp_path):
    """One process (the sympy analysis is shared), every queue kind once, queues overflowing."""
    for queue, timing in SANITIZED_CASES:
        (tmp_path / f"{queue}_{timing}.snn").write_text(textwrap.dedent(network(queue, 2, timing, 7)))
    script = SANITIZED_RUN.format(cases=SANITIZED_CASES, folder=str(tmp_path), out=str(tmp_path / "gen"))
    env = {**os.environ, "LD_PRELOAD": libasan(), "ASAN_OPTIONS": "detect_leaks=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count(" ok") == len(SANITIZED_CASES), result.stdout
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr, result.stderr[-4000:]


@pytest.mark.parametrize("name", ["yinyang", "brunel"])
def test_generated_code_matches_the_golden_file(name):
    source = generate(compile_model(EXAMPLES / f"{name}.snn"), "float64", __version__).source
    golden = GOLDEN / f"{name}.c"
    if os.environ.get("QGEN_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(source)
    expected = golden.read_text()
    if source != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), source.splitlines(True),
                                            f"tests/golden/{name}.c", "generated", n=2))
        pytest.fail("the generated C changed; review the diff and, if intended, rerun with "
                    f"QGEN_UPDATE_GOLDEN=1:\n{diff[:6000]}")
