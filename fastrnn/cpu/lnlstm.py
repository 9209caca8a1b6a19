"""The LayerNorm LSTM's kernels (fastrnn/cells/lnlstm.py): the LSTM loop with three LayerNorms
per step, each a reduction over one sequence's row, so a thread owns whole sequences (the
batch is split by rows only: sharing a row's units would need a barrier per reduction).

Forward, one sequence and step (G = 4H; x-hat = (v - mean v) * r, r = 1 / sqrt(var v + eps)):
    xn = LN-hat(xproj_t)  hn = LN-hat(h_{t-1} W_hh^T)      (tape.xnorm, tape.hnorm)
    [i, f, g, o] = act(gain_ih xn + gain_hh hn + b_ih + b_hh)
    c_t = f c_{t-1} + i g      cn = LN-hat(c_t) (tape.cnorm)      h_t = o tanh(gain_c cn + bias_c)
Backward, with gh = dL/dh_t, gc = dL/dc_t from step t+1, and the LayerNorm's backward
    LN'(y; vn, r) = r (y - mean(y) - vn mean(y vn))        (y the gradient at the gain's output)
    n = gain_c cn + bias_c:   do = gh tanh(n) o(1-o)    dn = gh o (1 - tanh(n)^2)
    dc = gc + LN'(dn gain_c; cn, r_c), then the LSTM's di, df, dg and dL/dc_{t-1} = dc f
    dpre = [di', df', dg', do'] (the gates' pre-activation gradient):
        dgi = LN'(dpre gain_ih; xn, r_x)  (dL/dxproj)    dgh = LN'(dpre gain_hh; hn, r_h)
    dL/dh_{t-1} = dgh W_hh;  per sequence, into tape.dnorm (Cell.norm_columns): dpre (both
    biases), dpre xn (gain_ih), dpre hn (gain_hh), dn cn (gain_c), dn (bias_c)
The per-sequence sums add up over windows (truncated BPTT) as dgi and dgh do; the model sums
them over sequences. Shapes as fastrnn/cpu/lstm.py; rstd (T, B, 3) holds r_x, r_h, r_c.
"""
import math

import numpy as np
from numba import njit

from ..cells._math import copy, one_like, sigmoid, tanh
from ..cells.lnlstm import EPS
from ..config import CACHE, ERROR_MODEL, FASTMATH, MIN_ROWS, ROW_BLOCK
from .product import add_recurrent_grad, matmul_packed, prepare_dense
from .simd import pload, pstore, pzero, vsplit, vsum
from .threads import run_split

