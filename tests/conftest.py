"""Shared helpers: write a model to a temporary folder and load, check and instantiate it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qgen.pipeline import compile_model
from qgen.runtime.network import instantiate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def write_model(tmp_path):
    """write_model(text, name="m.snn") -> path of a model file in a fresh folder."""
    def write(text: str, name: str = "m.snn") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.fixture
def build(write_model):
    """build(text, seed=0, **overrides) -> NetworkData of a checked model."""
    def make(text: str, seed: int | None = None, **overrides):
        model = compile_model(write_model(text), {k: str(v) for k, v in overrides.items()})
        return instantiate(model, seed)
    return make
