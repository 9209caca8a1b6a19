"""The LSTM (PyTorch's nn.LSTM, gate blocks i, f, g, o), a dense recurrence and a cell state.

    i, f, o = sigmoid(.), g = tanh(.)   of W_ih x + b_ih + W_hh h + b_hh, block by block
    c' = f * c + i * g                  h' = o * tanh(c')
--forget-bias sets b_if (b_hf left 0). --init chrono: b_f ~ log U[1, T_max - 1], b_i = -b_f. Kernels: fastrnn/cpu/lstm.py, fastrnn/cuda/launch.py (Lstm).
"""
from .base import CHRONO, Cell, Dense

LSTM = Cell("lstm", 4, "i,f,g,o", ("sigmoid", "sigmoid", "tanh", "sigmoid"), "lstm",
            "c = f * c_prev + i * g, h = o * tanh(c) (PyTorch's LSTM)",
            state="h,c", forget_gate=1, memory_gate=1, chrono=((1, 1.0), (0, -1.0)),
            inits=Dense.inits + (CHRONO,), torch_module="LSTM", color="tab:blue")
