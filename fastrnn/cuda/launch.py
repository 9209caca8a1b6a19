"""How each kernel family of the cell registry (fastrnn/cells/) runs on a layer tape on the GPU:
its ``prepare`` (the weights as its kernels read them, into tape.weights), ``forward`` and
``backward`` on either path. ``steps``: per step, the recurrent GEMM then the cell's pointwise
kernel (kernels.py); ``sequence``: one launch per layer and direction (sequence.py).

Arguments as in CudaBackend.layer_forward / layer_backward; tape shapes as in fastrnn/layer.py,
window-relative dgi, dgh, dh_seq (W, B, .). The carries tape.dh (tape.dc) hold dL/dh_{s1+1}
on entry (zero or seeded) and dL/dh_{s0-1} on return.
"""
from types import SimpleNamespace

from numba import cuda

from . import kernels as k
from . import norm
from . import sequence as seq


class Dense:
    """A family with a dense W_hh: the recurrent product is a GEMM per step (steps path) or
    runs inside the sequence kernel, which reads W_hh transposed. Subclasses give the
    pointwise launches; ``apart`` is how many trailing entries of b_hh stay out of the
    summed bias (GRU: b_hn, H); ``carry_from_dgi``: the recurrent product of the backward
    pass reads dgi (expRNN, whose dgh is its activation bias's gradient), not dgh."""
    apart = 0
    carry_from_dgi = False

    @classmethod
    def prepare(cls, cell, tape, w_hh, b_ih, b_hh, extra, path):
        """tape.weights: w_hh (G, H) as is, w_hh_t (H, G) for the sequence path, the summed
        bias (G,) and b_hn (the GRU's; else any row)."""
        G, H = w_hh.shape
        old = tape.weights
        bias = old.bias if old else cuda.device_array(G, w_hh.dtype)
        gr, bl = k.grid1(G)
        n = G - (H if cls.apart else 0)
        k.combine_bias[gr, bl](b_ih, b_hh, n, bias)
        w_hh_t = old.w_hh_t if old else None
        if path == "sequence":
            if w_hh_t is None:
                w_hh_t = cuda.device_array((H, G), w_hh.dtype)
            g, b = k.grid2(G, H)
            k.transpose[g, b](w_hh, w_hh_t)
        tape.weights = SimpleNamespace(w_hh=w_hh, w_hh_t=w_hh_t, bias=bias, b_hn=b_hh[n:] if cls.apart else b_hh)

    @classmethod
    def forward(cls, path, cell, tape, lengths):
        if path == "sequence":
            H = tape.h.shape[2]
            cls.sequence_forward(cell, seq.kernels(tape.h.dtype), tape, tape.weights, lengths, (tape.B,),
                                 (seq.threads_for(H),))
            return
        grid, block = k.grid2(tape.B, tape.h.shape[2])
        for t in range(tape.T):
            k.gemm(tape.h[t], tape.weights.w_hh, tape.gh, tb=True)
            cls.steps_forward(cell, tape, tape.weights, t, lengths, grid, block)

    @classmethod
    def backward(cls, path, cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
        B, H = tape.dh.shape
        w = tape.weights
        if path == "sequence":
            cls.sequence_backward(cell, seq.kernels(tape.h.dtype), tape, w, s0, s1, dh_in, lengths, dgi, dgh,
                                  dh_seq, (B,), (seq.threads_for(H),))
            return
        grid, block = k.grid2(B, H)
        for t in range(s1, s0 - 1, -1):
            cls.steps_backward(cell, tape, t, s0, dh_in, lengths, dgi, dgh, dh_seq, grid, block)
            dpre = dgi if cls.carry_from_dgi else dgh  # dgh is dgi but for the GRU (and expRNN)
            k.gemm(dpre[t - s0], w.w_hh, tape.dh, beta=1.0)  # dh_{t-1} += dpre W_hh


class Elman(Dense):
    """tanh and relu: one gate block; the relu flag picks the nonlinearity."""

    @staticmethod
    def steps_forward(cell, tp, w, t, lens, grid, block):
        k.elman_fwd[grid, block](tp.gh, tp.xproj, w.bias, lens, t, cell.relu, tp.h)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.elman_bwd[grid, block](tp.dh, dh_in, t, s0, lens, cell.relu, tp.h, dgi, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, w, lens, grid, block):
        ks["elman_fwd"][grid, block](tp.xproj, w.bias, w.w_hh_t, lens, cell.relu, tp.h)

    @staticmethod
    def sequence_backward(cell, ks, tp, w, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["elman_bwd"][grid, block](tp.dh, dh_in, s0, s1, lens, cell.relu, tp.h, w.w_hh, dgi, dhs)


class Exprnn(Dense):
    """expRNN: W = expm(A) formed on the host once per forward pass (fastrnn/expm.py: one
    H x H eigh, then H x H to the device), then the Elman loop with modReLU; b_hh (modReLU's b)
    stays out of the summed bias."""
    apart = 1
    carry_from_dgi = True

    @classmethod
    def prepare(cls, cell, tape, w_hh, b_ih, b_hh, extra, path):
        import numpy as np

        H = b_ih.shape[0]
        tape.exp = cell.recurrence.exp(np.asarray(w_hh.copy_to_host(), np.float64), H)
        W = cuda.to_device(tape.exp.W.astype(w_hh.dtype))
        super().prepare(cell, tape, W, b_ih, b_hh, extra, path)

    @staticmethod
    def steps_forward(cell, tp, w, t, lens, grid, block):
        k.exprnn_fwd[grid, block](tp.gh, tp.xproj, w.bias, w.b_hn, lens, t, tp.h)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.exprnn_bwd[grid, block](tp.dh, dh_in, t, s0, lens, tp.h, dgi, dgh, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, w, lens, grid, block):
        ks["exprnn_fwd"][grid, block](tp.xproj, w.bias, w.b_hn, w.w_hh_t, lens, tp.h)

    @staticmethod
    def sequence_backward(cell, ks, tp, w, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["exprnn_bwd"][grid, block](tp.dh, dh_in, s0, s1, lens, tp.h, w.w_hh, dgi, dgh, dhs)


class Gru(Dense):
    apart = 1  # b_hn (H entries) sits inside r * (W_hn h + b_hn)

    @staticmethod
    def steps_forward(cell, tp, w, t, lens, grid, block):
        k.gru_fwd[grid, block](tp.gh, tp.xproj, w.bias, w.b_hn, lens, t, tp.h, tp.gates, tp.ghn)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.gru_bwd[grid, block](tp.dh, dh_in, t, s0, lens, tp.h, tp.gates, tp.ghn, dgi, dgh, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, w, lens, grid, block):
        ks["gru_fwd"][grid, block](tp.xproj, w.bias, w.b_hn, w.w_hh_t, lens, tp.h, tp.gates, tp.ghn)

    @staticmethod
    def sequence_backward(cell, ks, tp, w, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["gru_bwd"][grid, block](tp.dh, dh_in, s0, s1, lens, tp.h, tp.gates, tp.ghn, w.w_hh, dgi, dgh, dhs)


class Lstm(Dense):
    @staticmethod
    def steps_forward(cell, tp, w, t, lens, grid, block):
        k.lstm_fwd[grid, block](tp.gh, tp.xproj, w.bias, lens, t, tp.h, tp.c, tp.gates)

    @staticmethod
    def steps_backward(cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        k.lstm_bwd[grid, block](tp.dh, tp.dc, dh_in, t, s0, lens, tp.c, tp.gates, dgi, dhs)

    @staticmethod
    def sequence_forward(cell, ks, tp, w, lens, grid, block):
        ks["lstm_fwd"][grid, block](tp.xproj, w.bias, w.w_hh_t, lens, tp.h, tp.c, tp.gates)

    @staticmethod
    def sequence_backward(cell, ks, tp, w, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        ks["lstm_bwd"][grid, block](tp.dh, tp.dc, dh_in, s0, s1, lens, tp.c, tp.gates, w.w_hh, dgi, dhs)


class Lnlstm(Dense):
    """The LayerNorm LSTM (norm.py): one block per sequence on both paths, since each step's
    LayerNorms reduce over the sequence's row; the steps path's pointwise launch likewise."""

    @classmethod
    def prepare(cls, cell, tape, w_hh, b_ih, b_hh, extra, path):
        import numpy as np

        from ..cells.lnlstm import EPS

        super().prepare(cell, tape, w_hh, b_ih, b_hh, extra, path)
        H = b_ih.shape[0] // 4
        tape.norm = extra
        if getattr(tape, "consts", None) is None:
            tape.consts = cuda.to_device(np.array([1.0 / (4 * H), 1.0 / H, EPS], b_ih.dtype))

    @staticmethod
    def _launch(tp):
        return (tp.B,), (seq.threads_for(tp.h.shape[2]),)

    @classmethod
    def steps_forward(cls, cell, tp, w, t, lens, grid, block):
        n = tp.norm
        norm.kernels(tp.h.dtype)["step_fwd"][cls._launch(tp)](
            tp.gh, tp.xproj, w.bias, n["gain_ih"], n["gain_hh"], n["gain_c"], n["bias_c"], tp.consts, lens, t, tp.h,
            tp.c, tp.gates, tp.xnorm, tp.hnorm, tp.cnorm, tp.rstd)

    @classmethod
    def steps_backward(cls, cell, tp, t, s0, dh_in, lens, dgi, dgh, dhs, grid, block):
        n = tp.norm
        norm.kernels(tp.h.dtype)["step_bwd"][cls._launch(tp)](
            tp.dh, tp.dc, dh_in, t, s0, lens, tp.c, tp.gates, tp.xnorm, tp.hnorm, tp.cnorm, tp.rstd, n["gain_ih"],
            n["gain_hh"], n["gain_c"], n["bias_c"], tp.consts, dgi, dgh, dhs, tp.dnorm)

    @staticmethod
    def sequence_forward(cell, ks, tp, w, lens, grid, block):
        n = tp.norm
        norm.kernels(tp.h.dtype)["seq_fwd"][grid, block](
            tp.xproj, w.bias, n["gain_ih"], n["gain_hh"], n["gain_c"], n["bias_c"], tp.consts, w.w_hh_t, lens, tp.h,
            tp.c, tp.gates, tp.xnorm, tp.hnorm, tp.cnorm, tp.rstd)

    @staticmethod
    def sequence_backward(cell, ks, tp, w, s0, s1, dh_in, lens, dgi, dgh, dhs, grid, block):
        n = tp.norm
        norm.kernels(tp.h.dtype)["seq_bwd"][grid, block](
            tp.dh, tp.dc, dh_in, s0, s1, lens, tp.c, tp.gates, tp.xnorm, tp.hnorm, tp.cnorm, tp.rstd, n["gain_ih"],
            n["gain_hh"], n["gain_c"], n["bias_c"], tp.consts, w.w_hh, dgi, dgh, dhs, tp.dnorm)


class Indrnn:
    """A diagonal recurrence (fastrnn/cells/indrnn.py): one launch per layer and direction on
    either path, a thread per unit and sequence over every step (kernels.py)."""

    @staticmethod
    def prepare(cell, tape, w_hh, b_ih, b_hh, extra, path):
        """tape.weights: u (H,) as is and the summed bias (H,)."""
        bias = tape.weights.bias if tape.weights else cuda.device_array(w_hh.shape[0], w_hh.dtype)
        gr, bl = k.grid1(bias.shape[0])
        k.combine_bias[gr, bl](b_ih, b_hh, bias.shape[0], bias)
        tape.weights = SimpleNamespace(u=w_hh, bias=bias)

    @staticmethod
    def forward(path, cell, tape, lengths):
        grid, block = k.grid2(tape.B, tape.h.shape[2])
        k.indrnn_fwd[grid, block](tape.xproj, tape.weights.bias, tape.weights.u, lengths, tape.h)

    @staticmethod
    def backward(path, cell, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq):
        grid, block = k.grid2(*tape.dh.shape)
        k.indrnn_bwd[grid, block](tape.dh, dh_in, s0, s1, lengths, tape.weights.u, tape.h, dgi, dh_seq)


CELLS = {"elman": Elman, "gru": Gru, "lstm": Lstm, "indrnn": Indrnn, "exprnn": Exprnn, "lnlstm": Lnlstm}
