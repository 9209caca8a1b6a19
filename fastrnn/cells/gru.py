"""The GRU (PyTorch's nn.GRU, gate blocks r, z, n), a dense recurrence.

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)     z likewise
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  h' = (1 - z) n + z h
The reset gate multiplies W_hn h + b_hn: the recurrent side of n's pre-activation has its own
gradient (split_grad), and b_hn stays apart from the summed biases (reset_bias).
--init chrono: b_z ~ log U[1, T_max - 1] (z keeps the old state, so a large b_z is a long memory).
Kernels: fastrnn/cpu/gru.py, fastrnn/cuda/launch.py (Gru).
"""
from .base import CHRONO, Cell, Dense

GRU = Cell("gru", 3, "r,z,n", ("sigmoid", "sigmoid", "tanh"), "gru",
           "h = (1 - z) * n + z * h_prev, n = tanh(W_in x + b_in + r * (W_hn h_prev + b_hn)) (PyTorch's GRU)",
           split_grad=True, reset_bias=True, memory_gate=1, chrono=((1, 1.0),),
           inits=Dense.inits + (CHRONO,), torch_module="GRU", color="tab:green")
