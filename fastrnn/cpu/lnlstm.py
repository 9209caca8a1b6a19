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

from ..cells._math import copy, one_like, sigmoid, tanh, zero_like
from ..cells.lnlstm import EPS
from ..config import CACHE, ERROR_MODEL, FASTMATH, MIN_ROWS, ROW_BLOCK
from .product import add_recurrent_grad, matmul_packed, prepare_dense
from .threads import run_split

# The 4H-wide loops that write several rows at once (x-hat, h-hat and the gates) are split
# into one store per loop where a row is this short: there LLVM's runtime alias checks over
# the six arrays cost more than the two extra passes (measured at H = 32: forward -7%); at
# H = 128 the fused loop is ~5% faster (bench/PROFILE.md, the LayerNorm LSTM). The backward
# pass's loops are split at every size (up to 10% faster at H = 32; within noise at H = 128).
SPLIT_ROW = 256


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _moments(u, v, inv_n, eps):
    """(mean u, 1 / sqrt(var u + eps), mean v, 1 / sqrt(var v + eps)) of two equal-length rows,
    in one pass for the means and one for the squared deviations (no cancellation in var)."""
    one = one_like(u[0])
    mu = zero_like(u[0])
    mv = zero_like(u[0])
    for j in range(u.shape[0]):
        mu += u[j]
        mv += v[j]
    mu *= inv_n
    mv *= inv_n
    su = zero_like(u[0])
    sv = zero_like(u[0])
    for j in range(u.shape[0]):
        du, dv = u[j] - mu, v[j] - mv
        su += du * du
        sv += dv * dv
    return mu, one / math.sqrt(su * inv_n + eps), mv, one / math.sqrt(sv * inv_n + eps)


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
            if G <= SPLIT_ROW:  # short rows: one store per loop (module constant's note)
                for j in range(G):
                    xn[j] = (xp[j] - mx) * rx
                for j in range(G):
                    hn[j] = (a[j] - mh) * rh
                for j in range(G):
                    gt[j] = gain_ih[j] * xn[j] + gain_hh[j] * hn[j] + bias[j]
            else:
                for j in range(G):
                    xn[j] = (xp[j] - mx) * rx
                    hn[j] = (a[j] - mh) * rh
                    gt[j] = gain_ih[j] * xn[j] + gain_hh[j] * hn[j] + bias[j]
            for j in range(2 * H):  # i, f
                gt[j] = sigmoid(gt[j])
            i, f, g, o = gt[:H], gt[H:2 * H], gt[2 * H:3 * H], gt[3 * H:]
            for j in range(H):
                g[j] = tanh(g[j])
            for j in range(H):
                o[j] = sigmoid(o[j])
            cp, cn, hnext, cz = c[t, b], c[t + 1, b], h[t + 1, b], cnorm[t, b]
            mc = zero_like(inv_h)
            for j in range(H):
                cn[j] = f[j] * cp[j] + i[j] * g[j]
                mc += cn[j]
            mc *= inv_h
            sc = zero_like(inv_h)
            for j in range(H):
                d = cn[j] - mc
                sc += d * d
            rc = one_like(inv_h) / math.sqrt(sc * inv_h + eps)
            for j in range(H):
                cz[j] = (cn[j] - mc) * rc
                hnext[j] = o[j] * tanh(gain_c[j] * cz[j] + bias_c[j])
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
    one = one_like(consts[0])
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
            gt, cz, r = gates[t, b], cnorm[t, b], rstd[t, b]
            i, f, g, o = gt[:H], gt[H:2 * H], gt[2 * H:3 * H], gt[3 * H:]
            di, df, dg, do = dp[:H], dp[H:2 * H], dp[2 * H:3 * H], dp[3 * H:]
            acc = dnorm[b]
            a_b, a_xi, a_hh, a_gc, a_bc = acc[:G], acc[G:2 * G], acc[2 * G:3 * G], acc[3 * G:3 * G + H], acc[3 * G + H:]
            # through h = o tanh(gain_c cn + bias_c): y = dn gain_c, kept in dq's first block for now
            y = dq[:H]
            m1 = zero_like(inv_h)
            m2 = zero_like(inv_h)
            for j in range(H):
                tn = tanh(gain_c[j] * cz[j] + bias_c[j])
                do[j] = ds[j] * tn * o[j] * (one - o[j])
                dn = ds[j] * o[j] * (one - tn * tn)
                a_gc[j] += dn * cz[j]
                a_bc[j] += dn
                y[j] = dn * gain_c[j]
                m1 += y[j]
                m2 += y[j] * cz[j]
            m1 *= inv_h
            m2 *= inv_h
            rc, cp = r[2], c[t, b]
            for j in range(H):
                dcn = dcb[j] + rc * (y[j] - m1 - cz[j] * m2)  # dL/dc_t: carried, and through the LayerNorm
                di[j] = dcn * g[j] * i[j] * (one - i[j])
                df[j] = dcn * cp[j] * f[j] * (one - f[j])
                dg[j] = dcn * i[j] * (one - g[j] * g[j])
                dcb[j] = dcn * f[j]
            xn, hn = xnorm[t, b], hnorm[t, b]
            s1x = zero_like(inv_g)
            s2x = zero_like(inv_g)
            s1h = zero_like(inv_g)
            s2h = zero_like(inv_g)
            for j in range(G):  # the sums first, then one store per loop (as in the forward)
                yx, yh = dp[j] * gain_ih[j], dp[j] * gain_hh[j]
                s1x += yx
                s2x += yx * xn[j]
                s1h += yh
                s2h += yh * hn[j]
            for j in range(G):
                a_b[j] += dp[j]
            for j in range(G):
                a_xi[j] += dp[j] * xn[j]
            for j in range(G):
                a_hh[j] += dp[j] * hn[j]
            s1x *= inv_g
            s2x *= inv_g
            s1h *= inv_g
            s2h *= inv_g
            rx, rh = r[0], r[1]
            for j in range(G):
                dq[j] = rh * (dp[j] * gain_hh[j] - s1h - hn[j] * s2h)
            for j in range(G):
                dp[j] = rx * (dp[j] * gain_ih[j] - s1x - xn[j] * s2x)
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
