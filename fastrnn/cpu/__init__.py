"""The CPU backend and its machinery, mirroring fastrnn/cuda/: the backend (backend.py), each
kernel family's loops (elman.py for tanh and ReLU, gru.py, lstm.py), the recurrent product's
register tiles (product.py), the weight gradients' BLAS calls and tile (blas.py, gradtile.py),
SIMD helpers (simd.py), fastrnn's own threads (threads.py) and the barrier they meet at
(barrier.py). The pointwise math both backends share is fastrnn/cells/_math.py.
"""
from .backend import CPU, CpuBackend

__all__ = ["CPU", "CpuBackend"]
