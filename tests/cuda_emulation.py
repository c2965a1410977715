"""The CUDA target's kernels on the CPU: a stand-in for pycuda's driver for the ``emulated`` backend.

The generated ``model.cu`` is compiled as C++ with g++ behind a shim of CUDA's built-ins. A launch
of a per-step kernel runs its blocks and threads one after another (they never wait for each other;
a barrier there stops the process with a message). ``qgen_steps``, whose blocks of a trial meet at
barriers, runs every thread of the launch as a fiber (``ucontext``) on one OS thread: a thread runs
until it waits (``__syncthreads``, the spin of the trial's grid barrier through ``__nanosleep``),
then the next one runs. ``qgen_backward``, whose threads of a block meet at barriers and share
``__shared__`` variables (static here), runs a block at a time, its threads as fibers. So the kernels
are run with several threads and blocks per trial, sharing their work as on the GPU, and the
barriers must hold for the results to be right; what the emulation cannot show is a race between
two instructions (threads switch only where they wait) or the order of atomic additions (they are
plain operations). The kernels are compiled with g++'s undefined-behaviour sanitizer, which stops the
process where one does something C++ leaves undefined (a shift by 64 bits once pushed a spike twice).
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
from pathlib import Path

import numpy as np

SHIM = r"""
/* CUDA built-ins for running generated kernels on the CPU (tests/cuda_emulation.py). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
struct qgen_dim3 { unsigned int x, y, z; };
static qgen_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __constant__
#define __shared__ static  /* a block at a time where a kernel uses it (qgen_backward) */
static inline int atomicAdd(int *a, int v) { int old = *a; *a += v; return old; }
static inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v)
{ unsigned long long old = *a; *a += v; return old; }
static inline double atomicAdd(double *a, double v) { double old = *a; *a += v; return old; }
static inline float atomicAdd(float *a, float v) { float old = *a; *a += v; return old; }
static inline int atomicCAS(int *a, int compare, int v) { int old = *a; if (old == compare) *a = v; return old; }
static inline long long atomicMin(long long *a, long long v) { long long old = *a; if (v < old) *a = v; return old; }
static inline unsigned long long atomicOr(unsigned long long *a, unsigned long long v)
{ unsigned long long old = *a; *a |= v; return old; }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline long long __double_as_longlong(double x) { long long r; memcpy(&r, &x, sizeof r); return r; }
static inline double __longlong_as_double(long long x) { double r; memcpy(&r, &x, sizeof r); return r; }
#define __threadfence() ((void)0)  /* one OS thread: every write is seen at once */
static long long qgen_clock;
static inline long long clock64(void) { return ++qgen_clock; }  /* counts calls: a clock that moves */

/* The fibers of one launch of qgen_steps. */
struct qgen_fiber {
    ucontext_t context;
    qgen_dim3 thread, block;
    int done;
};
static struct {
    qgen_fiber *fibers;
    int current, active;
    long *arrived, *live, *generation;  /* per block (x + y * gridDim.x): __syncthreads */
    int *vote, *result;  /* per block: __syncthreads_or */
    ucontext_t scheduler;
} qgen_emu;

/* Back to the scheduler, which runs the next fiber. */
static void qgen_yield(void)
{
    swapcontext(&qgen_emu.fibers[qgen_emu.current].context, &qgen_emu.scheduler);
}

/* Every live thread of the block has arrived: open the barrier. */
static void qgen_release(int block)
{
    qgen_emu.arrived[block] = 0;
    qgen_emu.result[block] = qgen_emu.vote[block];
    qgen_emu.vote[block] = 0;
    ++qgen_emu.generation[block];
}

/* Wait for the block's other threads; whether any of them voted. */
static int qgen_block_barrier(int vote)
{
    if (!qgen_emu.active) {
        if (blockDim.x > 1) {
            fprintf(stderr, "emulation: a barrier in a kernel launched without fibers\n");
            abort();
        }
        return vote;
    }
    const int block = qgen_emu.fibers[qgen_emu.current].block.x + qgen_emu.fibers[qgen_emu.current].block.y * gridDim.x;
    const long seen = qgen_emu.generation[block];
    qgen_emu.vote[block] |= vote;
    if (++qgen_emu.arrived[block] == qgen_emu.live[block]) qgen_release(block);
    while (qgen_emu.generation[block] == seen) qgen_yield();
    return qgen_emu.result[block];
}

