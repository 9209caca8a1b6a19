"""Buffers of one recurrent layer for a given (T, B): allocated once, reused every step, on
whichever backend's memory ``zeros`` allocates (NumPy arrays, or CUDA device arrays).

Shapes (T steps, B batch, H hidden, G = gates * H):
    xproj  (T, B, G)     input projection W_ih x_t for every step (biases added by the kernel)
    h      (T+1, B, H)   h[0] = initial state, h[t+1] = state after step t
    c      (T+1, B, H)   LSTM cell state, same indexing
    gates  (T, B, G)     activated gates (GRU, LSTM)
    ghn    (T, B, H)     GRU: W_hn h_{t-1} + b_hn
    dgi    (T, B, G)     gradient of the input-side pre-activations (all windows summed); it
                         shares xproj's memory, which the backward pass never reads
    dgh    (T, B, G)     GRU only: recurrent-side pre-activation gradient; else same array as dgi
    dh_seq (T, B, H)     total dL/dh_t seen by the reverse sweep
    gh     (B, G)        scratch for one step's recurrent product (a dense recurrence)
    dh, dc (B, H)        the reverse sweep's carries
Unused buffers are (1, 1, 1) placeholders, so every kernel signature stays the same.
"""
import numpy as np


def reverse_steps(a, lengths):
    """A host array a (T, B, ...) with each sequence's steps reversed within its own length
    (zeros after it): what a bidirectional layer's reverse direction reads. Its own inverse
    on the steps inside each length."""
    src = lengths[None, :] - 1 - np.arange(a.shape[0])[:, None]  # (T, B): the step read
    out = a[np.maximum(src, 0), np.arange(a.shape[1])[None, :]]
    out[src < 0] = 0
    return out


def tape_shapes(cell, T, B, H):
    """{buffer: shape} of one layer's tape: the cell's own declaration (Cell.tape_shapes)."""
    return cell.tape_shapes(T, B, H)


class LayerTape:
    def __init__(self, cell, T, B, H, zeros):
        self.T, self.B = T, B
        for name, shape in tape_shapes(cell, T, B, H).items():
            setattr(self, name, zeros(*shape) if shape else None)
        self.dgi = self.xproj  # the forward's input projection is dead once backward starts
        if self.dgh is None:
            self.dgh = self.dgi  # one pre-activation gradient serves both sides
        # set per call by the backend's prepare_layer: this layer's weights as its kernels read
        # them, in whatever form that backend's kernel family wants (fastrnn/cpu/<family>.py
        # prepare, fastrnn/cuda/launch.py); the tape only keeps them between calls
        self.weights = None
