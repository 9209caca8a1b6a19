"""The LayerNorm LSTM on the GPU (fastrnn/cells/lnlstm.py; the math and buffers are those of
fastrnn/cpu/lnlstm.py): its forward and backward step as device functions of one block per
sequence, since each of a step's three LayerNorms is a reduction over the sequence's row.

Both paths run the same step functions: ``sequence`` (one launch per layer and direction, the
recurrent product inside, as sequence.py's kernels) and ``steps`` (per step, the GEMM then one
block per sequence for the pointwise part, as kernels.py's). A thread owns units j, j + nt, ...
and their four gate columns: everything it writes per unit (c, gates, the normalized rows, its
columns of dnorm) is its own, so threads meet only in the block sums.

Block sums: each thread puts its partial sums in shared memory, and after a barrier every
thread adds all of them up in the same order, so every thread holds the same bits (and the
result does not depend on which thread finished first); a second barrier frees the scratch.
"""
import math

import numpy as np
from numba import cuda, float32, float64

from ..cells._math import one_like, zero_like
from .cellmath import sigmoid
from .sequence import MAX_H, _copy, _next_carry

MAX_T = 256  # threads per block at most (sequence.threads_for's cap)
RED = 2 * MAX_T  # the block sums' shared scratch (a shared array's size must be a constant)


@cuda.jit(device=True)
def _block_sums(a, b, red):
    """(sum of a, sum of b) over the block's threads, in every thread; red: shared (2 MAX_T,)."""
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    red[tid] = a
    red[MAX_T + tid] = b
    cuda.syncthreads()
    sa, sb = zero_like(a), zero_like(b)
    for k in range(nt):
        sa += red[k]
        sb += red[MAX_T + k]
    cuda.syncthreads()
    return sa, sb


@cuda.jit(device=True)
def _forward_step(t, b, raw, xproj, bias, gain_ih, gain_hh, gain_c, bias_c, consts, h, c, gates, xnorm, hnorm, cnorm,
                  rstd, red):
    """One live step of sequence b: raw (4H,) the recurrent product h_{t-1} W_hh^T (on the
    sequence path hnorm[t, b] itself, overwritten here by its normalized form)."""
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    H = h.shape[2]
    inv_g, inv_h, eps = consts[0], consts[1], consts[2]
    one = one_like(eps)
    sx = sh = zero_like(eps)
    for j in range(tid, H, nt):
        for q in range(4):
            sx += xproj[t, b, q * H + j]
            sh += raw[q * H + j]
    sx, sh = _block_sums(sx, sh, red)
    mx, mh = sx * inv_g, sh * inv_g
    vx = vh = zero_like(eps)
    for j in range(tid, H, nt):
        for q in range(4):
            dx = xproj[t, b, q * H + j] - mx
            dh = raw[q * H + j] - mh
            vx += dx * dx
            vh += dh * dh
    vx, vh = _block_sums(vx, vh, red)
    rx, rh = one / math.sqrt(vx * inv_g + eps), one / math.sqrt(vh * inv_g + eps)
    sc = zero_like(eps)
    for j in range(tid, H, nt):
        for q in range(4):
            col = q * H + j
            xn = (xproj[t, b, col] - mx) * rx
            hn = (raw[col] - mh) * rh
            xnorm[t, b, col], hnorm[t, b, col] = xn, hn
            a = gain_ih[col] * xn + gain_hh[col] * hn + bias[col]
            gates[t, b, col] = math.tanh(a) if q == 2 else sigmoid(a)
        cn = gates[t, b, H + j] * c[t, b, j] + gates[t, b, j] * gates[t, b, 2 * H + j]
        c[t + 1, b, j] = cn
        sc += cn
    sc, _ = _block_sums(sc, zero_like(eps), red)
    mc = sc * inv_h
    vc = zero_like(eps)
    for j in range(tid, H, nt):
        d = c[t + 1, b, j] - mc
        vc += d * d
    vc, _ = _block_sums(vc, zero_like(eps), red)
    rc = one / math.sqrt(vc * inv_h + eps)
    for j in range(tid, H, nt):
        cz = (c[t + 1, b, j] - mc) * rc
        cnorm[t, b, j] = cz
        h[t + 1, b, j] = gates[t, b, 3 * H + j] * math.tanh(gain_c[j] * cz + bias_c[j])
    if tid == 0:
        rstd[t, b, 0], rstd[t, b, 1], rstd[t, b, 2] = rx, rh, rc


