"""Gradient clipping on a flat gradient, on whichever backend holds it. The model clips its
own gradient (RNN.clip_grad_norm) and the training loop through it, so this sits below both:
nothing here imports the model or the training package.
"""
import numpy as np


def _backend(backend):
    if backend is None:
        from .cpu import CPU

        return CPU
    return backend


def global_norm(grad, backend=None):
    """The gradient's global (L2) norm, summed in float64, on its backend (None: the CPU)."""
    return float(np.sqrt(_backend(backend).sum_squares(grad)))


def clip_global_norm(grad, max_norm, backend=None):
    """Scale grad in place so its norm is at most max_norm (Pascanu et al. 2013); None: only
    measure. Returns the norm before clipping (inf or NaN if the gradient is not finite)."""
    norm = global_norm(grad, backend)
    if max_norm is not None and np.isfinite(norm) and norm > max_norm:
        _backend(backend).scale(grad, max_norm / norm)
    return norm


def clip_by_value(grad, limit, backend=None):
    """Clip every entry of grad in place to [-limit, limit]."""
    _backend(backend).clip_values(grad, limit)
