"""Whole-sequence CUDA kernels: one launch runs a layer over every step, forward or backward.

The step-by-step path (kernels.py) launches a GEMM and a pointwise kernel per step and layer:
~4T launches per training step, each paying the Python-side launch cost. Here one block owns
one sequence b and every hidden unit of it, so the only dependency between steps (h_t needs
all of h_{t-1} of the same sequence) is inside the block: ``syncthreads`` orders the steps,
no grid-wide sync or cooperative launch is needed, and a layer costs one launch each way.
The price: every block reads the whole recurrent matrix each step (from L2 when it fits).

Forward, thread j (units j, j + nthreads, ...): pre = xproj[t, b] + bias + h_{t-1} @ W_hh^T,
reading W_hh transposed (w_t (H, G)) so that a warp's loads are contiguous. Backward: the
pointwise part for each unit, then dL/dh_{t-1}[k] = sum_g dpre[g] W_hh[g, k] (W_hh as is:
again contiguous in k). Same math, masks, windows and seeding as the step kernels; shapes as
in kernels.py. Shared memory holds h_{t-1} (or the carry) and one row of dpre: H <= MAX_H.
"""
import math

import numpy as np
from numba import cuda, float32, float64

MAX_H = 1024  # shared arrays are static: MAX_H + 4 * MAX_H floats (40 KB in float64)
MAX_G = 4 * MAX_H


