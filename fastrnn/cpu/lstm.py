"""LSTM cell (PyTorch nn.LSTM layout, gate blocks i, f, g, o).

    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Backward, with gh = dL/dh_t and gc = dL/dc_t from step t+1:
    do = gh tanh(c_t)            dc = gc + gh o (1 - tanh(c_t)^2)
    di = dc g    df = dc c_{t-1}    dg = dc i    dc_{t-1} = dc f
    pre-activation gradients: di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)
    dh_{t-1} = W_hh^T [di', df', dg', do']
Shapes: T steps, B batch, H hidden; gate blocks are 4H wide. The kernel adds both biases
(summed) as it reads the input projection: no extra pass over it.
"""
from numba import njit

from ..cells._math import copy, one_like, sigmoid, tanh
from ..config import CACHE, COL_ALIGN, ERROR_MODEL, FASTMATH, MIN_COL_UNITS, MIN_ROWS, ROW_BLOCK
from .barrier import arrive
from .product import add_recurrent_grad, matmul_packed, prepare_dense, unit_cols
from .simd import pload, pstore, vsplit
from .threads import run_columns, run_split, share_columns


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _act(q, v):
    """Gate block q's nonlinearity (i, f, g, o: sigmoid, sigmoid, tanh, sigmoid) of a
    pre-activation v: one unit, or a register of units (cpu/simd.py)."""
    return tanh(v) if q == 2 else sigmoid(v)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _state(i, f, g, o, cp):
    """(c_t, h_t) from the gates and c_{t-1}: one unit, or a register of units."""
    c = f * cp + i * g
    return c, o * tanh(c)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _gate_acts(a, xp, bias, gt, cp, cn, hn, H, u0, u1):
    """One sequence-step of the forward pointwise part, units u0..u1-1: gates gt (4H,) from the
    recurrent product a, xp = W_ih x_t and the summed bias (each (4H,), blocks i, f, g, o),
    then c_t = cn and h_t = hn from c_{t-1} = cp (each (H,)). float32 units in registers up
    to stop, the rest (and float64) one by one (simd.py says why); one loop per gate block:
    one loop over all four spills its 16 row addresses."""
    stop, V = vsplit(u0, u1, gt)
    for q in range(4):
        lo = q * H
        for j in range(lo + u0, lo + stop, V):
            pstore(gt, j, _act(q, pload(a, j) + pload(xp, j) + pload(bias, j)))
        for j in range(lo + stop, lo + u1):
            gt[j] = _act(q, a[j] + xp[j] + bias[j])
    for j in range(u0, stop, V):
        cj, hj = _state(pload(gt, j), pload(gt, H + j), pload(gt, 2 * H + j), pload(gt, 3 * H + j), pload(cp, j))
        pstore(cn, j, cj)
        pstore(hn, j, hj)
    for j in range(stop, u1):
        cn[j], hn[j] = _state(gt[j], gt[H + j], gt[2 * H + j], gt[3 * H + j], cp[j])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def lstm_forward_rows(xproj, bias, w_fwd, lengths, h, c, gates, gh, b0, b1):
    """Run one layer forward over all T steps, for sequences b0..b1-1 (one thread's share).

    xproj   (T, B, 4H)   W_ih x_t for every step, blocks i, f, g, o
    bias    (4H,)        b_ih + b_hh
    w_fwd                W_hh^T (H, 4H) as panels: product.packed(W_hh.T)
    lengths (B,) int64   frozen state for t >= lengths[b]
    h, c    (T+1, B, H)  h[0], c[0] = initial state on entry
    gates   (T, B, 4H)   out: i, f, g, o after their nonlinearities
    gh      (B, 4H)      scratch
    """
    T, B, G = xproj.shape
    H = G // 4
    for t in range(T):
        matmul_packed(h[t], w_fwd, gh, b0, b1, 0.0)
        for b in range(b0, b1):
            gt = gates[t, b]
            if t >= lengths[b]:
                copy(h[t + 1, b], h[t, b])
                copy(c[t + 1, b], c[t, b])
                gt[:] = 0
                continue
            _gate_acts(gh[b], xproj[t, b], bias, gt, c[t, b], c[t + 1, b], h[t + 1, b], H, 0, H)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _unit_grads(i, f, g, o, cp, cn, s, dc):
    """The backward step of one unit, or a register of units: the gate pre-activation
    gradients (di', df', dg', do') and dL/dc_{t-1}, from the gates, c_{t-1} = cp, c_t = cn,
    s = dL/dh_t and dc = dL/dc_t from step t+1 (module doc)."""
    one = one_like(i)
    tc = tanh(cn)
    dcn = dc + s * o * (one - tc * tc)
    return (dcn * g * i * (one - i), dcn * cp * f * (one - f), dcn * i * (one - g * g),
            s * tc * o * (one - o), dcn * f)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True, inline="always")
