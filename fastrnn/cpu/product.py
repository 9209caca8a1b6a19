"""The per-step recurrent product, our own kernel instead of a BLAS call.

    out[i, j] (+)= sum_k a[i, k] * w[k, j]        rows i in r0..r1-1 (one thread's share)

Forward, a = h_{t-1} (B, H) and w = W_hh^T (H, G) give W_hh h_{t-1}; backward, a = the gate
gradients (B, G) and w = W_hh (G, H) give dL/dh_{t-1}, added straight into dh.

Why not BLAS: these products are small (B/threads x H by H x G) and repeated T times with the
same W_hh; OpenBLAS repacks W_hh on every call and its fixed cost dominates (measured on the
project's 2-core machine, one thread, float32, 16 x 128 by 128 x 512: OpenBLAS 21-23 GFLOP/s).

How (bench/PROFILE.md, round 5): w is packed once per training step (``pack_panels``) into
panels of P = 2 registers of columns (16 float32), each panel's K x P block contiguous, so
the k loop streams it. A tile of 4 rows x P columns lives in 8 vector registers (simd.py)
while the k loop adds broadcast(a[i, k]) * panel[k] into them: one FMA instruction per
register per k, no horizontal sums, and 2 loads of w feed 8 FMAs. Measured, one core,
float32, same run: 16 x 128 by 128 x 512 66 GFLOP/s (the previous dot-product kernel: 42),
16 x 32 by 32 x 128 33 (17), 32 x 256 by 256 x 1024 69 (56).

Rows go 4 at a time, each output element a sum over k in order 0..K-1 (one fused
multiply-add per k); the last (M mod 4) rows take the same sums one row at a time
(row_panels, 4 panels per pass), so a row's bits depend on neither its place in the batch
nor the thread count, whether the threads split the batch (on multiples of 4, to keep their
tiles whole: threads.run_split's align) or, for a batch under 4 rows, each step's columns
(threads.run_columns).
"""
import numpy as np
from numba import njit

from ..config import CACHE, ERROR_MODEL, FASTMATH
from .simd import REGISTER_BYTES, vadd, vfma, vget, vload, vstore, vwidth, vzero


def panel_width(dtype):
    """Columns per panel: two registers of dtype."""
    return 2 * REGISTER_BYTES // np.dtype(dtype).itemsize


