"""The four cells, selected by name. Each entry knows its gate layout and how to call its
forward and backward kernels on a :class:`fastrnn.layer.LayerTape`."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    name: str
    gates: int  # number of H-wide gate blocks in W_ih / W_hh
    layout: str  # gate block order, as in PyTorch
    has_cell_state: bool  # LSTM carries c besides h
    split_grad: bool  # GRU: input-side and recurrent-side pre-activation gradients differ

    def forward(self, tape, lengths):
        from . import elman, gru, lstm

        if self.name in ("tanh", "relu"):
            elman.elman_forward(tape.xproj, tape.w_hh_t, tape.b_hh, lengths,
                                self.name == "relu", tape.h, tape.gh)
        elif self.name == "gru":
            gru.gru_forward(tape.xproj, tape.w_hh_t, tape.b_hh, lengths,
                            tape.h, tape.gates, tape.ghn, tape.gh)
        else:
            lstm.lstm_forward(tape.xproj, tape.w_hh_t, tape.b_hh, lengths,
                              tape.h, tape.c, tape.gates, tape.gh)

    def backward(self, tape, s0, s1, dh_in, lengths, dgi, dgh, dh_seq, seeded=False):
        """Reverse sweep over steps s1..s0; window-relative outputs dgi/dgh/dh_seq (W, B, .).
        Leaves dL/dh_{s0-1} (and dL/dc_{s0-1}) in tape.dh (tape.dc). seeded: start from the
        carries already in tape.dh / tape.dc instead of zero (used to build Jacobians)."""
        from . import elman, gru, lstm

        if not seeded:
            tape.dh[...] = 0.0
            tape.dc[...] = 0.0

        if self.name in ("tanh", "relu"):
            elman.elman_backward(s0, s1, dh_in, lengths, self.name == "relu", tape.h,
                                 tape.w_hh, dgi, dh_seq, tape.dh, tape.tmp)
        elif self.name == "gru":
            gru.gru_backward(s0, s1, dh_in, lengths, tape.h, tape.gates, tape.ghn,
                             tape.w_hh, dgi, dgh, dh_seq, tape.dh, tape.tmp)
        else:
            lstm.lstm_backward(s0, s1, dh_in, lengths, tape.c, tape.gates, tape.w_hh,
                               dgi, dh_seq, tape.dh, tape.dc, tape.tmp)


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
