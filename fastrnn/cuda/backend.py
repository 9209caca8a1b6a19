"""The CUDA backend: the arithmetic that fastrnn.model.RNN orchestrates, on device arrays.

The backend contract (fastrnn/backend.py), over numba-cuda device arrays: parameters, gradients,
optimizer state and activations stay on the GPU; per training step only the loss value and
the gradient norm come back (and the inputs, targets and lengths go over once). A layer runs
over the steps in one of two ways (``path``): 'sequence' (one launch per layer and direction,
sequence.py) or 'steps' (a GEMM and a pointwise launch per step, kernels.py); 'auto' picks
'sequence' where the hidden size fits its shared memory.
"""
import numpy as np
from numba import cuda

from .. import validate as v
from ..backend import Backend
from ..config import CUDA_PATH
from . import kernels as k
from . import launch
from . import require
from . import sequence as seq

PATHS = ("auto", "sequence", "steps")


def _flat(a):
    return a.reshape(a.size)


class CudaBackend(Backend):
    """The CUDA side of the backend contract (fastrnn/backend.py): numba-cuda device arrays."""
    name = "cuda"

    def __init__(self, path=None):
        require()  # one clear error without numba-cuda, a GPU or a driver, whoever builds one
        self.requested = v.choice("path", path or CUDA_PATH, PATHS)
        self.path = None

    def check_model(self, model):
        """Resolve the path for the model's hidden size (or refuse one that cannot hold it)."""
        H = model.hidden_size
        if self.requested == "sequence" and H > seq.MAX_H:
            raise ValueError(f"path: 'sequence' needs hidden_size <= {seq.MAX_H}; got {H}")
        self.path = ("sequence" if H <= seq.MAX_H else "steps") if self.requested == "auto" else self.requested

    # ---------------------------------------------------------------- memory
    def zeros(self, shape, dtype):
        return cuda.to_device(np.zeros(shape, dtype))

    def zeros_fn(self, dtype):
        return lambda *shape: self.zeros(shape, dtype)

    def empty(self, shape, dtype):
        return cuda.device_array(shape, dtype)

    def from_host(self, a):
        return cuda.to_device(np.ascontiguousarray(a))

    def to_host(self, a):
        return a.copy_to_host() if self.is_native(a) else np.asarray(a)

    def is_native(self, a):
        """A device array (real or simulated; numba's is_cuda_array lacks a simulator twin)."""
        return hasattr(a, "copy_to_host")

    def stack(self, arrays, dtype):
        out = cuda.device_array((len(arrays),) + tuple(arrays[0].shape), dtype)
        for i, a in enumerate(arrays):
            out[i].copy_to_device(a)
        return out

    def zero(self, a):
        """Zero a contiguous device array in place, on the device."""
        f = _flat(a)
        gr, bl = k.grid1(f.shape[0])
        k.fill_zero[gr, bl](f)

    def copy_into(self, dst, src):
        """dst = src, from a device array or a host one."""
        dst.copy_to_device(src if self.is_native(src) else np.ascontiguousarray(src))

    def add_into(self, dst, src):
        d, s = _flat(dst), _flat(src)
        gr, bl = k.grid1(d.shape[0])
        k.add_into[gr, bl](d, s)

    def multiply(self, a, b, out):
        o = _flat(out)
        gr, bl = k.grid1(o.shape[0])
        k.multiply[gr, bl](_flat(a), _flat(b), o)

    # ---------------------------------------------------------------- products and reductions
    def matmul(self, a, b, out):
        k.gemm(a, b, out)

    def matmul_nt(self, a, b, out):
        k.gemm(a, b, out, tb=True)

    def matmul_tn(self, a, b, out, sums=None):
        """out = a.T @ b (b and out may be pairs: one product each); sums = a's column sums."""
        for bb, oo in zip(b, out) if isinstance(b, tuple) else ((b, out),):
            k.gemm(a, bb, oo, ta=True)
        if sums is not None:
            self.column_sums(a, sums)

    def column_sums(self, a, out):
        gr, bl = k.grid1(out.shape[0])
        k.column_sums[gr, bl](a, out)

    def column_dots(self, a, b, out):
        gr, bl = k.grid1(out.shape[0])
        k.column_dots[gr, bl](a, b, out)

    def add_row(self, a, row):
        g, b = k.grid2(a.shape[0], a.shape[1])
        k.add_row[g, b](a, row)

    def gather_columns(self, w, ids, out):
        g, b = k.grid2(out.shape[0], out.shape[1])
        k.gather_columns[g, b](w, ids, out)

    def scatter_columns(self, dw, ids, dg):
        self.zero(dw)
        g, b = k.grid2(dg.shape[0], dg.shape[1])
        k.scatter_columns[g, b](dw, ids, dg)

    def put_steps(self, src, lengths, dst, col0, reverse):
        gr, bl = k.grid1(src.size)
        k.move_steps[gr, bl](src, lengths, dst, 0, col0, src.shape[2], reverse)

    def take_steps(self, src, lengths, dst, col0, reverse):
        gr, bl = k.grid1(dst.size)
        k.move_steps[gr, bl](src, lengths, dst, col0, 0, dst.shape[2], reverse)

    def gather_last(self, h, lengths):
        out = cuda.device_array(h.shape[1:], h.dtype)
        g, b = k.grid2(out.shape[0], out.shape[1])
        k.gather_last[g, b](h, lengths, out)
        return out

    def scatter_last(self, rows, lengths, dh):
        g, b = k.grid2(rows.shape[0], rows.shape[1])
        k.scatter_last[g, b](rows, lengths, dh)

    def loss(self, name, y, target, valid):
        """(mean loss, dy on the device): per-row terms on the device, summed in float64."""
        N, O = y.shape
        count = int(valid.sum()) * (O if name == "mse" else 1)
        if count == 0:
            raise ValueError("target: no position counts towards the loss (all masked)")
        dy = cuda.device_array((N, O), y.dtype)
        row_loss = cuda.device_array(N, np.float64)
        gr, bl = k.grid1(N)
        f = np.dtype(y.dtype).type
        if name == "mse":
            k.mse_grad[gr, bl](y, cuda.to_device(target), cuda.to_device(valid), f(2.0 / count), dy, row_loss)
        else:
            k.softmax_ce_grad[gr, bl](y, cuda.to_device(target), cuda.to_device(valid), f(count), dy, row_loss)
        return float(row_loss.copy_to_host().sum() / count), dy

    # ---------------------------------------------------------------- cells
    def prepare_layer(self, cell, tape, w_hh, b_ih, b_hh, extra):
        """The weights as the cell's kernel family reads them on this path (launch.py)."""
        launch.CELLS[cell.kernels].prepare(cell, tape, w_hh, b_ih, b_hh, extra, self.path)

    def layer_forward(self, cell, tape, lengths):
        launch.CELLS[cell.kernels].forward(self.path, cell, tape, lengths)

    def layer_backward(self, cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
        """Reverse sweep over steps s1..s0 from the carries in tape.dh / tape.dc."""
        launch.CELLS[cell.kernels].backward(self.path, cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq)

    # ---------------------------------------------------------------- clipping and updates
    def sum_squares(self, g):
        gr, bl = k.grid1(g.shape[0])
        acc = cuda.to_device(np.zeros(1, np.float64))
        k.sum_squares[gr, bl](g, acc)
        return float(acc.copy_to_host()[0])

    def scale(self, g, factor):
        gr, bl = k.grid1(g.shape[0])
        k.scale[gr, bl](g, np.dtype(g.dtype).type(factor))

    def clip_values(self, g, limit):
        gr, bl = k.grid1(g.shape[0])
        k.clip_values[gr, bl](g, np.dtype(g.dtype).type(limit))

    def optimizer_step(self, opt, params, grad):
        """The optimizer's own kernel (opt.kernel, fastrnn/cuda/kernels.py) with its own
        constants (opt.kernel_args), in the parameters' precision, so float32 stays float32."""
        f = np.dtype(params.dtype).type
        gr, bl = k.grid1(params.shape[0])
        getattr(k, opt.kernel)[gr, bl](params, grad, *(opt.state[s] for s in opt.slots), *opt.kernel_args(f))
