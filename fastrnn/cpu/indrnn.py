"""IndRNN cell on the CPU (fastrnn/cells/indrnn.py): a diagonal recurrence, ReLU.

    a_t = W_ih x_t + b_ih + b_hh + u * h_{t-1}        h_t = max(a_t, 0)
Backward, given g = dL/dh_t (from above plus from step t+1):
    da_t = g * [h_t > 0]        dL/dh_{t-1} = u * da_t        (no recurrent product)
dW_ih, du and the biases are finished by the caller over all steps (du: column_dots).

Every unit is independent of every other through time, so there is no barrier: each thread
runs its share over every step. Small sweeps run as one call (see MIN_WORK); larger ones split
the batch into blocks of sequences, or, under 2 * MIN_SEQS sequences, the hidden units into
blocks of MIN_UNITS. Shapes: T steps, B batch,
H hidden; xproj (T, B, H) holds W_ih x_t. ``units``: whether (r0, r1) is a range of units
(every sequence) or of sequences (every unit).
"""
import numpy as np
from numba import njit

from ..cells._math import copy, one_like
from ..config import CACHE, ERROR_MODEL, FASTMATH
from .threads import run_split

# Splitting pays only for long sweeps: each call hands a share to a worker that has slept
# since the last (one call a layer each way, unlike the dense cells' per-step products), and
# waking it costs more than a step of this size takes (measured, H = 128, B = 32, T = 100:
# 2 threads 0.63 -> 2.0 ms a training step, the main thread waiting on the worker)
MIN_WORK = 1 << 21  # T * B * H elements
MIN_SEQS = 2  # a thread's share of sequences
MIN_UNITS = 256  # a thread's share of units, when the batch is too small to split


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def indrnn_forward_units(xproj, bias, u, lengths, h, units, r0, r1):
    """Units (or sequences, see the module doc) r0..r1-1 over all T steps. bias (H,) = b_ih + b_hh, u (H,);
    h (T+1, B, H): h[0] holds h_0 on entry; for t >= lengths[b] the state is carried."""
    T, B, H = xproj.shape
    j0, j1, b0, b1 = (r0, r1, 0, B) if units else (0, H, r0, r1)
    n = j1 - j0
    zero = 0 * one_like(h[0, 0, 0])
    s = np.empty(n, h.dtype)  # the state, in a buffer of its own: LLVM then knows that writing
    uu, bb = u[j0:j1], bias[j0:j1]  # h[t + 1] cannot change what it reads, and vectorizes
    for b in range(b0, b1):
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
def indrnn_backward_units(s0, s1, dh_in, lengths, h, u, dpre, dh_seq, dh, units, r0, r1):
    """Reverse sweep over steps s1..s0 for units (or sequences) r0..r1-1.

    dh_in, dpre, dh_seq (W, B, H) window-relative (index t - s0), W = s1 - s0 + 1: dL/dh_t
    from above in; dL/da_t and the total dL/dh_t out. dh (B, H): in, the gradient carried
    into step s1 from step s1+1; out, dL/dh_{s0-1}."""
    B, H = dh.shape
    j0, j1, b0, b1 = (r0, r1, 0, B) if units else (0, H, r0, r1)
    n = j1 - j0
    zero = 0 * one_like(h[0, 0, 0])
    d = np.empty(n, dh.dtype)  # the carry in a buffer of its own (see the forward): 5x faster
    uu = u[j0:j1]
    for b in range(b0, b1):
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


def prepare(cell, tape, w_hh, b_ih, b_hh, extra):
    tape.weights = Weights(w_hh, b_ih + b_hh)


def _split(fn, args, T, B, H):
    """fn(*args, units, r0, r1) over threads: one call under MIN_WORK elements, else
    sequences where each thread gets MIN_SEQS, else units (MIN_UNITS a thread)."""
    if T * B * H < MIN_WORK:
        fn(*args, False, 0, B)
    elif B >= 2 * MIN_SEQS:
        run_split(fn, args + (False,), B, MIN_SEQS)
    else:
        run_split(fn, args + (True,), H, MIN_UNITS)


def forward(cell, tape, lengths):
    """One layer forward over every step, the batch (or the units) split across threads."""
    _split(indrnn_forward_units, (tape.xproj, tape.weights.bias, tape.weights.u, lengths, tape.h),
           tape.T, tape.B, tape.h.shape[2])


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    """Reverse sweep over steps s1..s0 (window-relative outputs, see indrnn_backward_units)."""
    _split(indrnn_backward_units, (s0, s1, dh_in, lengths, tape.h, tape.weights.u, dgi, dh_seq, tape.dh),
           s1 - s0 + 1, tape.B, tape.h.shape[2])
