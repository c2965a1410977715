"""What the network builder (templates/c/network.c.j2) draws, and its C declarations.

Kept free of sympy: the runtime asks it on the cached-load path of every target.
"""

from __future__ import annotations

from qgen.ir.nodes import Model

BUILDER_CDEF = {  # templates/c/network.c.j2
    "fixed_total_number": "int qgen_fixed_total_number(uint64_t key, int64_t n, int64_t n_pre, int64_t n_post, "
                          "int no_autapses, int64_t *out_start, int32_t *post);\n",
    "uniform": "void qgen_draw_uniform(uint64_t key, int64_t n, double low, double high, double *out);\n",
    "normal": "int64_t qgen_draw_normal(uint64_t key, int64_t n, double mean, double std, double low, double high, "
              "int truncate, int64_t max_attempts, double *out);\n",
}


def network_draws(model: Model) -> set[str]:
    """The builder functions this model's network needs: the connectivity rule and initialisers
    that are drawn in the generated code (constants are not drawn; other rules are drawn by the runtime)."""
    draws = set()
    for proj in model.network.projections:
        if proj.connectivity.kind == "fixed_total_number":
            draws.add("fixed_total_number")
        for init in (proj.weight, proj.delay):
            if init.kind != "constant":
                draws.add("normal" if init.kind in ("normal", "truncated_normal") else init.kind)
    return draws
