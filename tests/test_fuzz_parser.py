"""Parser robustness: mutated models either load or are rejected with a QgenError.

Hypothesis takes the example and standard-library models and deletes, duplicates, swaps and
inserts tokens and characters. Whatever comes out, load_model + check_model must either succeed
or raise QgenError (with a location when it points into a file) — never another exception, never
a hang. The runs are derandomised, so CI sees the same inputs every time.
"""

from __future__ import annotations

import re
import string
import tempfile
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qgen.analysis import check_model
from qgen.errors import QgenError
from qgen.frontend import load_model
from qgen.frontend.units import UNITS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.snn"))
STDLIB = sorted(p for p in resources.files("qgen.stdlib").iterdir() if p.name.endswith(".snn"))
CORPUS = {f"examples/{p.name}": p.read_text() for p in EXAMPLES}
CORPUS.update({f"std/{p.name}": p.read_text() for p in STDLIB})

# Whitespace and comments are tokens too, so that joining the tokens gives the text back.
TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?'
                   r"|[A-Za-z_]\w*|->|\*\*|[-+*/]=|[<>]=|.", re.S)

KEYWORDS = ["import", "neuron", "parameters", "state", "equations", "threshold", "reset", "refractory",
            "on_event", "network", "let", "dt", "timing", "seed", "population", "connect", "as", "record",
            "drive", "from", "to", "weight", "delay", "queue", "trainable", "input", "exact", "grid",
            "all_to_all", "one_to_one", "fixed_probability", "fixed_indegree", "explicit", "ring", "fifo",
            "heap", "sorted", "capacity", "autapses", "true", "false", "normal", "uniform", "constant",
            "truncated_normal", "min", "max", "exp", "log", "sqrt", "dv/dt", "spikes", "v", "i", "w"]
PIECES = (KEYWORDS + list(UNITS) + list("{}()[];,.=~+-*/<>#\"'\\") +
          ["->", "**", "+=", ">=", "0", "1", "-1", "0.5", "1e999", "1e-999", "20 ms", "-70 mV", "1e3",
           '"std/lif.snn"', '"missing.snn"', '"', "\n", "\t", "\r", "\x0c", "\x00", "µs", "é", "τ", "\u00a0",
           "\u2028", "→", "\U0001d70f", "\ufeff"])

piece = st.one_of(st.sampled_from(PIECES), st.text(string.printable, min_size=1, max_size=3),
                  st.text(min_size=1, max_size=2))
position = st.integers(min_value=0, max_value=10**6)
mutation = st.one_of(
    st.tuples(st.just("delete token"), position),
    st.tuples(st.just("duplicate token"), position),
    st.tuples(st.just("swap tokens"), position, position),
    st.tuples(st.just("insert token"), position, piece),
    st.tuples(st.just("delete char"), position),
    st.tuples(st.just("duplicate chars"), position, st.integers(1, 40)),
    st.tuples(st.just("swap chars"), position, position),
    st.tuples(st.just("insert char"), position, piece),
    st.tuples(st.just("replace char"), position, piece),
)


def mutate(text: str, mutations) -> str:
    for m in mutations:
        kind = m[0]
        if kind.endswith("token"):
            tokens = TOKEN.findall(text) or [""]
            i = m[1] % len(tokens)
            if kind == "delete token":
                del tokens[i]
            elif kind == "duplicate token":
                tokens.insert(i, tokens[i])
            else:
                tokens.insert(i, m[2])
            text = "".join(tokens)
        elif kind == "swap tokens":
            tokens = TOKEN.findall(text) or [""]
            i, j = m[1] % len(tokens), m[2] % len(tokens)
            tokens[i], tokens[j] = tokens[j], tokens[i]
            text = "".join(tokens)
        else:
            n = max(1, len(text))
            i = m[1] % n
            if kind == "delete char":
                text = text[:i] + text[i + 1:]
            elif kind == "duplicate chars":
                text = text[:i + m[2]] + text[i:]
            elif kind == "swap chars":
                j = m[2] % n
                chars = list(text)
                if chars:
                    chars[i], chars[j % len(chars)] = chars[j % len(chars)], chars[i]
                text = "".join(chars)
            elif kind == "insert char":
                text = text[:i] + m[2] + text[i:]
            else:
                text = text[:i] + m[2] + text[i + 1:]
    return text


