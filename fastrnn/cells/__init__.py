"""The cell registry: every cell fastrnn knows, each declared in its own module
(fastrnn/cells/<family>.py, the declaration's fields in base.py). Adding a cell: README.md,
"How the code is laid out, and adding a cell". Importing this package loads no NumPy or Numba.
"""
from .base import Cell
from .elman import RELU, TANH
from .exprnn import EXPRNN
from .gru import GRU
from .indrnn import INDRNN
from .lnlstm import LNLSTM
from .lstm import LSTM

CELLS = {c.name: c for c in (TANH, RELU, GRU, LSTM, INDRNN, EXPRNN, LNLSTM)}

# every initialization some cell accepts, in a stable order (the CLI's --init choices)
INITS = tuple(dict.fromkeys(i for c in CELLS.values() for i in c.inits))


def get_cell(name):
    """Look a cell up by name, with a clear error for an unknown one."""
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}; got {name!r}")
    return CELLS[name]


__all__ = ["CELLS", "INITS", "Cell", "get_cell"]
