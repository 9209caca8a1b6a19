"""The LayerNorm LSTM (Ba, Kiros & Hinton 2016), in the form haste implements: each side of the
gates' sum normalized over its 4H pre-activations, and the cell state normalized before tanh.

    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](LN(W_ih x_t; gain_ih, bias_ih)
                                                     + LN(W_hh h_{t-1}; gain_hh, bias_hh))
    c_t = f * c_{t-1} + i * g            h_t = o * tanh(LN(c_t; gain_c, bias_c))
    LN(v; a, b) = a * (v - mean(v)) / sqrt(var(v) + EPS) + b      over one sequence's row
Gains start at 1, shifts at 0. Each side's shift is PyTorch's bias of that side (nn.LSTM's
names and init for weight_ih, weight_hh, bias_ih, bias_hh), so --forget-bias and --init chrono
act as on the LSTM. torch.nn has no such module (bench/torch_cells.py writes it in a few lines).
Kernels: fastrnn/cpu/lnlstm.py, fastrnn/cuda/launch.py (Lnlstm).
"""
from .base import CHRONO, Cell, Dense

EPS = 1e-5  # PyTorch's LayerNorm default

LNLSTM = Cell("lnlstm", 4, "i,f,g,o", ("sigmoid", "sigmoid", "tanh", "sigmoid"), "lnlstm",
              "gates = LN(W_ih x; gain_ih, bias_ih) + LN(W_hh h_prev; gain_hh, bias_hh), c = f * c_prev + i * g, "
              "h = o * tanh(LN(c; gain_c, bias_c)), LN over each row's 4H (H for c), eps 1e-5 "
              "(Ba et al. 2016, haste's LayerNormLSTM)",
              state="h,c", split_grad=True, layer_norm=True, forget_gate=1, memory_gate=1,
              chrono=((1, 1.0), (0, -1.0)), inits=Dense.inits + (CHRONO,), color="tab:olive")
