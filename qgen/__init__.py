"""qgen: a compiler from spiking-network models (.snn) to forward and adjoint kernels.

The pipeline, one package per stage: ``qgen.frontend`` (text -> IR), ``qgen.analysis``
(sympy), ``qgen.reference`` (the NumPy oracle) and ``qgen.runtime`` (instances, inputs, results).
"""

from qgen.runtime import xla_flags as _xla_flags

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

_xla_flags.apply()  # before JAX compiles anything: see qgen/runtime/xla_flags.py


def load(path, target: str = "c", **options):
    """Parse, check and build a model: ``qgen.load("model.snn").simulator(batch=4).run(inputs, 100.0)``.

    Options: precision ("float64" or "float32"), overrides ({"N": "1000"}), out (the build folder,
    "generated" by default), force (rebuild). See :func:`qgen.runtime.loader.load`.
    """
    from qgen.runtime.loader import load as _load

    return _load(path, target, **options)
