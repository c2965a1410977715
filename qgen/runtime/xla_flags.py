"""Two XLA:CPU settings the JAX target depends on for its speed, applied when qgen is imported.

XLA:CPU runs a program as a sequence of kernels ("thunks"), at a fixed cost of the order of a
microsecond each; a simulation step of a small network is hundreds of tiny kernels, so that cost
is most of its time. A while loop whose buffers are small enough, and which holds no sort, scatter
or custom call, is instead compiled into one function (``SmallWhileLoopHoistingPass``), the step's
kernels inlined into it. qgen raises the size limit (a kilobyte by default) to ``THRESHOLD`` bytes,
which covers the scans of the networks the JAX target is meant for, and turns off XLA:CPU's newer
fusion emitters, which keep a scatter as a scatter kernel (so a loop holding one is not compiled as
one function); the classic emitters expand a scatter into a loop. The recurrent network of the
EventQueues paper ran 1.9x faster, the queue micro-benchmark 2-7x.

The size limit is a backend option, which ``jax.jit``'s ``compiler_options`` cannot carry (it takes
scalar options only), and the gradient runs in the user's own ``jax.jit``, so both settings go into
the ``XLA_FLAGS`` environment variable, which XLA reads once, when JAX compiles its first program:
qgen sets them at import time (a setting already in ``XLA_FLAGS`` is left as it is; backend options
there are extended; ``QGEN_XLA_FLAGS=0`` sets nothing). If JAX compiled something before qgen was
imported, they cannot take effect any more; :func:`in_effect` tells, and the JAX target warns once.
Both settings concern XLA:CPU only.
"""

from __future__ import annotations

import os
from typing import MutableMapping

OPTION = "xla_cpu_small_while_loop_byte_threshold"
THRESHOLD = 256 * 2**20  # bytes accessed by one while loop, below which XLA:CPU compiles it as one function
EXTRA = "--xla_backend_extra_options="
EMITTERS = "--xla_cpu_use_fusion_emitters"
ORIGINAL = os.environ.get("XLA_FLAGS")  # before qgen's import set it (benchmarks run peers without qgen's settings)


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Add ``OPTION=THRESHOLD`` to the backend options and turn the fusion emitters off in
    ``environ["XLA_FLAGS"]``."""
    if environ.get("QGEN_XLA_FLAGS", "1") == "0":
        return
    flags = environ.get("XLA_FLAGS", "")
    parts = flags.split()
    if EMITTERS not in flags:
        parts.append(EMITTERS + "=false")
    if OPTION not in flags:
        setting = f"{OPTION}={THRESHOLD}"
        for i, part in enumerate(parts):
            if part.startswith(EXTRA):  # XLA keeps the last occurrence of a flag: extend the one there
                parts[i] = part + ("," if part != EXTRA else "") + setting
                break
        else:
            parts.append(EXTRA + setting)
    environ["XLA_FLAGS"] = " ".join(parts)


def in_effect() -> bool:
    """Whether this process's XLA:CPU compiles a while loop over 512 KiB holding a scatter as one
    function (it does not by default): compiles such a loop and looks for the mark the pass leaves."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def loop(x, at):
        return lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1].at[at].add(1.0)), (0, x))[1]

    compiled = jax.jit(loop).lower(jnp.zeros(2**17, jnp.float32), jnp.zeros(4, jnp.int32)).compile()
    return "xla_cpu_small_call" in compiled.as_text()
