"""The peers of the qgen benchmarks (DESIGN.md §8): adseq 0.9.4 on JAX-CPU, NEST 3.10 and
Brian2 (cpp_standalone). Each module runs its peer on a benchmark workload in a fresh subprocess
per measurement and returns plain dicts (JSON-ready); see README.md beside this file.

    from benchmarks.peers import adseq_queue, adseq_rsnn, nest_brunel, brian2_brunel
    adseq_queue.run("ring")                 # µs per step, delivered events, compile time
    adseq_rsnn.run("fifo", mode="grad")     # µs per step of simulation + jax.grad, peak memory
    nest_brunel.run(N=10000, duration_ms=1000)
    brian2_brunel.run(N=10000, duration_ms=1000)
"""
