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
import numpy as np
from numba import cuda, float32, float64

from ..cells._math import zero_like
from .cellmath import (elman_backward, elman_forward, gru_backward, gru_forward, lstm_backward, lstm_forward,
                       modrelu_backward, modrelu_forward)

MAX_H = 1024  # shared arrays are static: MAX_H + 4 * MAX_H floats (40 KB in float64)
MAX_G = 4 * MAX_H


@cuda.jit(device=True)
def _copy(dst, src, H):
    """dst[j] = src[j] for j < H, the units split over the block's threads."""
    for j in range(cuda.threadIdx.x, H, cuda.blockDim.x):
        dst[j] = src[j]


@cuda.jit(device=True)
def _next_carry(carry, dp, w_hh, live, g_row, z_row, gru):
    """The block's new carry, dL/dh_{t-1}[k]: on a live step sum_g dp[g] W_hh[g, k], plus
    g_k z_k for the GRU (its direct path h_prev -> h); on a padded step g_k passes through.
    g_row: this step's dL/dh_t; z_row: the GRU's z gates (any row otherwise)."""
    G, H = w_hh.shape
    for k in range(cuda.threadIdx.x, H, cuda.blockDim.x):
        if live:
            s = g_row[k] * z_row[k] if gru else zero_like(carry[0])
            for gj in range(G):
                s += dp[gj] * w_hh[gj, k]
            carry[k] = s
        else:
            carry[k] = g_row[k]