def _gate_grads(gt, cp, cn, ds, dcb, dp, H, u0, u1):
    """One sequence-step of the backward pointwise part, units u0..u1-1 (both kernels below):
    the gate pre-activation gradients dp (4H,) from the gates gt (4H,), c_{t-1} = cp, c_t = cn
    and ds = dL/dh_t; dcb (dL/dc) carried from c_t to c_{t-1}. Registers, then scalars, as
    _gate_acts."""
    stop, V = vsplit(u0, u1, gt)
    for j in range(u0, stop, V):
        di, df, dg, do, dc = _unit_grads(pload(gt, j), pload(gt, H + j), pload(gt, 2 * H + j), pload(gt, 3 * H + j),
                                         pload(cp, j), pload(cn, j), pload(ds, j), pload(dcb, j))
        pstore(dp, j, di)
        pstore(dp, H + j, df)
        pstore(dp, 2 * H + j, dg)
        pstore(dp, 3 * H + j, do)
        pstore(dcb, j, dc)
    for j in range(stop, u1):
        dp[j], dp[H + j], dp[2 * H + j], dp[3 * H + j], dcb[j] = _unit_grads(
            gt[j], gt[H + j], gt[2 * H + j], gt[3 * H + j], cp[j], cn[j], ds[j], dcb[j])


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def lstm_backward_rows(s0, s1, dh_in, lengths, c, gates, w_bwd, dpre, dh_seq, dh, dc, b0, b1):
    """Reverse sweep over the window s1 .. s0 for sequences b0..b1-1 (window-relative arrays
    indexed t - s0).

    dh_in  (W, B, H)   dL/dh_t arriving from above
    c      (T+1, B, H), gates (T, B, 4H): from the forward pass
    w_bwd              W_hh as panels: product.packed(W_hh)
    dpre   (W, B, 4H)  out: gradient of the gate pre-activations (input and recurrent side alike)
    dh_seq (W, B, H)   out: total dL/dh_t
    dh, dc (B, H)      in: gradients carried into step s1 (zero for a plain sweep);
                       out: dL/dh_{s0-1}, dL/dc_{s0-1}
    """
    H = dh.shape[1]
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(b0, b1):
            d, dcb, din, ds, dp = dh[b], dc[b], dh_in[w, b], dh_seq[w, b], dpre[w, b]
            for j in range(H):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                dp[:] = 0
                copy(d, ds)
                continue
            _gate_grads(gates[t, b], c[t, b], c[t + 1, b], ds, dcb, dp, H, 0, H)
            d[:] = 0
        add_recurrent_grad(dpre[w], w_bwd, dh, b0, b1)


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def lstm_forward_cols(xproj, bias, w_fwd, lengths, h, c, gates, gh, flags, me, n, u0, u1):
    """lstm_forward_rows for a batch too small to share by sequences (B < ROW_BLOCK): every
    sequence, hidden units u0..u1-1 (their i, f, g, o columns) on this thread, the n threads
    meeting at a barrier after each step, since the next step's product reads every unit of
    h_t (threads.run_columns). Arguments as lstm_forward_rows. Returns False if the barrier
    gave up. The pointwise part is _gate_acts on this thread's units, as in the row kernel."""
    T, B, G = xproj.shape
    H = G // 4
    U = u1 - u0
    for t in range(T):
        for b in range(B):
            gt = gates[t, b]
            i, f, g, o = gt[u0:u1], gt[H + u0:H + u1], gt[2 * H + u0:2 * H + u1], gt[3 * H + u0:3 * H + u1]
            cp, cn, hp, hn = c[t, b, u0:u1], c[t + 1, b, u0:u1], h[t, b, u0:u1], h[t + 1, b, u0:u1]
            if t >= lengths[b]:
                for j in range(U):
                    hn[j] = hp[j]
                    cn[j] = cp[j]
                    i[j] = f[j] = g[j] = o[j] = 0
                continue
            unit_cols(h[t, b], w_fwd, gh[b], H, u0, u1, 0.0)
            _gate_acts(gh[b], xproj[t, b], bias, gt, c[t, b], c[t + 1, b], h[t + 1, b], H, u0, u1)
        if not arrive(flags, me, n, t + 1):
            return False
    return True


