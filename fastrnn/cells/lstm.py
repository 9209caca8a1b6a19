"""LSTM cell (PyTorch nn.LSTM layout, gate blocks i, f, g, o).

    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Backward, with gh = dL/dh_t and gc = dL/dc_t from step t+1:
    do = gh tanh(c_t)            dc = gc + gh o (1 - tanh(c_t)^2)
    di = dc g    df = dc c_{t-1}    dg = dc i    dc_{t-1} = dc f
    pre-activation gradients: di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)
    dh_{t-1} = W_hh^T [di', df', dg', do']
Shapes: T steps, B batch, H hidden; gate blocks are 4H wide.
"""

import numpy as np
from numba import njit

from ..config import CACHE, FASTMATH
from ._math import sigmoid, tanh


@njit(cache=CACHE, fastmath=FASTMATH)
def lstm_forward(xproj, w_hh_t, b_hh, lengths, h, c, gates, gh):
    """Run one layer forward over all T steps.

    xproj   (T, B, 4H)   W_ih x_t + b_ih, blocks i, f, g, o
    w_hh_t  (H, 4H)      W_hh transposed (contiguous)
    b_hh    (4H,)
    lengths (B,) int64   frozen state for t >= lengths[b]
    h, c    (T+1, B, H)  h[0], c[0] = initial state on entry
    gates   (T, B, 4H)   out: i, f, g, o after their nonlinearities
    gh      (B, 4H)      scratch
    """
    T, B, G = xproj.shape
    H = G // 4
    for t in range(T):
        np.dot(h[t], w_hh_t, gh)
        for b in range(B):
            if t >= lengths[b]:
                for j in range(H):
                    h[t + 1, b, j] = h[t, b, j]
                    c[t + 1, b, j] = c[t, b, j]
                for j in range(G):
                    gates[t, b, j] = 0.0
                continue
            for j in range(H):
                i = sigmoid(xproj[t, b, j] + gh[b, j] + b_hh[j])
                f = sigmoid(xproj[t, b, H + j] + gh[b, H + j] + b_hh[H + j])
                g = tanh(xproj[t, b, 2 * H + j] + gh[b, 2 * H + j] + b_hh[2 * H + j])
                o = sigmoid(xproj[t, b, 3 * H + j] + gh[b, 3 * H + j] + b_hh[3 * H + j])
                cn = f * c[t, b, j] + i * g
                c[t + 1, b, j] = cn
                h[t + 1, b, j] = o * tanh(cn)
                gates[t, b, j] = i
                gates[t, b, H + j] = f
                gates[t, b, 2 * H + j] = g
                gates[t, b, 3 * H + j] = o


@njit(cache=CACHE, fastmath=FASTMATH)
def lstm_backward(s0, s1, dh_in, lengths, c, gates, w_hh, dpre, dh_seq, dh, dc, tmp):
    """Reverse sweep over the window s1 .. s0 (window-relative arrays indexed t - s0).

    dh_in  (W, B, H)   dL/dh_t arriving from above
    c      (T+1, B, H), gates (T, B, 4H): from the forward pass
    w_hh   (4H, H)
    dpre   (W, B, 4H)  out: gradient of the gate pre-activations (input and recurrent side alike)
    dh_seq (W, B, H)   out: total dL/dh_t
    dh, dc (B, H)      in: gradients carried into step s1 (zero for a plain sweep);
                       out: dL/dh_{s0-1}, dL/dc_{s0-1}
    tmp    (B, H)      scratch
    """
    B, H = dh.shape
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(B):
            masked = t >= lengths[b]
            for j in range(H):
                gh = dh[b, j] + dh_in[w, b, j]
                dh_seq[w, b, j] = gh
                if masked:
                    for k in range(4):
                        dpre[w, b, k * H + j] = 0.0
                    dh[b, j] = gh
                    continue
                i = gates[t, b, j]
                f = gates[t, b, H + j]
                g = gates[t, b, 2 * H + j]
                o = gates[t, b, 3 * H + j]
                tc = tanh(c[t + 1, b, j])
                dcn = dc[b, j] + gh * o * (1.0 - tc * tc)
                dpre[w, b, j] = dcn * g * i * (1.0 - i)
                dpre[w, b, H + j] = dcn * c[t, b, j] * f * (1.0 - f)
                dpre[w, b, 2 * H + j] = dcn * i * (1.0 - g * g)
                dpre[w, b, 3 * H + j] = gh * tc * o * (1.0 - o)
                dc[b, j] = dcn * f
                dh[b, j] = 0.0
        np.dot(dpre[w], w_hh, tmp)
        for b in range(B):
            for j in range(H):
                dh[b, j] += tmp[b, j]
