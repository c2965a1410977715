"""The adjoint terms printed as C (qgen.codegen.adjoint_c) against the NumPy ones they come from."""

from __future__ import annotations

import re

import cffi
import numpy as np
import pytest

from qgen.analysis import analyse
from qgen.analysis.numeric_adjoint import NumericAdjoint
from qgen.codegen.adjoint_c import adjoint_functions
from qgen.codegen.kinds import kind_code
from qgen.codegen.names import c_identifier
from qgen.frontend import load_model


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """name of a stdlib kind -> (analysis, cffi lib of its adjoint functions with exported wrappers)."""
    folder = tmp_path_factory.mktemp("adjoint_c")
    cache = {}

    def get(name: str):
        if name in cache:
            return cache[name]
        path = folder / f"{name}.snn"
        path.write_text(f'import "std/{name}.snn"\n')
        analysis = analyse(load_model(path).neurons[0])
        source = "#include <math.h>\ntypedef double real;\n" + kind_code(analysis, "float64").functions + "\n" \
            + adjoint_functions(analysis, "float64")
        wrappers, cdefs = [], []
        for signature in re.findall(r"^static (\w+ \w+_(?:adj_\w+|propagator_gradients)\([^)]*\))", source, re.M):
            ret, rest = signature.split(" ", 1)
            fname, args = rest.split("(", 1)
            call = ", ".join(a.split()[-1].lstrip("*") for a in args.rstrip(")").split(","))
            wrapper = f"{ret} w_{fname}({args}"
            cdefs.append(wrapper.replace("real", "double") + ";")
            wrappers.append(f"{wrapper} {{ {'return ' if ret != 'void' else ''}{fname}({call}); }}")
        ffi = cffi.FFI()
        ffi.cdef("\n".join(cdefs))
        ffi.set_source(f"_adj_{name}", source + "\n" + "\n".join(wrappers), extra_compile_args=["-O1", "-w"])
        ffi.compile(tmpdir=str(folder))
        import importlib.util
        module_path = next(folder.glob(f"_adj_{name}*.so"))
        spec = importlib.util.spec_from_file_location(f"_adj_{name}", module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cache[name] = (analysis, module.ffi, module.lib)
        return cache[name]
    return get


def call(ffi, fn, *args, size=None):
    converted = [ffi.new("double[]", list(a)) if isinstance(a, np.ndarray) else a for a in args]
    if size is None:
        return fn(*converted)
    out = ffi.new("double[]", size)
    fn(*converted, out)
    return np.array(list(out))


@pytest.mark.parametrize("name", ["lif", "lif_alpha", "alif", "iaf_psc_exp"])
@pytest.mark.parametrize("degenerate", [False, True])
def test_printed_adjoint_terms_equal_the_numpy_terms(compiled, name, degenerate):
    analysis, ffi, lib = compiled(name)
    kind = analysis.kind
    params = {p.name: p.value for p in kind.parameters}
    if "t_ref" in params:
        params["t_ref"] = 2.0
    if degenerate:  # the τ_m = τ_s branch of every Piecewise
        other = "tau_s" if "tau_s" in params else "tau_syn"
        params[other] = params["tau_m"]
    num = NumericAdjoint(analysis, params)
    n, k = num.n, len(params)
    p = np.array([params[name] for name in kind.parameter_names])
    rng = np.random.default_rng(0)
    c = c_identifier(kind.name)
    fn = lambda suffix: getattr(lib, f"w_{c}_{suffix}")  # noqa: E731
    for _ in range(3):
        x, lam, w = rng.normal(size=n), rng.normal(size=n), rng.normal()
        x[0] = params.get("v_th", 1.0) - 0.5  # a crossing from below has a positive slope somewhere
        for refractory, suffix in ((False, "adj_event"), (True, "adj_event_refractory")):
            g = num.event(x, w, lam, refractory)
            out = call(ffi, fn(suffix), p, x, w, lam, size=n + 2 + k)
            np.testing.assert_allclose(out, [*g.adjoint, g.weight, g.time, *g.parameters], rtol=1e-12, atol=1e-12)
        dL_dt = rng.normal()
        g = num.spike(x, lam, dL_dt)
        out = call(ffi, fn("adj_spike"), p, x, lam, dL_dt, size=n + k)
        np.testing.assert_allclose(out, [*g.adjoint, *g.parameters], rtol=1e-12, atol=1e-12)
        g = num.reset(x, lam)
        out = call(ffi, fn("adj_reset"), p, x, lam, size=n + 1 + k)
        np.testing.assert_allclose(out, [*g.adjoint, g.time, *g.parameters], rtol=1e-12, atol=1e-12)
        assert call(ffi, fn("adj_end"), p, x, lam) == pytest.approx(num.refractory_end_time_gradient(x, lam),
                                                                   rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(call(ffi, fn("adj_period"), p, size=k), num.refractory_period_gradient, atol=1e-15)
    for delta in (0.05, 3.0):
        out = call(ffi, fn("propagator_gradients"), p, delta, size=k * n * (n + 1)).reshape(k, n, n + 1)
        np.testing.assert_allclose(out, num.propagator_gradients(delta)[:, :n, :], rtol=1e-10, atol=1e-12)


def test_a_power_in_a_denominator_keeps_its_parentheses():
    # a/b**2 once printed as a/b*b, which C reads as a: the parameter gradients found it
    import sympy as sp

    from qgen.codegen.printer import CPrinter

    a, b = sp.symbols("a b", positive=True)
    text = CPrinter("float64", {}).doprint(a / b**2)
    assert eval(text.replace("1.0/", "1/"), {"a": 3.0, "b": 2.0}) == pytest.approx(0.75)