static inline void __syncthreads(void) { qgen_block_barrier(0); }
static inline int __syncthreads_or(int predicate) { return qgen_block_barrier(predicate != 0); }

static inline void __nanosleep(unsigned) { if (qgen_emu.active) qgen_yield(); }
"""

LAUNCHER = r"""
extern "C" void qgen_emulate_launch(void (*kernel)(int64_t), unsigned gx, unsigned gy, unsigned bx, int64_t n)
{
    gridDim = {gx, gy, 1};
    blockDim = {bx, 1, 1};
    for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x)
            for (unsigned t = 0; t < bx; ++t) {
                blockIdx = {x, y, 0};
                threadIdx = {t, 0, 0};
                kernel(n);
            }
}

static void *qgen_fiber_kernel;
static int qgen_fiber_arguments;
static int64_t qgen_fiber_args[2];

static void qgen_fiber_main(void)
{
    if (qgen_fiber_arguments == 2)
        ((void (*)(int64_t, int64_t))qgen_fiber_kernel)(qgen_fiber_args[0], qgen_fiber_args[1]);
    else
        ((void (*)(int64_t))qgen_fiber_kernel)(qgen_fiber_args[0]);
    qgen_fiber *f = &qgen_emu.fibers[qgen_emu.current];
    f->done = 1;
    const int block = f->block.x + f->block.y * gridDim.x;
    /* a finished thread no longer holds up its block's barrier */
    if (--qgen_emu.live[block] > 0 && qgen_emu.arrived[block] == qgen_emu.live[block]) qgen_release(block);
}  /* returns to the scheduler (uc_link) */

/* Run the threads of blocks [first, last) as fibers, from wait to wait, in turn forward and backward (so that
   work of one phase that depends on the order of threads shows). A thread that finished
   counts as arrived at its block's barriers; blocks that never meet at a trial's barrier end with the
   kernel's QGEN_BARRIER_STUCK (its spins are yields here). */
static void qgen_run_fibers(int first, int last, unsigned bx)
{
    const size_t stack = 256 << 10;
    const int blocks = gridDim.x * gridDim.y, fibers = (last - first) * bx;
    qgen_emu.fibers = (qgen_fiber *)calloc(fibers, sizeof(qgen_fiber));
    qgen_emu.arrived = (long *)calloc(blocks, sizeof(long));
    qgen_emu.live = (long *)calloc(blocks, sizeof(long));
    qgen_emu.generation = (long *)calloc(blocks, sizeof(long));
    qgen_emu.vote = (int *)calloc(blocks, sizeof(int));
    qgen_emu.result = (int *)calloc(blocks, sizeof(int));
    char *stacks = (char *)malloc((size_t)fibers * stack);
    for (int i = 0; i < fibers; ++i) {
        qgen_fiber *f = &qgen_emu.fibers[i];
        const int block = first + i / bx;
        f->thread = {(unsigned)(i % bx), 0, 0};
        f->block = {(unsigned)(block % gridDim.x), (unsigned)(block / gridDim.x), 0};
        ++qgen_emu.live[block];
        getcontext(&f->context);
        f->context.uc_stack.ss_sp = stacks + (size_t)i * stack;
        f->context.uc_stack.ss_size = stack;
        f->context.uc_link = &qgen_emu.scheduler;
        makecontext(&f->context, qgen_fiber_main, 0);
    }
    qgen_emu.active = 1;
    for (int left = fibers, round = 0; left > 0; ++round) {
        left = 0;
        for (int k = 0; k < fibers; ++k) {
            const int i = round % 2 ? fibers - 1 - k : k;  /* forward, then backward: either order of a phase's work */
            qgen_fiber *f = &qgen_emu.fibers[i];
            if (f->done) continue;
            qgen_emu.current = i;
            threadIdx = f->thread;
            blockIdx = f->block;
            swapcontext(&qgen_emu.scheduler, &f->context);
            left += !f->done;
        }
    }
    qgen_emu.active = 0;
    free(stacks);
    free(qgen_emu.fibers);
    free(qgen_emu.arrived);
    free(qgen_emu.live);
    free(qgen_emu.generation);
    free(qgen_emu.vote);
    free(qgen_emu.result);
}

