"""CUDA kernels: one thread per (sequence, hidden unit) for each cell's pointwise step, a tiled
shared-memory GEMM for the products, and small kernels for losses, sums and optimizers.

The math and layouts are those of fastrnn/cpu/{elman,gru,lstm}.py (see their docstrings); per time step the
host launches the recurrent GEMM and then the cell's pointwise kernel. Shapes as on the CPU:
T steps, B batch, H hidden, G = gates * H; h and c hold T+1 states, h[0] the initial one.
"""
import math

import numpy as np
from numba import cuda, float32, float64

from ..config import CUDA_TILE as TILE
from ..cells._math import one_like, zero_like
from .cellmath import (elman_backward, elman_forward, gru_backward, gru_forward, lstm_backward, lstm_forward,
                       modrelu_backward, modrelu_forward)


def _make_gemm(dtype):
    @cuda.jit
    def gemm(A, B, C, ta, tb, beta):
        """C = op(A) @ op(B) + beta * C; op(A) is (M, K): A itself, or A.T when ta;
        op(B) is (K, N): B, or B.T when tb. Tiles of TILE x TILE through shared memory."""
        sA = cuda.shared.array((TILE, TILE), dtype)
        sB = cuda.shared.array((TILE, TILE), dtype)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        M, N = C.shape
        K = A.shape[0] if ta else A.shape[1]
        zero = zero_like(C[0, 0])
        acc = zero
        for k0 in range(0, K, TILE):
            ka, kb = k0 + tx, k0 + ty
            if row < M and ka < K:
                sA[ty, tx] = A[ka, row] if ta else A[row, ka]
            else:
                sA[ty, tx] = zero
            if col < N and kb < K:
                sB[ty, tx] = B[col, kb] if tb else B[kb, col]
            else:
                sB[ty, tx] = zero
            cuda.syncthreads()
            for k in range(TILE):
                acc += sA[ty, k] * sB[k, tx]
            cuda.syncthreads()
        if row < M and col < N:
            C[row, col] = acc + beta * C[row, col] if beta != zero else acc
    return gemm


_GEMM = {np.dtype(np.float32): _make_gemm(float32), np.dtype(np.float64): _make_gemm(float64)}


def gemm(A, B, C, ta=False, tb=False, beta=0.0):
    """Launch C = op(A) @ op(B) + beta C on 2-D device arrays (beta in C's precision)."""
    M, N = C.shape
    dt = np.dtype(C.dtype)
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    _GEMM[dt][grid, (TILE, TILE)](A, B, C, ta, tb, dt.type(beta))


def _block_edge(n):
    e = 1
    while e < n and e < 16:
        e *= 2
    return e


