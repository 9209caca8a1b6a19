"""Elman RNN cell, tanh or ReLU (PyTorch nn.RNN layout, one gate block).

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          W_ih (H, I), W_hh (H, H)
    h_t = tanh(a_t)   or   h_t = max(a_t, 0)

Backward, given g = dL/dh_t (from above plus from step t+1):
    da_t    = g * (1 - h_t^2)      (tanh)    or    g * [h_t > 0]   (ReLU)
    dh_{t-1} = W_hh^T da_t
and dW_ih, dW_hh, db_* are finished by the caller as large matrix products over all steps.

Shapes: T = steps, B = batch, H = hidden. The caller folds the input projection of every
step into one GEMM (``xproj``), the kernel adds the biases as it reads it; inside the time loop only the recurrent
product and one pointwise pass remain, and nothing is allocated. Each pointwise pass is a
plain loop over a contiguous row, so LLVM vectorizes it.
"""
from numba import njit

from ..cells._math import copy, one_like, tanh
from ..config import CACHE, ERROR_MODEL, FASTMATH, MIN_ROWS, ROW_BLOCK
from .product import add_recurrent_grad, matmul_packed, prepare_dense
from .threads import run_split


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def elman_forward_rows(xproj, bias, w_fwd, lengths, relu, h, gh, b0, b1):
    """Run one layer forward over all T steps, for sequences b0..b1-1 (one thread's share).

    xproj   (T, B, H)    W_ih x_t for every step
    bias    (H,)         b_ih + b_hh
    w_fwd                W_hh^T (H, H) as panels: product.packed(W_hh.T)
    lengths (B,) int64   for t >= lengths[b] the state of sequence b is carried unchanged
    relu    bool         ReLU instead of tanh
    h       (T+1, B, H)  h[0] holds h_0 on entry; h[t+1] is written for every step t
    gh      (B, H)       scratch for the recurrent product
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
            if relu:
                for j in range(H):
                    v = a[j] + xp[j] + bias[j]
                    hn[j] = zero if v <= zero else v  # NaN passes through, as in PyTorch
            else:
                for j in range(H):
                    hn[j] = tanh(a[j] + xp[j] + bias[j])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def elman_backward_rows(s0, s1, dh_in, lengths, relu, h, w_bwd, dpre, dh_seq, dh, b0, b1):
    """Reverse sweep over the window of steps s1, s1-1, ..., s0, for sequences b0..b1-1.

    dh_in   (W, B, H)  dL/dh_t arriving from above (readout or next layer), W = s1-s0+1;
                       window-relative: dh_in[t - s0]
    h       (T+1, B, H) states from the forward pass
    w_bwd              W_hh as panels: product.packed(W_hh)
    dpre    (W, B, H)  out: dL/da_t (the same for the input and the recurrent products)
    dh_seq  (W, B, H)  out: total dL/dh_t (from above and from the future)
    dh      (B, H)     in: the gradient carried into step s1 from step s1+1 (zero
                       for a plain sweep); out: dL/dh_{s0-1}, the gradient that leaves the window
    """
    H = dh.shape[1]
    one = one_like(h[0, 0, 0])
    zero = 0 * one
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(b0, b1):
            d, din, ds, dp, y = dh[b], dh_in[w, b], dh_seq[w, b], dpre[w, b], h[t + 1, b]
            for j in range(H):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                # the state was copied forward, so its gradient passes straight back
                dp[:] = 0
                copy(d, ds)
                continue
            if relu:
                for j in range(H):
                    dp[j] = ds[j] if y[j] > zero else zero
            else:
                for j in range(H):
                    dp[j] = ds[j] * (one - y[j] * y[j])
            d[:] = 0
        add_recurrent_grad(dpre[w], w_bwd, dh, b0, b1)


# --------------------------------------------------------------------------- CPU binding
def prepare(cell, tape, w_hh, b_ih, b_hh, extra):
    """W_hh packed both ways for the recurrent products and the summed biases (product.prepare_dense)."""
    prepare_dense(tape, w_hh, b_ih, b_hh)


def forward(cell, tape, lengths):
    """One layer forward over every step, the batch split across threads (tanh or relu)."""
    run_split(elman_forward_rows, (tape.xproj, tape.weights.bias, tape.weights.fwd, lengths, cell.relu,
                                   tape.h, tape.gh), tape.B, MIN_ROWS, ROW_BLOCK)


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    """Reverse sweep over steps s1..s0 (window-relative outputs, see elman_backward_rows)."""
    run_split(elman_backward_rows, (s0, s1, dh_in, lengths, cell.relu, tape.h, tape.weights.bwd, dgi,
                                    dh_seq, tape.dh), tape.B, MIN_ROWS, ROW_BLOCK)
