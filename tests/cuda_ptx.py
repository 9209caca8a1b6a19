"""Compile every CUDA kernel to PTX for compute capability 8.0 with the real CUDA target (NVVM),
no GPU needed: typing and lowering errors that the simulator (plain Python) cannot see.

Run by tests/test_cuda_ptx.py in a fresh process with NUMBA_ENABLE_CUDASIM=0; needs the NVVM
and NVRTC libraries (the nvidia-cuda-nvcc / nvidia-cuda-nvrtc wheels of the test extra).
Signatures are those the launches in fastrnn/cuda/model.py produce.
"""
import sys
import types

import numpy as np
import numba.cuda.dispatcher as disp
from numba import boolean, cuda, float32, float64, int64

# Device functions called from a kernel are compiled for the current device's compute
# capability; without a GPU there is none, so name one.
disp.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))

from fastrnn.cuda import kernels as k  # noqa: E402
from fastrnn.cuda import sequence as seq  # noqa: E402


def A(dt, nd):
    """A C-contiguous nd array type of dt."""
    return dt[(slice(None),) * (nd - 1) + (slice(None, None, 1),)]


fails = 0


def comp(name, fn, sig):
    global fails
    try:
        cuda.compile_ptx(fn, sig, cc=(8, 0))
        print("ok  ", name)
    except Exception as e:  # noqa: BLE001 - report every kernel, then fail
        fails += 1
        print("FAIL", name, type(e).__name__, str(e)[:1500])


for dt in (float32, float64):
    f3, f2, f1 = A(dt, 3), A(dt, 2), A(dt, 1)
    i1 = A(int64, 1)
    ks = seq.kernels("float32" if dt is float32 else "float64")
    comp("seq.elman_fwd", ks["elman_fwd"].py_func, (f3, f1, f2, i1, boolean, f3))
    comp("seq.gru_fwd", ks["gru_fwd"].py_func, (f3, f1, f1, f2, i1, f3, f3, f3))
    comp("seq.lstm_fwd", ks["lstm_fwd"].py_func, (f3, f1, f2, i1, f3, f3, f3))
    comp("seq.elman_bwd", ks["elman_bwd"].py_func, (f2, f3, int64, int64, i1, boolean, f3, f2, f3, f3))
    comp("seq.gru_bwd", ks["gru_bwd"].py_func, (f2, f3, int64, int64, i1, f3, f3, f3, f2, f3, f3, f3))
    comp("seq.lstm_bwd", ks["lstm_bwd"].py_func, (f2, f2, f3, int64, int64, i1, f3, f3, f2, f3, f3))
    comp("k.elman_fwd", k.elman_fwd.py_func, (f2, f3, f1, i1, int64, boolean, f3))
    comp("k.gru_fwd", k.gru_fwd.py_func, (f2, f3, f1, f1, i1, int64, f3, f3, f3))
    comp("k.lstm_fwd", k.lstm_fwd.py_func, (f2, f3, f1, i1, int64, f3, f3, f3))
    comp("k.elman_bwd", k.elman_bwd.py_func, (f2, f3, int64, int64, i1, boolean, f3, f3, f3))
    comp("k.gru_bwd", k.gru_bwd.py_func, (f2, f3, int64, int64, i1, f3, f3, f3, f3, f3, f3))
    comp("k.lstm_bwd", k.lstm_bwd.py_func, (f2, f2, f3, int64, int64, i1, f3, f3, f3, f3))
    comp("k.gemm", k._GEMM[np.dtype("float32" if dt is float32 else "float64")].py_func, (f2, f2, f2, boolean, boolean, float64))
    comp("k.combine_bias", k.combine_bias.py_func, (f1, f1, int64, f1))
    comp("k.gather_columns", k.gather_columns.py_func, (f2, i1, f2))
    comp("k.gather_last", k.gather_last.py_func, (f3, i1, f2))
    comp("k.scatter_last", k.scatter_last.py_func, (f2, i1, f3))
    comp("k.column_sums", k.column_sums.py_func, (f2, f1))
    comp("k.add_row", k.add_row.py_func, (f2, f1))
    comp("k.fill_zero", k.fill_zero.py_func, (f1,))
    comp("k.scale", k.scale.py_func, (f1, float64))
    comp("k.clip_values", k.clip_values.py_func, (f1, float64))
    comp("k.sgd_update", k.sgd_update.py_func, (f1, f1, f1, float64, float64, float64))
    comp("k.rmsprop_update", k.rmsprop_update.py_func, (f1, f1, f1, float64, float64, float64))
    comp("k.adagrad_update", k.adagrad_update.py_func, (f1, f1, f1, float64, float64))
    comp("k.transpose", k.transpose.py_func, (f2, f2))
    comp("k.add_into", k.add_into.py_func, (f1, f1))
    comp("k.mse_grad", k.mse_grad.py_func, (f2, f2, A(boolean, 1), float64, f2, A(float64, 1)))
    comp("k.softmax_ce_grad", k.softmax_ce_grad.py_func, (f2, i1, A(boolean, 1), float64, f2, A(float64, 1)))
    comp("k.sum_squares", k.sum_squares.py_func, (f1, A(float64, 1)))
    comp("k.adam_update", k.adam_update.py_func, (f1, f1, f1, f1, float64, float64, float64, float64))
    comp("k.scatter_columns", k.scatter_columns.py_func, (f2, i1, f2))
print("failures:", fails)
sys.exit(1 if fails else 0)
