"""The Elman cells (PyTorch's nn.RNN): one gate block, a dense recurrence.

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   f = tanh or ReLU
Kernels: fastrnn/cpu/elman.py, fastrnn/cuda/launch.py (Elman); the ``relu`` flag picks f.
"""
from .base import IRNN, Cell

TANH = Cell("tanh", 1, "h", ("tanh",), "elman", "h = tanh(W_ih x + b_ih + W_hh h_prev + b_hh)",
            gate_tape=False, torch_module="RNN", color="tab:red")
# IRNN (Le, Jaitly & Hinton 2015): identity recurrence, zero biases, by default
RELU = Cell("relu", 1, "h", ("relu",), "elman", "h = relu(W_ih x + b_ih + W_hh h_prev + b_hh)",
            gate_tape=False, default_init=IRNN, torch_module="RNN", color="tab:orange")