/* A launch whose threads meet at barriers: every block at once (together: qgen_steps, whose blocks of a trial
   meet) or a block at a time (qgen_backward: its __shared__ variables are static here). */
extern "C" void qgen_emulate_fibers(void *kernel, int arguments, unsigned gx, unsigned gy, unsigned bx,
                                    int64_t a0, int64_t a1, int together)
{
    gridDim = {gx, gy, 1};
    blockDim = {bx, 1, 1};
    qgen_fiber_kernel = kernel;
    qgen_fiber_arguments = arguments;
    qgen_fiber_args[0] = a0;
    qgen_fiber_args[1] = a1;
    if (together)
        qgen_run_fibers(0, gx * gy, bx);
    else
        for (unsigned block = 0; block < gx * gy; ++block) qgen_run_fibers(block, block + 1, bx);
}
extern "C" void *qgen_emulate_state(void) { return &S; }
extern "C" size_t qgen_emulate_state_size(void) { return sizeof S; }
"""


class _Buffer:
    """Device memory of the emulation: host bytes."""

    def __init__(self, nbytes: int) -> None:
        self.data = np.zeros(nbytes, np.uint8)

    def __int__(self) -> int:
        return self.data.ctypes.data


class _Function:
    def __init__(self, library, name: str) -> None:
        self.library, self.name = library, name
        self.address = ctypes.cast(getattr(library, name), ctypes.c_void_p)

    def prepare(self, formats: str):
        assert formats in ("q", "qq")
        return self

    def prepared_call(self, grid, block, *args: int) -> None:
        gx, gy = (tuple(grid) + (1,))[:2]
        if self.name in ("qgen_steps", "qgen_backward"):  # threads that meet at barriers
            a0, a1 = (tuple(args) + (0,))[:2]
            self.library.qgen_emulate_fibers(self.address, len(args), gx, gy, block[0], a0, a1,
                                             self.name == "qgen_steps")
        else:
            self.library.qgen_emulate_launch(self.address, gx, gy, block[0], ctypes.c_int64(args[0]))


class _Module:
    def __init__(self, library) -> None:
        self.library = library
        library.qgen_emulate_launch.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
                                                ctypes.c_int64]
        library.qgen_emulate_fibers.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                                ctypes.c_uint, ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
        library.qgen_emulate_state.restype = ctypes.c_void_p
        library.qgen_emulate_state_size.restype = ctypes.c_size_t

    def get_function(self, name: str) -> _Function:
        return _Function(self.library, name)

    def get_global(self, name: str) -> tuple[int, int]:
        assert name == "S"
        return self.library.qgen_emulate_state(), self.library.qgen_emulate_state_size()


class EmulatedDriver:
    """What qgen.targets.cuda asks of pycuda.driver, on the CPU."""

    @staticmethod
    def mem_alloc(nbytes: int) -> _Buffer:
        return _Buffer(nbytes)

    @staticmethod
    def memcpy_htod(dest, src: np.ndarray) -> None:
        ctypes.memmove(int(dest), src.ctypes.data, src.nbytes)

    @staticmethod
    def memcpy_dtoh(dest: np.ndarray, src) -> None:
        ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes)

    @staticmethod
    def memset_d8(buffer, value: int, nbytes: int) -> None:
        ctypes.memset(int(buffer), value, nbytes)

    @staticmethod
    def module_from_file(path: str) -> _Module:
        source = Path(path).parent / "model.cu"
        digest = hashlib.sha256((SHIM + LAUNCHER).encode() + source.read_bytes()).hexdigest()[:16]
        library = source.parent / f"emulated-{digest}.so"
        if not library.is_file():
            wrapper = source.parent / "emulated.cpp"
            wrapper.write_text(SHIM + '#include "model.cu"\n' + LAUNCHER)
            # undefined behaviour (a shift by 64, a signed overflow) stops the process with its place: the
            # GPU may well compute what was meant, or not
            result = subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-w", "-fsanitize=undefined",
                                     "-fno-sanitize-recover=all", "-o", str(library), str(wrapper)],
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-4000:]
        return _Module(ctypes.CDLL(str(library)))
