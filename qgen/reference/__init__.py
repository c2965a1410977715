"""The NumPy reference simulator: the oracle every target is checked against."""

from qgen.reference.simulator import ReferenceSimulator

__all__ = ["ReferenceSimulator"]