@njit(cache=CACHE, fastmath=FASTMATH, error_model=ERROR_MODEL, nogil=True)
def lstm_backward_cols(s0, s1, dh_in, lengths, c, gates, w_bwd, dpre, dh_seq, dh, dc, flags, me, n, u0, u1):
    """lstm_backward_rows for B < ROW_BLOCK: hidden units u0..u1-1 on this thread. Each step's
    gate gradients of these units first, then a barrier (dL/dh_{t-1} of a unit reads every
    gate's), then dh[:, u0:u1] += dpre_t @ W_hh[:, u0:u1] from w_bwd = packed(W_hh)."""
    B, H = dh.shape
    U = u1 - u0
    for t in range(s1, s0 - 1, -1):
        w = t - s0
        for b in range(B):
            d, din, ds = dh[b, u0:u1], dh_in[w, b, u0:u1], dh_seq[w, b, u0:u1]
            dp = dpre[w, b]
            di, df, dg, do = dp[u0:u1], dp[H + u0:H + u1], dp[2 * H + u0:2 * H + u1], dp[3 * H + u0:3 * H + u1]
            for j in range(U):
                ds[j] = d[j] + din[j]
            if t >= lengths[b]:
                for j in range(U):
                    di[j] = df[j] = dg[j] = do[j] = 0
                    d[j] = ds[j]
                continue
            _gate_grads(gates[t, b], c[t, b], c[t + 1, b], dh_seq[w, b], dc[b], dp, H, u0, u1)
            for j in range(U):
                d[j] = 0
        if not arrive(flags, me, n, s1 - t + 1):
            return False
        for b in range(B):
            unit_cols(dpre[w, b], w_bwd, dh[b], H, u0, u1, 1.0)
    return True


# --------------------------------------------------------------------------- CPU binding
def prepare(cell, tape, w_hh, b_ih, b_hh, extra):
    """W_hh packed both ways for the recurrent products and the summed biases (product.prepare_dense)."""
    prepare_dense(tape, w_hh, b_ih, b_hh)


def forward(cell, tape, lengths):
    """One layer forward over every step, the batch split across threads (or, under
    ROW_BLOCK sequences, each step's hidden units: threads.share_columns)."""
    if share_columns(tape.B, tape.h.shape[2], 4, tape.h.dtype, tape.xproj.shape[0]):
        run_columns(lstm_forward_cols, (tape.xproj, tape.weights.bias, tape.weights.fwd, lengths, tape.h, tape.c, tape.gates,
                                        tape.gh), tape.h.shape[2], COL_ALIGN, MIN_COL_UNITS)
        return
    run_split(lstm_forward_rows, (tape.xproj, tape.weights.bias, tape.weights.fwd, lengths, tape.h, tape.c, tape.gates,
                                  tape.gh), tape.B, MIN_ROWS, ROW_BLOCK)


def backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
    """Reverse sweep over steps s1..s0 (window-relative outputs, see lstm_backward_rows)."""
    if share_columns(tape.B, tape.h.shape[2], 4, tape.h.dtype, s1 - s0 + 1):
        run_columns(lstm_backward_cols, (s0, s1, dh_in, lengths, tape.c, tape.gates, tape.weights.bwd, dgi, dh_seq,
                                         tape.dh, tape.dc), tape.h.shape[2], COL_ALIGN, MIN_COL_UNITS)
        return
    run_split(lstm_backward_rows, (s0, s1, dh_in, lengths, tape.c, tape.gates, tape.weights.bwd, dgi, dh_seq,
                                   tape.dh, tape.dc), tape.B, MIN_ROWS, ROW_BLOCK)
