"""How each cell's CUDA kernels are launched on a layer tape: one entry per kernel family of
the cell registry (fastrnn/cells/__init__.py), each with a forward and a backward for both
paths. ``steps``: per step, the recurrent GEMM then the cell's pointwise kernel
(kernels.py); ``sequence``: one launch per layer and direction (sequence.py).

Arguments as in CudaBackend.layer_forward / layer_backward; tape shapes as in fastrnn/layer.py,
window-relative dgi, dgh, dh_seq (W, B, .). The carries tape.dh (tape.dc) hold dL/dh_{s1+1}
on entry (zero or seeded) and dL/dh_{s0-1} on return.
"""
from . import kernels as k


class Elman:
    """tanh and relu: one gate block; the relu flag picks the nonlinearity."""

    @staticmethod
    def steps_forward(cell, tp, t, lens, grid, block):
        k.elman_fwd[grid, block](tp.gh, tp.xproj, tp.bias, lens, t, cell.relu, tp.h)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.elman_bwd[grid, block](tp.dh, dh_in, t, s0, lens, cell.relu, tp.h, dgi, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, lens, grid, block):
        ks["elman_fwd"][grid, block](tp.xproj, tp.bias, tp.w_hh_t, lens, cell.relu, tp.h)

    @staticmethod
    def sequence_backward(cell, ks, tp, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["elman_bwd"][grid, block](tp.dh, dh_in, s0, s1, lens, cell.relu, tp.h, tp.w_hh, dgi, dhs)


class Gru:
    @staticmethod
    def steps_forward(cell, tp, t, lens, grid, block):
        k.gru_fwd[grid, block](tp.gh, tp.xproj, tp.bias, tp.b_hn, lens, t, tp.h, tp.gates, tp.ghn)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.gru_bwd[grid, block](tp.dh, dh_in, t, s0, lens, tp.h, tp.gates, tp.ghn, dgi, dgh, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, lens, grid, block):
        ks["gru_fwd"][grid, block](tp.xproj, tp.bias, tp.b_hn, tp.w_hh_t, lens, tp.h, tp.gates, tp.ghn)

    @staticmethod
    def sequence_backward(cell, ks, tp, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["gru_bwd"][grid, block](tp.dh, dh_in, s0, s1, lens, tp.h, tp.gates, tp.ghn, tp.w_hh, dgi, dgh, dhs)


class Lstm:
    @staticmethod
    def steps_forward(cell, tp, t, lens, grid, block):
        k.lstm_fwd[grid, block](tp.gh, tp.xproj, tp.bias, lens, t, tp.h, tp.c, tp.gates)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.lstm_bwd[grid, block](tp.dh, tp.dc, dh_in, t, s0, lens, tp.c, tp.gates, dgi, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, lens, grid, block):
        ks["lstm_fwd"][grid, block](tp.xproj, tp.bias, tp.w_hh_t, lens, tp.h, tp.c, tp.gates)

    @staticmethod
    def sequence_backward(cell, ks, tp, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["lstm_bwd"][grid, block](tp.dh, tp.dc, dh_in, s0, s1, lens, tp.c, tp.gates, tp.w_hh, dgi, dhs)


CELLS = {"elman": Elman, "gru": Gru, "lstm": Lstm}