@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _row_sum(u):
    """sum u of a row: float32 in registers (a tree), then the rest one by one (cpu/simd.py)."""
    n = u.shape[0]
    stop, V = vsplit(0, n, u)
    acc = pzero(u)
    for j in range(0, stop, V):
        acc = acc + pload(u, j)
    s = vsum(acc)
    for j in range(stop, n):
        s += u[j]
    return s


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _sq_dev(u, m):
    """sum (u - m)^2 of a row, as _row_sum: a variance's second pass (no cancellation)."""
    n = u.shape[0]
    stop, V = vsplit(0, n, u)
    acc = pzero(u)
    for j in range(0, stop, V):
        d = pload(u, j) - m
        acc = acc + d * d
    s = vsum(acc)
    for j in range(stop, n):
        d = u[j] - m
        s += d * d
    return s


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _moments(u, v, inv_n, eps):
    """(mean u, 1 / sqrt(var u + eps), mean v, 1 / sqrt(var v + eps)) of two equal-length rows,
    in one pass for the mean and one for the squared deviations (no cancellation in var)."""
    one = one_like(u[0])
    mu, mv = _row_sum(u) * inv_n, _row_sum(v) * inv_n
    return mu, one / math.sqrt(_sq_dev(u, mu) * inv_n + eps), mv, one / math.sqrt(_sq_dev(v, mv) * inv_n + eps)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _normed(xp, a, mx, rx, mh, rh, gi, gh, bias):
    """One unit, or a register of units (cpu/simd.py): (x-hat, h-hat, the gate's
    pre-activation gain_ih x-hat + gain_hh h-hat + bias)."""
    x_, h_ = (xp - mx) * rx, (a - mh) * rh
    return x_, h_, gi * x_ + gh * h_ + bias


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _cell(i, f, gp, op, cp):
    """(g, o, c_t) from the activated i, f, the pre-activations of g and o, and c_{t-1}."""
    g = tanh(gp)
    return g, sigmoid(op), f * cp + i * g


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _out(c, mc, rc, o, gain_c, bias_c):
    """(c-hat, h_t) from c_t, its row's mean and 1/std, and o."""
    z = (c - mc) * rc
    return z, o * tanh(gain_c * z + bias_c)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _out_grads(z, o, s, gain_c, bias_c):
    """Back through h = o tanh(n), n = gain_c c-hat + bias_c, with s = dL/dh_t: (do', dn,
    y = dn gain_c, the gradient at c-hat)."""
    one = one_like(z)
    tn = tanh(gain_c * z + bias_c)
    dn = s * o * (one - tn * tn)
    return s * tn * o * (one - o), dn, dn * gain_c


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _cell_grads(dc, y, z, m1, m2, rc, i, f, g, cp):
    """dL/dc_t = the carried dc plus LN'(y) (m1, m2: the row's mean(y), mean(y c-hat)), then
    the LSTM's (di', df', dg', dL/dc_{t-1})."""
    one = one_like(dc)
    dcn = dc + rc * (y - m1 - z * m2)
    return dcn * g * i * (one - i), dcn * cp * f * (one - f), dcn * i * (one - g * g), dcn * f


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _ln_back(p, gain, vn, s1, s2, r):
    """LN'(p gain; vn, r) of one unit or register, with s1, s2 the row's mean(p gain) and
    mean(p gain vn) (module doc)."""
    return r * (p * gain - s1 - vn * s2)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def lnlstm_forward_rows(xproj, bias, gain_ih, gain_hh, gain_c, bias_c, consts, w_fwd, lengths, h, c, gates, gh,
                        xnorm, hnorm, cnorm, rstd, b0, b1):
    """One layer forward over all T steps for sequences b0..b1-1 (one thread's share).

    xproj (T, B, 4H) W_ih x_t; bias (4H,) b_ih + b_hh; gain_ih, gain_hh (4H,), gain_c, bias_c
    (H,); consts (1/4H, 1/H, eps) in the dtype; w_fwd W_hh^T as panels; lengths (B,): past it
    the state is carried; h, c (T+1, B, H) with the initial state in [0]; gates (T, B, 4H)
    out, activated; gh (B, 4H) scratch; xnorm, hnorm (T, B, 4H), cnorm (T, B, H), rstd
    (T, B, 3) out (module doc).
    """
    T, B, G = xproj.shape
    H = G // 4
    inv_g, inv_h, eps = consts[0], consts[1], consts[2]
    for t in range(T):
        matmul_packed(h[t], w_fwd, gh, b0, b1, 0.0)
        for b in range(b0, b1):
            gt = gates[t, b]
            if t >= lengths[b]:
                copy(h[t + 1, b], h[t, b])
                copy(c[t + 1, b], c[t, b])
                gt[:] = 0
                continue
            xp, a, xn, hn, r = xproj[t, b], gh[b], xnorm[t, b], hnorm[t, b], rstd[t, b]
            mx, rx, mh, rh = _moments(xp, a, inv_g, eps)
            # every loop: float32 in registers, then the rest unit by unit (cpu/simd.py)
            stop, V = vsplit(0, G, gt)
            for j in range(0, stop, V):
                x_, h_, p = _normed(pload(xp, j), pload(a, j), mx, rx, mh, rh, pload(gain_ih, j), pload(gain_hh, j),
                                    pload(bias, j))
                pstore(xn, j, x_)
                pstore(hn, j, h_)
                pstore(gt, j, p)
            for j in range(stop, G):
                xn[j], hn[j], gt[j] = _normed(xp[j], a[j], mx, rx, mh, rh, gain_ih[j], gain_hh[j], bias[j])
            stop, V = vsplit(0, 2 * H, gt)
            for j in range(0, stop, V):  # i, f
                pstore(gt, j, sigmoid(pload(gt, j)))
            for j in range(stop, 2 * H):
                gt[j] = sigmoid(gt[j])
            cp, cn, hnext, cz = c[t, b], c[t + 1, b], h[t + 1, b], cnorm[t, b]
            stop, V = vsplit(0, H, gt)
            vm = pzero(cn)
            for j in range(0, stop, V):
                g, o, cj = _cell(pload(gt, j), pload(gt, H + j), pload(gt, 2 * H + j), pload(gt, 3 * H + j), pload(cp, j))
                pstore(gt, 2 * H + j, g)
                pstore(gt, 3 * H + j, o)
                pstore(cn, j, cj)
                vm = vm + cj
            mc = vsum(vm)
            for j in range(stop, H):
                gt[2 * H + j], gt[3 * H + j], cn[j] = _cell(gt[j], gt[H + j], gt[2 * H + j], gt[3 * H + j], cp[j])
                mc += cn[j]
            mc *= inv_h
            rc = one_like(inv_h) / math.sqrt(_sq_dev(cn, mc) * inv_h + eps)
            for j in range(0, stop, V):
                z, hj = _out(pload(cn, j), mc, rc, pload(gt, 3 * H + j), pload(gain_c, j), pload(bias_c, j))
                pstore(cz, j, z)
                pstore(hnext, j, hj)
            for j in range(stop, H):
                cz[j], hnext[j] = _out(cn[j], mc, rc, gt[3 * H + j], gain_c[j], bias_c[j])
            r[0], r[1], r[2] = rx, rh, rc

