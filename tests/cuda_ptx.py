"""Compile every CUDA kernel to PTX for compute capability 8.0 with the real CUDA target (NVVM),
no GPU needed: typing and lowering errors that the simulator (plain Python) cannot see.

Run by tests/test_cuda_ptx.py in a fresh process with NUMBA_ENABLE_CUDASIM=0; needs the NVVM
and NVRTC libraries (the nvidia-cuda-nvcc / nvidia-cuda-nvrtc wheels of the test extra).
Signatures are those the launches in fastrnn/cuda/backend.py and launch.py produce. Every
kernel of kernels.py, sequence.py and norm.py must be listed here (checked), and a float32 kernel must
not compute in float64 (a bare 1.0 in Numba is float64 and silently widens float32 math):
its PTX may convert to float64 only where a float64 accumulator is the point (ALLOW_F64).
"""
import re
import sys
import types

import numpy as np
import numba.cuda.dispatcher as disp
from numba import boolean, cuda, float32, float64, int64

# Device functions called from a kernel are compiled for the current device's compute
# capability; without a GPU there is none, so name one.
disp.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))

from fastrnn.cuda import kernels as k  # noqa: E402
from fastrnn.cuda import norm  # noqa: E402
from fastrnn.cuda import sequence as seq  # noqa: E402


def A(dt, nd):
    """A C-contiguous nd array type of dt."""
    return dt[(slice(None),) * (nd - 1) + (slice(None, None, 1),)]


fails = 0
compiled = set()
F64_OP = re.compile(r"^\s*(?:@%p\d+\s+)?((?:add|sub|mul|fma|div|sqrt|rcp|neg|min|max|abs|ex2|lg2)\.[\w.]*f64)", re.M)
ALLOW_F64 = {"k.sum_squares", "k.mse_grad"}  # float64 sums of squares, by design


def comp(name, fn, sig, f32):
    global fails
    compiled.add(name)
    try:
        ptx, _ = cuda.compile_ptx(fn, sig, cc=(8, 0))
    except Exception as e:  # noqa: BLE001 - report every kernel, then fail
        fails += 1
        print("FAIL", name, type(e).__name__, str(e)[:1500])
        return
    wide = F64_OP.findall(ptx) if f32 and name not in ALLOW_F64 else []
    if wide:
        fails += 1
        print("FAIL", name, f"float32 kernel computes in float64: {sorted(set(wide))}")
    else:
        print("ok  ", name)