def _make(dtype):
    @cuda.jit
    def elman_fwd(xproj, bias, w_t, lengths, relu, h):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        _copy(hs, h[0, b], H)
        cuda.syncthreads()
        for t in range(T):
            live = t < lengths[b]  # the same for the whole block: syncthreads stays uniform
            for j in range(tid, H, nt):
                if live:
                    a = xproj[t, b, j] + bias[j]
                    for k in range(H):
                        a += hs[k] * w_t[k, j]
                    h[t + 1, b, j] = elman_forward(a, relu)
                else:
                    h[t + 1, b, j] = hs[j]
            cuda.syncthreads()
            _copy(hs, h[t + 1, b], H)
            cuda.syncthreads()

    @cuda.jit
    def gru_fwd(xproj, bias, b_hn, w_t, lengths, h, gates, ghn):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        _copy(hs, h[0, b], H)
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
                    r, z, n, h[t + 1, b, j] = gru_forward(ar, az, xproj[t, b, 2 * H + j] + bias[2 * H + j], q, hs[j])
                else:
                    h[t + 1, b, j] = hs[j]
                    r = z = n = q = zero_like(hs[0])
                gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j], ghn[t, b, j] = r, z, n, q
            cuda.syncthreads()
            _copy(hs, h[t + 1, b], H)
            cuda.syncthreads()

    @cuda.jit
    def lstm_fwd(xproj, bias, w_t, lengths, h, c, gates):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        _copy(hs, h[0, b], H)
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
                    i, f, g, o, c[t + 1, b, j], h[t + 1, b, j] = lstm_forward(ai, af, ag, ao, c[t, b, j])
                else:
                    h[t + 1, b, j], c[t + 1, b, j] = hs[j], c[t, b, j]
                    i = f = g = o = zero_like(hs[0])
                gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j], gates[t, b, 3 * H + j] = i, f, g, o
            cuda.syncthreads()
            _copy(hs, h[t + 1, b], H)
            cuda.syncthreads()

    # ------------------------------------------------------------------ backward
    # carry holds dL/dh of the step being processed (from later steps); dp one row of the
    # recurrent-side pre-activation gradient, read by every thread for the W_hh product.
    @cuda.jit
    def elman_bwd(dh, dh_in, s0, s1, lengths, relu, h, w_hh, dpre, dh_seq):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        _copy(carry, dh[b], H)
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                dpre[w, b, j] = dp[j] = elman_backward(g, h[t + 1, b, j], relu) if live else zero_like(g)
            cuda.syncthreads()
            _next_carry(carry, dp, w_hh, live, dh_seq[w, b], dh_seq[w, b], False)
            cuda.syncthreads()
        _copy(dh[b], carry, H)

    @cuda.jit
    def gru_bwd(dh, dh_in, s0, s1, lengths, h, gates, ghn, w_hh, dgi, dgh, dh_seq):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        _copy(carry, dh[b], H)
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                r = gates[t, b, j]
                drp = dzp = dnp = zero_like(g)
                if live:
                    drp, dzp, dnp = gru_backward(g, r, gates[t, b, H + j], gates[t, b, 2 * H + j], ghn[t, b, j],
                                                 h[t, b, j])
                dgi[w, b, j], dgi[w, b, H + j], dgi[w, b, 2 * H + j] = drp, dzp, dnp
                dgh[w, b, j] = dp[j] = drp
                dgh[w, b, H + j] = dp[H + j] = dzp
                dgh[w, b, 2 * H + j] = dp[2 * H + j] = dnp * r
            cuda.syncthreads()
            _next_carry(carry, dp, w_hh, live, dh_seq[w, b], gates[t, b, H:], True)
            cuda.syncthreads()
        _copy(dh[b], carry, H)

    @cuda.jit
    def lstm_bwd(dh, dc, dh_in, s0, s1, lengths, c, gates, w_hh, dpre, dh_seq):
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        _copy(carry, dh[b], H)
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):  # dc[b, j] is this thread's own carry
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                d0 = d1 = d2 = d3 = zero_like(g)
                if live:
                    d0, d1, d2, d3, dc[b, j] = lstm_backward(g, dc[b, j], gates[t, b, j], gates[t, b, H + j],
                                                             gates[t, b, 2 * H + j], gates[t, b, 3 * H + j],
                                                             c[t + 1, b, j], c[t, b, j])
                dpre[w, b, j] = dp[j] = d0
                dpre[w, b, H + j] = dp[H + j] = d1
                dpre[w, b, 2 * H + j] = dp[2 * H + j] = d2
                dpre[w, b, 3 * H + j] = dp[3 * H + j] = d3
            cuda.syncthreads()
            _next_carry(carry, dp, w_hh, live, dh_seq[w, b], dh_seq[w, b], False)
            cuda.syncthreads()
        _copy(dh[b], carry, H)

    @cuda.jit
    def exprnn_fwd(xproj, bias, b_act, w_t, lengths, h):
        """elman_fwd with modReLU (b_act its bias) for the nonlinearity."""
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        _copy(hs, h[0, b], H)
        cuda.syncthreads()
        for t in range(T):
            live = t < lengths[b]
            for j in range(tid, H, nt):
                if live:
                    a = xproj[t, b, j] + bias[j]
                    for k in range(H):
                        a += hs[k] * w_t[k, j]
                    h[t + 1, b, j] = modrelu_forward(a, b_act[j])
                else:
                    h[t + 1, b, j] = hs[j]
            cuda.syncthreads()
            _copy(hs, h[t + 1, b], H)
            cuda.syncthreads()

    @cuda.jit
    def exprnn_bwd(dh, dh_in, s0, s1, lengths, h, w_hh, dpre, dact, dh_seq):
        """elman_bwd with modReLU: dpre = dL/dz, dact = g sign(h) (its bias's gradient per row)."""
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        dp = cuda.shared.array(MAX_G, dtype)
        _copy(carry, dh[b], H)
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):
                g = carry[j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                if live:
                    d, da = modrelu_backward(g, h[t + 1, b, j])
                else:
                    d = da = zero_like(g)
                dpre[w, b, j] = dp[j] = d
                dact[w, b, j] = da
            cuda.syncthreads()
            _next_carry(carry, dp, w_hh, live, dh_seq[w, b], dh_seq[w, b], False)
            cuda.syncthreads()
        _copy(dh[b], carry, H)

    return dict(elman_fwd=elman_fwd, gru_fwd=gru_fwd, lstm_fwd=lstm_fwd, exprnn_fwd=exprnn_fwd,
                elman_bwd=elman_bwd, gru_bwd=gru_bwd, lstm_bwd=lstm_bwd, exprnn_bwd=exprnn_bwd)


_KERNELS = {}


def kernels(dtype):
    """The eight kernels for a dtype, compiled on first use."""
    dt = np.dtype(dtype)
    if dt not in _KERNELS:
        _KERNELS[dt] = _make(float32 if dt == np.float32 else float64)
    return _KERNELS[dt]


def threads_for(H, cap=256):
    """Threads per block: a whole number of warps covering H where it can (each thread then
    owns one or a few units)."""
    return H if H < 32 else min(cap, 32 * ((H + 31) // 32))
