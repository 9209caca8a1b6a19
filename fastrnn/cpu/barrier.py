"""A barrier between the threads of one layer call, for the column split of small batches.

At B < 4 a step is one vector-matrix product (W_hh streamed from L2) and a pointwise pass:
too little to share by sequences, so the threads share each step's columns instead (the
hidden units, with their gate columns) and meet once per step: the next step's product reads
every unit's new state. A hand-off through the Python pool costs ~10 us (an empty share's round
trip); a step at H = 128 ~6 us; this barrier ~0.3 us (two threads on the project's 2-core
machine, measured).

    flags          int64 ((n + 1) * LINE,): one counter per thread, zero before the call, each
                   on its own cache lines (LINE int64 apart, so the spinning reads do not share
                   them); flags[n * LINE] = how long a wait may last, in yields (GIVE_UP)
    arrive(flags, me, n, step) -> bool
                   thread ``me`` of n has finished ``step`` (counted from 1); it waits until
                   every thread has, spinning with the CPU's pause hint, then yielding the CPU
                   (more threads than cores must still make progress). False if the others did
                   not arrive within that many yields (seconds): a thread failed; the caller
                   stops.

The counters are read and written with acquire/release atomics (LLVM's, on x86 plain moves
that the compiler may not reorder or hoist out of the loop): a thread's writes before it
arrives are seen by every thread after the barrier.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..config import CACHE

LINE = 16  # int64s between two threads' counters: 128 bytes, two cache lines (adjacent-line prefetch)
SPINS = 2000  # pause-hint spins (~50 us) before the wait yields the CPU instead
GIVE_UP = 10_000_000  # yields (each ~1 us or a time slice) before a wait gives up: flags()


def flags(n):
    """Fresh counters for n threads, and the wait limit."""
    f = np.zeros((n + 1) * LINE, np.int64)
    f[n * LINE] = GIVE_UP
    return f


def _slot(context, builder, aty, aval, i):
    return builder.gep(context.make_array(aty)(context, builder, aval).data, [i])


@intrinsic
def load_acquire(typingctx, arr, i):
    """arr[i] as an acquire load (arr a C-contiguous int64 array)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(context, builder, sig.args[0], args[0], args[1]), "acquire", 8)
    return types.int64(arr, i), codegen


@intrinsic
def store_release(typingctx, arr, i, v):
    """arr[i] = v as a release store."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(i, types.Integer)
            and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, _slot(context, builder, sig.args[0], args[0], args[1]), "release", 8)
        return context.get_dummy_value()
    return types.none(arr, i, v), codegen


@intrinsic
def _pause(typingctx):
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _sched_yield(typingctx):
    # libc's, found by name when the kernel is linked (so a cached kernel holds no address)
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@njit(cache=CACHE, nogil=True)
def arrive(flags, me, n, step):
    """Thread me of n has done ``step``: wait for the others (see the module doc)."""
    store_release(flags, me * LINE, step)
    spins, limit = 0, SPINS + flags[n * LINE]
    for p in range(n):
        while load_acquire(flags, p * LINE) < step:
            spins += 1
            if spins <= SPINS:
                _pause()
            elif spins > limit:
                return False
            else:
                _sched_yield()
    return True


# ----------------------------------------------------------------------- the pool's hand-off
# threads.py's pool threads wait for work, and the caller for their results, on counters like
# the barrier's: spinning outside the GIL first (a thread that sleeps is woken ~0.1 ms later
# on this virtual machine, longer than a small step's whole split share), then yielding.

@njit(cache=CACHE, nogil=True)
def wait_change(flags, i, seen, spins):
    """Spin (pause hint) while flags[i] == seen, at most ``spins`` times; flags[i] at the end
    (still ``seen`` if nothing changed)."""
    for _ in range(spins):
        v = load_acquire(flags, i)
        if v != seen:
            return v
        _pause()
    return load_acquire(flags, i)


@njit(cache=CACHE, nogil=True)
def wait_reach(flags, i, value, yields):
    """Wait until flags[i] >= value: SPINS pause-hint spins, then up to ``yields`` yields of
    the CPU. True once reached; False if still not (the caller checks why, then waits again)."""
    spins = 0
    while load_acquire(flags, i) < value:
        spins += 1
        if spins <= SPINS:
            _pause()
        elif spins > SPINS + yields:
            return False
        else:
            _sched_yield()
    return True


@njit(cache=CACHE, nogil=True)
def publish(flags, i, v):
    """flags[i] = v, a release store: what this thread wrote before is seen by a thread that
    reads v."""
    store_release(flags, i, v)


@njit(cache=CACHE, nogil=True)
def publish_wait(flags, i, v, j, seen, spins):
    """publish(flags, i, v), then wait_change(flags, j, seen, spins), in one call outside the
    GIL: a pool thread's "done" and its wait for the next share. Published while the thread
    still held the GIL, the caller that saw it then waited for the GIL until the thread let go
    of it, woken ~20 us later on this virtual machine (bench/PROFILE.md)."""
    store_release(flags, i, v)
    return wait_change(flags, j, seen, spins)