@cuda.jit(device=True)
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _make(dtype):
    @cuda.jit
    def elman_fwd(xproj, bias, w_t, lengths, relu, h):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        for j in range(tid, H, nt):
            hs[j] = h[0, b, j]
        cuda.syncthreads()
        for t in range(T):
            live = t < lengths[b]  # the same for the whole block: syncthreads stays uniform
            for j in range(tid, H, nt):
                if live:
                    a = xproj[t, b, j] + bias[j]
                    for k in range(H):
                        a += hs[k] * w_t[k, j]
                    h[t + 1, b, j] = (a if a > 0 else 0.0) if relu else math.tanh(a)
                else:
                    h[t + 1, b, j] = hs[j]
            cuda.syncthreads()
            for j in range(tid, H, nt):
                hs[j] = h[t + 1, b, j]
            cuda.syncthreads()

    @cuda.jit
    def gru_fwd(xproj, bias, b_hn, w_t, lengths, h, gates, ghn):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        for j in range(tid, H, nt):
            hs[j] = h[0, b, j]
        cuda.syncthreads()
        for t in range(T):
            live = t < lengths[b]
            for j in range(tid, H, nt):
                if live:
                    ar = xproj[t, b, j] + bias[j]
                    az = xproj[t, b, H + j] + bias[H + j]
                    q = b_hn[j]
                    for k in range(H):
                        hk = hs[k]
                        ar += hk * w_t[k, j]
                        az += hk * w_t[k, H + j]
                        q += hk * w_t[k, 2 * H + j]
                    r, z = _sigmoid(ar), _sigmoid(az)
                    n = math.tanh(xproj[t, b, 2 * H + j] + bias[2 * H + j] + r * q)
                    h[t + 1, b, j] = n + z * (hs[j] - n)
                    gates[t, b, j] = r
                    gates[t, b, H + j] = z
                    gates[t, b, 2 * H + j] = n
                    ghn[t, b, j] = q
                else:
                    h[t + 1, b, j] = hs[j]
                    for g in range(3):
                        gates[t, b, g * H + j] = 0.0
                    ghn[t, b, j] = 0.0
            cuda.syncthreads()
            for j in range(tid, H, nt):
                hs[j] = h[t + 1, b, j]
            cuda.syncthreads()

    @cuda.jit
    def lstm_fwd(xproj, bias, w_t, lengths, h, c, gates):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        for j in range(tid, H, nt):
            hs[j] = h[0, b, j]
        cuda.syncthreads()
        for t in range(T):
            live = t < lengths[b]
            for j in range(tid, H, nt):  # c[., b, j] is this thread's own: no sharing needed
                if live:
                    ai = xproj[t, b, j] + bias[j]
                    af = xproj[t, b, H + j] + bias[H + j]
                    ag = xproj[t, b, 2 * H + j] + bias[2 * H + j]
                    ao = xproj[t, b, 3 * H + j] + bias[3 * H + j]
                    for k in range(H):
                        hk = hs[k]
                        ai += hk * w_t[k, j]
                        af += hk * w_t[k, H + j]
                        ag += hk * w_t[k, 2 * H + j]
                        ao += hk * w_t[k, 3 * H + j]
                    i, f, g, o = _sigmoid(ai), _sigmoid(af), math.tanh(ag), _sigmoid(ao)
                    cn = f * c[t, b, j] + i * g
                    c[t + 1, b, j] = cn
                    h[t + 1, b, j] = o * math.tanh(cn)
                    gates[t, b, j] = i
                    gates[t, b, H + j] = f
                    gates[t, b, 2 * H + j] = g
                    gates[t, b, 3 * H + j] = o
                else:
                    h[t + 1, b, j] = hs[j]
                    c[t + 1, b, j] = c[t, b, j]
                    for g in range(4):
                        gates[t, b, g * H + j] = 0.0
            cuda.syncthreads()
            for j in range(tid, H, nt):
                hs[j] = h[t + 1, b, j]
            cuda.syncthreads()

    # ------------------------------------------------------------------ backward
    # carry[k] holds dL/dh of the step being processed (from later steps); dp one row of the
    # recurrent-side pre-activation gradient, read by every thread for the W_hh product.
    @cuda.jit
    def elman_bwd(dh, dh_in, s0, s1, lengths, relu, h, w_hh, dpre, dh_seq):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        for j in range(tid, H, nt):
            carry[j] = dh[b, j]
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                d = 0.0
                if live:
                    y = h[t + 1, b, j]
                    d = (g if y > 0 else 0.0) if relu else g * (1.0 - y * y)
                dpre[w, b, j] = d
                dp[j] = d
            cuda.syncthreads()
            for k in range(tid, H, nt):
                if live:
                    s = 0.0
                    for gj in range(H):
                        s += dp[gj] * w_hh[gj, k]
                    carry[k] = s
                else:
                    carry[k] = dh_seq[w, b, k]  # a padded step passes the gradient through
            cuda.syncthreads()
        for j in range(tid, H, nt):
            dh[b, j] = carry[j]

    @cuda.jit
    def gru_bwd(dh, dh_in, s0, s1, lengths, h, gates, ghn, w_hh, dgi, dgh, dh_seq):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        for j in range(tid, H, nt):
            carry[j] = dh[b, j]
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                if live:
                    r, z, n = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
                    dnp = g * (1.0 - z) * (1.0 - n * n)
                    drp = dnp * ghn[t, b, j] * r * (1.0 - r)
                    dzp = g * (h[t, b, j] - n) * z * (1.0 - z)
                    dgi[w, b, j] = drp
                    dgi[w, b, H + j] = dzp
                    dgi[w, b, 2 * H + j] = dnp
                    dgh[w, b, j] = drp
                    dgh[w, b, H + j] = dzp
                    dgh[w, b, 2 * H + j] = dnp * r
                    dp[j], dp[H + j], dp[2 * H + j] = drp, dzp, dnp * r
                else:
                    for q in range(3):
                        dgi[w, b, q * H + j] = 0.0
                        dgh[w, b, q * H + j] = 0.0
                        dp[q * H + j] = 0.0
            cuda.syncthreads()
            for k in range(tid, H, nt):
                if live:
                    s = dh_seq[w, b, k] * gates[t, b, H + k]  # the direct path, g * z
                    for gj in range(3 * H):
                        s += dp[gj] * w_hh[gj, k]
                    carry[k] = s
                else:
                    carry[k] = dh_seq[w, b, k]
            cuda.syncthreads()
        for j in range(tid, H, nt):
            dh[b, j] = carry[j]

    @cuda.jit
    def lstm_bwd(dh, dc, dh_in, s0, s1, lengths, c, gates, w_hh, dpre, dh_seq):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        for j in range(tid, H, nt):
            carry[j] = dh[b, j]
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):  # dc[b, j] is this thread's own carry
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                if live:
                    i, f = gates[t, b, j], gates[t, b, H + j]
                    gg, o = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                    tc = math.tanh(c[t + 1, b, j])
                    dcn = dc[b, j] + g * o * (1.0 - tc * tc)
                    d0 = dcn * gg * i * (1.0 - i)
                    d1 = dcn * c[t, b, j] * f * (1.0 - f)
                    d2 = dcn * i * (1.0 - gg * gg)
                    d3 = g * tc * o * (1.0 - o)
                    dpre[w, b, j], dpre[w, b, H + j], dpre[w, b, 2 * H + j], dpre[w, b, 3 * H + j] = d0, d1, d2, d3
                    dp[j], dp[H + j], dp[2 * H + j], dp[3 * H + j] = d0, d1, d2, d3
                    dc[b, j] = dcn * f
                else:
                    for q in range(4):
                        dpre[w, b, q * H + j] = 0.0
                        dp[q * H + j] = 0.0
            cuda.syncthreads()
            for k in range(tid, H, nt):
                if live:
                    s = 0.0
                    for gj in range(4 * H):
                        s += dp[gj] * w_hh[gj, k]
                    carry[k] = s
                else:
                    carry[k] = dh_seq[w, b, k]
            cuda.syncthreads()
        for j in range(tid, H, nt):
            dh[b, j] = carry[j]

    return dict(elman_fwd=elman_fwd, gru_fwd=gru_fwd, lstm_fwd=lstm_fwd,
                elman_bwd=elman_bwd, gru_bwd=gru_bwd, lstm_bwd=lstm_bwd)


_KERNELS = {}


def kernels(dtype):
    """The six kernels for a dtype, compiled on first use."""
    dt = np.dtype(dtype)
    if dt not in _KERNELS:
        _KERNELS[dt] = _make(float32 if dt == np.float32 else float64)
    return _KERNELS[dt]


def threads_for(H, cap=256):
    """Threads per block: a whole number of warps covering H where it can (each thread then
    owns one or a few units)."""
    return min(cap, max(1, H) if H < 32 else 32 * ((min(H, cap) + 31) // 32))
