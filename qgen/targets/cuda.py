"""The CUDA target: generate, compile with nvcc to a cubin, cache, load with pycuda, run.

A build lives in ``<out>/<model>/cuda/<precision>/``: ``model.cu`` (the generated kernels,
readable), ``model.cubin`` (``nvcc -cubin -arch=sm_90 -Werror all-warnings``; the architecture can
be changed with ``QGEN_CUDA_ARCH``, e.g. ``sm_80``) and ``manifest.json`` (cache key, IR hash,
template hash, nvcc version and flags, the array layout, the kernels of one step). The build
folder, its lock and the manifest rules are the C target's (:mod:`qgen.targets.c`): the manifest
is written last, atomically; the key covers the IR, the templates (the CUDA ones and the C
neuron template they include), the generator, nvcc and its flags; an exclusive file lock makes
concurrent builds of one model safe. Building needs nvcc only; running needs pycuda and an
NVIDIA GPU, and :func:`check_runtime` says in one sentence which is missing.

:class:`CudaSimulation` is the C target's :class:`~qgen.runtime.simulation.Simulation` (the same
binding of weights, delays and parameters as NumPy arrays, inputs, drives, results) with device
memory behind it: host arrays are copied to the GPU when a run starts, device-only arrays
(queues, spike lists, scratch) are zeroed there, and what a result reads comes back when it ends.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from qgen.codegen.fingerprint import TEMPLATE_ROOT
from qgen.codegen.layout import Field
from qgen.errors import Code, QgenError, SimulationError
from qgen.ir.nodes import Model
from qgen.targets.c import MANIFEST, PRECISIONS, _identifier, _locked, write_manifest

FORMAT = 1  # of the build folder; part of the cache key
DEFAULT_ARCH = "sm_90"
DEFAULT_SPIKES_PER_STEP = 4  # exact timing: spikes of one neuron in one step that the spike list holds
PUSH_BLOCKS = 64  # blocks per trial of qgen_push_pre and of qgen_rank (they stride over the spike list)
FUSED_THREADS = 256  # threads per block of qgen_steps
FUSED_NEURONS_PER_THREAD = 1  # qgen_steps takes a block per FUSED_THREADS × this many neurons of the largest population
FUSED_MAX_NEURONS = 8192  # per block: fuse steps by default while the blocks the GPU holds at once cover the network
FUSED_STEPS = 2000  # steps per launch of qgen_steps
BACKWARD_THREADS = 256  # the most threads per block (a trial) of qgen_backward, sharing its neurons
DEFAULT_HEAP_MB = 1024  # the device heap of the backward pass (QGEN_CUDA_HEAP_MB)
FIFO_WINDOW = 64  # the most steps of a window where fifo lines are pushed (a bit per step)
WINDOW_BYTES = 256 << 20  # the most device memory that windows of several steps take (spike lists, staging rows)
_CODEGEN = Path(__file__).resolve().parent.parent


def arch() -> str:
    return os.environ.get("QGEN_CUDA_ARCH", DEFAULT_ARCH)


def nvcc_flags() -> tuple[str, ...]:
    return ("-cubin", f"-arch={arch()}", "-O3", "-Werror", "all-warnings")


def template_hash() -> str:
    """Changes whenever a CUDA template, the C template it includes or the generator changes."""
    from qgen.codegen.cuda import C_TEMPLATES, SOURCES

    digest = hashlib.sha256()
    paths = sorted((TEMPLATE_ROOT / "cuda").glob("*.j2"))
    paths += [TEMPLATE_ROOT / "c" / name for name in C_TEMPLATES]
    paths += [_CODEGEN / name for name in SOURCES]
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    return None


@functools.cache
def nvcc_version() -> str:
    nvcc = find_nvcc()
    if nvcc is None:
        raise QgenError(Code.UNSUPPORTED, "the cuda target needs nvcc (the CUDA toolkit) to compile kernels, and "
                        "none was found on PATH, in CUDA_HOME or in /usr/local/cuda",
                        hint="install the CUDA toolkit, or put its bin folder on PATH")
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    lines = [line for line in out.stdout.splitlines() if "release" in line]
    return lines[-1].strip() if lines else out.stdout.strip().splitlines()[-1]


def cache_key(model: Model, precision: str, template: str, compiler: str) -> str:
    from qgen import __version__

    parts = [str(FORMAT), __version__, model.hash, template, precision, compiler, *nvcc_flags(),
             sys.version.split()[0]]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_folder(model: Model, precision: str, out: str | Path) -> Path:
    return Path(out) / model.name / "cuda" / precision


# ------------------------------------------------------------------ the build


class _Ffi:
    """What :class:`~qgen.runtime.simulation.Simulation` asks of a build's ffi, for device builds:
    the state struct and the error array are plain Python objects (the struct goes to the GPU's
    constant memory when a run starts)."""

    @staticmethod
    def new(ctype: str, count: int | None = None):
        if ctype == "qgen_state *":
            return SimpleNamespace()
        if ctype == "qgen_error[]":
            return [SimpleNamespace(code=0, population=-1, projection=-1, neuron=-1, time=0.0)
                    for _ in range(count or 0)]
        raise TypeError(f"no {ctype} on the cuda target")


class _Lib:
    """The entry points Simulation calls: they run on the device of the state's simulation."""

    @staticmethod
    def qgen_prepare(state) -> int:
        return state.device.prepare()

    @staticmethod
    def qgen_run(state, steps: int, errors) -> int:
        return state.device.run(int(steps), errors)

    @staticmethod
    def qgen_backward(state, errors) -> int:
        return state.device.backward(errors)


