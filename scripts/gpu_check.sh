#!/usr/bin/env bash
# The CUDA target's checks on a machine with an NVIDIA GPU and no network:
#
#   bash scripts/gpu_check.sh OUTDIR [STAGE...]      stages: install tests memcheck bench launch profile grad peers jax
#                                                     (default: all)
#
# Each stage writes its own logs, so a machine with a time limit per command (or a limit on the files
# brought back: the device tool takes 8) can run them over several calls (install tests memcheck, then
# install bench peers_small, then install peers_large; install takes seconds once the pycuda wheel it
# built is in vendor/).
#
# 1. installs qgen and pycuda into a fresh virtual environment that also sees the machine's Python
#    packages (numpy, sympy, jinja2, click, rich, matplotlib, pytest), from files carried in the
#    repository's ignored folder vendor/ (pip install --no-index): pycuda's sdist (built here, with
#    CURAND off where the toolkit has no curand.h; the wheel built is saved as OUTDIR/pycuda-*.whl
#    and, copied into vendor/, is installed next time instead of building) and the pure-Python or
#    binary wheels qgen and pycuda need (lark, cffi, pycparser, pytools, platformdirs, mako,
#    siphash24), and adseq 0.9.4 for the peers stage (its own needs, JAX among them, are the
#    machine's). Fill vendor/ on a machine with network with `bash scripts/fetch_vendor.sh`.
# 2. runs the CUDA tests on the GPU (tests/test_cuda_target.py, tests/test_cuda_adjoint.py, tests/test_cuda_codegen.py);
# 3. runs compute-sanitizer's memcheck once per queue kind (both timings, queues overflowing, the backward pass);
# 4. (bench) times a few runs on the GPU against the C target (a sanity check, not the
#    benchmark suite) and the full-scale microcircuit against real time, with its GPU memory; (launch)
#    the CUDA target's launch strategies side by side (benchmarks/cuda_launch.py, launch.txt); (profile)
#    the full-scale microcircuit's time per kernel and outside the steps (benchmarks/cuda_profile.py);
# 4b. (grad) the forward + gradient of the recurrent network, CUDA against C (benchmarks/cuda_grad.py, grad.txt);
# 5. (peers) the GPU benchmarks against adseq on JAX-GPU, in the same run: the queue micro-benchmark
#    at 10⁴, 10⁵ and 10⁶ queues and the recurrent network's forward pass (benchmarks/queue_micro.py
#    and benchmarks/rsnn.py with --target cuda), each under a time limit; the stage peers_small runs
#    10⁴ queues and the network alone, peers_large the 10⁵ and 10⁶ queues alone.
# 6. (jax) issue 5's benchmark on JAX-GPU: qgen's JAX target against adseq 0.9.4 on the same backend, the
#    queue micro-benchmark and the recurrent network forward and forward + gradient, every kind
#    (benchmarks/jax_target.py; jax.txt, jax.json); the stages jax_micro and jax_rsnn run one part each.
#
# Writes OUTDIR/summary.txt, install.log, pytest.log, junit.xml, memcheck.log, bench.txt, launch.txt, profile.txt, grad.txt,
# grad.json, peers.txt and peers.tar.gz (the benchmarks' JSON), jax.txt and jax_*.json. Exits
# non-zero when a check fails (the logs are written all the same).
set -uo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [install] [tests] [memcheck] [bench] [launch] [profile] [grad] [peers] [jax]" >&2
    exit 2
fi
OUTDIR=$(mkdir -p "$1" && cd "$1" && pwd)
shift
STAGES=" ${*:-install tests memcheck bench launch profile grad peers jax} "
stage() { [[ "$STAGES" == *" $1 "* ]]; }
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=${QGEN_GPU_VENV:-/tmp/qgen-gpu-venv}
SUMMARY=$OUTDIR/summary.txt
touch "$SUMMARY"
status=0

note() { echo "$*" | tee -a "$SUMMARY"; }
fail() { note "FAILED: $*"; status=1; }

export PYTHONUNBUFFERED=1
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
fi

note "qgen GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
note "nvcc: $(nvcc --version 2>&1 | grep release || echo 'not found')"
note "python: $($PYTHON --version 2>&1) ($(command -v $PYTHON))"

