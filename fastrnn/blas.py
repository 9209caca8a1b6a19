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
from .threads import run_parts


# Every product is cut into parts fixed by its shape alone, never by the thread count, and the
# threads share the parts out: OpenBLAS rounds a row differently depending on the rows it is
# called with (measured: half the rows of a 2220-row product changed when it was split in two),
# so a split that followed the threads would make results depend on the thread count.
# matmul: row blocks of MATMUL_ROWS; matmul_tn: its long sum in parts of at least PART_ROWS
# rows, at most MAX_PARTS parts.
MATMUL_ROWS = 256
PART_ROWS, MAX_PARTS = 512, 8


@njit(cache=CACHE, nogil=True)
def _gemm_row_parts(a, b, out, p0, p1):
    """out[rows of parts p0 .. p1-1] = a[same rows] @ b, one BLAS call per part."""
    N = a.shape[0]
    for p in range(p0, p1):
        r0, r1 = p * MATMUL_ROWS, min(N, (p + 1) * MATMUL_ROWS)
        np.dot(a[r0:r1], b, out[r0:r1])


def matmul(a, b, out):
    """out = a @ b: a (N, K), out (N, M) in row blocks of MATMUL_ROWS shared across threads;
    b (K, M) may be C or F ordered."""
    run_parts(_gemm_row_parts, (a, b, out), -(-a.shape[0] // MATMUL_ROWS))


def matmul_tn(a, b, out):
    """out = a.T @ b for a (N, M), b (N, K) C-contiguous: the long sum over N (every step of
    a batch) is cut into partial products, shared out across threads, then added in order."""
    N = a.shape[0]
    n = max(1, min(MAX_PARTS, N // PART_ROWS))
    starts = np.array([p * N // n for p in range(n + 1)], np.int64)
    if n == 1:
        _gemm_tn_parts(a, b, out[None], starts, 0, 1)  # the one part is out itself
        return
    parts = np.empty((n,) + out.shape, out.dtype)
    run_parts(_gemm_tn_parts, (a, b, parts, starts), n)
    np.sum(parts, axis=0, out=out)


@njit(cache=CACHE, nogil=True)
def _gemm_tn_parts(a, b, parts, starts, p0, p1):
    """parts[p] = a[rows of part p].T @ b[same rows], for parts p0 .. p1-1."""
    for p in range(p0, p1):
        np.dot(a[starts[p]:starts[p + 1]].T, b[starts[p]:starts[p + 1]], parts[p])
