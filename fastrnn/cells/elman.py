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

from ..config import CACHE, COL_ALIGN, ERROR_MODEL, FASTMATH, MIN_COL_UNITS, MIN_ROWS, ROW_BLOCK
from ..threads import run_columns, run_split, share_columns
from ._math import copy, one_like, tanh
from .barrier import arrive
from .product import add_recurrent_grad, matmul_packed, unit_cols_dot


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def elman_forward_rows(xproj, bias, w_fwd, w_hh, lengths, relu, h, gh, b0, b1):
    """Run one layer forward over all T steps, for sequences b0..b1-1 (one thread's share).

    xproj   (T, B, H)    W_ih x_t for every step
    bias    (H,)         b_ih + b_hh
    w_fwd                W_hh^T (H, H) as panels: product.packed(W_hh.T)
    w_hh                 W_hh, dense: the rows past the last multiple of 4 (product.rows_dot)
    lengths (B,) int64   for t >= lengths[b] the state of sequence b is carried unchanged
    relu    bool         ReLU instead of tanh
    h       (T+1, B, H)  h[0] holds h_0 on entry; h[t+1] is written for every step t
    gh      (B, H)       scratch for the recurrent product
    """
    T, B, H = xproj.shape
    zero = 0 * one_like(h[0, 0, 0])
    for t in range(T):
        matmul_packed(h[t], w_fwd, w_hh, gh, b0, b1, 0.0)
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
def elman_backward_rows(s0, s1, dh_in, lengths, relu, h, w_bwd, w_hh_t, dpre, dh_seq, dh, b0, b1):
    """Reverse sweep over the window of steps s1, s1-1, ..., s0, for sequences b0..b1-1.

    dh_in   (W, B, H)  dL/dh_t arriving from above (readout or next layer), W = s1-s0+1;
                       window-relative: dh_in[t - s0]
    h       (T+1, B, H) states from the forward pass
    w_bwd              W_hh as panels: product.packed(W_hh)
    w_hh_t             W_hh^T, dense (product.rows_dot)
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
        add_recurrent_grad(dpre[w], w_bwd, w_hh_t, dh, b0, b1)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def elman_forward_cols(xproj, bias, w_hh, lengths, relu, h, gh, flags, me, n, u0, u1):
    """elman_forward_rows for B < ROW_BLOCK: every sequence, hidden units u0..u1-1 on this
    thread, the n threads meeting at a barrier after each step (threads.run_columns; see
    lstm_forward_cols). w_hh (H, H) dense. Returns False if the barrier gave up."""
    T, B, H = xproj.shape
    U = u1 - u0
    zero = 0 * one_like(h[0, 0, 0])
    for t in range(T):
        for b in range(B):
            hn, hp = h[t + 1, b, u0:u1], h[t, b, u0:u1]
            if t >= lengths[b]:
                for j in range(U):
                    hn[j] = hp[j]
                continue
            unit_cols_dot(h[t, b], w_hh, gh[b], H, 1, u0, u1, 0.0)
            a, xp, bs = gh[b, u0:u1], xproj[t, b, u0:u1], bias[u0:u1]
            if relu:
                for j in range(U):
                    v = a[j] + xp[j] + bs[j]
                    hn[j] = zero if v <= zero else v
            else:
                for j in range(U):
                    hn[j] = tanh(a[j] + xp[j] + bs[j])
        if not arrive(flags, me, n, t + 1):
            return False
    return True


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def elman_backward_cols(s0, s1, dh_in, lengths, relu, h, w_hh_t, dpre, dh_seq, dh, flags, me, n, u0, u1):
    """elman_backward_rows for B < ROW_BLOCK: hidden units u0..u1-1 on this thread, a barrier
    between each step's pointwise part and its product (see lstm_backward_cols)."""
    B, H = dh.shape
    U = u1 - u0
    one = one_like(h[0, 0, 0])
    zero = 0 * one
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(B):
            d, din, ds = dh[b, u0:u1], dh_in[w, b, u0:u1], dh_seq[w, b, u0:u1]
            dp, y = dpre[w, b, u0:u1], h[t + 1, b, u0:u1]
            for j in range(U):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                for j in range(U):
                    dp[j] = 0
                    d[j] = ds[j]
                continue
            if relu:
                for j in range(U):
                    dp[j] = ds[j] if y[j] > zero else zero
            else:
                for j in range(U):
                    dp[j] = ds[j] * (one - y[j] * y[j])
            for j in range(U):
                d[j] = 0
        if not arrive(flags, me, n, s1 - t + 1):
            return False
        for b in range(B):
            unit_cols_dot(dpre[w, b], w_hh_t, dh[b], H, 1, u0, u1, 1.0)
    return True


# --------------------------------------------------------------------------- CPU binding
def forward(cell, tape, lengths):
    """One layer forward over every step, the batch split across threads, or each step's
    hidden units (threads.share_columns); tanh or relu."""
    relu = cell.name == "relu"
    if share_columns(tape.B, tape.h.shape[2], 1):
        run_columns(elman_forward_cols, (tape.xproj, tape.bias, tape.w_hh, lengths, relu, tape.h, tape.gh),
                    tape.h.shape[2], COL_ALIGN, MIN_COL_UNITS)
        return
    run_split(elman_forward_rows, (tape.xproj, tape.bias, tape.w_fwd, tape.w_hh, lengths, relu,
                                   tape.h, tape.gh), tape.B, MIN_ROWS, ROW_BLOCK)


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    """Reverse sweep over steps s1..s0 (window-relative outputs, see elman_backward_rows)."""
    relu = cell.name == "relu"
    if share_columns(tape.B, tape.h.shape[2], 1):
        run_columns(elman_backward_cols, (s0, s1, dh_in, lengths, relu, tape.h, tape.w_hh_t, dgi, dh_seq, tape.dh),
                    tape.h.shape[2], COL_ALIGN, MIN_COL_UNITS)
        return
    run_split(elman_backward_rows, (s0, s1, dh_in, lengths, relu, tape.h, tape.w_bwd, tape.w_hh_t, dgi,
                                    dh_seq, tape.dh), tape.B, MIN_ROWS, ROW_BLOCK)