def test_mutate_changes_text_as_asked():
    text = "neuron A { state { v = 0 } }"
    assert TOKEN.findall(text)[0:3] == ["neuron", " ", "A"]
    assert "".join(TOKEN.findall(CORPUS["examples/yinyang.snn"])) == CORPUS["examples/yinyang.snn"]
    assert mutate(text, [("delete token", 0)]) == " A { state { v = 0 } }"
    assert mutate(text, [("swap tokens", 0, 2)]) == "A neuron { state { v = 0 } }"
    assert mutate(text, [("insert char", 0, "é")]) == "é" + text
    assert mutate(text, [("duplicate chars", 0, 3)]) == "neu" + text


def load_or_reject(text: str, folder: Path, name: str = "model.snn") -> QgenError | None:
    """Load and check; return the QgenError or None. Any other exception fails the test."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    try:
        check_model(load_model(path))
    except QgenError as err:
        text = str(err)
        assert text and err.code.id in text
        if err.where is not None and not err.where.startswith("--set"):
            file, line, column = err.where.rsplit(":", 2)
            assert int(line) >= 1 and int(column) >= 1
        return err
    return None


# A sibling file so that inserted or mutated relative imports can resolve.
SIBLING = "neuron Extra { state { v = 0 } equations { dv/dt = -v / 10 ms } on_event(w) { v += w } }\n"


@settings(max_examples=300, deadline=10000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CORPUS)), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_models_load_or_raise_qgen_error(name, mutations):
    text = mutate(CORPUS[name], mutations)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "other.snn").write_text(SIBLING)
        load_or_reject(text, Path(tmp))


@pytest.mark.parametrize("text", [
    "(" * 5000,
    "neuron A { parameters { a = " + "(" * 5000 + "1" + ")" * 5000 + " } state { v = 0 } }",
    "neuron A { parameters { a = " + "-" * 5000 + "1 } state { v = 0 } }",
    "neuron A { parameters { a = 1" + " + 1" * 5000 + " } state { v = 0 } }",
    "neuron A { parameters { a = " + "exp(" * 3000 + "1" + ")" * 3000 + " } state { v = 0 } }",
    "neuron A { state { v = 0 } equations { dv/dt = " + "-(" * 5000 + "v" + ")" * 5000 + " / 1 ms } }",
    "{" * 5000,
    '"' * 5001,
    "neuron " * 5000,
], ids=["open-parens", "balanced-parens", "minus-chain", "long-sum", "nested-calls", "nested-equation",
        "open-braces", "quotes", "keywords"])
def test_deep_nesting_is_rejected_cleanly(text, tmp_path):
    err = load_or_reject(text, tmp_path)
    if text.startswith("neuron A { parameters { a = ((("):
        assert err is None  # brackets alone do not nest the expression tree
    else:
        assert err is not None and err.where and err.where.startswith("model.snn:1:")


@pytest.mark.parametrize("value", ["1e999 ms", "1e999", "-1e999 ms", "1e308 * 10 ms", "10 ** 400 ms",
                                   "1e-999 ms", "(-1) ** 0.5 * 1 ms", "0 / 0 * 1 ms", "1 ms ** 1e999",
                                   "99999999999999999999999999999999999999e999 ms"])
def test_huge_and_odd_numbers_are_rejected_cleanly(value, tmp_path):
    text = ('import "std/lif.snn"\n'
            f"network N {{\n    dt = {value}\n    population a = LIF(10)\n}}\n")
    err = load_or_reject(text, tmp_path)
    assert err is not None
    assert err.where.startswith("model.snn:3:")


@settings(max_examples=100, deadline=10000, derandomize=True, database=None)
@given(value=st.one_of(st.text(max_size=12),
                       st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map(" ".join)))
def test_any_set_value_loads_or_raises_qgen_error(value):
    """--set N=<anything>: a new value for a constant, or an error that points into the value."""
    try:
        model = load_model(ROOT / "examples" / "rsnn.snn", overrides={"N": value})
    except QgenError as err:
        assert err.where is None or err.where.startswith(("--set N:", "rsnn.snn:")), str(err)
        return
    assert model.network.population("rec").size >= 1
