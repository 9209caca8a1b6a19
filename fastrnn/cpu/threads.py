"""Who uses the cores: one thread per slice of the batch, BLAS single-threaded in each.

Sequences in a batch are independent, so each thread runs its own slice through the whole
time loop (no per-step synchronization); the kernels are compiled with ``nogil=True`` and a
persistent pool of Python threads runs the slices (the calling thread takes the first), each
pool thread kept off the CPU its caller is on (``_away_from``). Between slices a pool thread
spins outside the GIL for about a millisecond before it sleeps, and the caller spins for its
results (``_Worker``): a concurrent.futures pool, whose threads sleep between tasks, cost ~70
us a hand-off on this virtual machine and more after a pause, which made two threads slower
than one at H = 32 (bench/PROFILE.md, round 9). A pool thread says it is done and starts
spinning for its next share in one call outside the GIL (barrier.publish_wait): said while
it still held the GIL, the caller saw it and then waited for the GIL, woken ~20 us later (a
2-way split of an empty kernel: 10-12 us a round trip against 32-50). Large matrix products
are split the same way. Batches too small to share by sequences (B < 4) share each step's
hidden units instead, the threads meeting at a barrier every step (``run_columns``). Numba's own parallel
mode was tried first and dropped: every parallel function compiled the kernel it launched a
second time (cold compile of all cells 64 s instead of ~15 s) and its OpenMP workers spun
between regions.

The BLAS that Numba calls (SciPy's bundled OpenBLAS) is pinned to one thread, since each of
our threads already calls it; NumPy's own BLAS is left as the user set it and is not used in
the training step. Thread count: NUMBA_NUM_THREADS if set, else OMP_NUM_THREADS if set, else
the CPUs this process may use; ``set_threads`` changes it.
"""
import ctypes
import os
import threading

import numpy as np

_threads = None
_pools = threading.local()  # each calling thread's own _Worker threads (.workers, .pid)
_pinned = False

# A pool thread spins this many pause hints (~1 ms) for its next share before it sleeps: a
# training step hands out shares every 0.1-0.5 ms (forward, backward, products), and a thread
# that sleeps is woken ~0.1 ms late on this virtual machine (a 2-way split of a tanh RNN's
# forward at H = 32, B = 32: 0.39 ms against 0.33 on one thread, the halves 0.19 ms each).
IDLE_SPINS = 40_000
WAIT_YIELDS = 100_000  # the caller's wait: yields between two looks at whether a worker died


def _default_threads():
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return _cpus()


def get_threads():
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_threads(n):
    """Use n threads from now on."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads: expected a positive integer; got {n!r}")
    _threads = n


def configure():
    """Idempotent: pin the BLAS that Numba calls to one thread."""
    global _pinned
    if _pinned:
        return
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that Numba will call)
    from threadpoolctl import ThreadpoolController

    scipy_libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for lc in ThreadpoolController().lib_controllers:
        if lc.user_api == "blas" and lc.filepath.startswith(scipy_libs):
            lc.set_num_threads(1)
    _pinned = True


class _Worker:
    """One pool thread and its counters (barrier.py's layout: one per cache-line pair):
    POSTED, the number of the latest share handed to it; DONE, the latest it finished; ASLEEP,
    set while it sleeps on its condition (after IDLE_SPINS without work), so that the caller
    wakes it only then. A share is (fn, args); its outcome (value, exception) is kept for the
    caller's result()."""
    POSTED, DONE, ASLEEP = 0, 16, 32

    def __init__(self):
        self.flags = np.zeros(48, np.int64)
        self.cv = threading.Condition()
        self.task = self.outcome = None
        self.posted = 0
        self.thread = threading.Thread(target=self._loop, name="fastrnn", daemon=True)
        self.thread.start()

    def _loop(self):
        from .barrier import publish_wait, wait_change

        f, seen = self.flags, 0
        v = wait_change(f, self.POSTED, seen, IDLE_SPINS)
        while True:
            if v == seen:  # no work for a while: sleep until submit() notifies
                with self.cv:
                    f[self.ASLEEP] = 1
                    while f[self.POSTED] == seen:
                        self.cv.wait()
                    f[self.ASLEEP] = 0
                    v = f[self.POSTED]
                continue
            seen = v
            fn, args = self.task
            try:
                self.outcome = (fn(*args), None)
            except BaseException as e:  # noqa: BLE001 - raised again in the caller's result()
                self.outcome = (None, e)
            v = publish_wait(f, self.DONE, seen, self.POSTED, seen, IDLE_SPINS)  # outside the GIL

    def submit(self, fn, args):
        """Hand fn(*args) to this thread (idle: its previous share's result() was taken)."""
        from .barrier import publish

        self.task = (fn, args)
        self.posted += 1
        publish(self.flags, self.POSTED, self.posted)
        if self.flags[self.ASLEEP]:  # read under the GIL, as the worker writes it: no lost wake-up
            with self.cv:
                self.cv.notify()
        return self

    def result(self):
        """Wait (spinning, then yielding the CPU) for the share handed over last; its value,
        or its exception raised here."""
        from .barrier import wait_reach

        while not wait_reach(self.flags, self.DONE, self.posted, WAIT_YIELDS):
            if not self.thread.is_alive():
                raise RuntimeError("a fastrnn pool thread died (interpreter shutting down?)")
        value, error = self.outcome
        self.task = self.outcome = None
        if error is not None:
            raise error
        return value


def _workers(n):
    """n pool threads of the calling thread's own, started as first needed. Own, because a
    _Worker takes one share at a time: two threads that each train a model split their steps
    concurrently. None are inherited by a forked child (it has none of its parent's threads)."""
    if getattr(_pools, "pid", None) != os.getpid():
        _pools.workers, _pools.pid = [], os.getpid()
    pool = _pools.workers
    while len(pool) < n:
        pool.append(_Worker())
    return pool[:n]


def _cpu_getter():
    try:
        getcpu = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError, TypeError):  # not glibc/Linux
        return None
    getcpu.restype, getcpu.argtypes = ctypes.c_int, []
    return getcpu if hasattr(os, "sched_setaffinity") else None