@dataclass
class CudaBuild:
    folder: Path
    manifest: dict
    ffi = _Ffi()
    lib = _Lib()

    @property
    def layout(self) -> list[Field]:
        return [Field(f["name"], f["ctype"], tuple(f["shape"]), f["comment"], f["lifetime"])
                for f in self.manifest["layout"]]

    @property
    def scalars(self) -> list[str]:
        return list(self.manifest["scalars"])

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def cubin(self) -> Path:
        return self.folder / self.manifest["cubin"]

    @property
    def source(self) -> Path:
        return self.folder / "model.cu"


def build(model: Model, precision: str = "float64", out: str | Path = "generated", force: bool = False) -> CudaBuild:
    """Generate ``model`` as CUDA and compile it to a cubin unless an identical build is cached."""
    if precision not in PRECISIONS:
        raise QgenError(Code.BAD_OPTION, f"unknown precision {precision!r}", hint="use float64 or float32")
    compiler = nvcc_version()
    folder = build_folder(model, precision, out)
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(model, precision, template_hash(), compiler)
    with _locked(folder):
        if not force:
            cached = _load_cached(folder, key)
            if cached is not None:
                return cached
        return _compile(model, precision, folder, key, compiler)


def load_cached(model: Model, precision: str = "float64", out: str | Path = "generated") -> CudaBuild | None:
    """The cached build of ``model`` if it is current, without generating anything (fast path of load)."""
    folder = build_folder(model, precision, out)
    if not (folder / MANIFEST).is_file() or find_nvcc() is None:
        return None
    with _locked(folder):
        return _load_cached(folder, cache_key(model, precision, template_hash(), nvcc_version()))


def _load_cached(folder: Path, key: str) -> CudaBuild | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("key") != key or not (folder / manifest["cubin"]).is_file():
            return None
    except (OSError, ValueError, KeyError):
        return None  # missing, partial or corrupt: build again
    return CudaBuild(folder, manifest)