@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def lnlstm_backward_rows(s0, s1, dh_in, lengths, c, gates, xnorm, hnorm, cnorm, rstd, gain_ih, gain_hh, gain_c,
                         bias_c, consts, w_bwd, dgi, dgh, dh_seq, dh, dc, dnorm, b0, b1):
    """Reverse sweep over the window s1 .. s0 for sequences b0..b1-1 (window-relative dgi, dgh,
    dh_seq, indexed t - s0).

    dh_in (W, B, H) dL/dh_t from above; the forward's c, gates, xnorm, hnorm, cnorm, rstd;
    w_bwd W_hh as panels; dgi (W, B, 4H) out: dL/dxproj; dgh (W, B, 4H) out: the recurrent
    side's, before W_hh; dh_seq (W, B, H) out: total dL/dh_t; dh, dc (B, H) the carries in
    (into step s1) and out; dnorm (B, 3*4H + 2H): the per-sequence sums, added to.

    Each LayerNorm's backward takes two passes: the sums mean(y) and mean(y vn) in the pass
    that makes y, then the pass that writes LN'(y) (module doc).
    """
    H = dh.shape[1]
    G = 4 * H
    inv_g, inv_h = consts[0], consts[1]
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(b0, b1):
            d, dcb, din, ds, dp, dq = dh[b], dc[b], dh_in[w, b], dh_seq[w, b], dgi[w, b], dgh[w, b]
            for j in range(H):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                dp[:] = 0
                dq[:] = 0
                copy(d, ds)
                continue
            gt, cz, r, cp = gates[t, b], cnorm[t, b], rstd[t, b], c[t, b]
            acc = dnorm[b]  # its blocks: both biases, gain_ih, gain_hh (G each), gain_c, bias_c (H each)
            gc, bc = 3 * G, 3 * G + H  # acc's gain_c and bias_c sums start here
            # through h = o tanh(gain_c cn + bias_c): y = dn gain_c, kept in dq's first H for now.
            # Every loop: float32 in registers, then the rest unit by unit (cpu/simd.py)
            stop, V = vsplit(0, H, gt)
            v1, v2 = pzero(cz), pzero(cz)
            for j in range(0, stop, V):
                z = pload(cz, j)
                do, dn, y = _out_grads(z, pload(gt, 3 * H + j), pload(ds, j), pload(gain_c, j), pload(bias_c, j))
                pstore(dp, 3 * H + j, do)
                pstore(acc, gc + j, pload(acc, gc + j) + dn * z)
                pstore(acc, bc + j, pload(acc, bc + j) + dn)
                pstore(dq, j, y)
                v1 = v1 + y
                v2 = v2 + y * z
            m1, m2 = vsum(v1), vsum(v2)
            for j in range(stop, H):
                dp[3 * H + j], dn, dq[j] = _out_grads(cz[j], gt[3 * H + j], ds[j], gain_c[j], bias_c[j])
                acc[gc + j] += dn * cz[j]
                acc[bc + j] += dn
                m1 += dq[j]
                m2 += dq[j] * cz[j]
            m1 *= inv_h
            m2 *= inv_h
            rc = r[2]
            for j in range(0, stop, V):
                di, df, dg, dc_ = _cell_grads(pload(dcb, j), pload(dq, j), pload(cz, j), m1, m2, rc, pload(gt, j),
                                              pload(gt, H + j), pload(gt, 2 * H + j), pload(cp, j))
                pstore(dp, j, di)
                pstore(dp, H + j, df)
                pstore(dp, 2 * H + j, dg)
                pstore(dcb, j, dc_)
            for j in range(stop, H):
                dp[j], dp[H + j], dp[2 * H + j], dcb[j] = _cell_grads(dcb[j], dq[j], cz[j], m1, m2, rc, gt[j], gt[H + j],
                                                                      gt[2 * H + j], cp[j])
            xn, hn = xnorm[t, b], hnorm[t, b]
            stop, V = vsplit(0, G, gt)
            w1x, w2x, w1h, w2h = pzero(xn), pzero(xn), pzero(xn), pzero(xn)
            for j in range(0, stop, V):  # the LayerNorms' sums, and the gains' and shifts' gradients
                p, x_, h_ = pload(dp, j), pload(xn, j), pload(hn, j)
                yx, yh = p * pload(gain_ih, j), p * pload(gain_hh, j)
                w1x = w1x + yx
                w2x = w2x + yx * x_
                w1h = w1h + yh
                w2h = w2h + yh * h_
                pstore(acc, j, pload(acc, j) + p)
                pstore(acc, G + j, pload(acc, G + j) + p * x_)
                pstore(acc, 2 * G + j, pload(acc, 2 * G + j) + p * h_)
            s1x, s2x, s1h, s2h = vsum(w1x), vsum(w2x), vsum(w1h), vsum(w2h)
            for j in range(stop, G):
                yx, yh = dp[j] * gain_ih[j], dp[j] * gain_hh[j]
                s1x += yx
                s2x += yx * xn[j]
                s1h += yh
                s2h += yh * hn[j]
                acc[j] += dp[j]
                acc[G + j] += dp[j] * xn[j]
                acc[2 * G + j] += dp[j] * hn[j]
            s1x *= inv_g
            s2x *= inv_g
            s1h *= inv_g
            s2h *= inv_g
            rx, rh = r[0], r[1]
            for j in range(0, stop, V):
                p = pload(dp, j)
                pstore(dq, j, _ln_back(p, pload(gain_hh, j), pload(hn, j), s1h, s2h, rh))
                pstore(dp, j, _ln_back(p, pload(gain_ih, j), pload(xn, j), s1x, s2x, rx))
            for j in range(stop, G):
                dq[j] = _ln_back(dp[j], gain_hh[j], hn[j], s1h, s2h, rh)
                dp[j] = _ln_back(dp[j], gain_ih[j], xn[j], s1x, s2x, rx)
            d[:] = 0
        add_recurrent_grad(dgh[w], w_bwd, dh, b0, b1)

