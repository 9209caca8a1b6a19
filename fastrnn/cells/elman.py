"""Elman RNN cell, tanh or ReLU (PyTorch nn.RNN layout, one gate block).

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          W_ih (H, I), W_hh (H, H)
    h_t = tanh(a_t)   or   h_t = max(a_t, 0)

Backward, given g = dL/dh_t (from above plus from step t+1):
    da_t    = g * (1 - h_t^2)      (tanh)    or    g * [h_t > 0]   (ReLU)
    dh_{t-1} = W_hh^T da_t
and dW_ih, dW_hh, db_* are finished by the caller as large matrix products over all steps.

Shapes: T = steps, B = batch, H = hidden. The caller folds the input projection of every
step into one GEMM (``xproj``); inside the time loop only the recurrent product and one
fused pointwise pass remain, and nothing is allocated.
"""

import numpy as np
from numba import njit

from ..config import CACHE, FASTMATH
from ._math import tanh


@njit(cache=CACHE, fastmath=FASTMATH)
def elman_forward(xproj, w_hh_t, b_hh, lengths, relu, h, gh):
    """Run one layer forward over all T steps.

    xproj   (T, B, H)    W_ih x_t + b_ih for every step
    w_hh_t  (H, H)       W_hh transposed (contiguous), so h_{t-1} @ w_hh_t = (W_hh h_{t-1})^T
    b_hh    (H,)
    lengths (B,) int64   for t >= lengths[b] the state of sequence b is carried unchanged
    relu    bool         ReLU instead of tanh
    h       (T+1, B, H)  h[0] holds h_0 on entry; h[t+1] is written for every step t
    gh      (B, H)       scratch for the recurrent product
    """
    T, B, H = xproj.shape
    for t in range(T):
        np.dot(h[t], w_hh_t, gh)
        for b in range(B):
            if t >= lengths[b]:
                for j in range(H):
                    h[t + 1, b, j] = h[t, b, j]
                continue
            for j in range(H):
                a = xproj[t, b, j] + gh[b, j] + b_hh[j]
                if relu:
                    h[t + 1, b, j] = a if a > 0.0 else 0.0
                else:
                    h[t + 1, b, j] = tanh(a)


@njit(cache=CACHE, fastmath=FASTMATH)
def elman_backward(s0, s1, dh_in, lengths, relu, h, w_hh, dpre, dh_seq, dh, tmp):
    """Reverse sweep over the window of steps s1, s1-1, ..., s0.

    dh_in   (W, B, H)  dL/dh_t arriving from above (readout or next layer), W = s1-s0+1;
                       window-relative: dh_in[t - s0]
    h       (T+1, B, H) states from the forward pass
    w_hh    (H, H)
    dpre    (W, B, H)  out: dL/da_t (the same for the input and the recurrent products)
    dh_seq  (W, B, H)  out: total dL/dh_t (from above and from the future)
    dh      (B, H)     in: the gradient carried into step s1 from step s1+1 (zero
                       for a plain sweep); out: dL/dh_{s0-1}, the gradient that leaves the window
    tmp     (B, H)     scratch
    """
    B, H = dh.shape
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(B):
            masked = t >= lengths[b]
            for j in range(H):
                g = dh[b, j] + dh_in[w, b, j]
                dh_seq[w, b, j] = g
                if masked:
                    # the state was copied forward, so its gradient passes straight back
                    dpre[w, b, j] = 0.0
                    dh[b, j] = g
                else:
                    y = h[t + 1, b, j]
                    if relu:
                        dpre[w, b, j] = g if y > 0.0 else 0.0
                    else:
                        dpre[w, b, j] = g * (1.0 - y * y)
                    dh[b, j] = 0.0
        np.dot(dpre[w], w_hh, tmp)
        for b in range(B):
            for j in range(H):
                dh[b, j] += tmp[b, j]
