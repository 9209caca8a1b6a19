"""The backend contract (fastrnn/backend.py): both backends define every method it lists, with
the same parameters, and no public method beyond it (issue #28: the interface had no written
contract). The CUDA backend's class is read without a GPU (it needs numba-cuda to import)."""
import inspect

import pytest

from fastrnn.backend import Backend

CONTRACT = {n: f for n, f in vars(Backend).items() if inspect.isfunction(f) and not n.startswith("_")}


def _check(cls):
    own = {n: f for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")}
    assert set(own) == set(CONTRACT), (f"{cls.__name__}: missing {sorted(set(CONTRACT) - set(own))}, "
                                       f"beyond the contract {sorted(set(own) - set(CONTRACT))}")
    for name, f in own.items():
        assert inspect.signature(f) == inspect.signature(CONTRACT[name]), f"{cls.__name__}.{name}"
        assert CONTRACT[name].__doc__, f"Backend.{name} has no documentation"
    assert Backend in cls.__mro__ and isinstance(cls.name, str)


def test_the_cpu_backend_meets_the_contract():
    from fastrnn.cpu import CpuBackend

    _check(CpuBackend)
    assert len(CONTRACT) >= 30


def test_the_cuda_backend_meets_the_contract():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install '.[test-full]' to run it")
    from fastrnn.cuda.backend import CudaBackend

    _check(CudaBackend)


def test_a_cells_facts_come_from_its_registry_entry():
    """The per-cell tables that lived in config.py (default init), serve.py (the torch class)
    and report.py (colours) are read from the entry; the tape's buffers from one description."""
    from fastrnn.cells import CELLS
    from fastrnn.layer import LayerTape, tape_shapes
    from fastrnn.memory import tape_bytes
    from fastrnn.report import COLORS
    from fastrnn.train.config import TrainConfig

    assert {n: TrainConfig(cell=n).init_scheme for n in CELLS} == {n: c.default_init for n, c in CELLS.items()}
    assert TrainConfig(cell="relu").init_scheme == "irnn" and COLORS == {n: c.color for n, c in CELLS.items()}
    assert [c.name for c in CELLS.values() if c.relu and c.kernels == "elman"] == ["relu"]  # the Elman flag
    import numpy as np

    for name, cell in CELLS.items():
        tape = LayerTape(cell, 5, 3, 4, lambda *shape: np.zeros(shape, np.float32))
        held = {id(a): a.nbytes for a in vars(tape).values() if isinstance(a, np.ndarray)}
        assert sum(held.values()) == tape_bytes(name, 5, 3, 4, 1, 4)  # what the estimate counts is what is held
        assert (tape.dgh is tape.dgi) == (tape_shapes(cell, 5, 3, 4)["dgh"] is None)


def test_a_cells_parameters_come_from_its_declaration():
    """The model's parameter shapes, the memory estimate's count and each initialization all
    come from the cell's declaration (fastrnn/cells/base.py); an unknown init is refused
    naming the ones the cell takes."""
    import numpy as np

    from fastrnn import RNN
    from fastrnn.cells import CELLS
    from fastrnn.memory import parameter_count

    for name, cell in CELLS.items():
        m = RNN(name, 3, 4, 2, 2, bidirectional=True)
        assert m.num_parameters == parameter_count(name, 3, 4, 2, 2, 2)
        assert m.shapes["weight_hh_l1_reverse"] == cell.param_shapes(8, 4)["weight_hh"]
        for init in cell.inits:
            p = cell.init_layer(np.random.default_rng(0), init, 3, 4, chrono_tmax=10 if init == "chrono" else None)
            assert {k: a.shape for k, a in p.items()} == cell.param_shapes(3, 4)
    with pytest.raises(ValueError, match="init: expected one of pytorch, xavier, orthogonal, irnn, chrono; got 'he'"):
        RNN("lstm", 3, 4, 2, init="he")


@pytest.mark.parametrize("cell, I, bidirectional", [("lstm", 3, False), ("gru", 7, True), ("tanh", 2, False),
                                                    ("indrnn", 5, False), ("lnlstm", 40, False)])
def test_the_memory_estimate_bounds_the_weight_gradients_workspace(cell, I, bidirectional, monkeypatch):
    """The CPU backend keeps its weight gradients' partial products between steps
    (cpu/blas.py's workspace, one per calling thread): a fresh thread's step, its products cut
    into the most parts, holds no more than memory.weight_grad_bytes counts, and at least a quarter
    of it (the bound is not vacuous)."""
    import threading

    import numpy as np

    from fastrnn import RNN
    from fastrnn.cpu import blas
    from fastrnn.memory import weight_grad_bytes

    monkeypatch.setattr(blas, "PART_WORK", 1)
    H, B, T = 24, 8, 300  # T * B = 2400 rows: MAX_PARTS parts of PART_ROWS or more
    model = RNN(cell, I, H, 1, num_layers=2, dtype="float32", seed=0, bidirectional=bidirectional)
    x = np.random.default_rng(0).random((T, B, I), dtype=np.float32)
    held = []

    def step():
        model.loss_and_grad(x, np.zeros((B, 1), np.float32), "mse", "last")
        held.append(sum(b.nbytes for b in blas._local.bufs.values()))

    t = threading.Thread(target=step)
    t.start()
    t.join()
    from fastrnn.cpu.gradtile import TILE_ROWS
    from fastrnn.memory import TILE_PAD

    assert TILE_ROWS - 1 <= TILE_PAD  # the bound's padding covers the tile's
    bound = weight_grad_bytes(cell, I, H, 2 if bidirectional else 1, 4)
    assert bound / 4 <= held[0] <= bound