# --------------------------------------------------------------------------- CPU binding
def prepare(cell, tape, w_hh, b_ih, b_hh, extra):
    """W_hh packed both ways and the summed biases (product.prepare_dense); the gains, the
    cell state's shift and the LayerNorms' constants in the model's dtype."""
    prepare_dense(tape, w_hh, b_ih, b_hh)
    H = b_ih.shape[0] // 4
    tape.norm = extra
    tape.consts = np.array([1.0 / (4 * H), 1.0 / H, EPS], b_ih.dtype)

def forward(cell, tape, lengths):
    n, w = tape.norm, tape.weights
    run_split(lnlstm_forward_rows, (tape.xproj, w.bias, n["gain_ih"], n["gain_hh"], n["gain_c"], n["bias_c"],
                                    tape.consts, w.fwd, lengths, tape.h, tape.c, tape.gates, tape.gh, tape.xnorm,
                                    tape.hnorm, tape.cnorm, tape.rstd), tape.B, MIN_ROWS, ROW_BLOCK)

def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    n = tape.norm
    run_split(lnlstm_backward_rows, (s0, s1, dh_in, lengths, tape.c, tape.gates, tape.xnorm, tape.hnorm, tape.cnorm,
                                     tape.rstd, n["gain_ih"], n["gain_hh"], n["gain_c"], n["bias_c"], tape.consts,
                                     tape.weights.bwd, dgi, dgh, dh_seq, tape.dh, tape.dc, tape.dnorm),
              tape.B, MIN_ROWS, ROW_BLOCK)
