"""The frontend: .snn text to a checked IR :class:`~qgen.ir.nodes.Model`."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from qgen.errors import Code, QgenError
from qgen.frontend.imports import load_sources
from qgen.frontend.network import NetworkBuilder
from qgen.frontend.neurons import NeuronBuilder
from qgen.frontend.parser import parse
from qgen.frontend.source import Diagnostics, SourceFile
from qgen.ir.nodes import Model, NeuronKind

__all__ = ["load_model"]


def load_model(path: str | Path, overrides: Mapping[str, str] | None = None,
               sources: dict[str, SourceFile] | None = None) -> Model:
    """Parse and check a model file and its imports.

    ``overrides`` replaces the values of ``let`` constants of the network (text, as on the
    command line: ``{"N": "1000"}``). Raises :class:`QgenError` on any bad input.
    ``sources``, when given, receives every file read (by the name locations use), so that
    the errors of later stages can show excerpts: ``check_model(model, sources)``.
    """
    try:
        return _load(Path(path), overrides, {} if sources is None else sources)
    except RecursionError:
        raise QgenError(Code.UNSUPPORTED, f"{path}: an expression is nested too deeply",
                        hint="split it into smaller expressions") from None


def _load(path: Path, overrides: Mapping[str, str] | None, sources: dict[str, SourceFile]) -> Model:
    diag = Diagnostics(sources)
    files = load_sources(path, diag)
    root = files[-1][0]
    neurons: dict[str, NeuronKind] = {}
    network = None
    for source, tree in files:
        builder = NeuronBuilder(source, diag)
        for item in tree.children:
            if item.data == "neuron":
                name = str(item.children[0])
                if name == "input":
                    builder.fail(Code.DUPLICATE_NAME, "'input' is a reserved name", item.children[0],
                                 "'population p = input(n)' makes a spike source; name the neuron kind differently")
                    continue
                if name in neurons:
                    builder.fail(Code.DUPLICATE_NAME, f"neuron kind {name!r} is defined twice", item.children[0],
                                 f"the first definition is at {neurons[name].loc}")
                    continue
                kind = builder.build_neuron(item)
                if kind is not None:
                    neurons[name] = kind
            elif item.data == "network":
                if source is not root:
                    builder.fail(Code.NETWORK_IN_IMPORT, f"{source.display} defines a network but is imported",
                                 item.children[0], "imported files may only define neuron kinds")
                elif network is not None:
                    builder.fail(Code.SECOND_NETWORK, "a second network in one model", item.children[0],
                                 f"the first is network {network.children[0]}; put each in its own file")
                else:
                    network = item
    diag.raise_if_any()

    def parse_expression(text: str, display: str):
        source = SourceFile(Path(display), display, text)
        diag.sources[display] = source
        return parse(source, start="expr"), source

    built = None
    if network is not None:
        built = NetworkBuilder(root, diag).build_network(network, neurons, overrides, parse_expression)
    elif overrides:
        diag.error(Code.NO_NETWORK, f"{root.display} has no network, so --set has nothing to change", None,
                   "--set changes the 'let' constants of a network; this file defines only neuron kinds")
    diag.raise_if_any()
    name = built.name if built is not None else path.stem
    sources = tuple((s.display, _sha256(s.text)) for s, _ in files)
    return Model(name, tuple(neurons.values()), built, sources)


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
