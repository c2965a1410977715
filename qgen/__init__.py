"""qgen: a compiler from spiking-network models (.snn) to forward and adjoint kernels.

The pipeline, one package per stage: ``qgen.frontend`` (text -> IR), ``qgen.analysis``
(sympy), ``qgen.reference`` (the NumPy oracle) and ``qgen.runtime`` (instances, inputs, results).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qgen")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
