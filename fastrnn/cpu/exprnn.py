"""expRNN's kernels: the Elman loop with modReLU (fastrnn/cells/exprnn.py), W a dense matrix.

    z_t = W_ih x_t + b_ih + W h_{t-1}          h_t = sign(z_t) max(|z_t| + b, 0)     (b: bias_hh)
Backward, given g = dL/dh_t (from above plus from step t+1): a unit is live where h_t != 0,
and there h_t = z_t + sign(z_t) b, so
    dz_t = g [h_t != 0]        db += g sign(h_t)       dh_{t-1} = W^T dz_t
dz goes to dgi (W_ih's, b_ih's and, through the exponential, A's gradient); g sign(h) to dgh,
whose column sums the model takes as b's gradient (Cell.act_bias). W = expm(A) is formed
on the host by ``prepare``, once per forward pass, and kept on the tape (tape.exp) for the
gradient through the exponential (cells/exprnn.py, Orthogonal.weight_grad).
"""
import numpy as np
from numba import njit

from ..cells._math import copy, one_like
from ..config import CACHE, ERROR_MODEL, FASTMATH, MIN_ROWS, ROW_BLOCK
from .product import add_recurrent_grad, matmul_packed, prepare_dense
from .threads import run_split


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def exprnn_forward_rows(xproj, bias, b_act, w_fwd, lengths, h, gh, b0, b1):
    """One layer forward over all T steps for sequences b0..b1-1 (one thread's share).

    xproj (T, B, H) W_ih x_t; bias (H,) b_ih; b_act (H,) modReLU's b; w_fwd W^T as panels;
    lengths (B,): past its length a sequence's state is carried; h (T+1, B, H), h[0] = h_0
    on entry; gh (B, H) scratch for the recurrent product.
    """
    T, B, H = xproj.shape
    zero = 0 * one_like(h[0, 0, 0])
    for t in range(T):
        matmul_packed(h[t], w_fwd, gh, b0, b1, 0.0)
        for b in range(b0, b1):
            hn, hp = h[t + 1, b], h[t, b]
            if t >= lengths[b]:
                copy(hn, hp)
                continue
            a, xp = gh[b], xproj[t, b]
            for j in range(H):  # selects and one store: LLVM vectorizes it
                z = a[j] + xp[j] + bias[j]
                m = abs(z) + b_act[j]
                v = m if m > zero else zero
                # sign(z) v; z = 0 gives 0 and a NaN z passes through (z * v), as in PyTorch
                hn[j] = v if z > zero else (-v if z < zero else z * v)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def exprnn_backward_rows(s0, s1, dh_in, lengths, h, w_bwd, dpre, dact, dh_seq, dh, b0, b1):
    """Reverse sweep over steps s1..s0 for sequences b0..b1-1 (window-relative outputs).

    dh_in (W, B, H) dL/dh_t from above; h (T+1, B, H) the forward's states; w_bwd W as panels;
    dpre (W, B, H) out: dL/dz_t; dact (W, B, H) out: g sign(h_t), b's gradient per row;
    dh_seq (W, B, H) out: total dL/dh_t; dh (B, H) the carry in (into step s1) and out
    (dL/dh_{s0-1}).
    """
    H = dh.shape[1]
    zero = 0 * one_like(h[0, 0, 0])
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(b0, b1):
            d, din, ds, dp, da, y = dh[b], dh_in[w, b], dh_seq[w, b], dpre[w, b], dact[w, b], h[t + 1, b]
            for j in range(H):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                dp[:] = 0
                da[:] = 0
                copy(d, ds)
                continue
            for j in range(H):
                g, v = ds[j], y[j]
                live = g if (v > zero or v < zero) else g * v  # a dead unit: 0; NaN passes through
                dp[j] = live
                da[j] = -live if v < zero else live
            d[:] = 0
        add_recurrent_grad(dpre[w], w_bwd, dh, b0, b1)


# --------------------------------------------------------------------------- CPU binding
def prepare(cell, tape, w_hh, b_ih, b_hh, extra):
    """W = expm(A) from weight_hh (on the host, float64, then the model's dtype), packed both
    ways as a dense W_hh; b_ih the additive bias, b_hh kept apart (modReLU's)."""
    H = b_ih.shape[0]
    tape.exp = cell.recurrence.exp(np.asarray(w_hh, np.float64), H)
    prepare_dense(tape, tape.exp.W.astype(b_ih.dtype), b_ih, b_hh, apart=H)


def forward(cell, tape, lengths):
    w = tape.weights
    run_split(exprnn_forward_rows, (tape.xproj, w.bias, w.b_hn, w.fwd, lengths, tape.h, tape.gh),
              tape.B, MIN_ROWS, ROW_BLOCK)


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    run_split(exprnn_backward_rows, (s0, s1, dh_in, lengths, tape.h, tape.weights.bwd, dgi, dgh, dh_seq, tape.dh),
              tape.B, MIN_ROWS, ROW_BLOCK)