def compile_source(source: Path, cubin: Path) -> None:
    """nvcc source -> cubin, or a QgenError with nvcc's messages."""
    command = [find_nvcc() or "nvcc", *nvcc_flags(), "-o", str(cubin), str(source)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as err:
        raise QgenError(Code.UNSUPPORTED, f"nvcc could not be run on {source}: {err}") from None
    if result.returncode != 0:
        raise QgenError(Code.UNSUPPORTED, f"nvcc failed on {source}:\n{(result.stderr or result.stdout)[-4000:]}",
                        hint="this is a bug in qgen's code generation; please report it")


def _compile(model: Model, precision: str, folder: Path, key: str, compiler: str) -> CudaBuild:
    from qgen import __version__
    from qgen.codegen.cuda import generate

    generated = generate(model, precision, __version__)
    (folder / MANIFEST).unlink(missing_ok=True)
    (folder / "model.cu").write_text(generated.source)
    with tempfile.TemporaryDirectory(prefix="qgen-cuda-", dir=folder) as tmp:
        built = Path(tmp) / "model.cubin"
        compile_source(folder / "model.cu", built)
        os.replace(built, folder / "model.cubin")
    manifest = {
        "key": key, "qgen": __version__, "model": model.name, "model_hash": model.hash,
        "template_hash": template_hash(), "precision": precision, "timing": model.network.timing,
        "compiler": compiler, "compile_flags": list(nvcc_flags()), "cubin": "model.cubin",
        "module": f"_qgen_cuda_{_identifier(model.name)}_{precision}_{key[:12]}",
        "scalars": list(generated.scalars), "kernels": generated.kernels, "plan": generated.plan,
        "layout": [{"name": f.name, "ctype": f.ctype, "shape": list(f.shape), "comment": f.comment,
                    "lifetime": f.lifetime} for f in generated.layout],
    }
    write_manifest(folder, manifest)
    return CudaBuild(folder, manifest)


# ------------------------------------------------------------------ the runtime


def check_runtime() -> None:
    """Raise a QgenError saying in one sentence what is missing to run CUDA kernels here."""
    _driver()


@functools.cache
def _driver():
    """pycuda.driver, initialised, with the primary context of the default device current."""
    try:
        import pycuda  # noqa: F401
    except ImportError:
        raise QgenError(Code.UNSUPPORTED, "the cuda target needs pycuda to run kernels, and it is not installed",
                        hint="pip install 'qgen[cuda]' (qgen build --target cuda compiles without it)") from None
    try:
        import pycuda.driver as cuda
    except ImportError as err:
        raise QgenError(Code.UNSUPPORTED, f"the cuda target needs an NVIDIA GPU driver, and pycuda could not load "
                        f"it ({err})", hint="run on a machine with an NVIDIA GPU (qgen build --target cuda "
                        "compiles without one)") from None
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as err:  # pycuda._driver.Error and its subclasses
        raise QgenError(Code.UNSUPPORTED, f"the cuda target needs an NVIDIA GPU, and the CUDA driver found none "
                        f"({err})", hint="run on a machine with an NVIDIA GPU (qgen build --target cuda "
                        "compiles without one)") from None
    if count == 0:
        raise QgenError(Code.UNSUPPORTED, "the cuda target needs an NVIDIA GPU, and the CUDA driver sees none",
                        hint="run on a machine with an NVIDIA GPU (qgen build --target cuda compiles without one)")
    import pycuda.autoprimaryctx  # noqa: F401  (the default device's primary context, popped at exit)

    try:  # the backward pass's scratch (templates/cuda/adjoint.cu.j2); fixed before the first kernel runs
        cuda.Context.set_limit(cuda.limit.MALLOC_HEAP_SIZE, heap_bytes())
    except Exception:  # a kernel with malloc already ran in this context: its heap stays
        pass
    return cuda


def heap_bytes() -> int:
    """The device heap that backward passes allocate from (QGEN_CUDA_HEAP_MB, default 1024 MiB)."""
    return int(os.environ.get("QGEN_CUDA_HEAP_MB", DEFAULT_HEAP_MB)) << 20


_MODULES: dict[str, object] = {}  # module name (it holds the cache key) -> the loaded cubin


def _resident_blocks(cuda, kernel) -> int:
    """Blocks of FUSED_THREADS threads of ``kernel`` that the GPU runs at once (registers bound it here)."""
    device = cuda.Context.get_device()
    regs = max(1, -(-kernel.num_regs // 8) * 8)  # allocated in units of 8 per thread
    per_sm = min(device.get_attribute(cuda.device_attribute.MAX_REGISTERS_PER_MULTIPROCESSOR) // (regs * FUSED_THREADS),
                 device.get_attribute(cuda.device_attribute.MAX_THREADS_PER_MULTIPROCESSOR) // FUSED_THREADS)
    return max(1, per_sm) * device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT)


def _module(build: CudaBuild):
    cuda = _driver()
    name = build.manifest["module"]
    if name not in _MODULES:
        try:
            _MODULES[name] = cuda.module_from_file(str(build.cubin))
        except Exception as err:
            raise QgenError(Code.UNSUPPORTED, f"the GPU cannot load {build.cubin} ({err})",
                            hint=f"it was compiled for {build.manifest['compile_flags'][1]}; set QGEN_CUDA_ARCH to "
                                 "this GPU's architecture (e.g. sm_80) and build again") from None
    return _MODULES[name]


class Device:
    """Device memory and kernels of one simulation: the arrays of the layout, the constant struct."""

    def __init__(self, sim: "CudaSimulation") -> None:
        self.cuda = _driver()
        self.sim = sim
        self.build = sim.build
        self.module = _module(sim.build)
        self.kernels = {}
        plan = self.build.manifest["kernels"]
        names = [plan["prepare"], *(k["kernel"] for k in plan["update"]), plan["inputs"], plan["rank"],
                 plan["push_pre"], *(k["kernel"] for k in plan["pull"])]
        for name in names:
            if name:
                self.kernels[name] = self.module.get_function(name).prepare("q")
        self.kernels[plan["steps"]] = self.module.get_function(plan["steps"]).prepare("qq")
        if self.build.manifest["plan"].get("gradients") == "cuda":
            self.kernels[plan["backward"]] = self.module.get_function(plan["backward"]).prepare("q")
        self.plan = plan
        self.largest = largest = max((p["size"] for p in self.build.manifest["plan"]["populations"]
                                      if p["kind"] is not None), default=0)
        # qgen_steps: blocks of a trial meet at barriers, so all of them must run at once
        self.resident = resident = max(1, _resident_blocks(self.cuda, self.kernels[plan["steps"]]) // sim.batch)
        if sim.blocks is not None and sim.blocks > resident:
            raise QgenError(Code.BAD_OPTION, f"blocks = {sim.blocks}: this GPU runs at most {resident} blocks of "
                            f"qgen_steps per trial at once (batch {sim.batch})", hint=f"use blocks <= {resident}")
        self.blocks = sim.blocks or max(1, min(resident, math.ceil(largest / (FUSED_THREADS * FUSED_NEURONS_PER_THREAD))))
        self.fused = sim.fused if sim.fused is not None else largest <= FUSED_MAX_NEURONS * resident
        self.threads = int(plan["threads"])
        self.buffers: dict[str, object] = {}
        self.nbytes: dict[str, int] = {}
        self.current: dict[str, np.ndarray] = {}  # read-only host arrays whose device copy is current
        self.fresh = False

    # ------------------------------------------------------------ memory

    def _buffer(self, name: str, nbytes: int):
        nbytes = max(int(nbytes), 8)
        if self.nbytes.get(name) != nbytes:
            self.current.pop(name, None)
            self.buffers.pop(name, None)  # freed when collected
            self.buffers[name] = self.cuda.mem_alloc(nbytes)
            self.nbytes[name] = nbytes
        return self.buffers[name]

    def upload(self, lifetimes: tuple[str, ...]) -> None:
        """The host arrays of these lifetimes to the device. A network array is made read-only once it is
        there and not copied again while it stays so (BoundArrays makes it writeable when asked for): the
        full-scale microcircuit's synapses took a second per run. Input arrays that sim.bind made
        (read-only) are not copied again while they are the ones on the device. Parameters always go
        (drives change them)."""
        for field in self.sim._fields.values():
            if field.lifetime in lifetimes:
                array = self.sim._arrays[field.name]
                protect = field.lifetime == "network" and not field.name.endswith(("_params", "_derived"))
                if not array.flags.writeable and self.current.get(field.name) is array:
                    continue
                buffer = self._buffer(field.name, array.nbytes)
                if array.nbytes:
                    self.cuda.memcpy_htod(buffer, array)
                if protect:
                    array.flags.writeable = False
                if array.flags.writeable:  # it may change before the next run: copied again then
                    self.current.pop(field.name, None)
                else:
                    self.current[field.name] = array

    def allocate_device_only(self, sizes: dict) -> None:
        for field in self.sim._fields.values():
            if field.lifetime == "device":
                shape = tuple(sizes[d] if isinstance(d, str) else d for d in field.shape)
                itemsize = np.dtype(self.sim._dtype(field.ctype)).itemsize
                nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize
                buffer = self._buffer(field.name, nbytes)
                self.cuda.memset_d8(buffer, 0, max(nbytes, 8))

    def download(self) -> None:
        for field in self.sim._fields.values():
            if field.lifetime == "run":
                array = self.sim._arrays[field.name]
                if array.nbytes:
                    self.cuda.memcpy_dtoh(array, self.buffers[field.name])

    def write_struct(self) -> None:
        state = self.sim._state
        scalars = self.build.scalars
        words = np.zeros(len(scalars) + len(self.sim._fields), dtype=np.uint64)
        words[:len(scalars)] = np.array([int(getattr(state, name, 0)) for name in scalars], dtype=np.int64).view(np.uint64)
        for k, field in enumerate(self.sim._fields.values()):  # (NULL: a backward array before backward())
            words[len(scalars) + k] = int(self.buffers[field.name]) if field.name in self.buffers else 0
        pointer, size = self.module.get_global("S")
        if size != words.nbytes:
            raise QgenError(Code.UNSUPPORTED, f"the kernels' state struct has {size} bytes, not {words.nbytes}",
                            hint="this is a bug in qgen's CUDA target; please report it")
        self.cuda.memcpy_htod(pointer, words)

    # ------------------------------------------------------------ the entry points

    def prepare(self) -> int:
        if self.fresh:  # a new run: everything to the device, device-only arrays zeroed
            self.upload(("network", "run", "input"))
            self.allocate_device_only(self.sim._sizes)
            self.fresh = False
        else:  # a later segment of the same run (drives): only the parameters may have changed
            self.upload(("network",))
        self.write_struct()
        self.launch(self.plan["prepare"], 0, (PUSH_BLOCKS, 1))
        if getattr(self.sim._state, "grad", 0):  # the constants qgen_prepare derived, for the backward pass's
            for pop in self.build.manifest["plan"]["populations"]:  # record of each run
                if pop["kind"] is not None:
                    name = f"{pop['prefix']}_derived"
                    self.cuda.memcpy_dtoh(self.sim._arrays[name], self.buffers[name])
        return 0

    def launch(self, name: str, n: int, grid: tuple[int, int]) -> None:
        self.kernels[name].prepared_call(grid, (self.threads, 1, 1), int(n))

    def step(self, n: int) -> None:
        B, T = self.sim.batch, self.threads
        if n >= 0:
            for entry in self.plan["update"]:
                self.launch(entry["kernel"], n, (math.ceil(entry["size"] / T), B))
        if self.plan["inputs"]:
            self.launch(self.plan["inputs"], n, (math.ceil(B / T), 1))
        if self.plan["rank"]:
            self.launch(self.plan["rank"], n, (PUSH_BLOCKS, B))
        if self.plan["push_pre"]:
            self.launch(self.plan["push_pre"], n, (PUSH_BLOCKS, B))
        for entry in self.plan["pull"]:
            self.launch(entry["kernel"], n, (math.ceil(entry["size"] / T), B))

    def run(self, steps: int, errors) -> int:
        state = self.sim._state
        try:
            first = state.step - 1 if state.step == 0 else state.step  # step -1: the grid inputs at t = 0
            if self.fused:  # a few blocks per trial, many steps per launch
                for n0 in range(first, state.step + steps, FUSED_STEPS):
                    count = min(FUSED_STEPS, state.step + steps - n0)
                    self.kernels[self.plan["steps"]].prepared_call((self.blocks, self.sim.batch), (FUSED_THREADS, 1, 1),
                                                                   int(n0), int(count))
            else:  # a launch per kernel and step
                for n in range(first, state.step + steps):
                    self.step(n)
            status = self.read_errors(errors)  # waits for the kernels: a fault in one shows here
        except getattr(self.cuda, "Error", ()) as err:
            raise SimulationError(Code.MODEL_RUNTIME, f"the GPU stopped the kernels of {self.build.source} with an "
                                  f"error ({err})", hint="this is a bug in qgen's CUDA target; please report it "
                                  "(compute-sanitizer python ... shows where)") from None
        if status == 0:
            state.step += steps
        return status

    def backward(self, errors) -> int:
        """The backward pass of the last run (templates/cuda/adjoint.cu.j2): a block per trial, its threads
        sharing the neurons (whole warps, no more than the largest population needs)."""
        self.upload(("backward",))
        self.write_struct()
        threads = min(BACKWARD_THREADS, 32 * max(1, math.ceil(self.largest / 32)))
        try:
            self.kernels[self.plan["backward"]].prepared_call((self.sim.batch, 1), (threads, 1, 1), 0)
            status = self.read_errors(errors)
        except getattr(self.cuda, "Error", ()) as err:
            raise SimulationError(Code.MODEL_RUNTIME, f"the GPU stopped the backward pass of {self.build.source} "
                                  f"with an error ({err})", hint="this is a bug in qgen's CUDA target; please "
                                  "report it (compute-sanitizer python ... shows where)") from None
        for field in self.sim._fields.values():
            if field.lifetime == "backward":
                array = self.sim._arrays[field.name]
                if array.nbytes:
                    self.cuda.memcpy_dtoh(array, self.buffers[field.name])
        return status

    def read_errors(self, errors) -> int:
        fields = {"err_code": np.int32, "err_population": np.int32, "err_projection": np.int32,
                  "err_neuron": np.int64, "err_time": np.float64}
        values = {}
        for name, dtype in fields.items():
            values[name] = np.empty(self.sim.batch, dtype)
            self.cuda.memcpy_dtoh(values[name], self.buffers[name])
        for b, err in enumerate(errors):
            err.code, err.population = int(values["err_code"][b]), int(values["err_population"][b])
            err.projection, err.neuron = int(values["err_projection"][b]), int(values["err_neuron"][b])
            err.time = float(values["err_time"][b])
        return int(values["err_code"].max()) if len(errors) else 0


def _most_per_group(key: np.ndarray) -> int:
    """The most entries with one value of ``key``. Input spikes come in step order and, with grid
    timing, by neuron within a step: their keys (step × size + neuron) are then in order, and
    counting runs is O(n) where sorting ten million of them took a second. Exact timing orders a
    step's spikes by time, which may need the sort."""
    if len(key) > 1 and (np.diff(key) < 0).any():
        key = np.sort(key)
    bounds = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1], [True])))
    return int(np.diff(bounds).max()) if len(key) else 0


