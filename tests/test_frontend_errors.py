"""The frontend on bad input: a corpus of broken models, each rejected with the right error.

Every case names the exact error code and where it points (the first occurrence of a piece of
the source text, or an explicit line and column); the test checks ``.where``, that the message
shows the offending line with a caret under that column, the hint, and that one mistake gives
one error (no cascade of follow-up errors).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from click.testing import CliRunner

from qgen.analysis import check_model
from qgen.cli import main
from qgen.errors import Code, QgenError
from qgen.frontend import load_model


@dataclass
class Case:
    id: str
    text: str
    code: Code
    at: str | tuple[str, int] | tuple[int, int]  # text (its first or n-th occurrence) or (line, column)
    hint: str | None = None  # a piece of the hint; None: no hint required
    files: dict[str, str] = field(default_factory=dict)  # other files, next to m.snn
    overrides: dict[str, str] | None = None
    file: str = "m.snn"  # the file the error points into
    errors: int = 1  # how many errors the model has in all

    def __post_init__(self):
        self.text = textwrap.dedent(self.text).lstrip("\n")
        self.files = {name: textwrap.dedent(text).lstrip("\n") for name, text in self.files.items()}


KIND = """
neuron K {
    parameters { tau = 10 ms; C = 250 pF; E = -70 mV; th = -50 mV }
    state { v = E; i = 0 pA }
    equations {
        dv/dt = -(v - E) / tau + i / C
        di/dt = -i / tau
    }
    threshold v >= th
    reset { v = E }
    on_event(w) { i += w }
}
"""


def net(body: str, prefix: str = 'import "std/lif.snn"\n') -> str:
    """A network around ``body`` (written at 4 spaces), after ``prefix``."""
    return prefix + "network N {\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n}\n"


def neuron(blocks: str) -> str:
    return "neuron A {\n" + textwrap.indent(textwrap.dedent(blocks).strip("\n"), "    ") + "\n}\n"


LIF_NET = """
    population inp = input(2)
    population a = LIF(3)
