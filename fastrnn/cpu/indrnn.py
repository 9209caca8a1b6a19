"""IndRNN cell on the CPU (fastrnn/cells/indrnn.py): a diagonal recurrence, ReLU.

    a_t = W_ih x_t + b_ih + b_hh + u * h_{t-1}        h_t = max(a_t, 0)
Backward, given g = dL/dh_t (from above plus from step t+1):
    da_t = g * [h_t > 0]        dL/dh_{t-1} = u * da_t        (no recurrent product)
dW_ih, du and the biases are finished by the caller over all steps (du: column_dots).

Every unit is independent of every other through time, so the threads split the hidden units
(any batch, B = 1 included) and there is no barrier: each runs its units over all sequences
and steps. Shapes: T steps, B batch, H hidden; xproj (T, B, H) holds W_ih x_t.
"""
import numpy as np
from numba import njit

from ..cells._math import copy, one_like
from ..config import CACHE, ERROR_MODEL, FASTMATH
from .threads import run_split

MIN_UNITS = 16  # a thread's share of units: smaller shares cost more to hand out than they save


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def indrnn_forward_units(xproj, bias, u, lengths, h, j0, j1):
    """Units j0..j1-1 of every sequence over all T steps. bias (H,) = b_ih + b_hh, u (H,);
    h (T+1, B, H): h[0] holds h_0 on entry; for t >= lengths[b] the state is carried."""
    T, B, H = xproj.shape
    n = j1 - j0
    zero = 0 * one_like(h[0, 0, 0])
    s = np.empty(n, h.dtype)  # the state, in a buffer of its own: LLVM then knows that writing
    uu, bb = u[j0:j1], bias[j0:j1]  # h[t + 1] cannot change what it reads, and vectorizes
    for b in range(B):
        copy(s, h[0, b, j0:j1])
        for t in range(min(T, lengths[b])):
            xp, hn = xproj[t, b, j0:j1], h[t + 1, b, j0:j1]
            for j in range(n):
                v = xp[j] + bb[j] + uu[j] * s[j]
                s[j] = zero if v <= zero else v  # NaN passes through, as in PyTorch
                hn[j] = s[j]
        for t in range(lengths[b], T):  # past its length a sequence's state is carried
            copy(h[t + 1, b, j0:j1], s)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def indrnn_backward_units(s0, s1, dh_in, lengths, h, u, dpre, dh_seq, dh, j0, j1):
    """Reverse sweep over steps s1..s0 for units j0..j1-1 of every sequence.

    dh_in, dpre, dh_seq (W, B, H) window-relative (index t - s0), W = s1 - s0 + 1: dL/dh_t
    from above in; dL/da_t and the total dL/dh_t out. dh (B, H): in, the gradient carried
    into step s1 from step s1+1; out, dL/dh_{s0-1}."""
    n = j1 - j0
    zero = 0 * one_like(h[0, 0, 0])
    d = np.empty(n, dh.dtype)  # the carry in a buffer of its own (see the forward): 5x faster
    uu = u[j0:j1]
    for b in range(dh.shape[0]):
        copy(d, dh[b, j0:j1])
        for t in range(s1, s0 - 1, -1):
            w = t - s0
            din, ds, dp = dh_in[w, b, j0:j1], dh_seq[w, b, j0:j1], dpre[w, b, j0:j1]
            if t >= lengths[b]:  # the state was copied forward: its gradient passes straight back
                for j in range(n):
                    d[j] += din[j]
                    ds[j] = d[j]
                    dp[j] = zero
                continue
            y = h[t + 1, b, j0:j1]
            for j in range(n):
                g = d[j] + din[j]
                ds[j] = g
                g = g if y[j] > zero else zero
                dp[j] = g
                d[j] = uu[j] * g
        copy(dh[b, j0:j1], d)


# --------------------------------------------------------------------------- CPU binding
class Weights:
    """tape.weights: u (H,) as is and the summed bias (H,)."""
    __slots__ = ("u", "bias")

    def __init__(self, u, bias):
        self.u, self.bias = u, bias


def prepare(cell, tape, w_hh, b_ih, b_hh):
    tape.weights = Weights(w_hh, b_ih + b_hh)


def forward(cell, tape, lengths):
    """One layer forward over every step, the hidden units split across threads."""
    run_split(indrnn_forward_units, (tape.xproj, tape.weights.bias, tape.weights.u, lengths, tape.h),
              tape.h.shape[2], MIN_UNITS)


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    """Reverse sweep over steps s1..s0 (window-relative outputs, see indrnn_backward_units)."""
    run_split(indrnn_backward_units, (s0, s1, dh_in, lengths, tape.h, tape.weights.u, dgi, dh_seq, tape.dh),
              tape.h.shape[2], MIN_UNITS)