def packed(w, transposed=False, out=None):
    """w (K, N), or w.T when ``transposed`` (w then (N, K)), as panels (ceil(N / P), K, P),
    zero past column N: what matmul_packed reads. out: an array of that shape to pack into (a
    layer keeps its panels from step to step), else a new one."""
    K, N = w.shape[::-1] if transposed else w.shape
    shape = (-(-N // panel_width(w.dtype)), K, panel_width(w.dtype))
    wp = out if out is not None and out.shape == shape and out.dtype == w.dtype else np.empty(shape, w.dtype)
    pack_panels(np.ascontiguousarray(w), wp, transposed)
    return wp


class DenseWeights:
    """A dense-recurrence layer's weights as the CPU kernels read them (tape.weights):
    fwd  W_hh^T packed into panels, for the forward product h W_hh^T
    bwd  W_hh packed, for the backward one, dpre W_hh
    bias the summed biases b_ih + b_hh (G,); b_hn the GRU's b_hn (H,), kept apart (or empty)."""
    __slots__ = ("fwd", "bwd", "bias", "b_hn")

    def __init__(self, fwd, bwd, bias, b_hn):
        self.fwd, self.bwd, self.bias, self.b_hn = fwd, bwd, bias, b_hn


def prepare_dense(tape, w_hh, b_ih, b_hh, apart=0):
    """tape.weights for a dense recurrence, once per call, into the tape's own panels after
    the first call. apart: the trailing bias entries of b_hh kept out of the sum (the GRU's
    b_hn, H of them, applied inside r * (.) by its kernel)."""
    old = tape.weights
    bias = b_ih + b_hh
    G = bias.shape[0]
    if apart:
        bias[G - apart:] = b_ih[G - apart:]
    tape.weights = DenseWeights(packed(w_hh, transposed=True, out=old.fwd if old else None),
                                packed(w_hh, out=old.bwd if old else None), bias, b_hh[G - apart:])


@njit(cache=CACHE, nogil=True)
def transpose_into(w, out):
    """out = w.T for w (N, K), out (K, N), in 8 x 8 blocks. Full blocks have constant trip
    counts, which LLVM unrolls: 0.35-0.4 ns an element against 1.0-1.2 with the block edges
    computed by min() (one core, float32, 533-3200 x 128), and NumPy's copy of a transposed
    view takes ~200 us for a 512 x 128 W_hh (3 ns an element: it walks the source with a long
    stride)."""
    N, K = w.shape
    Nf, Kf = N - N % 8, K - K % 8
    for i0 in range(0, Nf, 8):
        for j0 in range(0, Kf, 8):
            for j in range(8):
                for i in range(8):
                    out[j0 + j, i0 + i] = w[i0 + i, j0 + j]
        for j in range(Kf, K):
            for i in range(i0, i0 + 8):
                out[j, i] = w[i, j]
    for i in range(Nf, N):
        for j in range(K):
            out[j, i] = w[i, j]


@njit(cache=CACHE, nogil=True)
def pack_panels(w, wp, transposed):
    """wp[p, k, c] = w[k, p * P + c] for w (K, N), or w[p * P + c, k] for w (N, K) when
    ``transposed`` (W_hh^T's panels from W_hh), 0 past column N; w C-contiguous either way
    (one compiled copy per dtype: a transposed view was a second). Transposed, each of a
    panel's P source rows is read along its length and written down the panel's column: the
    panel (K x P, <= 32 KB) stays in L1 while the reads stream, where walking the source by
    columns strode across it."""
    P = wp.shape[2]
    if transposed:
        N, K = w.shape
        for p in range(wp.shape[0]):
            dst = wp[p]
            for c in range(P):
                j = p * P + c
                for k in range(K):
                    dst[k, c] = w[j, k] if j < N else 0
        return
    K, N = w.shape
    for p in range(wp.shape[0]):
        for k in range(K):
            src, dst = w[k], wp[p, k]
            for c in range(P):
                j = p * P + c
                dst[c] = src[j] if j < N else 0


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def _put(o, j, lo, hi, v0, v1, accumulate):
    """o[j+lo : j+hi] (+)= lanes lo..hi-1 of the register pair (v0, v1): += when accumulate
    is nonzero (see matmul_packed). The whole pair is two vector stores; a part of it (the
    last panel of a width that is not a multiple of P, a column range's ends) goes lane by lane."""
    V = vwidth(o)
    if lo == 0 and hi == 2 * V:
        if accumulate != 0:
            v0 = vadd(v0, vload(o, j))
            v1 = vadd(v1, vload(o, j + V))
        vstore(o, j, v0)
        vstore(o, j + V, v1)
        return
    for c in range(lo, hi):
        s = vget(v0, c) if c < V else vget(v1, c - V)
        o[j + c] = o[j + c] + s if accumulate != 0 else s


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def _put_panel(o, p, j0, j1, v0, v1, accumulate):
    """Panel p's register pair into o, only its columns inside [j0, j1)."""
    P = 2 * vwidth(o)
    j = p * P
    _put(o, j, max(j0 - j, 0), min(j1 - j, P), v0, v1, accumulate)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def matmul_packed(a, wp, out, r0, r1, accumulate):
    """out[r0:r1] = a[r0:r1] @ w, or += when ``accumulate`` is nonzero. a (M, K),
    wp = packed(w) for w (K, N), out (M, N); a and out C-contiguous.

    accumulate is a float (0.0 or 1.0), not a bool: Numba compiles a separate copy of a
    function for each literal bool its callers pass (True, False: two copies of this kernel
    in every process's compile), while a float constant is typed as a plain float.

    wp and out are read and written through flat views made once per call, by offset, and
    whole panels are stored here rather than through _put: a row view per tile (out[i],
    a[i], wp[p]) costs two atomic reference-count updates each where it crosses a call or a
    branch, and a call spills the 8 registers; together as much as the k loop at K = 32
    (measured 1.6x slower at 16 x 32 by 32 x 128)."""
    K = a.shape[1]
    N = out.shape[1]
    V = vwidth(out)
    P = 2 * V
    wf, of = wp.reshape(wp.size), out.reshape(out.size)
    tiled = r0 + (r1 - r0) // 4 * 4  # rows r0..tiled-1 go 4 at a time
    zero = N - N  # 0 as a runtime int: a literal 0 argument compiled _put and row_panels once more each (Literal[int])
    for p in range(wp.shape[0]):  # panel outer: its K x P block stays in L1 across row tiles
        base = p * K * P
        j = p * P
        n = min(P, N - j)
        for i in range(r0, tiled, 4):
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = vzero(out)
            for k in range(K):
                q = base + k * P
                y0 = vload(wf, q)
                y1 = vload(wf, q + V)
                x = a[i, k]
                c00 = vfma(c00, x, y0)
                c01 = vfma(c01, x, y1)
                x = a[i + 1, k]
                c10 = vfma(c10, x, y0)
                c11 = vfma(c11, x, y1)
                x = a[i + 2, k]
                c20 = vfma(c20, x, y0)
                c21 = vfma(c21, x, y1)
                x = a[i + 3, k]
                c30 = vfma(c30, x, y0)
                c31 = vfma(c31, x, y1)
            o = i * N + j
            if n < P:  # the last panel of a width that is not a multiple of P
                _put(of, o, zero, n, c00, c01, accumulate)
                _put(of, o + N, zero, n, c10, c11, accumulate)
                _put(of, o + 2 * N, zero, n, c20, c21, accumulate)
                _put(of, o + 3 * N, zero, n, c30, c31, accumulate)
                continue
            if accumulate != 0:
                c00, c01 = vadd(c00, vload(of, o)), vadd(c01, vload(of, o + V))
                c10, c11 = vadd(c10, vload(of, o + N)), vadd(c11, vload(of, o + N + V))
                c20, c21 = vadd(c20, vload(of, o + 2 * N)), vadd(c21, vload(of, o + 2 * N + V))
                c30, c31 = vadd(c30, vload(of, o + 3 * N)), vadd(c31, vload(of, o + 3 * N + V))
            vstore(of, o, c00)
            vstore(of, o + V, c01)
            vstore(of, o + N, c10)
            vstore(of, o + N + V, c11)
            vstore(of, o + 2 * N, c20)
            vstore(of, o + 2 * N + V, c21)
            vstore(of, o + 3 * N, c30)
            vstore(of, o + 3 * N + V, c31)
    for i in range(tiled, r1):
        row_panels(a[i], wp, out[i], zero, N, accumulate)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def row_panels(x, wp, o, j0, j1, accumulate):
    """o[j0:j1] (+)= x @ w[:, j0:j1] for one row x (K,), wp = packed(w), o (N,); += when
    accumulate is nonzero. The path of a lone row (the last B mod 4 rows, and the column
    split's share of a small batch, threads.run_columns): a single row has one register pair
    per panel, too few accumulators to hide the FMA latency, so it takes 4 panels (8
    registers) at a time, then 2, then 1, each k one broadcast of x[k] and one FMA per
    register. Every column is the same sum as in the 4-row tile, in the same order (k = 0..K-1,
    one fused multiply-add each): a row's bits depend neither on its place in the batch nor on
    how the columns are shared out. At B = 1 a step streams W_hh from L2 once per product:
    bandwidth-bound (bench/PROFILE.md, round 9). wp is read by offset, as in matmul_packed."""
    K = x.shape[0]
    V = vwidth(o)
    P = 2 * V
    KP = K * P  # one panel
    wf = wp.reshape(wp.size)
    p = j0 // P
    pe = (j1 + P - 1) // P
    while p + 4 <= pe:
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = vzero(o)
        for k in range(K):
            xk = x[k]
            q = p * KP + k * P
            c00 = vfma(c00, xk, vload(wf, q))
            c01 = vfma(c01, xk, vload(wf, q + V))
            c10 = vfma(c10, xk, vload(wf, q + KP))
            c11 = vfma(c11, xk, vload(wf, q + KP + V))
            c20 = vfma(c20, xk, vload(wf, q + 2 * KP))
            c21 = vfma(c21, xk, vload(wf, q + 2 * KP + V))
            c30 = vfma(c30, xk, vload(wf, q + 3 * KP))
            c31 = vfma(c31, xk, vload(wf, q + 3 * KP + V))
        j = p * P
        if j < j0 or j + 4 * P > j1:  # a group at the range's ends
            _put_panel(o, p, j0, j1, c00, c01, accumulate)
            _put_panel(o, p + 1, j0, j1, c10, c11, accumulate)
            _put_panel(o, p + 2, j0, j1, c20, c21, accumulate)
            _put_panel(o, p + 3, j0, j1, c30, c31, accumulate)
        else:  # 4 whole panels, stored here (see matmul_packed)
            if accumulate != 0:
                c00, c01 = vadd(c00, vload(o, j)), vadd(c01, vload(o, j + V))
                c10, c11 = vadd(c10, vload(o, j + P)), vadd(c11, vload(o, j + P + V))
                c20, c21 = vadd(c20, vload(o, j + 2 * P)), vadd(c21, vload(o, j + 2 * P + V))
                c30, c31 = vadd(c30, vload(o, j + 3 * P)), vadd(c31, vload(o, j + 3 * P + V))
            vstore(o, j, c00)
            vstore(o, j + V, c01)
            vstore(o, j + P, c10)
            vstore(o, j + P + V, c11)
            vstore(o, j + 2 * P, c20)
            vstore(o, j + 2 * P + V, c21)
            vstore(o, j + 3 * P, c30)
            vstore(o, j + 3 * P + V, c31)
        p += 4
    if p + 2 <= pe:
        c00 = c01 = c10 = c11 = vzero(o)
        for k in range(K):
            xk = x[k]
            q = p * KP + k * P
            c00 = vfma(c00, xk, vload(wf, q))
            c01 = vfma(c01, xk, vload(wf, q + V))
            c10 = vfma(c10, xk, vload(wf, q + KP))
            c11 = vfma(c11, xk, vload(wf, q + KP + V))
        _put_panel(o, p, j0, j1, c00, c01, accumulate)
        _put_panel(o, p + 1, j0, j1, c10, c11, accumulate)
        p += 2
    if p < pe:
        c00 = c01 = vzero(o)
        for k in range(K):
            xk = x[k]
            q = p * KP + k * P
            c00 = vfma(c00, xk, vload(wf, q))
            c01 = vfma(c01, xk, vload(wf, q + V))
        _put_panel(o, p, j0, j1, c00, c01, accumulate)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def unit_cols(x, wp, o, H, u0, u1, accumulate):
    """The column split's product (small batches, threads.run_columns): o[q H + u] (+)= (x @
    w)[q H + u] for units u in u0..u1-1 of every H-wide block q of o (the LSTM's forward: its
    4 gates, wp = packed(W_hh^T); backward: o = dL/dh, one block, wp = packed(W_hh)). The
    block count comes from o's length rather than an argument: Numba compiles a copy of a
    function for each constant int its callers pass."""
    for q in range(o.shape[0] // H):
        row_panels(x, wp, o, q * H + u0, q * H + u1, accumulate)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def add_recurrent_grad(dpre_t, w_hh_p, dh, b0, b1):
    """dh[b] += dpre_t[b] @ W_hh for sequences b0..b1-1: the part of dL/dh_{t-1} that flows
    back through W_hh. dpre_t (B, G) is the recurrent-side pre-activation gradient of step t,
    w_hh_p = packed(W_hh), dh (B, H). Every cell's backward ends each step with it."""
    matmul_packed(dpre_t, w_hh_p, dh, b0, b1, 1.0)