"""

CASES = [
    # ------------------------------------------------------------ syntax
    Case("syntax-equation-without-derivative", neuron("""
        state { v = 0 }
        equations { v = 1 }
    """), Code.SYNTAX, "v = 1", "dx/dt = expression"),
    Case("syntax-two-quantities", neuron("""
        parameters { tau = 20 ms 5 ms }
        state { v = 0 }
    """), Code.SYNTAX, "5 ms", "a number and a unit go together"),
    Case("syntax-comparison-in-reset", neuron("""
        state { v = 0 }
        reset { v >= 0 }
    """), Code.SYNTAX, ">=", "assignments use '='"),
    Case("syntax-missing-operand", neuron("""
        parameters { tau = 20 ms * }
        state { v = 0 }
    """), Code.SYNTAX, "}", None),
    Case("syntax-missing-equals", neuron("""
        parameters { tau 20 ms }
        state { v = 0 }
    """), Code.SYNTAX, "20 ms", "'name = value'"),
    Case("syntax-prime-derivative", neuron("""
        state { v = 0 }
        equations { v' = -v / 10 ms }
    """), Code.SYNTAX, "v'", "dx/dt = expression"),
    Case("syntax-set-value", net("let N = 5\npopulation a = input(N)"), Code.SYNTAX, (1, 2),
         "one constant expression", overrides={"N": "1; population b = input(3)"}, file="--set N"),
    Case("unexpected-character-prime", neuron("""
        state { v = 0 }
        threshold v' >= 1
    """), Code.UNEXPECTED_CHARACTER, "'", "dv/dt"),
    Case("unexpected-character-at", neuron("""
        parameters { tau = 20 ms @ 2 }
    """), Code.UNEXPECTED_CHARACTER, "@", None),
    Case("unexpected-character-open-string", 'import "std/lif.snn\n', Code.UNEXPECTED_CHARACTER, '"',
         "same line"),
    Case("unexpected-character-unicode-name", neuron("""
        parameters { τ = 20 ms }
    """), Code.UNEXPECTED_CHARACTER, "τ", "letters"),
    Case("unexpected-end-missing-brace", "neuron A {\n    state { v = 0 }\n\n", Code.UNEXPECTED_END, (2, 20),
         "every '{'"),
    Case("unexpected-end-set-value", net("let N = 5\npopulation a = input(N)"), Code.UNEXPECTED_END, (1, 4),
         "one constant expression", overrides={"N": "3 *"}, file="--set N"),

    # ------------------------------------------------------------ files and imports
    Case("import-not-found", 'import "nothere.snn"\n' + KIND, Code.IMPORT_NOT_FOUND, '"nothere.snn"',
         "relative to the importing file"),
    Case("import-not-in-library", 'import "std/lif2.snn"\n', Code.IMPORT_NOT_FOUND, '"std/lif2.snn"',
         "std/lif.snn"),
    Case("import-cycle", 'import "a.snn"\n' + KIND, Code.CYCLIC_IMPORT, '"m.snn"', "both import",
         files={"a.snn": 'import "b.snn"\n', "b.snn": '# b\nimport "m.snn"\n'}, file="b.snn"),
    Case("import-name-too-long", 'import "' + "x" * 300 + '.snn"\n', Code.IMPORT_NOT_FOUND, '"xxx', None),
    Case("import-nul-byte", 'import "a\x00b.snn"\n', Code.IMPORT_NOT_FOUND, '"a', None),
    Case("import-self", '# me\nimport "m.snn"\n', Code.CYCLIC_IMPORT, '"m.snn"', None),
    Case("network-in-import", 'import "lib.snn"\n' + net(LIF_NET), Code.NETWORK_IN_IMPORT, "Lib",
         "only define neuron kinds", files={"lib.snn": 'import "std/lif.snn"\nnetwork Lib { population a = LIF(1) }\n'},
         file="lib.snn"),
    Case("second-network", net(LIF_NET) + "network Other { population b = LIF(1) }\n", Code.SECOND_NETWORK,
         "Other", "its own file"),

    # ------------------------------------------------------------ names
    Case("unknown-name-in-equation", neuron("""
        parameters { tau = 10 ms }
        state { v = 0 }
        equations { dv/dt = -v / tua }
    """), Code.UNKNOWN_NAME, "tua", "did you mean tau"),
    Case("unknown-name-in-state", neuron("""
        state { v = E_L }
    """), Code.UNKNOWN_NAME, "E_L", "no names are in scope"),
    Case("unknown-neuron-kind", net("population a = LFI(3)"), Code.UNKNOWN_NAME, "LFI", "did you mean LIF"),
    Case("unknown-neuron-kind-no-import", net("population a = Izhikevich(3)", prefix=""), Code.UNKNOWN_NAME,
         "Izhikevich", "import"),
    Case("unknown-population", net(LIF_NET + "connect inp -> b all_to_all { weight = 1 }"), Code.UNKNOWN_NAME,
         "b all", "defined before"),
    Case("unknown-override", net("population a = LIF(3, tau_n = 5 ms)"), Code.UNKNOWN_NAME, "tau_n",
         "tau_m"),
    Case("unknown-record-variable", net(LIF_NET + "record a.u"), Code.UNKNOWN_NAME, "u\n", "recordable: spikes, v, i"),
    Case("unknown-drive-parameter", net(LIF_NET + "drive a.I_e = 1 from 0 ms to 1 ms"), Code.UNKNOWN_NAME,
         "I_e", "parameters: tau_m"),
    Case("unknown-constant-in-network", net("let N = 5\npopulation a = LIF(M)"), Code.UNKNOWN_NAME, "M)",
         "names in scope: N, dt"),
    Case("dt-used-before-set", net("let T = 2 * dt\ndt = 0.5 ms\npopulation a = LIF(3, tau_m = T)"),
         Code.UNKNOWN_NAME, "2 * dt", "above 'let T' (line 3)"),
    Case("set-unknown-name", net("let N = 5\npopulation a = LIF(N)"), Code.UNKNOWN_NAME, (1, 1),
         overrides={"N": "M + 1"}, file="--set N"),
    Case("duplicate-parameter", neuron("""
        parameters { tau = 10 ms; tau = 20 ms }
        state { v = 0 }
    """), Code.DUPLICATE_NAME, ("tau", 2), "share one namespace"),
    Case("duplicate-parameter-and-state", neuron("""
        parameters { v = 10 ms }
        state { v = 0 }
    """), Code.DUPLICATE_NAME, ("v", 2), "rename one"),
    Case("duplicate-neuron-kind", KIND + KIND, Code.DUPLICATE_NAME, (13, 8), "the first definition is at m.snn:1:1"),
    Case("duplicate-neuron-kind-from-import", 'import "std/lif.snn"\n' + KIND.replace("neuron K", "neuron LIF"),
         Code.DUPLICATE_NAME, "LIF", "std/lif.snn:3:1"),
    Case("duplicate-block", neuron("""
        state { v = 0 }
        state { i = 0 }
    """), Code.DUPLICATE_NAME, "state { i", "merge it into the first one (line 2)"),
    Case("duplicate-equation", neuron("""
        state { v = 0 }
        equations { dv/dt = -v / 1 ms; dv/dt = 0 / 1 ms }
    """), Code.DUPLICATE_NAME, ("dv/dt", 2), "the first is on line 3"),
    Case("reserved-name", neuron("""
        parameters { t = 1 ms }
        state { v = 0 }
        equations { dv/dt = -v / t }
    """), Code.DUPLICATE_NAME, "t =", "another name"),
    Case("neuron-kind-named-input", neuron("state { v = 0 }").replace("neuron A", "neuron input"),
         Code.DUPLICATE_NAME, "input", "spike source"),
    Case("unit-as-name", neuron("""
        state { V = 0 mV }
        equations { dV/dt = -V / 10 ms }
        threshold V >= 1 mV
        reset { V = 0 mV }
        on_event(w) { V += w }
    """), Code.DUPLICATE_NAME, "V =", "V_m"),
    Case("weight-shadows-name", neuron("""
        parameters { w = 1 }
        state { v = 0 }
        on_event(w) { v += w }
    """), Code.DUPLICATE_NAME, "w)", "on_event(weight)"),
    Case("duplicate-population", net("population a = LIF(3)\npopulation a = LIF(4)"), Code.DUPLICATE_NAME,
         ("a", 4), "the first is on line 3"),
    Case("duplicate-projection", net(LIF_NET + "connect inp -> a all_to_all { weight = 1 }\n"
                                     "connect inp -> a one_to_one { weight = 2 }"), Code.DUPLICATE_NAME,
         "connect inp -> a one", "as"),
    Case("duplicate-weight", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; weight = 2 }"),
         Code.DUPLICATE_NAME, "weight = 2", None),
    Case("duplicate-let", net("let N = 1\nlet N = 2\npopulation a = LIF(N)"), Code.DUPLICATE_NAME, ("N", 3),
         None),
    Case("duplicate-dt", net("dt = 0.1 ms\ndt = 0.2 ms\npopulation a = LIF(1)"), Code.DUPLICATE_NAME,
         "dt = 0.2", "the first is on line 3"),
    Case("duplicate-record", net(LIF_NET + "record a.v, a.v"), Code.DUPLICATE_NAME, ("a.v", 2), None),
    Case("duplicate-keyword-argument", net(LIF_NET + "connect a -> a all_to_all(autapses = true, autapses = false)"
                                           " { weight = 1 }"), Code.BAD_ARGUMENT, ("autapses", 2), None),

    # ------------------------------------------------------------ units and dimensions
    Case("unknown-unit", neuron("""
        parameters { tau = 20 msec }
        state { v = 0 }
    """), Code.UNKNOWN_UNIT, "20 msec", "did you mean ms"),
    Case("unknown-unit-no-match", neuron("""
        parameters { tau = 20 furlongs }
        state { v = 0 }
    """), Code.UNKNOWN_UNIT, "20 furlongs", "known units: s, ms"),
    Case("unknown-function", neuron("""
        parameters { a = expp(1) }
        state { v = 0 }
    """), Code.UNKNOWN_FUNCTION, "expp", "did you mean exp"),
    Case("function-arity", neuron("""
        parameters { a = exp(1, 2) }
        state { v = 0 }
    """), Code.BAD_ARGUMENT, "exp(1, 2)", None),
    Case("keyword-in-expression", neuron("""
        parameters { a = exp(x = 1) }
        state { v = 0 }
    """), Code.BAD_ARGUMENT, "x = 1", None),
    Case("dimension-add", neuron("""
        parameters { tau = 10 ms }
        state { v = 0 mV }
        equations { dv/dt = (v - 1) / tau }
    """), Code.DIMENSION_MISMATCH, "v - 1", "'1 mV'"),
    Case("dimension-add-in-equation", KIND.replace("+ i / C", "+ i / tau"), Code.DIMENSION_MISMATCH,
         "-(v - E) / tau + i", None),
    Case("dimension-equation", KIND.replace("-(v - E) / tau + i / C", "i / tau"), Code.DIMENSION_MISMATCH,
         "dv/dt = i", None),
    Case("dimension-dimensionless-state", neuron("""
        parameters { tau = 10 ms; E = -70 mV }
        state { v = 0 }
        equations { dv/dt = (E - v * 1 mV) / tau }
    """), Code.DIMENSION_MISMATCH, "dv/dt", "v = 0 mV"),
    Case("dimension-exp-argument", neuron("""
        parameters { a = exp(2 ms) }
        state { v = 0 }
    """), Code.DIMENSION_MISMATCH, "exp(2 ms)", "exp(-t_ref / tau_m)"),
    Case("dimension-threshold", KIND.replace("v >= th", "v >= 1"), Code.DIMENSION_MISMATCH, "threshold", "'1 mV'"),
    Case("dimension-reset", KIND.replace("reset { v = E }", "reset { v = 0 pA }"), Code.DIMENSION_MISMATCH,
         "v = 0 pA", None),
    Case("dimension-override", net("population a = LIF(3, tau_m = 5 mV)"), Code.DIMENSION_MISMATCH, "5 mV", None),
    Case("dimension-weight", KIND + net("population a = input(1)\npopulation b = K(1)\n"
                                        "connect a -> b all_to_all { weight = 1 mV }", prefix=""),
         Code.DIMENSION_MISMATCH, "1 mV", None),
    Case("missing-time-unit-in-equation", neuron("""
        parameters { tau = 20 }
        state { v = 0 }
        equations { dv/dt = -v / tau }
    """), Code.MISSING_TIME_UNIT, "dv/dt", "give tau a time unit"),
    Case("missing-time-unit-dt", net("dt = 0.1\npopulation a = LIF(1)"), Code.MISSING_TIME_UNIT, "0.1",
         "'0.1 ms'"),
    Case("missing-time-unit-delay", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; delay = 2 }"),
         Code.MISSING_TIME_UNIT, "2 }", "'2 ms'"),
    Case("missing-time-unit-override", net("population a = LIF(3, tau_m = 10)"), Code.MISSING_TIME_UNIT,
         "10)", "'10 ms'"),
    Case("missing-time-unit-refractory", neuron("""
        state { v = 0 }
        threshold v >= 1
        reset { v = 0 }
        refractory 2
    """), Code.MISSING_TIME_UNIT, "refractory 2", "'refractory 2 ms'"),
    Case("missing-time-unit-drive", net(LIF_NET + "drive a.tau_m = 5 ms from 0 to 1 ms"),
         Code.MISSING_TIME_UNIT, "0 to", "'0 ms'"),

    # ------------------------------------------------------------ values
    Case("bad-value-dt-negative", net("dt = -0.1 ms\npopulation a = LIF(1)"), Code.BAD_VALUE, "dt = -0.1", None),
    Case("bad-value-size-zero", net("population a = LIF(0)"), Code.BAD_VALUE, "0)", "round("),
    Case("bad-value-size-fraction", net("population a = LIF(2.5)"), Code.BAD_VALUE, "2.5", "round("),
    Case("bad-value-probability", net(LIF_NET + "connect a -> a fixed_probability(1.5) { weight = 1 }"),
         Code.BAD_VALUE, "1.5", None),
    Case("bad-value-indegree", net(LIF_NET + "connect a -> a fixed_indegree(5) { weight = 1 }"), Code.BAD_VALUE,
         "5)", "a has 3 neurons"),
    Case("bad-value-one-to-one", net(LIF_NET + "connect inp -> a one_to_one { weight = 1 }"), Code.BAD_VALUE,
         "one_to_one", None),
    Case("bad-value-uniform-order", net("population a = LIF(3, v ~ uniform(1, 0))"), Code.BAD_VALUE,
         "uniform", None),
    Case("bad-value-negative-std", net("population a = LIF(3, v ~ normal(0, -1))"), Code.BAD_VALUE, "normal",
         None),
    Case("bad-value-huge-number", net("population a = LIF(3, tau_m = 1e999 ms)"), Code.BAD_VALUE, "1e999",
         "1.8e308"),
    Case("bad-value-division-by-zero", net("let x = 1 / 0\npopulation a = LIF(3)"), Code.BAD_VALUE, "1 / 0",
         None),
    Case("bad-value-complex", net("let x = (-1) ** 0.5\npopulation a = LIF(3)"), Code.BAD_VALUE, "(-1)", None),
    Case("bad-value-power-overflow", net("let x = 10 ** 400\npopulation a = LIF(3)"), Code.BAD_VALUE,
         "10 ** 400", "overflows"),
    Case("bad-value-huge-exponent", neuron("""
        state { v = 0 }
        equations { dv/dt = -v * 10 ** 10 ** 10 / 1 ms }
    """), Code.BAD_VALUE, ("10 ** 10", 2), "at most 1000"),
    Case("bad-value-seed", net("seed = 1.5\npopulation a = LIF(1)"), Code.BAD_VALUE, "1.5", None),
    Case("bad-value-refractory", neuron("""
        state { v = 0 }
        threshold v >= 1
        reset { v = 0 }
        refractory -1 ms
    """), Code.BAD_VALUE, "refractory", None),
    Case("bad-value-initial-state", KIND.replace("v = E;", "v = E / (th - th) * 1 mV;")
         + net("population a = K(1)", prefix=""), Code.BAD_VALUE, "population a", "line 3 of m.snn"),
    Case("bad-value-drive-off-grid", net(LIF_NET + "drive a.tau_m = 5 ms from 0.05 ms to 1 ms"), Code.BAD_VALUE,
         "0.05 ms", None),
    Case("bad-delay-below-dt", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; delay = 0.05 ms }"),
         Code.BAD_DELAY, "= 0.05", "at least dt = 0.1 ms"),
    Case("bad-delay-negative", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; delay = -1 ms }"),
         Code.BAD_DELAY, "= -1", "at least dt = 0.1 ms"),
    Case("bad-delay-uniform-from-zero", net(LIF_NET + "connect inp -> a all_to_all {\n"
                                            "    weight = 1\n    delay ~ uniform(0 ms, 2 ms)\n}"),
         Code.BAD_DELAY, "~ uniform", "smaller dt"),
    Case("bad-delay-normal-without-min", net(LIF_NET + "connect inp -> a all_to_all {\n"
                                             "    weight = 1\n    delay ~ normal(4 ms, 1 ms)\n}"),
         Code.BAD_DELAY, "~ normal", "min = 0.1 ms"),
    Case("bad-delay-normal-min-below-dt", net("dt = 0.5 ms\n" + LIF_NET + "connect inp -> a all_to_all {\n"
                                              "    weight = 1\n    delay ~ normal(4 ms, 1 ms, min = 0.1 ms)\n}"),
         Code.BAD_DELAY, "~ normal", "dt = 0.5 ms"),
    Case("unknown-queue", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; queue = hep }"),
         Code.UNKNOWN_QUEUE, "hep", "did you mean heap"),
    Case("unknown-queue-no-match", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; queue = calendar }"),
         Code.UNKNOWN_QUEUE, "calendar", "ring, fifo, heap, sorted"),
    Case("bad-capacity-zero", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; queue = fifo(capacity = 0) }"),
         Code.BAD_CAPACITY, "0)", "fifo(capacity = 8)"),
    Case("bad-capacity-fraction", net(LIF_NET + "connect inp -> a all_to_all { weight = 1; queue = heap(2.5) }"),
         Code.BAD_CAPACITY, "2.5", "heap(capacity"),
    Case("bad-capacity-record", net(LIF_NET + "record a.spikes(capacity = 0)"), Code.BAD_CAPACITY, "0)", None),
    Case("unknown-connectivity", net(LIF_NET + "connect inp -> a all_2_all { weight = 1 }"),
         Code.UNKNOWN_CONNECTIVITY, "all_2_all", "did you mean all_to_all"),
    Case("unknown-initialiser", net(LIF_NET + "connect inp -> a all_to_all { weight ~ gauss(0, 1) }"),
         Code.UNKNOWN_INITIALIZER, "gauss", "known initialisers"),
    Case("unknown-initialiser-state", net("population a = LIF(3, v ~ unifrom(0, 1))"), Code.UNKNOWN_INITIALIZER,
         "unifrom", "did you mean uniform"),
    Case("bad-argument-missing", net("population a = LIF(3, v ~ normal(0))"), Code.BAD_ARGUMENT, "normal",
         "normal(mean, std)"),
    Case("bad-argument-unknown-keyword", net("population a = LIF(3, v ~ uniform(0, 1, mean = 2))"),
         Code.BAD_ARGUMENT, "mean", "low, high"),
    Case("bad-argument-rule", net(LIF_NET + "connect inp -> a fixed_probability { weight = 1 }"),
         Code.BAD_ARGUMENT, "fixed_probability", "fixed_probability(p)"),
    Case("bad-argument-timing", net("timing = precise\npopulation a = LIF(1)"), Code.BAD_ARGUMENT, "precise",
         "timing = grid"),
    Case("bad-argument-connect-to-input", net(LIF_NET + "connect a -> inp all_to_all { weight = 1 }"),
         Code.BAD_ARGUMENT, "inp all", "only send spikes"),
    Case("bad-argument-input-override", net("population a = input(3, v = 1)"), Code.BAD_ARGUMENT, "v = 1",
         "Python"),
    Case("bad-argument-record-spikes-of-readout", net("population a = LI(3)\nrecord a.spikes",
                                                     prefix='import "std/li.snn"\n'),
         Code.BAD_ARGUMENT, "spikes", "v, i"),
    Case("unsupported-drawn-parameter", net("population a = LIF(3, tau_m ~ uniform(1 ms, 2 ms))"),
         Code.UNSUPPORTED, "tau_m", "tau_m = value"),
    Case("unsupported-deep-nesting", neuron("parameters { a = " + "-" * 150 + "1 }\nstate { v = 0 }"),
         Code.UNSUPPORTED, "-", "intermediate"),

    # ------------------------------------------------------------ neuron structure
    Case("threshold-unknown-variable", neuron("""
        state { v = 0 }
        threshold u >= 1
        reset { v = 0 }
    """), Code.UNKNOWN_VARIABLE, "u >=", "names in scope: v"),
    Case("threshold-without-state", neuron("""
        parameters { a = 1 }
        state { v = 0 }
        threshold a >= 1
        reset { v = 0 }
    """), Code.UNKNOWN_VARIABLE, "threshold", "'threshold v >= v_th'"),
    Case("reset-unknown-variable", neuron("""
        state { v = 0 }
        threshold v >= 1
        reset { u = 0 }
    """), Code.UNKNOWN_VARIABLE, "u = 0", "state block"),
    Case("reset-of-parameter", neuron("""
        parameters { a = 1 }
        state { v = 0 }
        threshold v >= 1
        reset { a = 0 }
    """), Code.UNKNOWN_VARIABLE, "a = 0", "only state variables"),
    Case("on-event-unknown-variable", neuron("""
        state { v = 0 }
        on_event(w) { v += w; u += w }
    """), Code.UNKNOWN_VARIABLE, "u +=", "state block"),
    Case("on-event-unused-weight", neuron("""
        state { v = 0 }
        on_event(w) { v += 1 }
    """), Code.UNKNOWN_VARIABLE, "on_event", "'i += w'"),
    Case("equation-unknown-variable", neuron("""
        state { v = 0 }
        equations { du/dt = -v / 1 ms }
    """), Code.UNKNOWN_VARIABLE, "du/dt", "'state { u = 0 }'"),
    Case("missing-state", neuron("parameters { a = 1 }"), Code.MISSING_BLOCK, "A", "state { v = 0 mV }"),
    Case("reset-without-threshold", neuron("""
        state { v = 0 }
        reset { v = 0 }
    """), Code.MISSING_BLOCK, "reset", "add 'threshold"),
    Case("threshold-without-reset", neuron("""
        state { v = 0 }
        threshold v >= 1
    """), Code.MISSING_BLOCK, "threshold", "spike forever"),
    Case("refractory-without-assignment", neuron("""
        state { v = 0 }
        threshold v >= 1
        reset { v += 1 }
        refractory 1 ms
    """), Code.MISSING_BLOCK, "refractory", "held at that value"),
    Case("projection-without-weight", net(LIF_NET + "connect inp -> a all_to_all { delay = 1 ms }"),
         Code.MISSING_BLOCK, "connect", "'weight = 0.5'"),
    Case("projection-to-kind-without-on-event", neuron("""
        state { v = 0 }
        equations { dv/dt = -v / 1 ms }
    """) + net("population a = input(1)\npopulation b = A(1)\nconnect a -> b all_to_all { weight = 1 }",
               prefix=""), Code.MISSING_BLOCK, "b all", "on_event(w)"),
    Case("network-without-populations", net("dt = 0.1 ms"), Code.MISSING_BLOCK, "N {", "population hid"),
    Case("no-network-for-set", KIND, Code.NO_NETWORK, None, "only neuron kinds", overrides={"N": "1"}),
    Case("set-unknown-constant", net("let N = 1\npopulation a = LIF(N)"), Code.UNKNOWN_NAME, None,
         "its constants: N", overrides={"M": "2"}),
    Case("set-misspelt-constant", net("let N_exc = 1\npopulation a = LIF(N_exc)"), Code.UNKNOWN_NAME, None,
         "did you mean N_exc", overrides={"N_ecx": "2"}),
    Case("many-errors-at-once", neuron("""
        parameters { tau = 10 msec }
        state { v = 0 }
        equations { dv/dt = -v / 1 ms + q }
    """), Code.UNKNOWN_UNIT, "10 msec", "ms", errors=2),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_model_is_rejected_with_a_located_error(case, tmp_path):
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "m.snn").write_text(case.text)
    with pytest.raises(QgenError) as info:
        check_model(load_model(tmp_path / "m.snn", case.overrides))
    err = info.value
    first = getattr(err, "errors", [err])[0]
    message = str(err)
    # The command line reports the same error, in full, with exit status 2.
    options = [f"--set={k}={v}" for k, v in (case.overrides or {}).items()]
    cli = CliRunner().invoke(main, ["check", str(tmp_path / "m.snn"), *options])
    assert cli.exit_code == 2 and first.format() in cli.output and "Traceback" not in cli.output, cli.output
    assert first.code is case.code, message
    assert len(getattr(err, "errors", [err])) == case.errors, message
    assert f"error {case.code.id}: " in message
    if case.hint is not None:
        assert first.hint and case.hint in first.hint, message
    if case.at is None:  # not about a place in a file: no location
        assert first.where is None and first.excerpt is None
        return
    text = case.text if case.file == "m.snn" else case.files.get(case.file) or case.overrides[case.file[6:]]
    line, column = _position(text, case.at)
    assert first.where == f"{case.file}:{line}:{column}", message
    source_line = text.split("\n")[line - 1]
    assert f"\n    {source_line}\n    {' ' * (column - 1)}^" in message, message


def _position(text: str, at) -> tuple[int, int]:
    if isinstance(at, tuple) and isinstance(at[0], int):
        return at
    piece, nth = (at, 1) if isinstance(at, str) else at
    index = -1
    for _ in range(nth):
        index = text.index(piece, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def test_every_frontend_code_has_a_case():
    frontend_codes = {Code.SYNTAX, Code.UNEXPECTED_CHARACTER, Code.UNEXPECTED_END, Code.IMPORT_NOT_FOUND,
                      Code.CYCLIC_IMPORT, Code.NETWORK_IN_IMPORT, Code.UNKNOWN_NAME, Code.DUPLICATE_NAME,
                      Code.UNKNOWN_UNIT, Code.UNKNOWN_FUNCTION, Code.BAD_ARGUMENT, Code.DIMENSION_MISMATCH,
                      Code.MISSING_TIME_UNIT, Code.BAD_VALUE, Code.BAD_DELAY, Code.UNKNOWN_QUEUE,
                      Code.BAD_CAPACITY, Code.UNKNOWN_CONNECTIVITY, Code.UNKNOWN_INITIALIZER,
                      Code.UNKNOWN_VARIABLE, Code.MISSING_BLOCK, Code.UNSUPPORTED, Code.NO_NETWORK,
                      Code.SECOND_NETWORK}
    assert frontend_codes <= {c.code for c in CASES}
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------- non-linear dynamics and exact timing

NONLINEAR = """\
neuron Quad {
    parameters { tau = 10 ms }
    state { v = 0; i = 0 }
    equations {
        dv/dt = (v * v + i) / tau
        di/dt = -i / tau
    }
    threshold v >= 1
    reset { v = 0 }
    on_event(w) { i += w }
}
network N {
    timing = exact
    population a = Quad(2)
}
"""


def test_nonlinear_dynamics_with_exact_timing(tmp_path):
    path = tmp_path / "q.snn"
    path.write_text(NONLINEAR)
    sources = {}
    model = load_model(path, sources=sources)
    with pytest.raises(QgenError) as info:
        check_model(model, sources)
    err = info.value
    assert err.code is Code.NONLINEAR_EXACT
    assert err.where == "q.snn:5:9"
    assert "\n            dv/dt = (v * v + i) / tau\n            ^" in str(err)
    assert "timing = grid" in err.hint
    # the same kind is fine on the grid
    path.write_text(NONLINEAR.replace("timing = exact", "timing = grid"))
    check_model(load_model(path))


def test_nonlinear_threshold_with_exact_timing(tmp_path):
    path = tmp_path / "q.snn"
    path.write_text(NONLINEAR.replace("v * v + i", "i - v").replace("threshold v >= 1", "threshold v * v >= 1"))
    sources = {}
    model = load_model(path, sources=sources)
    with pytest.raises(QgenError) as info:
        check_model(model, sources)
    assert info.value.code is Code.NONLINEAR_EXACT
    assert info.value.where == "q.snn:8:5"
    assert "\n        threshold v * v >= 1\n        ^" in str(info.value)


# ---------------------------------------------------------------- files that cannot be read


def test_missing_model_file(tmp_path):
    with pytest.raises(QgenError) as info:
        load_model(tmp_path / "nothere.snn")
    assert info.value.code is Code.UNREADABLE_FILE
    assert "nothere.snn" in str(info.value) and info.value.hint


def test_model_file_is_a_folder(tmp_path):
    with pytest.raises(QgenError) as info:
        load_model(tmp_path)
    assert info.value.code is Code.UNREADABLE_FILE


def test_model_file_not_utf8(tmp_path):
    path = tmp_path / "bin.snn"
    path.write_bytes(b"neuron \xff\xfe {}")
    with pytest.raises(QgenError) as info:
        load_model(path)
    assert info.value.code is Code.UNREADABLE_FILE and "UTF-8" in str(info.value)


def test_imported_file_not_utf8_points_at_the_import(tmp_path):
    (tmp_path / "bin.snn").write_bytes(b"\xff")
    (tmp_path / "m.snn").write_text('# a model\nimport "bin.snn"\n')
    with pytest.raises(QgenError) as info:
        load_model(tmp_path / "m.snn")
    assert info.value.code is Code.UNREADABLE_FILE
    assert info.value.where == "m.snn:2:8"
    assert '\n    import "bin.snn"\n           ^' in str(info.value)


# ---------------------------------------------------------------- how messages are shown


def test_caret_follows_tabs(tmp_path):
    path = tmp_path / "m.snn"
    path.write_text("neuron A {\n\tparameters {\ttau = 20 msec }\n\tstate { v = 0 }\n}\n")
    with pytest.raises(QgenError) as info:
        load_model(path)
    assert info.value.where == "m.snn:2:21"  # columns count characters: a tab is one
    assert "\n        parameters {    tau = 20 msec }\n" + " " * 30 + "^~~~~~~\n" in str(info.value)


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_line_numbers_with_other_line_breaks(tmp_path, newline):
    path = tmp_path / "m.snn"
    # a form feed and a unicode line separator inside a comment do not start lines for the parser
    text = newline.join(["# page one\x0c still line one", "# \u2028 still line two",
                         "neuron A {", "    state { v = 0 }", "    equations { dv/dt = -v / 1 ms + q }", "}", ""])
    path.write_bytes(text.encode())
    with pytest.raises(QgenError) as info:
        load_model(path)
    assert info.value.where == "m.snn:5:37"
    assert "\n        equations { dv/dt = -v / 1 ms + q }\n" in str(info.value)


def test_several_errors_are_reported_in_source_order(tmp_path):
    path = tmp_path / "m.snn"
    path.write_text(net("population a = LIF(0)\npopulation b = LFI(1)\ndt = 0.1"))
    with pytest.raises(QgenError) as info:
        load_model(path)
    errors = info.value.errors
    assert [(e.code, e.where) for e in errors] == [(Code.BAD_VALUE, "m.snn:3:24"),
                                                  (Code.UNKNOWN_NAME, "m.snn:4:20"),
                                                  (Code.MISSING_TIME_UNIT, "m.snn:5:10")]
    assert str(info.value).endswith("3 errors")
