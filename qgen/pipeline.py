"""The front half of the pipeline on one page: text -> checked IR, ready for any target.

    model.snn --lark--> parse trees --frontend--> IR --analysis--> checked Model

Later stages (code generation, build, load) start from the Model this returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from qgen.analysis import check_model
from qgen.frontend import load_model
from qgen.frontend.source import SourceFile
from qgen.ir.nodes import Model


def compile_model(path: str | Path, overrides: Mapping[str, str] | None = None) -> Model:
    """Parse, check and analyse-check a model; raises QgenError with located messages."""
    sources: dict[str, SourceFile] = {}
    model = load_model(path, overrides, sources)
    check_model(model, sources)
    return model
