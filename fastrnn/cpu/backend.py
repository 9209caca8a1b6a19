"""The CPU backend: the arithmetic that fastrnn.model.RNN orchestrates, on NumPy arrays.

Cells run as Numba kernels (fastrnn/cpu/<kernels>.py: elman, gru, lstm), the batch split across our own
threads (threads.py); large products go through the BLAS that Numba calls (blas.py). Every
method works in place on arrays the model allocated through :meth:`zeros` / :meth:`empty`;
the contract both backends meet is written once, in fastrnn/backend.py.
"""
import importlib

import numpy as np
from numba import njit

from ..backend import Backend
from ..config import CACHE
from ..layer import reverse_steps
from ..losses import get_loss
from . import threads
from .blas import matmul, matmul_tn


@njit(cache=CACHE)
def _scatter_columns(dw, ids, dg):
    """dw[:, ids[n]] += dg[n] for every row n: the gradient of a token-id input gather.
    dw (G, V), ids (N,) int64, dg (N, G)."""
    for n in range(ids.shape[0]):
        k = ids[n]
        for j in range(dg.shape[1]):
            dw[j, k] += dg[n, j]


@njit(cache=CACHE)
def _column_dots(a, b, out):
    """out[j] = sum_n a[n, j] b[n, j], summed in row order in out's precision."""
    out[:] = 0
    for n in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[n, j] * b[n, j]


@njit(cache=CACHE, fastmath={"reassoc", "contract"})
def _sum_squares(g):
    # float64 accumulator; a NumPy dot here would wake NumPy's own BLAS thread pool, which
    # then spins against the Numba threads (see blas.py)
    s = 0.0
    for i in range(g.shape[0]):
        s += float(g[i]) * float(g[i])
    return s


class CpuBackend(Backend):
    """The CPU side of the backend contract (fastrnn/backend.py): NumPy arrays, Numba kernels."""
    name = "cpu"

    def __init__(self):
        threads.configure()
        self._kernels = {}

    def check_model(self, model):
        """Anything the model's shapes need that this backend lacks: nothing on the CPU."""

    # ---------------------------------------------------------------- memory
    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype)

    def zeros_fn(self, dtype):
        return lambda *shape: np.zeros(shape, dtype)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def from_host(self, a):
        return a

    def to_host(self, a):
        return np.asarray(a)

    def is_native(self, a):
        return isinstance(a, np.ndarray)

    def stack(self, arrays, dtype):
        return np.stack(arrays)

    def zero(self, a):
        a[...] = 0.0

    def copy_into(self, dst, src):
        dst[...] = src

    def add_into(self, dst, src):
        dst += src

    def multiply(self, a, b, out):
        np.multiply(a, b, out=out)

    # ---------------------------------------------------------------- products and reductions
    def matmul(self, a, b, out):
        """out = a @ b."""
        matmul(a, b, out)

    def matmul_nt(self, a, b, out):
        """out = a @ b.T."""
        matmul(a, b, out, transposed=True)

    def matmul_tn(self, a, b, out, sums=None):
        """out = a.T @ b; sums, if given, = a's column sums (from the same pass over a). b and
        out may be pairs: both products, from one pass over a where the shapes allow."""
        matmul_tn(a, b, out, sums)

    def column_sums(self, a, out):
        out[...] = a.sum(axis=0)

    def column_dots(self, a, b, out):
        _column_dots(a, b, out)

    def add_row(self, a, row):
        a += row

    def gather_columns(self, w, ids, out):
        """out[n] = w[:, ids[n]]: the input projection of token ids (no one-hot)."""
        np.take(np.ascontiguousarray(w.T), ids, axis=0, out=out)

    def scatter_columns(self, dw, ids, dg):
        """dw = its gradient: dw[:, ids[n]] summed over rows n of dg."""
        dw[...] = 0.0
        _scatter_columns(dw, ids, dg)

    def put_steps(self, src, lengths, dst, col0, reverse):
        """dst[t, b, col0:col0+F] = src[s, b], s = t or, reversed, lengths[b]-1-t (0 past
        the length): one direction's states into a bidirectional layer's output."""
        dst[:, :, col0:col0 + src.shape[2]] = reverse_steps(src, lengths) if reverse else src

    def take_steps(self, src, lengths, dst, col0, reverse):
        """dst[t, b] = src[s, b, col0:col0+F], s as in put_steps."""
        part = src[:, :, col0:col0 + dst.shape[2]]
        dst[...] = reverse_steps(part, lengths) if reverse else part

    def gather_last(self, h, lengths):
        """(B, H): row b = h[lengths[b], b], each sequence's state after its last real step."""
        return h[lengths, np.arange(h.shape[1])]

    def scatter_last(self, rows, lengths, dh):
        """dh[lengths[b] - 1, b] = rows[b]."""
        dh[lengths - 1, np.arange(rows.shape[0])] = rows

    def loss(self, name, y, target, valid):
        """(mean loss, dy) for outputs y (N, O), host target and valid rows (N,)."""
        return get_loss(name)(y, target, valid)

    # ---------------------------------------------------------------- cells
    def prepare_layer(self, cell, tape, w_hh, b_ih, b_hh, extra):
        """The layer's weights as its kernel family reads them (its ``prepare``): for a dense
        recurrence W_hh packed both ways into panels (product.prepare_dense), and the biases."""
        self._cell(cell).prepare(cell, tape, w_hh, b_ih, b_hh, extra)

    def _cell(self, cell):
        mod = self._kernels.get(cell.kernels)
        if mod is None:
            mod = self._kernels[cell.kernels] = importlib.import_module(f"fastrnn.cpu.{cell.kernels}")
        return mod

    def layer_forward(self, cell, tape, lengths):
        self._cell(cell).forward(cell, tape, lengths)

    def layer_backward(self, cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
        """Reverse sweep over steps s1..s0 from the carries in tape.dh / tape.dc (zero, or
        seeded for Jacobians); leaves dL/dh_{s0-1} (dL/dc_{s0-1}) there."""
        self._cell(cell).backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq)

    # ---------------------------------------------------------------- clipping and updates
    def sum_squares(self, g):
        return _sum_squares(g)

    def scale(self, g, factor):
        g *= factor

    def clip_values(self, g, limit):
        np.clip(g, -limit, limit, out=g)

    def optimizer_step(self, opt, params, grad):
        """One update by the optimizer's NumPy definition (fastrnn/train/optim.py)."""
        opt.numpy_update(params, grad)


CPU = CpuBackend()  # the instance for host arrays that belong to no model (fastrnn.train.optim)
