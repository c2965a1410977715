"""The generated CUDA, checked on every run without a GPU: every example with every queue kind in
both precisions compiles with nvcc for sm_90 with warnings as errors; the kernels of one example
are under review (golden file); the build, the command line and the missing-runtime message.

The compile checks stop at PTX (``nvcc -ptx -arch=sm_90 -Werror all-warnings``: the whole CUDA
front end and code generation for sm_90, without ptxas), two at a time, with the device optimiser off
(``-Xcicc -O0``: 4× faster; the warnings come from the front end). Every example as written is also
compiled with the optimiser, as the target builds it. Update the golden file after
an intended change with ``QGEN_UPDATE_GOLDEN=1 python -m pytest tests/test_cuda_codegen.py``.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

import qgen
import qgen.targets.cuda as cuda_target
from qgen import __version__
from qgen.cli import main
from qgen.codegen.cuda import generate
from qgen.errors import Code, QgenError
from qgen.pipeline import compile_model
from tests.conftest import EXAMPLES, ROOT
from tests.test_c_target import KINDS, network

GOLDEN = ROOT / "tests" / "golden"
NVCC = cuda_target.find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed")
QUEUE = re.compile(r"queue\s*=\s*(ring|fifo|heap|sorted)(\s*\(\s*capacity\s*=\s*\d+\s*\))?")


def examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.snn"))


def with_queue(path: Path, kind: str, folder: Path) -> Path:
    """The example with every projection's queue replaced by ``kind`` (capacity 8)."""
    text = path.read_text()
    assert QUEUE.search(text), f"{path.name} names no queue"
    copy = folder / path.name
    copy.write_text(QUEUE.sub(f"queue = {kind}(capacity = 8)", text))
    return copy


def ptx(source: str, folder: Path, tag: str, optimise: bool) -> tuple[str, subprocess.CompletedProcess]:
    path = folder / f"{tag}.cu"
    path.write_text(source)
    return tag, subprocess.run([NVCC, "-ptx", "-arch=sm_90", "-Werror", "all-warnings",
                                *([] if optimise else ["-Xcicc", "-O0"]), "-o", str(folder / f"{tag}.ptx"),
                                str(path)], capture_output=True, text=True, timeout=600)


@needs_nvcc
def test_every_example_with_every_queue_kind_compiles_for_sm_90_with_warnings_as_errors(tmp_path):
    jobs = []
    for example in examples():
        # the microcircuit (64 projections) with its own queues only: the queue code is the other examples',
        # its own are the background sources and the many projections
        for kind in [*KINDS, "as written"] if example.stem != "microcircuit" else ["as written"]:
            folder = tmp_path / f"{example.stem}_{kind}"
            folder.mkdir()
            model = compile_model(example if kind == "as written" else with_queue(example, kind, folder))
            for precision in ("float64", "float32"):
                optimise = kind == "as written" and precision == "float64"
                jobs.append((generate(model, precision, __version__).source, folder, f"{kind}_{precision}",
                             optimise))
    folder = tmp_path / "random_ring_exact"  # ring lists of both strategies (the examples' are all dense)
    folder.mkdir()
    (folder / "random.snn").write_text(network("ring", 4, "exact", 1))
    for precision in ("float64", "float32"):
        jobs.append((generate(compile_model(folder / "random.snn"), precision, __version__).source, folder,
                     f"ring_{precision}", False))
    assert len(jobs) >= 26
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: ptx(*job), jobs))
    failed = [f"{folder.name}/{tag}:\n{result.stderr[-3000:]}" for (tag, result), (_, folder, _, _) in zip(results, jobs)
              if result.returncode != 0]
    assert not failed, "\n\n".join(failed)


def test_generated_code_matches_the_golden_file():
    source = generate(compile_model(EXAMPLES / "yinyang.snn"), "float64", __version__).source
    golden = GOLDEN / "yinyang.cu"
    if os.environ.get("QGEN_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(source)
    expected = golden.read_text()
    if source != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), source.splitlines(True),
                                            "tests/golden/yinyang.cu", "generated", n=2))
        pytest.fail("the generated CUDA changed; review the diff and, if intended, rerun with "
                    f"QGEN_UPDATE_GOLDEN=1:\n{diff[:6000]}")


