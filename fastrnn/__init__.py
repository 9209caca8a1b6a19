"""fastrnn: tanh, ReLU, GRU and LSTM networks with exact BPTT as Numba kernels.

The public names are imported lazily, so that `import fastrnn` (and `fastrnn --help`)
does not pull in Numba until a model or kernel is actually used.
"""
__version__ = "0.1.0"

_LAZY = {
    "RNN": "fastrnn.model",
    "CELLS": "fastrnn.cells",
    "gradcheck": "fastrnn.finitediff",
    "check_gradients": "fastrnn.finitediff",
    "set_threads": "fastrnn.threads",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastrnn' has no attribute {name!r}")
