"""The matrix products of a training step, all through the BLAS that Numba calls.

Numba's np.dot calls the OpenBLAS bundled with SciPy, while NumPy's @ calls the (different)
OpenBLAS bundled with NumPy. Mixing both in one step left two thread pools spinning on the
same cores: measured on the project's 2-core machine, an LSTM step (H=128, B=32, T=100)
took 92 ms with both pools against 45 ms with one BLAS thread. Here every product runs in our
own threads (threads.py), each calling single-threaded BLAS on its share.
"""
import numpy as np
from numba import njit

from .config import CACHE
from .threads import get_threads, run_split


@njit(cache=CACHE, nogil=True)
def _gemm_rows(a, b, out, r0, r1):
    np.dot(a[r0:r1], b, out[r0:r1])


def matmul(a, b, out):
    """out = a @ b: rows of a (N, K) and out (N, M) split across threads; b (K, M) may be C or
    F ordered."""
    run_split(_gemm_rows, (a, b, out), a.shape[0], min_rows=64)


def matmul_tn(a, b, out):
    """out = a.T @ b for a (N, M), b (N, K) C-contiguous: the long sum over N (every step of
    a batch) is split across threads into partial products, which are then added."""
    N = a.shape[0]
    n = max(1, min(get_threads(), N // 256))
    starts = np.array([p * N // n for p in range(n + 1)], np.int64)
    if n == 1:
        _gemm_tn_parts(a, b, out[None], starts, 0, 1)  # the one part is out itself
        return
    parts = np.empty((n,) + out.shape, out.dtype)
    run_split(_gemm_tn_parts, (a, b, parts, starts), n)
    np.sum(parts, axis=0, out=out)


@njit(cache=CACHE, nogil=True)
def _gemm_tn_parts(a, b, parts, starts, p0, p1):
    """parts[p] = a[rows of part p].T @ b[same rows], for parts p0 .. p1-1."""
    for p in range(p0, p1):
        np.dot(a[starts[p]:starts[p + 1]].T, b[starts[p]:starts[p + 1]], parts[p])
