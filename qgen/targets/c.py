"""The C target: generate, compile with cffi, cache, load.

A build lives in ``<out>/<model>/c/<precision>/``: ``model.c`` (the generated source, readable),
``model.h`` (the declarations cffi binds), the compiled extension module and ``manifest.json``
(cache key, IR hash, template hash, compiler and flags, the array layout). The manifest is
written last, atomically, so a build that was interrupted has none and is redone. The cache key
covers everything the binary depends on: an unchanged model is neither regenerated nor
recompiled. An exclusive file lock makes concurrent builds of one model safe.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from qgen.codegen.fingerprint import template_hash
from qgen.codegen.layout import Field
from qgen.errors import Code, QgenError
from qgen.ir.nodes import Model

PRECISIONS = ("float64", "float32")
COMPILE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno")
LINK_FLAGS = ("-fopenmp",)
# AddressSanitizer and UndefinedBehaviorSanitizer, for the tests (load with LD_PRELOAD=libasan.so); -O0: every
# access checked as written, and the build half as long as at -O1
SANITIZE_FLAGS = ("-O0", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                  "-fno-omit-frame-pointer", "-g")
MANIFEST = "manifest.json"
FORMAT = 1  # of the build folder; part of the cache key


@dataclass
class CBuild:
    folder: Path
    manifest: dict
    module: ModuleType

    @property
    def ffi(self):
        return self.module.ffi

    @property
    def lib(self):
        return self.module.lib

    @property
    def layout(self) -> list[Field]:
        return [Field(f["name"], f["ctype"], tuple(f["shape"]), f["comment"], f["lifetime"])
                for f in self.manifest["layout"]]

    @property
    def scalars(self) -> list[tuple[str, str]]:
        return [tuple(s) for s in self.manifest["scalars"]]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]


class GeneratedDraws:
    """The network builder of a C build (templates/c/network.c.j2): the counter-based draws of
    :mod:`qgen.runtime.streams` on every core, into arrays allocated here and bound without a copy."""

    def __init__(self, module) -> None:  # a CBuild, or the cffi module of qgen.targets.builder
        self.lib, self.ffi = module.lib, module.ffi

    def _pointer(self, array: np.ndarray):
        return self.ffi.cast({np.dtype(np.int64): "int64_t *", np.dtype(np.int32): "int32_t *",
                              np.dtype(np.float64): "double *"}[array.dtype], array.ctypes.data)

    def fixed_total_number(self, stream: int, n: int, n_pre: int, n_post: int,
                           no_autapses: bool) -> tuple[np.ndarray, np.ndarray]:
        out_start, post = np.empty(n_pre + 1, np.int64), np.empty(n, np.int32)
        if self.lib.qgen_fixed_total_number(stream, n, n_pre, n_post, int(no_autapses), self._pointer(out_start),
                                            self._pointer(post)):
            raise QgenError(Code.MODEL_RUNTIME, f"out of memory drawing {n} synapses")
        return out_start, post

    def uniform(self, stream: int, n: int, low: float, high: float) -> np.ndarray:
        out = np.empty(n)
        self.lib.qgen_draw_uniform(stream, n, low, high, self._pointer(out))
        return out

    def normal(self, stream: int, n: int, mean: float, std: float, low: float, high: float,
               truncate: bool) -> tuple[np.ndarray, int]:
        from qgen.runtime.streams import MAX_ATTEMPTS

        out = np.empty(n)
        failed = self.lib.qgen_draw_normal(stream, n, mean, std, low, high, int(truncate), MAX_ATTEMPTS,
                                           self._pointer(out))
        return out, int(failed)


@functools.cache
def compiler_version() -> str:
    compiler = sysconfig.get_config_var("CC") or "cc"
    try:
        out = subprocess.run([*compiler.split()[:1], "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else compiler
    except (OSError, subprocess.SubprocessError):
        return compiler


def flags(sanitize: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(compile flags, link flags)."""
    extra = SANITIZE_FLAGS if sanitize else ()
    return COMPILE_FLAGS + extra, LINK_FLAGS + extra