def test_the_launch_plan_and_the_layout_agree_with_the_source():
    generated = generate(compile_model(EXAMPLES / "yinyang.snn"), "float64", __version__)
    kernels = generated.kernels
    names = [kernels["prepare"], *(k["kernel"] for k in kernels["update"]), kernels["inputs"], kernels["rank"],
             kernels["push_pre"], *(k["kernel"] for k in kernels["pull"])]
    for name in filter(None, names):
        assert f'extern "C" __global__ void {name}(int64_t ' in generated.source, name
    # yinyang: inp -> hid is a heap (per target: pulled), hid -> out a fifo (per presynaptic spike)
    assert [k["kernel"] for k in kernels["pull"]] == ["pull_prj0_inp__hid"] and kernels["push_pre"]
    struct = generated.source[generated.source.index("typedef struct {"):generated.source.index("} qgen_state;")]
    members = re.findall(r"^    (\w+) (\*?)(\w+);", struct, re.MULTILINE)
    assert [name for _, star, name in members if not star] == list(generated.scalars)
    assert [name for _, star, name in members if star] == [f.name for f in generated.layout]
    assert all(ctype == "int64_t" for ctype, star, _ in members if not star)


@needs_nvcc
def test_ring_lists_are_propagated_by_connectivity(tmp_path):
    # exact timing: a ring queue holds lists per target; dense ones (expected density >= 0.5) are filled by each
    # target walking the step's spikes, sparse ones staged like heaps (O(events))
    path = tmp_path / "random.snn"
    path.write_text(network("ring", 4, "exact", 1))  # inp->hid p 0.6, inp->ada and hid->out all, hid->hid p 0.3
    generated = generate(compile_model(path), "float64", __version__)
    assert [p["staged"] for p in generated.plan["projections"]] == [False, False, False, True]
    assert [k["kernel"] for k in generated.kernels["pull"]] == [
        "pull_prj0_inp__hid", "pull_prj1_inp__ada", "pull_prj2_hid__out", "pull_prj3_hid__hid"]
    assert "void stage_prj3_hid__hid(" in generated.source and "void stage_prj0_inp__hid(" not in generated.source
    assert [f.name for f in generated.layout if f.name.endswith("_stage")] == ["prj3_hid__hid_stage"]


def test_build_writes_the_source_the_cubin_and_a_manifest_and_caches(tmp_path):
    model = compile_model(EXAMPLES / "yinyang.snn")
    build = cuda_target.build(model, "float64", tmp_path)
    assert build.source.is_file() and build.cubin.stat().st_size > 0
    assert build.manifest["compile_flags"][:2] == ["-cubin", "-arch=sm_90"]
    assert {f["lifetime"] for f in build.manifest["layout"]} == {"network", "run", "input", "device", "backward"}
    assert build.manifest["plan"]["gradients"] == "cuda" and build.manifest["kernels"]["backward"] == "qgen_backward"
    stamp = build.cubin.stat().st_mtime_ns
    again = cuda_target.build(model, "float64", tmp_path)  # cached: nothing regenerated or recompiled
    assert again.cubin.stat().st_mtime_ns == stamp
    assert cuda_target.load_cached(model, "float64", tmp_path).manifest["key"] == build.manifest["key"]


@needs_nvcc
def test_cli_build_and_show_work_without_a_gpu(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["build", str(EXAMPLES / "yinyang.snn"), "--target", "cuda", "--float32",
                                  "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "model.cu, model.cubin" in result.output
    assert (tmp_path / "YinYang" / "cuda" / "float32" / "model.cubin").is_file()
    shown = runner.invoke(main, ["show", str(EXAMPLES / "yinyang.snn"), "--target", "cuda", "--float32",
                                 "--out", str(tmp_path)])
    assert shown.exit_code == 0 and "__global__ void update_" in shown.output


def test_load_without_pycuda_or_a_gpu_fails_in_one_sentence(tmp_path):
    try:
        cuda_target.check_runtime()
    except QgenError:
        pass
    else:
        pytest.skip("pycuda and a GPU are here: the cuda target runs")
    with pytest.raises(QgenError) as err:
        qgen.load(EXAMPLES / "yinyang.snn", "cuda", out=tmp_path)
    message = err.value.message
    assert err.value.code is Code.UNSUPPORTED and message.startswith("the cuda target needs ")
    assert ("pycuda" in message or "GPU" in message) and "\n" not in message
    assert not (tmp_path / "YinYang").exists()  # it failed before building anything
    result = CliRunner().invoke(main, ["run", str(EXAMPLES / "yinyang.snn"), "--target", "cuda", "--duration",
                                       "5ms"])
    assert result.exit_code == 2 and "the cuda target needs" in result.output
