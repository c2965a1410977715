"""Symbolic analysis of neuron kinds (sympy), done once per kind at compile time.

:func:`analyse` classifies the dynamics and writes the spike, reset and event rules as maps;
the closed-form propagators are derived on first use (they take a second or more per kind).
:func:`check_model` rejects what a network asks of a kind that the kind cannot give.
"""

from __future__ import annotations

import functools

import sympy as sp

from qgen.analysis.linear import (
    Nonlinearity,
    affine_form,
    assignment_map,
    is_additive_event,
    is_linear_in_state,
    refractory_form,
    rhs_vector,
    threshold_function,
)
from qgen.analysis.propagators import augmented, propagator
from qgen.analysis.symbolic import Symbols, to_sympy
from qgen.errors import Code, QgenError, QgenErrors
from qgen.frontend.source import make_error
from qgen.ir.nodes import Model, NeuronKind

__all__ = ["NeuronAnalysis", "analyse", "check_model"]


class NeuronAnalysis:
    """Everything the later stages need to know about one neuron kind, as sympy objects."""

    def __init__(self, kind: NeuronKind) -> None:
        self.kind = kind
        self.sym = sym = Symbols.of(kind)
        self.f = rhs_vector(kind, sym)
        form = affine_form(kind, sym)
        self.nonlinearity: Nonlinearity | None = form if isinstance(form, Nonlinearity) else None
        self.A, self.b = (None, None) if self.nonlinearity else form
        self.threshold = threshold_function(kind, sym)
        self.threshold_linear = self.threshold is not None and is_linear_in_state(self.threshold, sym)
        self.reset = assignment_map(kind, kind.reset, sym)
        body = kind.on_event.body if kind.on_event else ()
        self.event = assignment_map(kind, body, sym)
        self.event_refractory = assignment_map(kind, body, sym, frozen=kind.clamped)
        self.additive_event = is_additive_event(kind, sym)
        names = sym.by_name()
        self.refractory = to_sympy(kind.refractory, names) if kind.refractory is not None else None

    @property
    def linear(self) -> bool:
        return self.nonlinearity is None

    @functools.cached_property
    def propagator(self) -> sp.ImmutableMatrix:
        """exp(Ã Δ) for the augmented state (x, 1): x(t+Δ) = (P x̃)[:n]."""
        self._require_linear()
        return propagator(augmented(self.A, self.b), self.sym.delta, self.sym.params)

    @functools.cached_property
    def refractory_system(self) -> tuple[sp.ImmutableMatrix, sp.ImmutableMatrix]:
        self._require_linear()
        return refractory_form(self.kind, self.A, self.b)

    @functools.cached_property
    def refractory_propagator(self) -> sp.ImmutableMatrix:
        A_ref, b_ref = self.refractory_system
        return propagator(augmented(A_ref, b_ref), self.sym.delta, self.sym.params)

    def _require_linear(self) -> None:
        if self.nonlinearity is not None:
            raise ValueError(f"{self.kind.name} has non-linear dynamics: no closed-form propagator")


@functools.cache
def analyse(kind: NeuronKind) -> NeuronAnalysis:
    return NeuronAnalysis(kind)


def check_model(model: Model, sources=None) -> None:
    """Raise the errors of kinds that cannot run as the network asks (non-linear with exact timing)."""
    net = model.network
    errors: list[QgenError] = []
    for bg in net.backgrounds if net is not None else ():
        kind = model.neuron(net.population(bg.population).kind)
        if not analyse(kind).additive_event:
            loc = kind.on_event.loc
            errors.append(make_error(
                Code.UNSUPPORTED, f"background source of {bg.population}: the on_event block of {kind.name} is not "
                "additive, so Poisson events cannot be summed per step", bg.loc, (sources or {}).get(bg.loc.file),
                f"background sources need effects such as 'i += w' (the block is on line {loc.line} of {loc.file})"))
    if net is None or net.timing != "exact":
        if errors:
            raise errors[0] if len(errors) == 1 else QgenErrors(errors)
        return
    for name in dict.fromkeys(p.kind for p in net.populations if p.kind is not None):
        a = analyse(model.neuron(name))
        source = (sources or {}).get
        if a.nonlinearity is not None:
            loc = a.nonlinearity.loc
            errors.append(make_error(
                Code.NONLINEAR_EXACT,
                f"neuron {name}: d{a.nonlinearity.variable}/dt is not linear in the state "
                f"({a.nonlinearity.term}), but the network asks for exact timing", loc,
                source(loc.file) if loc else None,
                "exact timing needs linear (affine) subthreshold dynamics; use 'timing = grid'"))
        elif a.threshold is not None and not a.threshold_linear:
            loc = a.kind.threshold.loc
            errors.append(make_error(
                Code.NONLINEAR_EXACT, f"neuron {name}: the threshold is not linear in the state, "
                "but the network asks for exact timing", loc, source(loc.file),
                "write the threshold as a linear condition such as 'v >= v_th', or use 'timing = grid'"))
    if errors:
        raise errors[0] if len(errors) == 1 else QgenErrors(errors)