_getcpu = _cpu_getter()
_worker = threading.local()


def _away_from(cpu, caller, workers, fn, args):
    """Run fn(*args) on a pool thread that keeps off the CPU its caller is on.

    Why: the caller wakes its workers when it hands them work, and after the process has slept
    (a pause, a file write) Linux's wake-up placement puts a woken worker on the waker's CPU
    and leaves it there for tens of milliseconds, so the two halves of a split run one after
    the other (measured: LSTM H = 32, B = 32, 2 threads: a worker shared its caller's CPU in 89
    of 108 hand-offs after 0.2 s pauses, 0 of 108 without; steps 7.6 ms against 4.3). The
    worker's allowed CPUs are the caller's minus the caller's current one (when that leaves one
    for each of the ``workers``), set again only when that CPU changes. A speed hint only:
    anything that fails leaves the affinity alone."""
    if cpu != getattr(_worker, "away_from", None):
        _worker.away_from = cpu
        try:
            allowed = os.sched_getaffinity(caller)
            os.sched_setaffinity(0, allowed - {cpu} if len(allowed) > workers else allowed)
        except OSError:
            pass
    return fn(*args)


def run_split(fn, args, rows, min_rows=1, align=1):
    """Call fn(*args, r0, r1) on consecutive slices [r0, r1) covering range(rows), one slice per
    thread (fewer when a slice would hold under min_rows). fn must release the GIL.

    align: every slice but the last starts and ends on a multiple of it (min_rows >= align):
    a kernel that blocks its rows by ``align`` (the recurrent product takes rows 4 at a time)
    then gets whole blocks in every slice but the last."""
    n = max(1, min(get_threads(), rows // min_rows))
    if n == 1:
        fn(*args, 0, rows)
        return
    cuts = [0] + [p * rows // n // align * align for p in range(1, n)] + [rows]
    futures = _submit(fn, [args + (cuts[p], cuts[p + 1]) for p in range(1, n)])
    fn(*args, 0, cuts[1])
    for f in futures:
        f.result()


def _submit(fn, calls):
    """fn(*call) for each call on the pool's threads (kept off the caller's CPU where this
    system says which it is): a handle per call, whose result() waits for it."""
    if not calls:
        return []
    workers = _workers(len(calls))
    if _getcpu is None:
        return [w.submit(fn, call) for w, call in zip(workers, calls)]
    cpu, caller = _getcpu(), threading.get_native_id()
    return [w.submit(_away_from, (cpu, caller, len(calls), fn, call)) for w, call in zip(workers, calls)]


def run_parts(fn, args, parts):
    """Call fn(*args, p0, p1) on ranges of ``parts`` independent parts, one range per thread:
    the parts (and so the result) are fixed by the caller, the threads only share them out."""
    run_split(fn, args, parts)


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def share_columns(B, H, gates, dtype, steps):
    """Whether a layer call's kernel shares the hidden units (run_columns) instead of the
    batch: under ROW_BLOCK sequences, where a step's gates x H columns are enough work for two
    threads to gain from it against a barrier per step (MIN_COL_WORK each) and the call runs
    at least MIN_COL_STEPS steps (waking the other threads costs ~0.5 ms a call on this
    machine, more after the process slept: a T = 100 call lost); in float32 (float64, for
    checking gradients, keeps the row kernels: ~7 s less to compile). A rule on shapes and
    dtype alone, so the bits never depend on the thread count."""
    import numpy as np

    from ..config import MIN_COL_STEPS, MIN_COL_WORK, ROW_BLOCK

    return (B < ROW_BLOCK and gates * H >= 2 * MIN_COL_WORK and steps >= MIN_COL_STEPS
            and np.dtype(dtype) == np.float32)


def run_columns(fn, args, units, align=1, min_units=1):
    """Call fn(*args, flags, p, n, u0, u1) on n threads at once, thread p taking hidden units
    [u0, u1) (every range but the last starting and ending on a multiple of align, at least
    min_units wide), for a kernel whose threads meet at a barrier every step
    (barrier.py; flags: its counters, fresh per call). n is at most the threads set and
    the CPUs this process may use: a barrier waits on every thread, so more threads than cores
    would stall each step. fn returns False when its barrier gave up (another thread never
    arrived)."""
    from . import barrier

    n = max(1, min(get_threads(), _cpus(), units // max(1, min_units)))
    cuts = [p * units // n // align * align for p in range(n)] + [units]
    flags = barrier.flags(n)
    futures = _submit(fn, [args + (flags, p, n, cuts[p], cuts[p + 1]) for p in range(1, n)])
    ok = fn(*args, flags, 0, n, cuts[0], cuts[1])
    ok = all([f.result() for f in futures]) and ok
    if not ok:
        raise RuntimeError("a kernel thread stopped waiting at its per-step barrier: another thread never arrived")
