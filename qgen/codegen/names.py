"""C identifiers for model names."""

from __future__ import annotations

import re


def c_identifier(name: str) -> str:
    """A C identifier for a model name (projection names contain '->')."""
    text = re.sub(r"\W", "_", name)
    return text if text and not text[0].isdigit() else f"_{text}"