def grid1(n):
    """Launch shape covering n threads: one block of 32-256, a whole number of warps."""
    block = min(256, max(32, 1 << (max(n, 1) - 1).bit_length()))
    return ((n + block - 1) // block,), (block,)


def grid2(B, H):
    """Launch shape covering a (B, H) grid: blocks of at most 16 x 16, no larger than needed."""
    bx, by = _block_edge(B), _block_edge(H)
    return ((B + bx - 1) // bx, (H + by - 1) // by), (bx, by)


# --------------------------------------------------------------------------- Elman (tanh, relu)
@cuda.jit
def elman_fwd(gh, xproj, bias, lengths, t, relu, h):
    b, j = cuda.grid(2)
    if b < gh.shape[0] and j < gh.shape[1]:
        if t >= lengths[b]:
            h[t + 1, b, j] = h[t, b, j]
        else:
            h[t + 1, b, j] = elman_forward(gh[b, j] + xproj[t, b, j] + bias[j], relu)


@cuda.jit
def elman_bwd(dh, dh_in, t, s0, lengths, relu, h, dpre, dh_seq):
    """Step t of a reverse window that starts at step s0: dh_in, dpre and dh_seq are
    window-relative (index t - s0), h and lengths absolute. dh (B, H): carry in; on return the
    part of dL/dh_{t-1} that does not go through W_hh (the host then adds dpre[t-s0] @ W_hh)."""
    b, j = cuda.grid(2)
    if b < dh.shape[0] and j < dh.shape[1]:
        w = t - s0
        g = dh[b, j] + dh_in[w, b, j]
        dh_seq[w, b, j] = g
        if t >= lengths[b]:
            dpre[w, b, j] = zero_like(g)
            dh[b, j] = g
        else:
            dpre[w, b, j] = elman_backward(g, h[t + 1, b, j], relu)
            dh[b, j] = zero_like(g)


@cuda.jit
def exprnn_fwd(gh, xproj, bias, b_act, lengths, t, h):
    """expRNN's step t after the recurrent GEMM (gh = h_t W^T): h = modrelu(gh + xproj + b_ih; b)."""
    b, j = cuda.grid(2)
    if b < gh.shape[0] and j < gh.shape[1]:
        if t >= lengths[b]:
            h[t + 1, b, j] = h[t, b, j]
        else:
            h[t + 1, b, j] = modrelu_forward(gh[b, j] + xproj[t, b, j] + bias[j], b_act[j])


@cuda.jit
def exprnn_bwd(dh, dh_in, t, s0, lengths, h, dpre, dact, dh_seq):
    """As elman_bwd, with modReLU: dpre = dL/dz, dact = g sign(h) (its bias's gradient per row)."""
    b, j = cuda.grid(2)
    if b < dh.shape[0] and j < dh.shape[1]:
        w = t - s0
        g = dh[b, j] + dh_in[w, b, j]
        dh_seq[w, b, j] = g
        if t >= lengths[b]:
            dpre[w, b, j] = dact[w, b, j] = zero_like(g)
            dh[b, j] = g
        else:
            dpre[w, b, j], dact[w, b, j] = modrelu_backward(g, h[t + 1, b, j])
            dh[b, j] = zero_like(g)


# --------------------------------------------------------------------------- IndRNN
# A diagonal recurrence: unit j of sequence b depends on nothing but its own past, so one
# thread runs it over every step, and the same launch serves both paths (no per-step launch,
# no shared memory, no barrier).
@cuda.jit
def indrnn_fwd(xproj, bias, u, lengths, h):
    """h[t + 1, b, j] = relu(xproj[t, b, j] + bias[j] + u[j] h[t, b, j]) for every step t,
    carried past lengths[b]; bias = b_ih + b_hh."""
    b, j = cuda.grid(2)
    if b < h.shape[1] and j < h.shape[2]:
        for t in range(xproj.shape[0]):
            if t >= lengths[b]:
                h[t + 1, b, j] = h[t, b, j]
            else:
                h[t + 1, b, j] = elman_forward(xproj[t, b, j] + bias[j] + u[j] * h[t, b, j], True)


@cuda.jit
def indrnn_bwd(dh, dh_in, s0, s1, lengths, u, h, dpre, dh_seq):
    """Steps s1 down to s0 for one unit of one sequence: dh_in, dpre, dh_seq window-relative
    (index t - s0); dh (B, H) carries dL/dh in and leaves dL/dh_{s0-1}: u * dpre."""
    b, j = cuda.grid(2)
    if b < dh.shape[0] and j < dh.shape[1]:
        d = dh[b, j]
        for t in range(s1, s0 - 1, -1):
            w = t - s0
            g = d + dh_in[w, b, j]
            dh_seq[w, b, j] = g
            if t >= lengths[b]:
                dpre[w, b, j] = zero_like(g)
                d = g
            else:
                dp = elman_backward(g, h[t + 1, b, j], True)
                dpre[w, b, j] = dp
                d = u[j] * dp
        dh[b, j] = d


# --------------------------------------------------------------------------- GRU
@cuda.jit
def gru_fwd(gh, xproj, bias, b_hn, lengths, t, h, gates, ghn):
    b, j = cuda.grid(2)
    H = h.shape[2]
    if b < h.shape[1] and j < H:
        if t >= lengths[b]:
            h[t + 1, b, j] = h[t, b, j]
            zero = zero_like(h[0, 0, 0])
            for k in range(3):
                gates[t, b, k * H + j] = zero
            ghn[t, b, j] = zero
            return
        q = gh[b, 2 * H + j] + b_hn[j]
        r, z, n, h[t + 1, b, j] = gru_forward(gh[b, j] + xproj[t, b, j] + bias[j],
                                              gh[b, H + j] + xproj[t, b, H + j] + bias[H + j],
                                              xproj[t, b, 2 * H + j] + bias[2 * H + j], q, h[t, b, j])
        gates[t, b, j] = r
        gates[t, b, H + j] = z
        gates[t, b, 2 * H + j] = n
        ghn[t, b, j] = q


@cuda.jit
def gru_bwd(dh, dh_in, t, s0, lengths, h, gates, ghn, dgi, dgh, dh_seq):
    """As elman_bwd; dgi and dgh (window-relative) differ in the n block (r * dn)."""
    b, j = cuda.grid(2)
    H = dh.shape[1]
    if b < dh.shape[0] and j < H:
        w = t - s0
        g = dh[b, j] + dh_in[w, b, j]
        dh_seq[w, b, j] = g
        if t >= lengths[b]:
            for k in range(3):
                dgi[w, b, k * H + j] = zero_like(g)
                dgh[w, b, k * H + j] = zero_like(g)
            dh[b, j] = g
            return
        r, z = gates[t, b, j], gates[t, b, H + j]
        drp, dzp, dnp = gru_backward(g, r, z, gates[t, b, 2 * H + j], ghn[t, b, j], h[t, b, j])
        dgi[w, b, j] = drp
        dgi[w, b, H + j] = dzp
        dgi[w, b, 2 * H + j] = dnp
        dgh[w, b, j] = drp
        dgh[w, b, H + j] = dzp
        dgh[w, b, 2 * H + j] = dnp * r
        dh[b, j] = g * z


# --------------------------------------------------------------------------- LSTM
@cuda.jit
def lstm_fwd(gh, xproj, bias, lengths, t, h, c, gates):
    b, j = cuda.grid(2)
    H = h.shape[2]
    if b < h.shape[1] and j < H:
        if t >= lengths[b]:
            h[t + 1, b, j] = h[t, b, j]
            c[t + 1, b, j] = c[t, b, j]
            for k in range(4):
                gates[t, b, k * H + j] = zero_like(h[0, 0, 0])
            return
        i, f, g, o, c[t + 1, b, j], h[t + 1, b, j] = lstm_forward(
            gh[b, j] + xproj[t, b, j] + bias[j], gh[b, H + j] + xproj[t, b, H + j] + bias[H + j],
            gh[b, 2 * H + j] + xproj[t, b, 2 * H + j] + bias[2 * H + j],
            gh[b, 3 * H + j] + xproj[t, b, 3 * H + j] + bias[3 * H + j], c[t, b, j])
        gates[t, b, j] = i
        gates[t, b, H + j] = f
        gates[t, b, 2 * H + j] = g
        gates[t, b, 3 * H + j] = o


@cuda.jit
def lstm_bwd(dh, dc, dh_in, t, s0, lengths, c, gates, dpre, dh_seq):
    """As elman_bwd, with the cell-state carry dc (B, H) alongside dh."""
    b, j = cuda.grid(2)
    H = dh.shape[1]
    if b < dh.shape[0] and j < H:
        w = t - s0
        g = dh[b, j] + dh_in[w, b, j]
        dh_seq[w, b, j] = g
        if t >= lengths[b]:
            for k in range(4):
                dpre[w, b, k * H + j] = zero_like(g)
            dh[b, j] = g
            return
        dpre[w, b, j], dpre[w, b, H + j], dpre[w, b, 2 * H + j], dpre[w, b, 3 * H + j], dc[b, j] = lstm_backward(
            g, dc[b, j], gates[t, b, j], gates[t, b, H + j], gates[t, b, 2 * H + j], gates[t, b, 3 * H + j],
            c[t + 1, b, j], c[t, b, j])
        dh[b, j] = zero_like(g)


# --------------------------------------------------------------------------- small helpers
@cuda.jit
def fill_zero(a):
    """a[:] = 0 for a 1-D (flattened) device array: zeroing without a host transfer."""
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = zero_like(a[0])


@cuda.jit
def transpose(a, out):
    """out = a.T for 2-D arrays."""
    i, j = cuda.grid(2)
    if i < a.shape[0] and j < a.shape[1]:
        out[j, i] = a[i, j]


@cuda.jit
def add_into(dst, src):
    """dst[:] += src for 1-D (flattened) device arrays: summing truncated windows."""
    i = cuda.grid(1)
    if i < dst.shape[0]:
        dst[i] += src[i]


@cuda.jit
def multiply(a, b, out):
    """out[:] = a * b for 1-D (flattened) device arrays: dropout masks, forward and back."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * b[i]


@cuda.jit
def combine_bias(b_ih, b_hh, n, out):
    """out = b_ih + b_hh on the first n entries, b_ih after them (GRU: n = 2H, since b_hn
    sits inside r * (.)); the device twin of fastrnn/cpu/product.py's prepare_dense."""
    j = cuda.grid(1)
    if j < out.shape[0]:
        out[j] = b_ih[j] + (b_hh[j] if j < n else zero_like(b_hh[0]))


@cuda.jit
def gather_columns(w, ids, out):
    """out[n, g] = w[g, ids[n]]: the input projection of token ids (no one-hot)."""
    n, g = cuda.grid(2)
    if n < out.shape[0] and g < out.shape[1]:
        out[n, g] = w[g, ids[n]]


@cuda.jit
def scatter_columns(dw, ids, dg):
    """dw[:, ids[n]] += dg[n]: its gradient (atomics: the same token can repeat)."""
    n, g = cuda.grid(2)
    if n < dg.shape[0] and g < dg.shape[1]:
        cuda.atomic.add(dw, (g, ids[n]), dg[n, g])


@cuda.jit
def column_sums(a, out):
    """out[j] = sum_i a[i, j] (bias gradients)."""
    j = cuda.grid(1)
    if j < out.shape[0]:
        s = zero_like(out[0])
        for i in range(a.shape[0]):
            s += a[i, j]
        out[j] = s


@cuda.jit
def column_dots(a, b, out):
    """out[j] = sum_i a[i, j] b[i, j] (a diagonal recurrence's weight gradient)."""
    j = cuda.grid(1)
    if j < out.shape[0]:
        s = zero_like(out[0])
        for i in range(a.shape[0]):
            s += a[i, j] * b[i, j]
        out[j] = s


@cuda.jit
def add_row(a, v):
    i, j = cuda.grid(2)
    if i < a.shape[0] and j < a.shape[1]:
        a[i, j] += v[j]


@cuda.jit
def gather_last(h, lengths, out):
    """out[b] = h[lengths[b], b]: each sequence's state after its last real step."""
    b, j = cuda.grid(2)
    if b < out.shape[0] and j < out.shape[1]:
        out[b, j] = h[lengths[b], b, j]


@cuda.jit
def move_steps(src, lengths, dst, src_col0, dst_col0, F, reverse):
    """dst[t, b, dst_col0 + j] = src[s, b, src_col0 + j] for j < F, with s = t, or with
    ``reverse`` s = lengths[b]-1-t (0 past a sequence's length): one direction's states into a
    bidirectional layer's output, or a direction's share of it (or of its gradient) out."""
    i = cuda.grid(1)
    T, B = dst.shape[0], dst.shape[1]
    if i < T * B * F:
        t, r = i // (B * F), i % (B * F)
        b, j = r // F, r % F
        s = lengths[b] - 1 - t if reverse else t
        if s >= 0:
            dst[t, b, dst_col0 + j] = src[s, b, src_col0 + j]
        else:
            dst[t, b, dst_col0 + j] = zero_like(src[0, b, src_col0 + j])


@cuda.jit
def scatter_last(rows, lengths, dh):
    """dh[lengths[b] - 1, b] = rows[b] (dh zero elsewhere)."""
    b, j = cuda.grid(2)
    if b < rows.shape[0] and j < rows.shape[1]:
        dh[lengths[b] - 1, b, j] = rows[b, j]


@cuda.jit
def mse_grad(y, target, valid, scale, dy, row_loss):
    """dy = scale (y - target) on valid rows (scale = 2 / count, in y's precision, as the
    CPU's losses.mse); row_loss[i] = row i's sum of squares, accumulated in float64."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        s = 0.0
        for k in range(y.shape[1]):
            d = (y[i, k] - target[i, k]) if valid[i] else zero_like(scale)
            dy[i, k] = scale * d
            s += float64(d) * float64(d)
        row_loss[i] = s


@cuda.jit
def softmax_ce_grad(y, target, valid, count, dy, row_loss):
    """Softmax cross-entropy per row (invalid rows: ignored), in y's precision; count (the
    rows that carry a loss) in y's precision too, as the CPU's losses.softmax_ce divides."""
    i = cuda.grid(1)
    if i < y.shape[0]:
        C = y.shape[1]
        zero, one = zero_like(count), one_like(count)
        if not valid[i]:
            for k in range(C):
                dy[i, k] = zero
            row_loss[i] = 0.0
            return
        m = y[i, 0]
        for k in range(1, C):
            m = max(m, y[i, k])
        s = zero
        for k in range(C):
            s += math.exp(y[i, k] - m)
        lse = m + math.log(s)
        for k in range(C):
            p = math.exp(y[i, k] - lse)
            dy[i, k] = (p - (one if k == target[i] else zero)) / count
        row_loss[i] = lse - y[i, target[i]]


@cuda.jit
def sum_squares(g, out):
    """out[0] += sum g^2 (float64 accumulator, atomics per thread)."""
    i = cuda.grid(1)
    if i < g.shape[0]:
        cuda.atomic.add(out, 0, float64(g[i]) * float64(g[i]))


@cuda.jit
def scale(g, factor):
    i = cuda.grid(1)
    if i < g.shape[0]:
        g[i] *= factor


@cuda.jit
def clip_values(g, limit):
    i = cuda.grid(1)
    if i < g.shape[0]:
        g[i] = min(max(g[i], -limit), limit)


# Optimizers: the rules and constants of fastrnn/train/optim.py (passed in, never restated);
# every scalar arrives in the parameters' precision. d = g + wd * p is L2 weight decay.
@cuda.jit
def sgd_update(p, g, v, lr, mu, wd):
    i = cuda.grid(1)
    if i < p.shape[0]:
        d = g[i] + wd * p[i]
        if mu != zero_like(mu):
            v[i] = mu * v[i] + d
            d = v[i]
        p[i] -= lr * d


@cuda.jit
def adam_update(p, g, m, v, lr, wd, b1, ob1, b2, ob2, eps, c1, c2):
    """ob1 = 1 - b1, ob2 = 1 - b2; c1 = 1 - b1^t, c2 = 1 - b2^t (bias corrections)."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        d = g[i] + wd * p[i]
        m[i] = b1 * m[i] + ob1 * d
        v[i] = b2 * v[i] + ob2 * d * d
        p[i] -= lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)


@cuda.jit
def rmsprop_update(p, g, v, lr, wd, alpha, oalpha, eps):
    """oalpha = 1 - alpha."""
    i = cuda.grid(1)
    if i < p.shape[0]:
        d = g[i] + wd * p[i]
        v[i] = alpha * v[i] + oalpha * d * d
        p[i] -= lr * d / (math.sqrt(v[i]) + eps)


@cuda.jit
def adagrad_update(p, g, s, lr, wd, eps):
    i = cuda.grid(1)
    if i < p.shape[0]:
        d = g[i] + wd * p[i]
        s[i] += d * d
        p[i] -= lr * d / (math.sqrt(s[i]) + eps)