def cache_key(model: Model, precision: str, template: str, compiler: str, sanitize: bool = False) -> str:
    from qgen import __version__

    compile_flags, link_flags = flags(sanitize)
    parts = [str(FORMAT), __version__, model.hash, template, precision, compiler, *compile_flags, *link_flags,
             sys.version.split()[0]]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_folder(model: Model, precision: str, out: str | Path, sanitize: bool = False) -> Path:
    return Path(out) / model.name / "c" / (precision + ("-sanitized" if sanitize else ""))


def build(model: Model, precision: str = "float64", out: str | Path = "generated", force: bool = False,
          sanitize: bool = False) -> CBuild:
    """Generate and compile ``model`` unless an identical build is cached; return it loaded."""
    if precision not in PRECISIONS:
        raise QgenError(Code.BAD_OPTION, f"unknown precision {precision!r}", hint="use float64 or float32")
    folder = build_folder(model, precision, out, sanitize)
    folder.mkdir(parents=True, exist_ok=True)
    compiler = compiler_version()
    key = cache_key(model, precision, template_hash(), compiler, sanitize)
    with _locked(folder):
        if not force:
            cached = _load_cached(folder, key)
            if cached is not None:
                return cached
        return _compile(model, precision, folder, key, compiler, sanitize)


def load_cached(model: Model, precision: str = "float64", out: str | Path = "generated") -> CBuild | None:
    """The cached build of ``model`` if it is current, without generating anything (fast path of load)."""
    folder = build_folder(model, precision, out)
    if not (folder / MANIFEST).is_file():
        return None
    with _locked(folder):
        return _load_cached(folder, cache_key(model, precision, template_hash(), compiler_version()))


@contextmanager
def _locked(folder: Path):
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_cached(folder: Path, key: str) -> CBuild | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("key") != key:
            return None
        module = _import(folder / manifest["module_file"], manifest["module"])
    except (OSError, ValueError, KeyError, ImportError):
        return None  # missing, partial or corrupt: build again
    return CBuild(folder, manifest, module)


def _import(path: Path, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _compile(model: Model, precision: str, folder: Path, key: str, compiler: str, sanitize: bool) -> CBuild:
    from qgen import __version__
    from qgen.codegen.c import generate

    generated = generate(model, precision, __version__)
    (folder / MANIFEST).unlink(missing_ok=True)
    (folder / "model.c").write_text(generated.source)
    (folder / "model.h").write_text(generated.cdef)
    module_name = f"_qgen_{_identifier(model.name)}_{precision}_{key[:12]}"
    compile_flags, link_flags = flags(sanitize)
    try:
        target = compile_module(folder, module_name, generated.source, generated.cdef, sanitize)
    except Exception as err:  # cffi raises VerificationError / CompileError with the compiler's output
        raise QgenError(Code.UNSUPPORTED, f"the C compiler failed on {folder / 'model.c'}: {err}",
                        hint="this is a bug in qgen's code generation; please report it") from None
    manifest = {
        "key": key, "qgen": __version__, "model": model.name, "model_hash": model.hash,
        "template_hash": template_hash(), "precision": precision, "timing": model.network.timing,
        "compiler": compiler, "compile_flags": list(compile_flags), "link_flags": list(link_flags),
        "module": module_name, "module_file": target.name,
        "scalars": [list(s) for s in generated.scalars],
        "plan": generated.plan,
        "layout": [{"name": f.name, "ctype": f.ctype, "shape": list(f.shape), "comment": f.comment,
                    "lifetime": f.lifetime} for f in generated.layout],
    }
    write_manifest(folder, manifest)
    return CBuild(folder, manifest, _import(target, module_name))


def compile_module(folder: Path, name: str, source: str, cdef: str, sanitize: bool = False) -> Path:
    """Compile ``source`` with cffi into the extension module ``name`` in ``folder`` (replacing earlier ones)."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(cdef)
    compile_flags, link_flags = flags(sanitize)
    ffi.set_source(name, source, extra_compile_args=list(compile_flags), extra_link_args=list(link_flags))
    with tempfile.TemporaryDirectory(prefix="qgen-build-") as tmp:
        built = Path(ffi.compile(tmpdir=tmp, verbose=False))
        for old in folder.glob("_qgen_*"):
            old.unlink()
        target = folder / built.name
        shutil.move(str(built), target)
    return target


def write_manifest(folder: Path, manifest: dict) -> None:
    """The manifest, written last and atomically: a build without one is redone."""
    temporary = folder / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, folder / MANIFEST)


def _identifier(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
