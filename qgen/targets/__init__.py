"""Targets: generate, build and load the kernels of a model (C with cffi)."""