for dt in (float32, float64):
    f3, f2, f1, s = A(dt, 3), A(dt, 2), A(dt, 1), dt
    i1, b1 = A(int64, 1), A(boolean, 1)
    f32 = dt is float32
    ks = seq.kernels("float32" if f32 else "float64")
    ns = norm.kernels("float32" if f32 else "float64")
    gains = (f1,) * 5  # gain_ih, gain_hh, gain_c, bias_c and the constants
    sigs = {
        "seq.elman_fwd": (ks["elman_fwd"], (f3, f1, f2, i1, boolean, f3)),
        "seq.gru_fwd": (ks["gru_fwd"], (f3, f1, f1, f2, i1, f3, f3, f3)),
        "seq.lstm_fwd": (ks["lstm_fwd"], (f3, f1, f2, i1, f3, f3, f3)),
        "seq.elman_bwd": (ks["elman_bwd"], (f2, f3, int64, int64, i1, boolean, f3, f2, f3, f3)),
        "seq.gru_bwd": (ks["gru_bwd"], (f2, f3, int64, int64, i1, f3, f3, f3, f2, f3, f3, f3)),
        "seq.lstm_bwd": (ks["lstm_bwd"], (f2, f2, f3, int64, int64, i1, f3, f3, f2, f3, f3)),
        "k.elman_fwd": (k.elman_fwd, (f2, f3, f1, i1, int64, boolean, f3)),
        "k.gru_fwd": (k.gru_fwd, (f2, f3, f1, f1, i1, int64, f3, f3, f3)),
        "k.lstm_fwd": (k.lstm_fwd, (f2, f3, f1, i1, int64, f3, f3, f3)),
        "k.elman_bwd": (k.elman_bwd, (f2, f3, int64, int64, i1, boolean, f3, f3, f3)),
        "k.gru_bwd": (k.gru_bwd, (f2, f3, int64, int64, i1, f3, f3, f3, f3, f3, f3)),
        "k.lstm_bwd": (k.lstm_bwd, (f2, f2, f3, int64, int64, i1, f3, f3, f3, f3)),
        "seq.exprnn_fwd": (ks["exprnn_fwd"], (f3, f1, f1, f2, i1, f3)),
        "seq.exprnn_bwd": (ks["exprnn_bwd"], (f2, f3, int64, int64, i1, f3, f2, f3, f3, f3)),
        "k.exprnn_fwd": (k.exprnn_fwd, (f2, f3, f1, f1, i1, int64, f3)),
        "k.exprnn_bwd": (k.exprnn_bwd, (f2, f3, int64, int64, i1, f3, f3, f3, f3)),
        "norm.seq_fwd": (ns["seq_fwd"], (f3, f1) + gains + (f2, i1) + (f3,) * 7),
        "norm.seq_bwd": (ns["seq_bwd"], (f2, f2, f3, int64, int64, i1) + (f3,) * 6 + gains + (f2, f3, f3, f3, f2)),
        "norm.step_fwd": (ns["step_fwd"], (f2, f3, f1) + gains + (i1, int64) + (f3,) * 7),
        "norm.step_bwd": (ns["step_bwd"], (f2, f2, f3, int64, int64, i1) + (f3,) * 6 + gains + (f3, f3, f3, f2)),
        "k.indrnn_fwd": (k.indrnn_fwd, (f3, f1, f1, i1, f3)),
        "k.indrnn_bwd": (k.indrnn_bwd, (f2, f3, int64, int64, i1, f1, f3, f3, f3)),
        "k.gemm": (k._GEMM[np.dtype("float32" if f32 else "float64")], (f2, f2, f2, boolean, boolean, s)),
        "k.combine_bias": (k.combine_bias, (f1, f1, int64, f1)),
        "k.gather_columns": (k.gather_columns, (f2, i1, f2)),
        "k.scatter_columns": (k.scatter_columns, (f2, i1, f2)),
        "k.gather_last": (k.gather_last, (f3, i1, f2)),
        "k.scatter_last": (k.scatter_last, (f2, i1, f3)),
        "k.move_steps": (k.move_steps, (f3, i1, f3, int64, int64, int64, boolean)),
        "k.column_sums": (k.column_sums, (f2, f1)),
        "k.column_dots": (k.column_dots, (f2, f2, f1)),
        "k.add_row": (k.add_row, (f2, f1)),
        "k.fill_zero": (k.fill_zero, (f1,)),
        "k.transpose": (k.transpose, (f2, f2)),
        "k.add_into": (k.add_into, (f1, f1)),
        "k.multiply": (k.multiply, (f1, f1, f1)),
        "k.scale": (k.scale, (f1, s)),
        "k.clip_values": (k.clip_values, (f1, s)),
        "k.mse_grad": (k.mse_grad, (f2, f2, b1, s, f2, A(float64, 1))),
        "k.softmax_ce_grad": (k.softmax_ce_grad, (f2, i1, b1, s, f2, A(float64, 1))),
        "k.sum_squares": (k.sum_squares, (f1, A(float64, 1))),
        "k.sgd_update": (k.sgd_update, (f1, f1, f1, s, s, s)),
        "k.adam_update": (k.adam_update, (f1, f1, f1, f1) + (s,) * 9),
        "k.rmsprop_update": (k.rmsprop_update, (f1, f1, f1, s, s, s, s, s)),
        "k.adagrad_update": (k.adagrad_update, (f1, f1, f1, s, s, s)),
    }
    for name, (kern, sig) in sigs.items():
        comp(name, kern.py_func, sig, f32)

# every kernel the package defines is listed above (a new one cannot be left out)
defined = {f"k.{n}" for n, o in vars(k).items()
           if hasattr(o, "py_func") and not o.targetoptions.get("device")}  # kernels, not device functions
defined |= {"k.gemm"} | {f"seq.{n}" for n in seq.kernels("float32")} | {f"norm.{n}" for n in norm.kernels("float32")}
missing = sorted(defined - compiled)
if missing:
    fails += 1
    print("FAIL not listed in tests/cuda_ptx.py:", missing)
print("kernels:", len(compiled))
print("failures:", fails)
sys.exit(1 if fails else 0)