# ------------------------------------------------------------------ 1. install (a subshell: exit ends it alone)
if stage install; then
(
    set -x
    rm -rf "$VENV"
    $PYTHON -m venv --system-site-packages --without-pip "$VENV" || exit 1
    # the machine's own packages, also where python3 is itself a virtual environment's
    site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # (addsitedir, so that the .pth files there are read too)
    $PYTHON -c "import site; [print(f'import site; site.addsitedir({p!r})') for p in site.getsitepackages()]" \
        >"$site/_machine_packages.pth"
    PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
    "${PIP[@]}" --version || exit 1
    "${PIP[@]}" install --no-index --no-deps --find-links vendor lark pycparser cffi pytools platformdirs mako \
        siphash24 || exit 1
    if ls vendor/adseq-*.whl >/dev/null 2>&1; then
        "${PIP[@]}" install --no-index --no-deps vendor/adseq-*.whl || exit 1
    fi
    wheel=$(ls vendor/pycuda-*-cp"$("$VENV/bin/python" -c 'import sys; print("%d%d" % sys.version_info[:2])')"-*.whl \
        2>/dev/null | head -1)
    if [ -n "$wheel" ]; then
        "${PIP[@]}" install --no-index --no-deps "$wheel" || exit 1
    else
        include=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
        [ -f "$include/Python.h" ] || { echo "no Python.h in $include: pycuda cannot be built"; exit 1; }
        src=$(mktemp -d)
        tar -xzf vendor/pycuda-*.tar.gz -C "$src" || exit 1
        src=$(ls -d "$src"/pycuda-*)
        cuda_root=$(dirname "$(dirname "$(command -v nvcc)")")
        if [ ! -f "$cuda_root/include/curand.h" ]; then
            echo 'CUDA_ENABLE_CURAND = False' >>"$src/siteconf.py"  # qgen needs no curand
        fi
        # pycuda links with -lcuda: the toolkit's stub, else the driver's libcuda.so.1 under that name
        if ! ls "$cuda_root"/lib64/stubs/libcuda.so "$cuda_root"/targets/*/lib/stubs/libcuda.so >/dev/null 2>&1 \
            && ! ldconfig -p | grep -q 'libcuda.so '; then
            driver=$(ldconfig -p | awk '/libcuda.so.1 / {print $NF; exit}')
            [ -n "$driver" ] || driver=$(ls /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 2>/dev/null | head -1)
            [ -n "$driver" ] || { echo "no libcuda.so.1 (the NVIDIA driver) found to link pycuda with"; exit 1; }
            mkdir -p "$src/libcuda" && ln -sf "$driver" "$src/libcuda/libcuda.so"
            echo "CUDADRV_LIB_DIR = ['$src/libcuda']" >>"$src/siteconf.py"
        fi
        cat "$src/siteconf.py" 2>/dev/null
        # compile in parallel first (setuptools builds one file at a time), then make the wheel from it
        export CFLAGS="${CFLAGS:-} -g0"  # no debug information: a wheel small enough to bring back in OUTDIR
        (cd "$src" && "$VENV/bin/python" setup.py build_ext -j "$(nproc)") || exit 1
        "${PIP[@]}" wheel --no-index --no-deps --no-build-isolation -w "$OUTDIR" "$src" || exit 1
        "${PIP[@]}" install --no-index --no-deps "$OUTDIR"/pycuda-*.whl || exit 1
    fi
    "${PIP[@]}" install --no-index --no-deps --no-build-isolation -e "$ROOT" || exit 1
    "$VENV/bin/python" -c "import pycuda.autoprimaryctx, pycuda.driver as d; print('pycuda', __import__('pycuda').VERSION, d.Device(0).name())" || exit 1
) >"$OUTDIR/install.log" 2>&1
if [ $? -ne 0 ]; then
    fail "install (see install.log)"
    tail -30 "$OUTDIR/install.log" | tee -a "$SUMMARY"
    exit 1
fi
note "installed: $(tail -1 "$OUTDIR/install.log")"
fi
PY="$VENV/bin/python"
[ -x "$PY" ] || { fail "no environment at $VENV: run the install stage"; exit 1; }

# ------------------------------------------------------------------ 2. tests
if stage tests; then
start=$(date +%s)
# the GPU cases only (CI runs the emulated ones and the nvcc compiles on every push)
"$PY" -m pytest -q -p no:cacheprovider -rs -n 8 --dist load -k "gpu or not emulated" --junitxml="$OUTDIR/junit.xml" \
    tests/test_cuda_target.py tests/test_cuda_adjoint.py tests/test_cuda_codegen.py >"$OUTDIR/pytest.log" 2>&1
rc=$?
note "pytest ($(($(date +%s) - start)) s): $(tail -1 "$OUTDIR/pytest.log")"
[ $rc -eq 0 ] || fail "tests (see pytest.log)"
grep -q "no GPU to run CUDA kernels" "$OUTDIR/pytest.log" && fail "GPU tests were skipped on a GPU machine (see pytest.log)"
fi

# ------------------------------------------------------------------ 3. compute-sanitizer, once per queue kind
if stage memcheck; then
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
: >"$OUTDIR/memcheck.log"
if [ -z "$SANITIZER" ]; then
    fail "compute-sanitizer not found"
else
    for queue in ring fifo heap sorted; do
        "$SANITIZER" --tool memcheck --error-exitcode 99 --print-limit 20 "$PY" - "$queue" >>"$OUTDIR/memcheck.log" 2>&1 <<'EOF'
import sys, tempfile, textwrap
import numpy as np
import qgen
from tests.test_c_target import network, poisson
from qgen.reference import ReferenceSimulator

queue = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    for timing in ("exact", "grid"):
        path = f"{tmp}/{queue}_{timing}.snn"
        open(path, "w").write(textwrap.dedent(network(queue, 2, timing, 7)))
        sim = qgen.load(path, "cuda", out=f"{tmp}/gen").simulator(batch=2)
        inputs = poisson(7, 2, timing == "grid", rate_hz=200.0)
        result = sim.run(inputs, 20.0, grad=timing == "exact")  # exact: the gradient tape and the backward pass
        reference = ReferenceSimulator(sim.data, batch=2).run(inputs, 20.0)
        drops = {k: int(v.sum()) for k, v in result.drops.items()}
        same = all(np.array_equal(result.drops[k], reference.drops[k]) for k in drops)
        if timing == "exact":
            cotangents = {f"{pop}.spikes": np.ones_like(record.times) for pop, record in result.spikes.items()}
            grads = sim.backward(cotangents).flat()
            print(f"memcheck {queue} backward: {len(grads)} gradients, finite: {all(np.isfinite(v).all() for v in grads.values())}")
        print(f"memcheck {queue} {timing}: spikes {sum(int(r.total.sum()) for r in result.spikes.values())}, "
              f"drops {drops}, drops as the reference: {same}")
EOF
        rc=$?
        note "memcheck $queue: $(grep -h "ERROR SUMMARY" "$OUTDIR/memcheck.log" | tail -1) (exit $rc)"
        [ $rc -eq 0 ] || fail "memcheck $queue (see memcheck.log)"
    done
fi
fi

# ------------------------------------------------------------------ 4. a sanity timing against the C target
if stage bench; then
    "$PY" - >"$OUTDIR/bench.txt" 2>&1 <<'EOF'
import time
import qgen

def timed(sim, duration, inputs=None):
    sim.run(inputs, min(duration, 5.0))  # warm up (module load, allocation)
    start = time.perf_counter()
    sim.run(inputs, duration)
    return time.perf_counter() - start

for name, overrides, duration in (("rsnn", None, 250.0), ("brunel", {"N": "10000"}, 200.0)):
    row = [name]
    for target in ("c", "cuda"):
        model = qgen.load(f"examples/{name}.snn", target, overrides=overrides)
        sim = model.simulator()
        seconds = timed(sim, duration)
        steps = round(duration / sim.dt)
        row.append(f"{target}: {1e6 * seconds / steps:.1f} us/step")
    print(", ".join(row))

# The cortical microcircuit at full scale (77k neurons, 0.3e9 synapses): speed against real time
# and GPU memory (issue 6's target: faster than real time on one H100).
import pycuda.driver as cuda
start = time.perf_counter()
sim = qgen.load("examples/microcircuit.snn", "cuda", overrides={"scale": "1.0"}).simulator()
setup = time.perf_counter() - start
free, total = cuda.mem_get_info()
seconds = timed(sim, 1000.0)
result = sim.run(None, 1000.0)
rates = {pop: float(rec.total.sum()) / rec.total.size for pop, rec in result.spikes.items()}
print(f"microcircuit scale 1.0 (grid, dt 0.1 ms): setup {setup:.1f} s, 1 s simulated in {seconds:.2f} s wall "
      f"({1.0 / seconds:.2f}x real time), GPU memory in use {(total - free) / 2**30:.2f} GiB of {total / 2**30:.0f}; "
      "rates (Hz) " + ", ".join(f"{pop} {rate:.2f}" for pop, rate in rates.items()))
EOF
    rc=$?
    note "timing (bench.txt): $(tr '\n' ';' <"$OUTDIR/bench.txt")"
    [ $rc -eq 0 ] || fail "timing run (see bench.txt)"
fi
if stage launch; then
    # the launch strategies of the CUDA target side by side (benchmarks/RESULTS.md (h))
    timeout 600 "$PY" -m benchmarks.cuda_launch --repeats 2 --microcircuit-scale 0 >"$OUTDIR/launch.txt" 2>&1
    rc=$?
    note "launch strategies (launch.txt): $(grep -c 'µs/step' "$OUTDIR/launch.txt") workloads (exit $rc)"
    [ $rc -eq 0 ] || fail "launch strategies (see launch.txt)"
fi

# ------------------------------------------------------------------ 4a. where the full-scale microcircuit's time goes
if stage profile; then
    timeout 300 "$PY" -m benchmarks.cuda_profile --steps 1000 >"$OUTDIR/profile.txt" 2>&1
    rc=$?
    note "profile (profile.txt): exit $rc"
    [ $rc -eq 0 ] || fail "profile (see profile.txt)"
fi

# ------------------------------------------------------------------ 4b. the backward pass against the C target's
if stage grad; then
    timeout 500 "$PY" -m benchmarks.cuda_grad --repeats 3 --json "$OUTDIR/grad.json" >"$OUTDIR/grad.txt" 2>&1
    rc=$?
    note "forward + gradient, CUDA vs C (grad.txt): $(grep -c 'batch' "$OUTDIR/grad.txt") rows (exit $rc)"
    [ $rc -eq 0 ] || fail "forward + gradient (see grad.txt)"
fi

# ------------------------------------------------------------------ 5. GPU benchmarks against adseq on JAX-GPU
if stage peers || stage peers_small || stage peers_large; then
    export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX (here and in adseq's workers) shares the GPU with pycuda
    mkdir -p "$OUTDIR/peers"
    : >"$OUTDIR/peers.txt"
    peer_run() {  # LIMIT_S NAME ARGS...: one benchmark, its printout appended to peers.txt
        local limit=$1 name=$2
        shift 2
        echo "## $name: python -m $* (limit ${limit} s)" >>"$OUTDIR/peers.txt"
        timeout "$limit" "$PY" -m "$@" --json "$OUTDIR/peers/$name.json" >>"$OUTDIR/peers.txt" 2>&1
        local rc=$?
        note "peers $name: exit $rc"
        [ $rc -eq 0 ] || fail "peers $name (see peers.txt)"
    }
    if ! stage peers_large; then
    peer_run 200 micro_1e4 benchmarks.queue_micro --target cuda --repeats 3 --no-none
    peer_run 200 rsnn benchmarks.rsnn --target cuda --repeats 3
    fi
    if ! stage peers_small; then
    peer_run 300 micro_1e5 benchmarks.queue_micro --target cuda --repeats 3 --no-none --queues 100000 --steps 10000
    peer_run 400 micro_1e6 benchmarks.queue_micro --target cuda --repeats 3 --no-none --queues 1000000 --steps 4000
    fi
    tar -czf "$OUTDIR/peers.tar.gz" -C "$OUTDIR" peers && rm -rf "$OUTDIR/peers"
fi

# ------------------------------------------------------------------ 6. the JAX target against adseq on JAX-GPU
if stage jax || stage jax_micro || stage jax_rsnn; then
    export XLA_PYTHON_CLIENT_PREALLOCATE=false  # peak memory as each process uses it, not JAX's preallocated pool
    : >>"$OUTDIR/jax.txt"
    for part in micro rsnn; do
        stage jax || stage "jax_$part" || continue
        echo "## python -m benchmarks.jax_target --parts $part --repeats 3 (limit 540 s)" >>"$OUTDIR/jax.txt"
        timeout 540 "$PY" -m benchmarks.jax_target --parts "$part" --repeats 3 --json "$OUTDIR/jax_$part.json" \
            >>"$OUTDIR/jax.txt" 2>&1
        rc=$?
        note "JAX target vs adseq, $part, backend $("$PY" -c 'import jax; print(jax.default_backend())'): exit $rc"
        [ $rc -eq 0 ] || fail "JAX target benchmark $part (see jax.txt)"
    done
fi

note "status: $([ $status -eq 0 ] && echo passed || echo FAILED)"
exit $status
