"""GRU cell (PyTorch nn.GRU / cuDNN layout, gate blocks r, z, n).

    r_t = sigmoid(W_ir x + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x + b_in + r_t * (W_hn h_{t-1} + b_hn))     reset applied after the product
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Backward, with g = dL/dh_t and hn = W_hn h_{t-1} + b_hn:
    dn' = g (1 - z) (1 - n^2)        dz' = g (h_{t-1} - n) z (1 - z)
    dr' = dn' hn r (1 - r)
    input side  d(W_i x + b_i) = [dr', dz', dn']
    recurrent   d(W_h h + b_h) = [dr', dz', dn' r]      (the two differ in the n block)
    dh_{t-1}    = g z + W_hh^T d(W_h h + b_h)
Shapes: T steps, B batch, H hidden; gate blocks are 3H wide.
"""

import numpy as np
from numba import njit

from ..config import CACHE, FASTMATH
from ._math import sigmoid, tanh


@njit(cache=CACHE, fastmath=FASTMATH)
def gru_forward(xproj, w_hh_t, b_hh, lengths, h, gates, ghn, gh):
    """Run one layer forward over all T steps.

    xproj   (T, B, 3H)   W_ih x_t + b_ih, blocks r, z, n
    w_hh_t  (H, 3H)      W_hh transposed (contiguous)
    b_hh    (3H,)
    lengths (B,) int64   frozen state for t >= lengths[b]
    h       (T+1, B, H)  h[0] = h_0 on entry
    gates   (T, B, 3H)   out: r, z, n after their nonlinearities
    ghn     (T, B, H)    out: W_hn h_{t-1} + b_hn (the backward needs it: r multiplies it)
    gh      (B, 3H)      scratch
    """
    T, B, G = xproj.shape
    H = G // 3
    for t in range(T):
        np.dot(h[t], w_hh_t, gh)
        for b in range(B):
            if t >= lengths[b]:
                for j in range(H):
                    h[t + 1, b, j] = h[t, b, j]
                    ghn[t, b, j] = 0.0
                for j in range(G):
                    gates[t, b, j] = 0.0
                continue
            for j in range(H):
                r = sigmoid(xproj[t, b, j] + gh[b, j] + b_hh[j])
                z = sigmoid(xproj[t, b, H + j] + gh[b, H + j] + b_hh[H + j])
                hn = gh[b, 2 * H + j] + b_hh[2 * H + j]
                n = tanh(xproj[t, b, 2 * H + j] + r * hn)
                h[t + 1, b, j] = (1.0 - z) * n + z * h[t, b, j]
                gates[t, b, j] = r
                gates[t, b, H + j] = z
                gates[t, b, 2 * H + j] = n
                ghn[t, b, j] = hn


@njit(cache=CACHE, fastmath=FASTMATH)
def gru_backward(s0, s1, dh_in, lengths, h, gates, ghn, w_hh, dgi, dgh, dh_seq, dh, tmp):
    """Reverse sweep over the window s1 .. s0 (window-relative arrays indexed t - s0).

    dh_in  (W, B, H)   dL/dh_t arriving from above
    h      (T+1, B, H), gates (T, B, 3H), ghn (T, B, H): from the forward pass
    w_hh   (3H, H)
    dgi    (W, B, 3H)  out: gradient of the input-side pre-activations W_ih x + b_ih
    dgh    (W, B, 3H)  out: gradient of the recurrent-side pre-activations W_hh h + b_hh
    dh_seq (W, B, H)   out: total dL/dh_t
    dh     (B, H)      in: gradient carried into step s1 (zero for a plain sweep);
                       out: dL/dh_{s0-1}
    tmp    (B, H)      scratch
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
                    for k in range(3):
                        dgi[w, b, k * H + j] = 0.0
                        dgh[w, b, k * H + j] = 0.0
                    dh[b, j] = g
                    continue
                r = gates[t, b, j]
                z = gates[t, b, H + j]
                n = gates[t, b, 2 * H + j]
                dnp = g * (1.0 - z) * (1.0 - n * n)
                dzp = g * (h[t, b, j] - n) * z * (1.0 - z)
                drp = dnp * ghn[t, b, j] * r * (1.0 - r)
                dgi[w, b, j] = drp
                dgi[w, b, H + j] = dzp
                dgi[w, b, 2 * H + j] = dnp
                dgh[w, b, j] = drp
                dgh[w, b, H + j] = dzp
                dgh[w, b, 2 * H + j] = dnp * r
                dh[b, j] = g * z
        np.dot(dgh[w], w_hh, tmp)
        for b in range(B):
            for j in range(H):
                dh[b, j] += tmp[b, j]
