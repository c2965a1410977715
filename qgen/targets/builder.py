"""The network builder of templates/c/network.c.j2 as a small C module of its own.

The C target prints the builder into each model; the cuda and jax targets use this one, which
holds every draw and does not depend on the model, so it is compiled once per ``out`` folder and
template (``<out>/_network_builder/``, with the C target's cache: its manifest, lock and cffi
compile). Drawing 0.3·10⁹ synapses here takes seconds where NumPy (:mod:`qgen.runtime.streams`,
the same values) takes minutes. Without a C compiler the runtime falls back to NumPy.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from qgen.codegen.draws import BUILDER_CDEF
from qgen.codegen.fingerprint import TEMPLATE_ROOT
from qgen.targets.c import GeneratedDraws, _load_cached, _locked, compile_module, compiler_version, flags, \
    write_manifest

FOLDER = "_network_builder"
_SOURCES = (TEMPLATE_ROOT / "c" / "builder.c.j2", TEMPLATE_ROOT / "c" / "network.c.j2",
            Path(__file__).resolve().parent.parent / "codegen" / "draws.py",
            Path(__file__).resolve().parent.parent / "runtime" / "streams.py")


def _key() -> str:
    from qgen import __version__

    digest = hashlib.sha256("\n".join([__version__, compiler_version(), *flags(False)[0],
                                       sys.version.split()[0]]).encode())
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _source() -> str:
    from qgen import __version__
    from qgen.codegen.c import _environment
    from qgen.runtime import streams

    return _environment().get_template("builder.c.j2").render(version=__version__, draws=set(BUILDER_CDEF),
                                                              streams=streams)


def draws(out: str | Path) -> GeneratedDraws | None:
    """The compiled builder under ``out`` (built on first use); None where no C compiler works."""
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    key = _key()
    with _locked(folder):
        cached = _load_cached(folder, key)
        if cached is not None:
            return GeneratedDraws(cached)
        name = f"_qgen_network_builder_{key[:12]}"
        source = _source()
        (folder / "builder.c").write_text(source)
        try:
            target = compile_module(folder, name, source, "".join(BUILDER_CDEF.values()))
        except Exception:  # no working C compiler: NumPy draws the same values
            return None
        write_manifest(folder, {"key": key, "module": name, "module_file": target.name})
        return GeneratedDraws(_load_cached(folder, key))
