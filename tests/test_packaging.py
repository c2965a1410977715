"""The package list in pyproject.toml matches the source tree, so a fresh install has every module."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {name: ROOT / path for name, path in config.get("package-dir", {}).items()}
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "qgen").rglob("__init__.py")}
    assert listed - set(mapped) == found
    for name, path in mapped.items():
        assert (path / "__init__.py").is_file(), name


def test_grammar_and_library_ship_as_package_data():
    from importlib import resources

    assert "start:" in resources.files("qgen.grammar").joinpath("qgen.lark").read_text()
    assert resources.files("qgen.stdlib").joinpath("lif.snn").is_file()