@cuda.jit(device=True)
def _frozen_step(t, b, h, c, gates):
    """A step past sequence b's length: the state carried, the gates 0."""
    H = h.shape[2]
    for j in range(cuda.threadIdx.x, H, cuda.blockDim.x):
        h[t + 1, b, j], c[t + 1, b, j] = h[t, b, j], c[t, b, j]
        for q in range(4):
            gates[t, b, q * H + j] = zero_like(h[0, 0, 0])


@cuda.jit(device=True)
def _backward_step(t, w, b, c, gates, xnorm, hnorm, cnorm, rstd, gain_ih, gain_hh, gain_c, bias_c, consts, dgi, dgh,
                   dh_seq, dc, dnorm, red):
    """One live step of sequence b backward, dh_seq[w, b] holding dL/dh_t: dgi[w, b], dgh[w, b],
    the carry dc[b] (in: dL/dc_t from step t+1; out: dL/dc_{t-1}) and b's sums in dnorm."""
    tid, nt = cuda.threadIdx.x, cuda.blockDim.x
    H = dc.shape[1]
    G = 4 * H
    inv_g, inv_h = consts[0], consts[1]
    one = one_like(inv_g)
    rx, rh, rc = rstd[t, b, 0], rstd[t, b, 1], rstd[t, b, 2]
    m1 = m2 = zero_like(inv_g)
    for j in range(tid, H, nt):  # through h = o tanh(gain_c cn + bias_c); dgh[w, b, j] keeps y for now
        cz, o, ds = cnorm[t, b, j], gates[t, b, 3 * H + j], dh_seq[w, b, j]
        tn = math.tanh(gain_c[j] * cz + bias_c[j])
        dgi[w, b, 3 * H + j] = ds * tn * o * (one - o)
        dn = ds * o * (one - tn * tn)
        dnorm[b, 3 * G + j] += dn * cz
        dnorm[b, 3 * G + H + j] += dn
        y = dn * gain_c[j]
        dgh[w, b, j] = y
        m1 += y
        m2 += y * cz
    m1, m2 = _block_sums(m1, m2, red)
    m1, m2 = m1 * inv_h, m2 * inv_h
    s1x = s2x = s1h = s2h = zero_like(inv_g)
    for j in range(tid, H, nt):
        i, f, g = gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j]
        dcn = dc[b, j] + rc * (dgh[w, b, j] - m1 - cnorm[t, b, j] * m2)
        dgi[w, b, j] = dcn * g * i * (one - i)
        dgi[w, b, H + j] = dcn * c[t, b, j] * f * (one - f)
        dgi[w, b, 2 * H + j] = dcn * i * (one - g * g)
        dc[b, j] = dcn * f
        for q in range(4):
            col = q * H + j
            p, xn, hn = dgi[w, b, col], xnorm[t, b, col], hnorm[t, b, col]
            dnorm[b, col] += p
            dnorm[b, G + col] += p * xn
            dnorm[b, 2 * G + col] += p * hn
            yx, yh = p * gain_ih[col], p * gain_hh[col]
            s1x += yx
            s2x += yx * xn
            s1h += yh
            s2h += yh * hn
    s1x, s2x = _block_sums(s1x, s2x, red)
    s1h, s2h = _block_sums(s1h, s2h, red)
    s1x, s2x, s1h, s2h = s1x * inv_g, s2x * inv_g, s1h * inv_g, s2h * inv_g
    for j in range(tid, H, nt):
        for q in range(4):
            col = q * H + j
            p, xn, hn = dgi[w, b, col], xnorm[t, b, col], hnorm[t, b, col]
            dgh[w, b, col] = rh * (p * gain_hh[col] - s1h - hn * s2h)
            dgi[w, b, col] = rx * (p * gain_ih[col] - s1x - xn * s2x)


