"""The cell registry: one entry per cell, the only place that lists them.

An entry states the cell's gate layout and the facts the model needs about it (a cell state?
GRU's split gradient and reset-gated recurrent bias? which gate is the LSTM's forget gate?),
and names its kernels: each backend resolves ``kernels`` to its own implementation of
``forward(cell, tape, lengths)`` and ``backward(cell, tape, s0, s1, dh_in, lengths, dgi, dgh,
dh_seq)`` (CPU: ``fastrnn.cpu.<kernels>``; CUDA: ``fastrnn.cuda.launch.CELLS[<kernels>]``).
Nothing else branches on a cell's name: the Elman kernels take ``cell.relu`` (from the
declared activation) as their flag. Importing this module loads no Numba.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str
    gates: int  # number of H-wide gate blocks in W_ih / W_hh
    layout: str  # gate block order, as in PyTorch
    activations: tuple  # per gate block: "tanh", "relu" or "sigmoid" (saturation report)
    kernels: str  # the kernel family each backend implements (relu and tanh share "elman")
    has_cell_state: bool = False  # LSTM carries c besides h
    split_grad: bool = False  # GRU: input-side and recurrent-side pre-activation gradients differ
    reset_bias: bool = False  # GRU: b_hn sits inside r * (W_hn h + b_hn), outside the sum of biases
    forget_gate: int = -1  # LSTM: the block whose bias ``forget_bias`` sets (-1: none)
    default_init: str = "pytorch"  # the init a run uses without --init (fastrnn/init.py)
    torch_module: str = None  # the torch.nn class with the same weights (export), None: none has them
    color: str = "tab:gray"  # its colour in every plot

    @property
    def relu(self):
        """Whether the cell's (first) activation is ReLU: the Elman kernels' flag."""
        return self.activations[0] == "relu"

    @property
    def state_size(self):
        """Vectors of H per sequence in the recurrent state: 2 for (h, c), else 1."""
        return 2 if self.has_cell_state else 1


CELLS = {
    "tanh": Cell("tanh", 1, "h", ("tanh",), "elman", torch_module="RNN", color="tab:red"),
    # IRNN (Le et al. 2015): identity recurrence, zero biases
    "relu": Cell("relu", 1, "h", ("relu",), "elman", default_init="irnn", torch_module="RNN", color="tab:orange"),
    "gru": Cell("gru", 3, "r,z,n", ("sigmoid", "sigmoid", "tanh"), "gru", split_grad=True, reset_bias=True,
                torch_module="GRU", color="tab:green"),
    "lstm": Cell("lstm", 4, "i,f,g,o", ("sigmoid", "sigmoid", "tanh", "sigmoid"), "lstm",
                 has_cell_state=True, forget_gate=1, torch_module="LSTM", color="tab:blue"),
}


def get_cell(name):
    """Look a cell up by name, with a clear error for an unknown one."""
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}; got {name!r}")
    return CELLS[name]
