"""The four cells, selected by name. Each entry knows its gate layout and how to call its
forward and backward kernels on a :class:`fastrnn.layer.LayerTape`."""
from dataclasses import dataclass

from ..threads import run_split

# A thread takes at least this many sequences: below it, handing work to a thread costs more
# than it saves.
MIN_ROWS = 4


@dataclass(frozen=True)
class Cell:
    name: str
    gates: int  # number of H-wide gate blocks in W_ih / W_hh
    layout: str  # gate block order, as in PyTorch
    has_cell_state: bool  # LSTM carries c besides h
    split_grad: bool  # GRU: input-side and recurrent-side pre-activation gradients differ

    def combined_bias(self, b_ih, b_hh):
        """b_ih + b_hh, except GRU's b_hn, which the kernel applies inside r * (.)."""
        bias = b_ih + b_hh
        if self.name == "gru":
            n = b_hh.shape[0] * 2 // 3
            bias[n:] = b_ih[n:]
        return bias

    def forward(self, tape, lengths):
        """One layer forward over every step (see the cell's *_forward_rows kernel); the batch
        is split across threads."""
        from . import elman, gru, lstm

        B = tape.B
        if self.name in ("tanh", "relu"):
            run_split(elman.elman_forward_rows,
                      (tape.xproj, tape.bias, tape.w_hh, lengths, self.name == "relu", tape.h, tape.gh), B, MIN_ROWS)
        elif self.name == "gru":
            run_split(gru.gru_forward_rows,
                      (tape.xproj, tape.bias, tape.w_hh, tape.b_hn, lengths, tape.h, tape.gates, tape.ghn, tape.gh), B, MIN_ROWS)
        else:
            run_split(lstm.lstm_forward_rows,
                      (tape.xproj, tape.bias, tape.w_hh, lengths, tape.h, tape.c, tape.gates, tape.gh), B, MIN_ROWS)

    def backward(self, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq, seeded=False):
        """Reverse sweep over steps s1..s0; window-relative outputs dgi/dgh/dh_seq (W, B, .).
        Leaves dL/dh_{s0-1} (and dL/dc_{s0-1}) in tape.dh (tape.dc). seeded: start from the
        carries already in tape.dh / tape.dc instead of zero (used to build Jacobians)."""
        from . import elman, gru, lstm

        if not seeded:
            tape.dh[...] = 0.0
            tape.dc[...] = 0.0
        B = tape.B
        if self.name in ("tanh", "relu"):
            run_split(elman.elman_backward_rows, (s0, s1, dh_in, lengths, self.name == "relu", tape.h,
                                                  tape.w_hh_t, dgi, dh_seq, tape.dh), B, MIN_ROWS)
        elif self.name == "gru":
            run_split(gru.gru_backward_rows, (s0, s1, dh_in, lengths, tape.h, tape.gates, tape.ghn,
                                              tape.w_hh_t, dgi, dgh, dh_seq, tape.dh), B, MIN_ROWS)
        else:
            run_split(lstm.lstm_backward_rows, (s0, s1, dh_in, lengths, tape.c, tape.gates, tape.w_hh_t,
                                                dgi, dh_seq, tape.dh, tape.dc), B, MIN_ROWS)


CELLS = {
    "tanh": Cell("tanh", 1, "h", False, False),
    "relu": Cell("relu", 1, "h", False, False),
    "gru": Cell("gru", 3, "r,z,n", False, True),
    "lstm": Cell("lstm", 4, "i,f,g,o", True, False),
}


def get_cell(name):
    """Look a cell up by name, with a clear error for an unknown one."""
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}; got {name!r}")
    return CELLS[name]
