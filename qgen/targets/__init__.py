"""Targets: generate, build and load the kernels of a model (C with cffi, CUDA with nvcc and pycuda, JAX as a
generated module)."""
