"""The large matrix products of a training step, through the BLAS that Numba calls (all but a
narrow input's weight gradient, one pass of our own, and the weight gradients of a layer with
I + H up to ~380, gradtile's register tile: matmul_tn).

Numba's np.dot calls the OpenBLAS bundled with SciPy, while NumPy's @ calls the (different)
OpenBLAS bundled with NumPy. Mixing both in one step left two thread pools spinning on the
same cores: measured on the project's 2-core machine, an LSTM step (H=128, B=32, T=100)
took 92 ms with both pools against 45 ms with one BLAS thread. Here every product runs in our
own threads (threads.py), each calling single-threaded BLAS on its share.
"""
import threading

import numpy as np
from numba import njit

from ..cells._math import one_like
from ..config import CACHE, ERROR_MODEL, FASTMATH, MAX_PARTS
from .gradtile import SUM_BLOCK, TILE_ROWS, tn_tile
from .product import transpose_into
from .simd import REGISTER_BYTES, vadd, vfma, vload, vstore, vwidth, vzero
from .threads import run_parts

# Every product is cut into parts fixed by its shape alone, never by the thread count, and the
# threads share the parts out: OpenBLAS rounds a row differently depending on the rows it is
# called with (measured: half the rows of a 2220-row product changed when it was split in two),
# so a split that followed the threads would make results depend on the thread count.
# matmul: row blocks of MATMUL_ROWS; matmul_tn: its long sum in a power of 2 of parts of at
# least PART_ROWS rows and PART_WORK multiply-adds, at most MAX_PARTS (was any count of 512-row
# parts: 3 parts on 2 threads left one idle a third of the time; measured 1.2-1.3x at N = 1600,
# B = 16, T = 100).
MATMUL_ROWS = 256
PART_ROWS = 256
# A part has at least PART_WORK multiply-adds (~0.1 ms; a hand-off costs ~10 us). Was 2^23,
# which kept an LSTM's weight gradients at the default compare's sizes (H = 32, B = 32, T = 100:
# 3200 x 128 by 3200 x 35, 14M) in one part on one thread; 2^22 splits them: LSTM H = 32,
# B = 32 1.20-1.23x a step, GRU 1.12x, tanh B = 1, T = 784 1.05-1.10x (paired A/B, 2 threads).
PART_WORK = 1 << 22
# matmul_tn: gradtile's tile takes a product whose narrow side's block of SUM_BLOCK columns (rows x
# SUM_BLOCK numbers) fits in this many bytes, three quarters of a Zen 2 core's 512 KB L2 (_tile_fits)
TILE_BLOCK_BYTES = 3 << 17
NARROW = 4  # an operand of at most this many columns takes our own pass: matmul_tn's b (_narrow_parts), matmul's a (_narrow_row_parts)


@njit(cache=CACHE, nogil=True)
def _gemm_row_parts(a, b, transposed, out, p0, p1):
    """out[rows of parts p0 .. p1-1] = a[same rows] @ b (b.T where ``transposed``), one BLAS
    call per part. b is C-contiguous either way: the flag, rather than passing the transposed
    view (an F-ordered array), keeps this to one compiled copy per dtype."""
    N = a.shape[0]
    for p in range(p0, p1):
        r0, r1 = p * MATMUL_ROWS, min(N, (p + 1) * MATMUL_ROWS)
        if transposed:
            np.dot(a[r0:r1], b.T, out[r0:r1])
        else:
            np.dot(a[r0:r1], b, out[r0:r1])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def _narrow_row_parts(a, wt, out, p0, p1):
    """out[rows of parts p0 .. p1-1] = a[same rows] @ wt for a narrow a (N, K), K <= NARROW = 4,
    wt (K, M) C-contiguous: each output a chain of fused multiply-adds over k = 0..K-1, whole
    registers of columns, then the last M mod V columns one by one. The k chain is written out
    (a branch per k past the first, the same for every row): as a loop over k it ran at half
    the speed (measured 91 us against 31 at 3200 x 2 by 2 x 128, one core, float32)."""
    N, K = a.shape
    M = out.shape[1]
    V = vwidth(out)
    stop = M - M % V
    wf, of = wt.reshape(wt.size), out.reshape(out.size)  # flat views, made once (see product.py)
    for n in range(p0 * MATMUL_ROWS, min(N, p1 * MATMUL_ROWS)):
        o = n * M
        a0, a1, a2, a3 = a[n, 0], a[n, min(1, K - 1)], a[n, min(2, K - 1)], a[n, min(3, K - 1)]
        for j in range(0, stop, V):
            acc = vfma(vzero(out), a0, vload(wf, j))
            if K > 1:
                acc = vfma(acc, a1, vload(wf, M + j))
            if K > 2:
                acc = vfma(acc, a2, vload(wf, 2 * M + j))
            if K > 3:
                acc = vfma(acc, a3, vload(wf, 3 * M + j))
            vstore(of, o + j, acc)
        for j in range(stop, M):  # the same chain, one column at a time
            v = a0 * wf[j]
            for k in range(1, K):
                v += a[n, k] * wf[k * M + j]
            of[o + j] = v