def _simulation_class():
    from qgen.runtime.inputs import BoundInputs
    from qgen.runtime.simulation import _NUMPY, Simulation

    class CudaSimulation(Simulation):
        """Run a CUDA build: ``qgen.load(path, target="cuda").simulator(batch=2).run(inputs, 100.0)``.

        The C target's Simulation, with the arrays on the GPU while a run lasts. Beyond its
        options: ``spikes_per_step`` (exact timing; default 4): spikes of one neuron in one step
        that the step's spike list holds (more stop the run with a clear error); ``fused``: run
        many steps per launch with a few blocks per trial meeting at barriers (default: when the
        blocks the GPU runs at once hold FUSED_MAX_NEURONS neurons each of the largest population),
        or a launch per kernel and step (False); ``blocks``: qgen_steps's blocks per trial (default:
        one per FUSED_THREADS × FUSED_NEURONS_PER_THREAD neurons, at most what the GPU runs at once).
        """

        def __init__(self, build: CudaBuild, data, *, batch: int = 1, strict: bool = False,
                     spike_capacity: int | None = None, spikes_per_step: int | None = None,
                     fused: bool | None = None, blocks: int | None = None) -> None:
            if spikes_per_step is not None and (not isinstance(spikes_per_step, int) or spikes_per_step < 1):
                raise QgenError(Code.BAD_OPTION, f"spikes_per_step must be a positive integer, not {spikes_per_step!r}")
            if fused not in (None, True, False):
                raise QgenError(Code.BAD_OPTION, f"fused must be True, False or None, not {fused!r}")
            if blocks is not None and (not isinstance(blocks, int) or blocks < 1):
                raise QgenError(Code.BAD_OPTION, f"blocks must be a positive integer, not {blocks!r}")
            self.spikes_per_step = spikes_per_step or DEFAULT_SPIKES_PER_STEP
            self.fused = fused
            self.blocks = blocks
            super().__init__(build, data, batch=batch, strict=strict, spike_capacity=spike_capacity)
            self._sizes: dict = {}
            self._state.device = Device(self)

        @staticmethod
        def _default_threads(build, data, batch: int) -> int:
            return 1  # host threads: the GPU's own parallelism is not OpenMP's

        def _dtype(self, ctype: str):
            return self.real if ctype == "real" else _NUMPY[ctype]

        def _bind(self, name: str, array: np.ndarray) -> np.ndarray:
            """Keep the host array; it goes to the device when a run starts."""
            array = np.ascontiguousarray(array, dtype=self._dtype(self._fields[name].ctype))
            self._arrays[name] = array
            return array

        def _bind_run(self, steps: int, inputs, *args, **kwargs) -> dict:
            sizes = super()._bind_run(steps, inputs, *args, **kwargs)
            spikes = self.spikes_per_step if self.exact else 1
            counted = inputs.derived.get("cuda") if isinstance(inputs, BoundInputs) else None
            if counted is None:  # bound inputs are counted once
                counted = self._count_inputs()
                if isinstance(inputs, BoundInputs):
                    inputs.derived["cuda"] = counted
            capacity, per_neuron = counted[0], dict(counted[1])  # per_neuron: the staging rows' P
            for name, pop in self._pops.items():
                if pop["kind"] is not None and any(p["pre"] == name for p in self._projs.values()):
                    capacity += pop["size"] * spikes
                    per_neuron[name] = spikes
            staging = [proj for proj in self._projs.values() if f"P{proj['index']}" in self.build.scalars]
            sizes["M"] = self._state.M = max(1, capacity)
            sizes["W"] = self._state.W = window = self._window(capacity, sum(
                per_neuron[proj["pre"]] * sizes[f"S{proj['index']}"] for proj in staging))
            for proj in staging:  # a window's events, per incoming synapse
                setattr(self._state, f"P{proj['index']}", per_neuron[proj["pre"]] * window)
                sizes[f"SP{proj['index']}"] = per_neuron[proj["pre"]] * window * sizes[f"S{proj['index']}"]
                setattr(self._state, f"SP{proj['index']}", sizes[f"SP{proj['index']}"])
            for pop in self._pops.values():
                if not pop.get("listed"):
                    continue
                bound = 0
                for index in pop["listed"]:
                    proj = self._plan["projections"][index]
                    if proj["queue"] == "fifo":
                        post = self.data.projections[proj["name"]].post
                        indegree = int(np.bincount(post, minlength=pop["size"]).max()) if len(post) else 0
                        bound += proj["capacity"] * indegree
                    else:
                        bound += proj["capacity"]
                sizes[f"E{pop['index']}"] = max(1, bound)
                setattr(self._state, f"E{pop['index']}", max(1, bound))
            self._sizes = sizes
            self._state.device.fresh = True
            return sizes

        def _count_inputs(self) -> tuple[int, dict[str, int]]:
            """Over the input populations with projections: the most input spikes pushed in one step of
            one trial (summed), and per population the most spikes of one neuron in one step."""
            capacity, per_neuron = 0, {}
            staged = {p["pre"] for p in self._projs.values() if f"P{p['index']}" in self.build.scalars}
            for name, pop in self._pops.items():
                if pop["kind"] is not None or not any(p["pre"] == name for p in self._projs.values()):
                    continue
                push = self._arrays[f"{pop['prefix']}_in_step"]
                start = self._arrays[f"{pop['prefix']}_in_start"]
                ids = self._arrays[f"{pop['prefix']}_in_id"]
                trials = [(a, z) for a, z in zip(start[:-1], start[1:]) if z > a]
                capacity += max((int(np.bincount(push[a:z] - push[a:z].min()).max()) for a, z in trials), default=0)
                if name in staged:
                    per_neuron[name] = max((_most_per_group(push[a:z] * pop["size"] + ids[a:z]) for a, z in trials),
                                           default=1)
            return capacity, per_neuron

        def _window(self, capacity: int, staged: int) -> int:
            """Steps that qgen_steps takes per phase: as many as no event is due sooner (1 when launching
            a kernel per step), within WINDOW_BYTES of what grows with the window: spike lists of
            ``capacity`` entries per step, staging rows of ``staged`` events per step, and per neuron and
            step the counts of popped events (heaps, sorted arrays) and first spikes (fifo sources)."""
            projections = self._plan["projections"]
            if not self._state.device.fused or not projections:
                return 1
            delays = [self._arrays[f"{p['prefix']}_delay"] for p in projections]  # as the user may have set them
            shortest = min(float(d.min()) for d in delays if len(d)) if any(len(d) for d in delays) else math.inf
            if self.exact:  # an event sent in step m is due in step m + floor(delay / dt) or later; one step spare
                steps = math.floor(shortest / self.dt) - 1 if math.isfinite(shortest) else FUSED_STEPS
            else:  # delays in steps are rounded half up, at least 1
                steps = max(1, math.floor(shortest / self.dt + 0.5)) if math.isfinite(shortest) else FUSED_STEPS
            counts = sum(4 * self._pops[p["post"]]["size"] for p in projections if p["queue"] in ("heap", "sorted"))
            fifo_sources = [pop for name, pop in self._pops.items()
                            if any(p["queue"] == "fifo" and p["pre"] == name for p in projections)]
            counts += sum(4 * pop["size"] for pop in fifo_sources)
            if fifo_sources:  # their steps of a window are the bits of a 64-bit word
                steps = min(steps, FIFO_WINDOW)
            # two sets of lists (8 + 5 × 4 bytes per entry), staging rows (8 bytes per event), the per-neuron counts
            per_step = self.batch * (2 * capacity * 28 + 8 * staged + counts)
            return max(1, min(steps, FUSED_STEPS, WINDOW_BYTES // per_step))

        def _result(self, duration: float, steps: int):
            self._state.device.download()
            return super()._result(duration, steps)

        @property
        def phase_cycles(self) -> dict[str, np.ndarray]:
            """Where the last run's fused kernel spent its time: the clock cycles of each phase of qgen_steps
            (``PHASES``: update, inputs, rank, push, pull) per trial, counted on its first block's
            multiprocessor. All zero where the run launched a kernel per step (``fused=False``)."""
            from qgen.codegen.cuda import PHASES

            cycles = self._arrays["phase_cycles"]
            return {name: cycles[:, k].copy() for k, name in enumerate(PHASES)}

        def _call(self, status: int, errors) -> None:
            if status == 5:
                err = next(e for e in errors if e.code)
                raise SimulationError(Code.MODEL_RUNTIME, f"more spikes in one step than the spike list holds "
                                      f"(t = {err.time:.6g} ms)", hint="raise spikes_per_step in simulator() "
                                      f"(now {self.spikes_per_step})")
            if status == 6:
                raise SimulationError(Code.MODEL_RUNTIME, "a neuron had more due events in one step than its "
                                      "scratch holds", hint="this is a bug in qgen's CUDA target; please report it")
            if status == 4:  # only the backward pass allocates on the GPU
                raise SimulationError(Code.MODEL_RUNTIME, f"the backward pass ran out of the GPU's kernel heap "
                                      f"({heap_bytes() >> 20} MiB for {self.batch} trials at once)",
                                      hint="set QGEN_CUDA_HEAP_MB to more before the first CUDA run of the process")
            if status == 7:
                raise SimulationError(Code.MODEL_RUNTIME, "the blocks of a trial did not all run at once (another "
                                      "program on the GPU?), so the fused steps could not meet at their barriers",
                                      hint="run with simulator(blocks=1) or simulator(fused=False)")
            super()._call(status, errors)

    return CudaSimulation


def simulation(build: CudaBuild, data, **options):
    """A CudaSimulation of ``data`` (the class is made on first use: it needs the runtime's modules)."""
    check_runtime()
    return _simulation_class()(build, data, **options)
