"""The weight gradients' product when its narrow side is small: our own tile instead of BLAS.

    out[i, j] = sum_n nt[i, n] * a[n, j]        n in 0..L-1, in blocks of SUM_BLOCK

A layer's weight gradients are [x | h | 1]^T (R, L) times the gate gradients (L, M), the sum
running over every step of the batch (L = T x B, or a part of it: blas.matmul_tn). With R in
the tens or low hundreds (R = I + H + 1), OpenBLAS, blocked for large squares, packs the wide
operand a for every call and uses each packed number only R times: measured on one core of the
project's machine, float32, 8 parts of 400 rows, it ran R = 35, M = 128 at 70-75 GFLOP/s and
R = 131, M = 512 (an LSTM at H = 128) at 73-84, against 93-97 at R = 641, M = 2048. This tile
ran them at 95 and 93-95 (bench/PROFILE.md, round 10 and issue #32).

How: a tile of 6 rows x P columns (P = 2 registers: 16 float32) lives in 12 vector registers
(simd.py) while the n loop adds broadcast(nt[i, n]) * a[n, j:j+P] into them: 2 loads of a
and 6 broadcasts feed 12 FMAs, enough independent chains to cover the FMA latency (the
recurrent product's 4-row tile has 8). a is read a strip of P columns at a time: SUM_BLOCK
rows of the strip are first copied into a contiguous 16 KB buffer that stays in L1 while
every row tile reads it. Read in place, the strip's rows lie M x 4 bytes apart and fall into
a few of L1's sets (M = 512: 2 of 64; M = 2048: 1), so they did not stay there: measured
R = 132, M = 2048, 43 GFLOP/s in place against 87 copied. Each output element is a fused
multiply-add chain over one block of SUM_BLOCK rows, added to the previous blocks' sum: a
blocked sum like BLAS's (one chain over 3200 rows had 4-5x BLAS's float32 error), and the
same bits whatever thread or part of the rows calls it (the copy moves numbers, it does not
change a sum).
"""
import numpy as np
from numba import njit

from ..config import CACHE, ERROR_MODEL, FASTMATH
from .simd import vadd, vfma, vload, vstore, vwidth, vzero

TILE_ROWS = 6  # nt's and out's rows go 6 at a time: callers pad them to a multiple of 6
SUM_BLOCK = 256


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def tn_tile(nt, a, out):
    """out = nt @ a: nt (R, L), a (L, M) and out (R, M) C-contiguous, R a multiple of
    TILE_ROWS and M of P = 2 * vwidth (the caller checks both)."""
    R, L = nt.shape
    M = out.shape[1]
    V = vwidth(out)
    P = 2 * V
    af, of = a.reshape(a.size), out.reshape(out.size)  # flat views, made once (see product.py)
    strip = np.empty(SUM_BLOCK * P, a.dtype)
    for n0 in range(0, L, SUM_BLOCK):
        n1 = min(L, n0 + SUM_BLOCK)
        for j in range(0, M, P):  # a strip of a, its n0..n1 rows copied contiguous: in L1 across row tiles
            for n in range(n0, n1):
                q = (n - n0) * P
                vstore(strip, q, vload(af, n * M + j))
                vstore(strip, q + V, vload(af, n * M + j + V))
            for i in range(0, R, TILE_ROWS):
                c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = vzero(out)
                for n in range(n0, n1):
                    q = (n - n0) * P
                    y0 = vload(strip, q)
                    y1 = vload(strip, q + V)
                    x = nt[i, n]
                    c00 = vfma(c00, x, y0)
                    c01 = vfma(c01, x, y1)
                    x = nt[i + 1, n]
                    c10 = vfma(c10, x, y0)
                    c11 = vfma(c11, x, y1)
                    x = nt[i + 2, n]
                    c20 = vfma(c20, x, y0)
                    c21 = vfma(c21, x, y1)
                    x = nt[i + 3, n]
                    c30 = vfma(c30, x, y0)
                    c31 = vfma(c31, x, y1)
                    x = nt[i + 4, n]
                    c40 = vfma(c40, x, y0)
                    c41 = vfma(c41, x, y1)
                    x = nt[i + 5, n]
                    c50 = vfma(c50, x, y0)
                    c51 = vfma(c51, x, y1)
                o = i * M + j
                if n0 > 0:  # the previous blocks' sums
                    c00, c01 = vadd(c00, vload(of, o)), vadd(c01, vload(of, o + V))
                    c10, c11 = vadd(c10, vload(of, o + M)), vadd(c11, vload(of, o + M + V))
                    c20, c21 = vadd(c20, vload(of, o + 2 * M)), vadd(c21, vload(of, o + 2 * M + V))
                    c30, c31 = vadd(c30, vload(of, o + 3 * M)), vadd(c31, vload(of, o + 3 * M + V))
                    c40, c41 = vadd(c40, vload(of, o + 4 * M)), vadd(c41, vload(of, o + 4 * M + V))
                    c50, c51 = vadd(c50, vload(of, o + 5 * M)), vadd(c51, vload(of, o + 5 * M + V))
                vstore(of, o, c00)
                vstore(of, o + V, c01)
                vstore(of, o + M, c10)
                vstore(of, o + M + V, c11)
                vstore(of, o + 2 * M, c20)
                vstore(of, o + 2 * M + V, c21)
                vstore(of, o + 3 * M, c30)
                vstore(of, o + 3 * M + V, c31)
                vstore(of, o + 4 * M, c40)
                vstore(of, o + 4 * M + V, c41)
                vstore(of, o + 5 * M, c50)
                vstore(of, o + 5 * M + V, c51)
