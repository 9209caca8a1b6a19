"""IndRNN (Li, Li, Cook, Zhu & Gao 2018): a diagonal recurrence, one gate block.

    h_t = relu(W_ih x_t + b_ih + u * h_{t-1} + b_hh)        u (H,): weight_hh, a vector
Each unit sees only its own past, so a step has no recurrent matrix product, and the gradient
through time is a product of per-unit scalars u_j relu'(.): |u_j| <= 2^(1/T) bounds its
growth over T steps by 2 (``fastrnn train --recurrent-max``). Stack layers to mix units.
PyTorch's RNN layout with W_hh replaced by the vector u (both biases kept, as nn.RNN's);
torch.nn has no such module (export says so; bench/torch_cells.py is one in a few lines).
Kernels: fastrnn/cpu/indrnn.py, fastrnn/cuda/launch.py (Indrnn).
"""
from .base import IRNN, PYTORCH, Cell, Diagonal

LI = "indrnn"  # the paper's long-task initialization


def init(rng, init, G, H, I):
    """(w_ih, u, b_ih, b_hh) float64, biases 0 but for pytorch's:
    indrnn   u ~ U(0, 1), W_ih ~ N(0, 0.001^2) (Li et al.'s reference implementation)
    irnn     u = 1, W_ih ~ N(0, 0.001^2)
    pytorch  every entry U(-1/sqrt(H), 1/sqrt(H))"""
    import numpy as np

    if init == PYTORCH:
        k = 1.0 / np.sqrt(H)
        return (rng.uniform(-k, k, (G, I)), rng.uniform(-k, k, G), rng.uniform(-k, k, G), rng.uniform(-k, k, G))
    w_ih = rng.normal(0.0, 0.001, size=(G, I))
    u = rng.uniform(0.0, 1.0, G) if init == LI else np.ones(G)
    return w_ih, u, np.zeros(G), np.zeros(G)


INDRNN = Cell("indrnn", 1, "h", ("relu",), "indrnn", "h = relu(W_ih x + b_ih + u * h_prev + b_hh), u a vector (Li et al. 2018)",
              recurrence=Diagonal, gate_tape=False, inits=(LI, IRNN, PYTORCH), default_init=LI, init_fn=init,
              color="tab:purple")