def matmul(a, b, out, transposed=False):
    """out = a @ b (a @ b.T where ``transposed``): a (N, K), out (N, M) in row blocks of
    MATMUL_ROWS shared across threads; b C-contiguous. Under PART_WORK multiply-adds in all,
    the caller's thread takes every block: a share handed to another thread (~10 us a round
    trip) would save about what it costs on a narrow input's whole projection (I = 2, H = 32,
    B = 32, T = 100: 0.8M multiply-adds, ~31 us). The blocks are the same either way, so are
    the bits.

    A narrow a (K <= NARROW: the adding problem's I = 2, a pixel's I = 1) takes our own pass
    (_narrow_row_parts): OpenBLAS took 62 us for that projection (3200 x 2 by 2 x 128, one
    core, float32), this pass 31-34; writing the output alone takes 29."""
    parts = -(-a.shape[0] // MATMUL_ROWS)
    if a.shape[1] <= NARROW:
        fn, args = _narrow_row_parts, (a, np.ascontiguousarray(b.T if transposed else b), out)
    else:
        fn, args = _gemm_row_parts, (a, b, transposed, out)
    if a.shape[0] * a.shape[1] * out.shape[1] < PART_WORK:
        fn(*args, 0, parts)
        return
    run_parts(fn, args, parts)


def matmul_tn(a, b, out, sums=None):
    """out = a.T @ b for a (N, M), b (N, K) C-contiguous, and, given sums (M,), a's column
    sums, from the same pass over a where the shapes allow. The long sum over N (every step of a
    batch) is cut into partial products, shared out across threads, then added in order.
    b and out may be pairs, (b1, b2) and (out1, out2): both products from one pass over a where
    the second form below applies to [b1 | b2] (an LSTM layer's input-side and recurrent
    weight gradients share a: the gate gradients), else one after the other.

    Three forms, by the narrower operand (bench/PROFILE.md round 6; one core, float32):
    - K <= NARROW (a narrow input: the adding problem's I = 2): one fused pass over a, each row
      scaled into K + 1 accumulator rows kept in L1 (the last one the column sums): 0.54 ms
      at 3200 x 512, K = 2, against 1.03 for BLAS's product and NumPy's column sum.
    - K <= M (W_hh's gradient: a the 4H-wide gate gradients, b the states): b's part copied
      transposed with a row of ones below, so out.T and the sums come from one BLAS product
      of two row-major operands: OpenBLAS's transposed-A kernel ran these shapes at 35-44
      GFLOP/s against 50-59 for row-major copies (3200 x 512 by 3200 x 128 in 6 parts).
    - else (the readout: a the narrow output gradients): a's part copied transposed."""
    N, M = a.shape
    if isinstance(b, tuple):
        b1, b2 = b
        K = b1.shape[1] + b2.shape[1]
        if NARROW < K <= M:
            _tn(a, b1, b2, out, sums)
        else:
            matmul_tn(a, b1, out[0], sums)
            matmul_tn(a, b2, out[1])
        return
    _tn(a, b, b[:, :0], (out,), sums)


# matmul_tn's partial products and their sum live in buffers kept per calling thread and reused
# call after call (grown to the largest asked for, never shrunk). Fresh ones cost more than
# their size says: NumPy asks for huge pages for arrays of 4 MB and more, so an LSTM step at
# H = 512, B = 64 took 37 page faults each zeroing 2 MB for its 42 MB of parts, and after a
# pause (the benchmark's blocks, a training loop's evaluation) those faults ran slowly: the step
# read 133 ms reused against 171 fresh, timed after pauses (bench/PROFILE.md, issue #32).
_local = threading.local()


def _workspace(name, shape, dtype):
    """An uninitialised array of ``shape`` and ``dtype``: a view of this thread's buffer ``name``."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(name)
    if buf is None or buf.size < nbytes:
        buf = bufs[name] = np.empty(nbytes, np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _tile_fits(M, R, dtype):
    """Whether gradtile's tile takes an (R, L) by (L, M) product: M a whole number of panels,
    and R (padded to TILE_ROWS) rows of SUM_BLOCK numbers in TILE_BLOCK_BYTES, as they are read
    again for every strip of 16 columns. A rule on shapes alone, never on the thread count.
    Measured (one core, float32, 8 parts of 400 rows; GFLOP/s, tile against OpenBLAS): R = 36
    to 258, M = 128 to 2048, 63-106 against 45-95, the tile ahead or even in every shape;
    R = 390 about even; R = 642 (an LSTM at I = 128, H = 512) 81-99 against 87-100, so BLAS
    keeps the large layers (bench/PROFILE.md, issue #32)."""
    itemsize = np.dtype(dtype).itemsize
    return M % (2 * REGISTER_BYTES // itemsize) == 0 and _tile_rows(R) * SUM_BLOCK * itemsize <= TILE_BLOCK_BYTES


def _tile_rows(R):
    """R rows padded to a whole number of the tile's TILE_ROWS-row tiles."""
    return -(-R // TILE_ROWS) * TILE_ROWS


def _tn(a, b, b2, outs, sums):
    """matmul_tn's three forms; b2 (N, K2), K2 = 0 unless the flip form takes a pair."""
    N, M = a.shape
    K1 = b.shape[1]
    K = K1 + b2.shape[1]
    n = max(1, min(MAX_PARTS, N // PART_ROWS, N * M * K // PART_WORK))
    n = 1 << (n.bit_length() - 1)  # a power of 2: 2, 4 or 8 threads share the parts evenly
    starts = np.array([p * N // n for p in range(n + 1)], np.int64)
    flip = K <= M or K <= NARROW  # the forms that give out.T and the sums
    if K <= NARROW:
        parts = _workspace("parts", (n, K + 1, M), a.dtype)
        run_parts(_narrow_parts, (a, b, parts, starts), n)
    else:
        tile = flip and _tile_fits(M, K + 1, a.dtype)
        rows = _tile_rows(K + 1) if tile else K + 1
        parts = _workspace("parts", (n, rows, M) if flip else (n, M, K), a.dtype)
        run_parts(_gemm_tn_parts, (a, b, b2, flip, tile, parts, starts), n)
    acc = _workspace("acc", parts.shape[1:], a.dtype)
    np.sum(parts, axis=0, out=acc)  # parts added in order, whatever the thread count
    if flip:
        transpose_into(acc[:K1], outs[0])
        if K > K1:
            transpose_into(acc[K1:K], outs[1])
        if sums is not None:
            sums[...] = acc[K]
    else:
        outs[0][...] = acc
        if sums is not None:
            sums[...] = a.sum(axis=0)


@njit(cache=CACHE, nogil=True)
def _gemm_tn_parts(a, b, b2, flip, tile, parts, starts, p0, p1):
    """For parts p0 .. p1-1: flip, parts[p] = [b[rows of part p] | b2[same rows] | 1].T @ a[same
    rows] (row K = K1 + K2 a's column sums; rows past it, padding for the tile, zero); else
    parts[p] = a[rows].T @ b[rows] (b2 has no columns). The narrow operand is copied transposed
    into one scratch buffer per call (per thread), reused part after part; ``tile``: the
    product is gradtile's, else BLAS's."""
    rows = parts.shape[1] if flip else a.shape[1]
    K1 = b.shape[1]
    K = K1 + b2.shape[1]
    longest = 0
    for p in range(p0, p1):
        longest = max(longest, starts[p + 1] - starts[p])
    scratch = np.empty(rows * longest, a.dtype)
    for p in range(p0, p1):
        s0, s1 = starts[p], starts[p + 1]
        L = s1 - s0
        narrow, wide = (b[s0:s1], a[s0:s1]) if flip else (a[s0:s1], b[s0:s1])
        nt = scratch[:rows * L].reshape((rows, L))
        if flip:
            transpose_into(narrow, nt[:K1])
            transpose_into(b2[s0:s1], nt[K1:K])
            nt[K] = 1
            nt[K + 1:] = 0
        else:
            transpose_into(narrow, nt)
        if tile:
            tn_tile(nt, wide, parts[p])
        else:
            np.dot(nt, wide, parts[p])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def _narrow_parts(a, b, parts, starts, p0, p1):
    """parts[p, i] = sum of b[n, i] * a[n] over part p's rows n (i < K), parts[p, K] = sum
    of a[n]: one pass over a. Rows are summed in blocks of 64 first (the error of a float32
    running sum grows with its length; BLAS blocks its sums too), each block's sums from zero,
    then added to the part's.

    A block's columns go 4 registers at a time (_narrow_group), the rest one by one: every sum
    the same chain of fused multiply-adds either way (the same bits as the plain loops this
    replaced, which LLVM vectorized but kept the K + 1 sums in memory: 82-98 us against 47-51
    for 3200 x 128, K = 2, one core, float32)."""
    M, K = a.shape[1], b.shape[1]
    W = 4 * vwidth(a)
    stop = M - M % W
    af = a.reshape(a.size)  # flat views, made once (see product.py)
    tail = np.empty((K + 1, M - stop), a.dtype)
    for p in range(p0, p1):
        acc = parts[p]
        acc[:] = 0
        accf = acc.reshape(acc.size)
        for n0 in range(starts[p], starts[p + 1], 64):
            n1 = min(n0 + 64, starts[p + 1])
            for j in range(0, stop, W):
                for i in range(0, K + 1, 2):
                    _narrow_group(af, b, accf, M, n0, n1, i, j)
            if stop == M:
                continue
            tail[:] = 0
            for n in range(n0, n1):
                row = a[n, stop:]
                for i in range(K):
                    s, o = b[n, i], tail[i]
                    for j in range(M - stop):
                        o[j] += s * row[j]
                o = tail[K]
                for j in range(M - stop):
                    o[j] += row[j]
            for i in range(K + 1):
                for j in range(stop, M):
                    acc[i, j] += tail[i, j - stop]


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _narrow_group(af, b, accf, M, n0, n1, i, j):
    """accf[i M + j : + 4V] += the block n0..n1-1's sums for row i (weights b[n, i], or 1 for
    the row of sums, i = K), and row i + 1's too where i < K: two rows share each load of a's
    4 registers, 8 independent FMA chains. af, accf: a (N, M) and the part's sums flat."""
    K = b.shape[1]
    V = vwidth(af)
    one = one_like(af[0])
    pair = i < K
    c0 = c1 = c2 = c3 = d0 = d1 = d2 = d3 = vzero(af)
    for n in range(n0, n1):
        q = n * M + j
        y0, y1, y2, y3 = vload(af, q), vload(af, q + V), vload(af, q + 2 * V), vload(af, q + 3 * V)
        s = b[n, i] if i < K else one
        c0, c1, c2, c3 = vfma(c0, s, y0), vfma(c1, s, y1), vfma(c2, s, y2), vfma(c3, s, y3)
        if pair:
            t = b[n, i + 1] if i + 1 < K else one
            d0, d1, d2, d3 = vfma(d0, t, y0), vfma(d1, t, y1), vfma(d2, t, y2), vfma(d3, t, y3)
    _add_group(accf, i * M + j, c0, c1, c2, c3)
    if pair:
        _add_group(accf, (i + 1) * M + j, d0, d1, d2, d3)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _add_group(of, o, c0, c1, c2, c3):
    """of[o : o + 4V] += the 4 registers."""
    V = vwidth(of)
    vstore(of, o, vadd(vload(of, o), c0))
    vstore(of, o + V, vadd(vload(of, o + V), c1))
    vstore(of, o + 2 * V, vadd(vload(of, o + 2 * V), c2))
    vstore(of, o + 3 * V, vadd(vload(of, o + 3 * V), c3))