def _make(dtype):
    @cuda.jit
    def seq_fwd(xproj, bias, gain_ih, gain_hh, gain_c, bias_c, consts, w_t, lengths, h, c, gates, xnorm, hnorm,
                cnorm, rstd):
        """Every step of one layer, block b = sequence b; the recurrent product inside (its raw
        values into hnorm[t, b] before they are normalized there)."""
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H, T = h.shape[2], xproj.shape[0]
        hs = cuda.shared.array(MAX_H, dtype)
        red = cuda.shared.array(RED, dtype)
        _copy(hs, h[0, b], H)
        cuda.syncthreads()
        for t in range(T):
            if t < lengths[b]:  # the same for the whole block: its barriers stay uniform
                for j in range(tid, H, nt):
                    for q in range(4):
                        a = zero_like(hs[0])
                        for k in range(H):
                            a += hs[k] * w_t[k, q * H + j]
                        hnorm[t, b, q * H + j] = a
                _forward_step(t, b, hnorm[t, b], xproj, bias, gain_ih, gain_hh, gain_c, bias_c, consts, h, c, gates,
                              xnorm, hnorm, cnorm, rstd, red)
            else:
                _frozen_step(t, b, h, c, gates)
            cuda.syncthreads()
            _copy(hs, h[t + 1, b], H)
            cuda.syncthreads()

    @cuda.jit
    def seq_bwd(dh, dc, dh_in, s0, s1, lengths, c, gates, xnorm, hnorm, cnorm, rstd, gain_ih, gain_hh, gain_c, bias_c,
                consts, w_hh, dgi, dgh, dh_seq, dnorm):
        """Steps s1..s0 backward, block b = sequence b; dL/dh_{t-1} = dgh W_hh inside."""
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        carry = cuda.shared.array(MAX_H, dtype)
        red = cuda.shared.array(RED, dtype)
        _copy(carry, dh[b], H)
        cuda.syncthreads()
        for t in range(s1, s0 - 1, -1):
            w, live = t - s0, t < lengths[b]
            for j in range(tid, H, nt):
                dh_seq[w, b, j] = carry[j] + dh_in[w, b, j]
            if live:
                _backward_step(t, w, b, c, gates, xnorm, hnorm, cnorm, rstd, gain_ih, gain_hh, gain_c, bias_c, consts,
                               dgi, dgh, dh_seq, dc, dnorm, red)
            else:
                for j in range(tid, 4 * H, nt):
                    dgi[w, b, j] = dgh[w, b, j] = zero_like(carry[0])
            cuda.syncthreads()
            _next_carry(carry, dgh[w, b], w_hh, live, dh_seq[w, b], dh_seq[w, b], False)
            cuda.syncthreads()
        _copy(dh[b], carry, H)

    @cuda.jit
    def step_fwd(gh, xproj, bias, gain_ih, gain_hh, gain_c, bias_c, consts, lengths, t, h, c, gates, xnorm, hnorm,
                 cnorm, rstd):
        """Step t after the host's GEMM gh = h_{t-1} W_hh^T (B, 4H): block b = sequence b."""
        b = cuda.blockIdx.x
        red = cuda.shared.array(RED, dtype)
        if t < lengths[b]:
            _forward_step(t, b, gh[b], xproj, bias, gain_ih, gain_hh, gain_c, bias_c, consts, h, c, gates, xnorm,
                          hnorm, cnorm, rstd, red)
        else:
            _frozen_step(t, b, h, c, gates)

    @cuda.jit
    def step_bwd(dh, dc, dh_in, t, s0, lengths, c, gates, xnorm, hnorm, cnorm, rstd, gain_ih, gain_hh, gain_c, bias_c,
                 consts, dgi, dgh, dh_seq, dnorm):
        """Step t backward before the host's GEMM dh += dgh W_hh: dh[b] is read, then zeroed
        (a padded step passes it through, its dgi and dgh 0)."""
        b, tid, nt = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
        H = dh.shape[1]
        w = t - s0
        live = t < lengths[b]
        for j in range(tid, H, nt):
            g = dh[b, j] + dh_in[w, b, j]
            dh_seq[w, b, j] = g
            dh[b, j] = zero_like(g) if live else g
        red = cuda.shared.array(RED, dtype)
        if live:
            _backward_step(t, w, b, c, gates, xnorm, hnorm, cnorm, rstd, gain_ih, gain_hh, gain_c, bias_c, consts,
                           dgi, dgh, dh_seq, dc, dnorm, red)
        else:
            for j in range(tid, 4 * H, nt):
                dgi[w, b, j] = dgh[w, b, j] = zero_like(dh[0, 0])

    return dict(seq_fwd=seq_fwd, seq_bwd=seq_bwd, step_fwd=step_fwd, step_bwd=step_bwd)


_KERNELS = {}


def kernels(dtype):
    """The four kernels for a dtype, compiled on first use."""
    dt = np.dtype(dtype)
    if dt not in _KERNELS:
        _KERNELS[dt] = _make(float32 if dt == np.float32 else float64)
    return _KERNELS[dt]
