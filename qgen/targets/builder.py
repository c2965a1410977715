"""The network builder of templates/c/network.c.j2 as a small C module of its own.

The C target prints the builder into each model; the cuda and jax targets use this one, which
holds every draw and does not depend on the model, so it is compiled once per ``out`` folder and
template (``<out>/_network_builder/``, the C target's cache rules: manifest written last, a file
lock). Drawing 0.3·10⁹ synapses here takes seconds where NumPy (:mod:`qgen.runtime.streams`, the
same values) takes minutes. Without a C compiler the runtime falls back to NumPy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from qgen.codegen.c import BUILDER_CDEF
from qgen.codegen.fingerprint import TEMPLATE_ROOT
from qgen.targets.c import MANIFEST, GeneratedDraws, _import, _locked, compiler_version, flags

FOLDER = "_network_builder"
_SOURCES = (TEMPLATE_ROOT / "c" / "builder.c.j2", TEMPLATE_ROOT / "c" / "network.c.j2",
            Path(__file__).resolve().parent.parent / "runtime" / "streams.py")


def _key(compiler: str) -> str:
    from qgen import __version__

    digest = hashlib.sha256("\n".join([__version__, compiler, *flags(False)[0], sys.version.split()[0]]).encode())
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _source() -> tuple[str, str]:
    from qgen import __version__
    from qgen.codegen.c import _environment
    from qgen.runtime import streams

    text = _environment().get_template("builder.c.j2").render(version=__version__, draws=set(BUILDER_CDEF),
                                                              streams=streams)
    return text, "".join(BUILDER_CDEF.values())


def draws(out: str | Path) -> GeneratedDraws | None:
    """The compiled builder under ``out`` (built on first use); None where no C compiler works."""
    import cffi

    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    compiler = compiler_version()
    key = _key(compiler)
    name = f"_qgen_network_builder_{key[:12]}"
    with _locked(folder):
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            if manifest.get("key") == key:
                return GeneratedDraws(_import(folder / manifest["module_file"], name))
        except (OSError, ValueError, KeyError, ImportError):
            pass
        (folder / MANIFEST).unlink(missing_ok=True)
        source, cdef = _source()
        (folder / "builder.c").write_text(source)
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        compile_flags, link_flags = flags(False)
        ffi.set_source(name, source, extra_compile_args=list(compile_flags), extra_link_args=list(link_flags))
        with tempfile.TemporaryDirectory(prefix="qgen-builder-") as tmp:
            try:
                built = Path(ffi.compile(tmpdir=tmp, verbose=False))
            except Exception:  # no working C compiler: NumPy draws the same values
                return None
            for old in folder.glob("_qgen_*"):
                old.unlink()
            shutil.move(str(built), folder / built.name)
        temporary = folder / (MANIFEST + ".tmp")
        temporary.write_text(json.dumps({"key": key, "module_file": built.name}))
        os.replace(temporary, folder / MANIFEST)
        return GeneratedDraws(_import(folder / built.name, name))
