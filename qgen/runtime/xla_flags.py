"""One XLA:CPU setting the JAX target depends on for its speed, applied when qgen is imported.

XLA:CPU runs a program as a sequence of kernels ("thunks"), at a fixed cost of the order of a
microsecond each; a simulation step of a small network is hundreds of tiny kernels, so that cost
is most of its time. A while loop whose buffers are small enough, and which holds no sort, scatter
or custom call, is instead compiled into one function (``SmallWhileLoopHoistingPass``), the step's
kernels inlined into it. The size limit is a few kilobytes by default; qgen raises it to
``THRESHOLD`` bytes, which covers the scans of the networks the JAX target is meant for (the
recurrent network of the EventQueues paper ran 1.9x faster, the queue micro-benchmark 2-7x).

The limit is a backend option, which ``jax.jit``'s ``compiler_options`` cannot carry (it takes
scalar options only), so it goes into the ``XLA_FLAGS`` environment variable, which XLA reads once,
when JAX compiles its first program: qgen sets it at import time (merged with any
``--xla_backend_extra_options`` already there; left alone when the option is already set, or when
``QGEN_XLA_FLAGS=0``). If JAX compiled something before qgen was imported, the setting cannot take
effect any more; :func:`in_effect` tells, and the JAX target warns once.
"""

from __future__ import annotations

import os
from typing import MutableMapping

OPTION = "xla_cpu_small_while_loop_byte_threshold"
THRESHOLD = 256 * 2**20  # bytes accessed by one while loop, below which XLA:CPU compiles it as one function
EXTRA = "--xla_backend_extra_options="


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Add ``OPTION=THRESHOLD`` to the backend options in ``environ["XLA_FLAGS"]``."""
    if environ.get("QGEN_XLA_FLAGS", "1") == "0":
        return
    flags = environ.get("XLA_FLAGS", "")
    if OPTION in flags:
        return
    parts = flags.split()
    setting = f"{OPTION}={THRESHOLD}"
    for i, part in enumerate(parts):
        if part.startswith(EXTRA):  # XLA keeps the last occurrence of a flag: extend the one there
            parts[i] = part + ("," if part != EXTRA else "") + setting
            break
    else:
        parts.append(EXTRA + setting)
    environ["XLA_FLAGS"] = " ".join(parts)


def in_effect() -> bool:
    """Whether this process's XLA:CPU compiles a while loop over 512 KiB as one function (it does
    not by default): compiles a three-iteration loop and looks for the mark the pass leaves."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def loop(x):
        return lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] * 2.0), (0, x))[1]

    compiled = jax.jit(loop).lower(jnp.zeros(2**17, jnp.float32)).compile()
    return "xla_cpu_small_call" in compiled.as_text()
