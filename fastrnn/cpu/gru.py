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
Shapes: T steps, B batch, H hidden; gate blocks are 3H wide. The kernel adds b_ih, and b_hh's r
and z blocks, as it reads ``xproj``; b_hn stays apart because r multiplies it.
"""
from numba import njit

from ..cells._math import copy, one_like, sigmoid, tanh
from ..config import CACHE, ERROR_MODEL, FASTMATH, MIN_ROWS, ROW_BLOCK
from .product import add_recurrent_grad, matmul_packed, prepare_dense
from .simd import pload, pstore, vsplit
from .threads import run_split


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _new_state(an, bn_h, xn, bn_i, r, z, hp):
    """One unit, or a register of units (cpu/simd.py): (q, n, h_t) with q = W_hn h + b_hn from
    its product an and bias bn_h, n = tanh(xn + bn_i + r q), h_t = n + z (h_{t-1} - n)."""
    q = an + bn_h
    n = tanh(xn + bn_i + r * q)
    return q, n, n + z * (hp - n)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _unit_grads(g, r, z, n, q, hp):
    """The backward step of one unit, or a register of units, with g = dL/dh_t and q = W_hn
    h_{t-1} + b_hn (module doc): (dr', dz', dn', dn' r, g z), the last two the n block's
    recurrent-side gradient and dL/dh_{t-1}'s direct part."""
    one = one_like(g)
    dnp = g * (one - z) * (one - n * n)
    drp = dnp * q * r * (one - r)
    dzp = g * (hp - n) * z * (one - z)
    return drp, dzp, dnp, dnp * r, g * z


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def gru_forward_rows(xproj, bias, w_fwd, b_hn, lengths, h, gates, ghn, gh, b0, b1):
    """Run one layer forward over all T steps, for sequences b0..b1-1 (one thread's share).

    xproj   (T, B, 3H)   W_ih x_t for every step, blocks r, z, n
    bias    (3H,)        b_ih, plus b_hh in the r and z blocks
    w_fwd                W_hh^T (H, 3H) as panels: product.packed(W_hh.T)
    b_hn    (H,)         the n block of b_hh
    lengths (B,) int64   frozen state for t >= lengths[b]
    h       (T+1, B, H)  h[0] = h_0 on entry
    gates   (T, B, 3H)   out: r, z, n after their nonlinearities
    ghn     (T, B, H)    out: W_hn h_{t-1} + b_hn (the backward needs it: r multiplies it)
    gh      (B, 3H)      scratch
    """
    T, B, G = xproj.shape
    H = G // 3
    for t in range(T):
        matmul_packed(h[t], w_fwd, gh, b0, b1, 0.0)
        for b in range(b0, b1):
            hn, hp, gt, q = h[t + 1, b], h[t, b], gates[t, b], ghn[t, b]
            if t >= lengths[b]:
                copy(hn, hp)
                gt[:] = 0
                q[:] = 0
                continue
            a, xp = gh[b], xproj[t, b]
            # every loop: float32 in registers, then the rest unit by unit (cpu/simd.py)
            stop, V = vsplit(0, 2 * H, gt)
            for j in range(0, stop, V):  # r and z
                pstore(gt, j, sigmoid(pload(a, j) + pload(xp, j) + pload(bias, j)))
            for j in range(stop, 2 * H):
                gt[j] = sigmoid(a[j] + xp[j] + bias[j])
            stop, V = vsplit(0, H, gt)
            for j in range(0, stop, V):
                qj, n, hj = _new_state(pload(a, 2 * H + j), pload(b_hn, j), pload(xp, 2 * H + j), pload(bias, 2 * H + j),
                                       pload(gt, j), pload(gt, H + j), pload(hp, j))
                pstore(q, j, qj)
                pstore(gt, 2 * H + j, n)
                pstore(hn, j, hj)
            for j in range(stop, H):
                q[j], gt[2 * H + j], hn[j] = _new_state(a[2 * H + j], b_hn[j], xp[2 * H + j], bias[2 * H + j],
                                                        gt[j], gt[H + j], hp[j])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def gru_backward_rows(s0, s1, dh_in, lengths, h, gates, ghn, w_bwd, dgi, dgh, dh_seq, dh, b0, b1):
    """Reverse sweep over the window s1 .. s0 for sequences b0..b1-1 (window-relative arrays
    indexed t - s0).

    dh_in  (W, B, H)   dL/dh_t arriving from above
    h      (T+1, B, H), gates (T, B, 3H), ghn (T, B, H): from the forward pass
    w_bwd              W_hh as panels: product.packed(W_hh)
    dgi    (W, B, 3H)  out: gradient of the input-side pre-activations W_ih x + b_ih
    dgh    (W, B, 3H)  out: gradient of the recurrent-side pre-activations W_hh h + b_hh
    dh_seq (W, B, H)   out: total dL/dh_t
    dh     (B, H)      in: gradient carried into step s1 (zero for a plain sweep);
                       out: dL/dh_{s0-1}
    """
    H = dh.shape[1]
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(b0, b1):
            d, din, ds = dh[b], dh_in[w, b], dh_seq[w, b]
            di, dr = dgi[w, b], dgh[w, b]
            for j in range(H):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                di[:] = 0
                dr[:] = 0
                copy(d, ds)
                continue
            gt, hp, q = gates[t, b], h[t, b], ghn[t, b]
            stop, V = vsplit(0, H, gt)  # float32 in registers, then unit by unit (cpu/simd.py)
            for j in range(0, stop, V):
                drp, dzp, dnp, dnh, dd = _unit_grads(pload(ds, j), pload(gt, j), pload(gt, H + j), pload(gt, 2 * H + j),
                                                     pload(q, j), pload(hp, j))
                pstore(di, j, drp)
                pstore(di, H + j, dzp)
                pstore(di, 2 * H + j, dnp)
                pstore(dr, j, drp)
                pstore(dr, H + j, dzp)
                pstore(dr, 2 * H + j, dnh)
                pstore(d, j, dd)
            for j in range(stop, H):
                drp, dzp, dnp, dnh, dd = _unit_grads(ds[j], gt[j], gt[H + j], gt[2 * H + j], q[j], hp[j])
                di[j], di[H + j], di[2 * H + j] = drp, dzp, dnp
                dr[j], dr[H + j], dr[2 * H + j] = drp, dzp, dnh
                d[j] = dd
        add_recurrent_grad(dgh[w], w_bwd, dh, b0, b1)


# --------------------------------------------------------------------------- CPU binding
def prepare(cell, tape, w_hh, b_ih, b_hh, extra):
    """W_hh packed both ways for the recurrent products and the summed biases but b_hn (applied inside r * (.)) (product.prepare_dense)."""
    prepare_dense(tape, w_hh, b_ih, b_hh, apart=w_hh.shape[1])


def forward(cell, tape, lengths):
    """One layer forward over every step, the batch split across threads."""
    run_split(gru_forward_rows, (tape.xproj, tape.weights.bias, tape.weights.fwd, tape.weights.b_hn, lengths, tape.h, tape.gates,
                                 tape.ghn, tape.gh), tape.B, MIN_ROWS, ROW_BLOCK)


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    """Reverse sweep over steps s1..s0 (window-relative outputs, see gru_backward_rows)."""
    run_split(gru_backward_rows, (s0, s1, dh_in, lengths, tape.h, tape.gates, tape.ghn, tape.weights.bwd, dgi,
                                  dgh, dh_seq, tape.dh), tape.B, MIN_ROWS, ROW_BLOCK)
