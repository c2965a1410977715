"""Jinja templates of the generated kernels, installed as the package qgen.templates."""
