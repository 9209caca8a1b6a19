"""Buffers of one recurrent layer for a given (T, B): allocated once, reused every step.

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
"""
import numpy as np


class LayerTape:
    def __init__(self, cell, T, B, H, dtype):
        G = cell.gates * H
        z = lambda *s: np.zeros(s, dtype=dtype)  # noqa: E731
        self.T, self.B = T, B
        self.xproj = z(T, B, G)
        self.h = z(T + 1, B, H)
        self.c = z(T + 1, B, H) if cell.has_cell_state else z(1, 1, 1)
        self.gates = z(T, B, G) if cell.gates > 1 else z(1, 1, 1)
        self.ghn = z(T, B, H) if cell.name == "gru" else z(1, 1, 1)
        self.gh = z(B, G)
        self.dgi = self.xproj  # the forward's input projection is dead once backward starts
        self.dgh = z(T, B, G) if cell.split_grad else self.dgi
        self.dh_seq = z(T, B, H)
        self.dh = z(B, H)
        self.dc = z(B, H)
        # set per call: contiguous views of this layer's weights
        self.w_hh = self.w_hh_t = self.b_hn = self.bias = None
