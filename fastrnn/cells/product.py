"""The per-step recurrent product, our own kernel instead of a BLAS call.

    out[i, j] (+)= sum_k a[i, k] * bt[j, k]        rows i in r0..r1-1 (one thread's share)

a (M, K) and bt (N, K) are both read along k, contiguously: forward, a = h_{t-1} (B, H) and
bt = W_hh (G, H) give W_hh h_{t-1}; backward, a = the gate gradients (B, G) and bt = W_hh^T
(H, G) give dL/dh_{t-1}, added straight into dh (no scratch, no second pass).

Why not BLAS: these products are small (B/threads x H by H x G) and repeated T times with the
same W_hh; OpenBLAS repacks W_hh on every call and its fixed cost dominates. Measured on the
project's 2-core machine (float32, one thread, 16 x 128 by 128 x 512): OpenBLAS 21-23 GFLOP/s,
this kernel 40-47 GFLOP/s; at 16 x 512 by 512 x 128, 20 against 50-60 (bench/PROFILE.md).

How: each block of 3 columns x 4 rows is 12 dot products over k run together, so every load
of a[i, k] or bt[j, k] feeds 3 or 4 FMAs; with fast-math reassociation LLVM vectorizes the
k loop into 12 vector accumulators (check: ``inspect_asm`` shows vfmadd231ps on ymm), and
sums each across lanes once at the end. Columns are the outer loop, so a block of bt (3 rows)
is read once per step while a, the smaller operand, is re-read from L1/L2.
"""
from numba import njit

from ..config import CACHE, ERROR_MODEL, FASTMATH
from ._math import zero_like


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def matmul_nt(a, bt, out, r0, r1, accumulate):
    """out[r0:r1] = a[r0:r1] @ bt.T, or += when ``accumulate``. a (M, K), bt (N, K), out (M, N),
    all C-contiguous."""
    K = a.shape[1]
    N = bt.shape[0]
    z = zero_like(a[0, 0])
    j = 0
    while j + 3 <= N:
        w0, w1, w2 = bt[j], bt[j + 1], bt[j + 2]
        i = r0
        while i + 4 <= r1:
            a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
            s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = z
            for k in range(K):
                y0, y1, y2 = w0[k], w1[k], w2[k]
                x = a0[k]
                s00 += x * y0
                s01 += x * y1
                s02 += x * y2
                x = a1[k]
                s10 += x * y0
                s11 += x * y1
                s12 += x * y2
                x = a2[k]
                s20 += x * y0
                s21 += x * y1
                s22 += x * y2
                x = a3[k]
                s30 += x * y0
                s31 += x * y1
                s32 += x * y2
            if accumulate:
                s00 += out[i, j]
                s01 += out[i, j + 1]
                s02 += out[i, j + 2]
                s10 += out[i + 1, j]
                s11 += out[i + 1, j + 1]
                s12 += out[i + 1, j + 2]
                s20 += out[i + 2, j]
                s21 += out[i + 2, j + 1]
                s22 += out[i + 2, j + 2]
                s30 += out[i + 3, j]
                s31 += out[i + 3, j + 1]
                s32 += out[i + 3, j + 2]
            out[i, j], out[i, j + 1], out[i, j + 2] = s00, s01, s02
            out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2] = s10, s11, s12
            out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2] = s20, s21, s22
            out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2] = s30, s31, s32
            i += 4
        while i < r1:  # leftover rows (B = 1 takes only this path): 3 dot products at once
            a0 = a[i]
            s0 = s1 = s2 = z
            for k in range(K):
                x = a0[k]
                s0 += x * w0[k]
                s1 += x * w1[k]
                s2 += x * w2[k]
            if accumulate:
                s0 += out[i, j]
                s1 += out[i, j + 1]
                s2 += out[i, j + 2]
            out[i, j], out[i, j + 1], out[i, j + 2] = s0, s1, s2
            i += 1
        j += 3
    while j < N:  # leftover columns
        w0 = bt[j]
        for i in range(r0, r1):
            a0 = a[i]
            s0 = z
            for k in range(K):
                s0 += a0[k] * w0[k]
            out[i, j] = out[i, j] + s0 if accumulate else s0
        j += 1


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def add_recurrent_grad(dpre_t, w_hh_t, dh, b0, b1):
    """dh[b] += dpre_t[b] @ W_hh for sequences b0..b1-1: the part of dL/dh_{t-1} that flows
    back through W_hh. dpre_t (B, G) is the recurrent-side pre-activation gradient of step t,
    w_hh_t (H, G) is W_hh transposed, dh (B, H). Every cell's backward ends each step with it."""
    matmul_nt(dpre_t, w_hh_t, dh, b0, b1, True)
