"""Tunables shared by every kernel, in one place so that tests can see and patch them.

FASTMATH lists LLVM fast-math flags explicitly instead of ``fastmath=True``: we leave out
``nnan`` and ``ninf`` on purpose, because divergence detection relies on NaN and inf
propagating honestly through the kernels. ``afn`` (approximate functions) is left out too,
so that float64 kernels agree with the NumPy reference to ~1e-12.
"""
import os

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

# IEEE semantics for float division (x / 0 -> inf or NaN) instead of Python's
# ZeroDivisionError: the check behind the latter is a branch in every division, which stops
# LLVM from vectorizing the pointwise loops (measured: 2.1 -> 0.6 ns per tanh), and inf/NaN
# is exactly what divergence detection expects to see.
ERROR_MODEL = "numpy"

# Compiled kernels are written to Numba's on-disk cache so that a second process starts fast.
CACHE = True

# CUDA: the GEMM tile edge (threads per block = TILE^2). Read once, when the CUDA kernels are
# first imported; the CUDA-simulator tests lower it, since the simulator runs each thread as
# a Python thread.
CUDA_TILE = int(os.environ.get("FASTRNN_CUDA_TILE", "16"))

# CUDA: how a layer runs over the steps. "sequence": one launch per layer and direction, one
# block per sequence (fastrnn/cuda/sequence.py); "steps": a GEMM and a pointwise launch per
# step (kernels.py); "auto": "sequence" where the hidden size fits its shared memory. Both are
# tested against the CPU kernels; which is faster on a given GPU is for bench.py --device cuda.
CUDA_PATH = os.environ.get("FASTRNN_CUDA_PATH", "auto")

# CPU: a thread takes at least this many sequences of a cell's time loop; below it, handing
# work to a thread costs more than it saves. ROW_BLOCK: the rows the recurrent product takes at
# a time (cpu/product.py); threads split the batch on multiples of it, so that each share's
# rows fill whole tiles (a lone row, row_panels, is slower). A row's arithmetic, and the result,
# is the same in a tile or alone, so for any thread count.
MIN_ROWS = 4
ROW_BLOCK = 4

# CPU: the weight gradients' long sum over a batch's steps is cut into at most MAX_PARTS partial
# products (cpu/blas.py, matmul_tn), kept in a buffer between steps; memory.py counts it.
MAX_PARTS = 8

# CPU, batches under ROW_BLOCK sequences: the threads share each step's hidden units instead
# (threads.run_columns) where a step has at least 2 x MIN_COL_WORK gate columns and the call
# runs at least MIN_COL_STEPS steps (threads.share_columns). Only the LSTM's kernels have this
# form: at B = 1, H = 128 (512 columns), T = 784 1.1-1.4x on two threads, while T = 100 lost to
# the cost of waking the other thread. The tanh RNN's, tried, gained 1.04x at H = 128 and
# 1.11x at H = 512: not worth their compile time. Each thread takes at least MIN_COL_UNITS
# units, split on multiples of COL_ALIGN units: a float32 panel's 16 columns
# (cpu/product.py), so where H is a multiple of 16 each thread's gate columns are whole
# panels. Every column is the same sum whichever thread computes it (product.row_panels), so
# results do not depend on the thread count either.
MIN_COL_WORK = 256
MIN_COL_STEPS = 512  # and where a call runs this many steps (threads.share_columns)
MIN_COL_UNITS = 32
COL_ALIGN = 16
