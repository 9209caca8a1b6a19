"""The backend contract: every method the model (fastrnn/model.py), the optimizers and the
clipping call on a backend, with its shapes and meaning stated once.

Two backends implement it: fastrnn/cpu/backend.py (NumPy arrays, Numba kernels, fastrnn's threads)
and fastrnn/cuda/backend.py (numba-cuda device arrays). Both subclass :class:`Backend`, and
tests/test_backend.py checks that each defines every method here with the same parameters and
no public method beyond them, so a third backend has one list to meet. "Native" arrays are
the backend's own (NumPy arrays; device arrays); "host" arrays are NumPy.

Shapes: T steps, B sequences, H hidden units, G = gates * H, I inputs, N rows, O outputs. A
layer's tape (fastrnn/layer.py: LayerTape) holds its activations in native arrays.
"""
from typing import Protocol


class Backend(Protocol):
    name: str  # 'cpu' or 'cuda'

    def check_model(self, model):
        """Raise ValueError for anything the model's shapes need that this backend cannot give
        (CUDA: a hidden size too large for the requested path); settle per-model choices."""

    # ---------------------------------------------------------------- memory
    def zeros(self, shape, dtype):
        """A native array of zeros."""

    def zeros_fn(self, dtype):
        """A function (*shape) -> native zeros of dtype (the tape allocates through it)."""

    def empty(self, shape, dtype):
        """An uninitialized native array."""

    def from_host(self, a):
        """A native copy (or view, on the CPU) of the host array a."""

    def to_host(self, a):
        """A host (NumPy) copy of the native array a."""

    def is_native(self, a):
        """Whether a is already one of this backend's arrays."""

    def stack(self, arrays, dtype):
        """A native array stacking same-shaped arrays along a new first axis."""

    def zero(self, a):
        """a[...] = 0, in place."""

    def copy_into(self, dst, src):
        """dst[...] = src (src native or host, same shape)."""

    def add_into(self, dst, src):
        """dst += src."""

    def multiply(self, a, b, out):
        """out = a * b, elementwise (dropout masks)."""

    # ---------------------------------------------------------------- products and reductions
    def matmul(self, a, b, out):
        """out (N, M) = a (N, K) @ b (K, M)."""

    def matmul_nt(self, a, b, out):
        """out (N, M) = a (N, K) @ b.T, b (M, K)."""

    def matmul_tn(self, a, b, out, sums=None):
        """out (K, M) = a.T @ b for a (N, K), b (N, M): the weight gradients. b and out may be
        pairs (two products over one pass of a); sums, if given, receives a's column sums (N
        summed away: the bias gradient)."""

    def column_sums(self, a, out):
        """out (M,) = a (N, M) summed over rows."""

    def column_dots(self, a, b, out):
        """out (M,) = (a * b) summed over rows, a and b (N, M): the diagonal of a.T @ b (a
        diagonal recurrence's weight gradient)."""

    def add_row(self, a, row):
        """a (N, M) += row (M,), broadcast over rows."""

    def gather_columns(self, w, ids, out):
        """out[n] = w[:, ids[n]]: the input projection of token ids (no one-hot is built)."""

    def scatter_columns(self, dw, ids, dg):
        """dw = the gradient of gather_columns: dw[:, ids[n]] summed over the rows n of dg."""

    def put_steps(self, src, lengths, dst, col0, reverse):
        """dst[t, b, col0:col0+F] = src[s, b] (src (T, B, F)), s = t or, reversed,
        lengths[b] - 1 - t (0 past the length): one direction's states into a bidirectional
        layer's output."""

    def take_steps(self, src, lengths, dst, col0, reverse):
        """dst[t, b] = src[s, b, col0:col0+F], s as in put_steps (its adjoint)."""

    def gather_last(self, h, lengths):
        """(B, H): row b = h[lengths[b], b] of h (T+1, B, H), each sequence's last state."""

    def scatter_last(self, rows, lengths, dh):
        """dh[lengths[b] - 1, b] = rows[b]: the gradient of gather_last into dh (T, B, H)."""

    def loss(self, name, y, target, valid):
        """(mean loss as a host float, dy native (N, O)) of loss ``name`` ('mse', 'ce') for
        outputs y (N, O), a host target ((N, O) values or (N,) class ids) and valid rows (N,)."""

    # ---------------------------------------------------------------- cells
    def prepare_layer(self, cell, tape, w_hh, b_ih, b_hh, extra):
        """Put the layer's weights into tape.weights as the cell's kernel family reads them,
        once per call: w_hh (the cell's recurrent weight: (G, H) dense, (G,) diagonal) in the
        kernels' layout, and the biases (G,) summed (the GRU's b_hn kept apart: it sits
        inside r * (.)); extra: {name: array} of the parameters the cell declares beyond
        PyTorch's four (Cell.extra_params: a LayerNorm's gains), empty for most cells."""

    def layer_forward(self, cell, tape, lengths):
        """Run the layer over its T steps from tape.h[0] (and tape.c[0]): fills tape.h[1:]
        (T, B, H), the gates and what the backward pass reads. tape.xproj holds the input
        projection (T, B, G); lengths (B,) or None stops each sequence at its length."""

    def layer_backward(self, cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
        """Reverse sweep over steps s1 down to s0 from the carries in tape.dh (and tape.dc):
        dh_in (T, B, H) is dL/dh from above; writes the pre-activation gradients dgi (and the
        recurrent side's dgh where they differ: GRU) for steps s0..s1, dh_seq (dL/dh_t, if
        not None), and leaves dL/dh_{s0-1} (dL/dc_{s0-1}) in tape.dh (tape.dc)."""

    # ---------------------------------------------------------------- clipping and updates
    def sum_squares(self, g):
        """sum(g ** 2) of a flat gradient, summed in float64, as a host float."""

    def scale(self, g, factor):
        """g *= factor, in place."""

    def clip_values(self, g, limit):
        """g = clip(g, -limit, limit), in place."""

    def optimizer_step(self, opt, params, grad):
        """One update of params (flat, native, in place) from grad by the optimizer's rule
        (fastrnn/train/optim.py), with its state in opt.state."""
