"""What bench.py (CPU vs PyTorch) and gpu.py (CUDA vs cuDNN) both use: the alternating timer,
the PyTorch twin of a model, and the number formats of their tables. Both scripts run with
bench/ on sys.path (python bench/bench.py), so they import this as `shared`.
"""
import time

import numpy as np


def torch_model(model):
    """The PyTorch twin of a 1-layer fastrnn model: (the torch.nn module its cell names, or
    bench/torch_cells.py's for a cell torch.nn lacks; an nn.Linear readout), same weights."""
    import torch

    cell, I, H = model.cell, model.input_size, model.hidden_size
    if cell.torch_module is None:
        import torch_cells  # bench/ is on sys.path

        mod = torch_cells.MODULES[cell.name](I, H)
    elif cell.torch_module == "RNN":
        mod = torch.nn.RNN(I, H, nonlinearity=cell.name)
    else:
        mod = getattr(torch.nn, cell.torch_module)(I, H)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in model.to_torch_state_dict().items()})
    lin = torch.nn.Linear(H, model.output_size)
    lin.load_state_dict({k: torch.from_numpy(v) for k, v in model.readout_state_dict().items()})
    return mod, lin


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def alternate(peers, rounds, per_block, pause=0.0, warmup=1, settle=0.0):
    """Median seconds per call of each peer {name: fn}: warm-up calls first, then ``rounds``
    rounds of ``per_block`` calls per peer, the order reversed every other round. With a
    pause, each block starts with untimed calls for ``settle`` seconds (at least one): after
    the pause this VM runs slow for a while, whatever runs (its cores' wake-up; measured, an
    LSTM step at H = 32, B = 1, T = 784 on 2 threads: 3.0 ms first, 1.9 by the third, ~1.3
    from ~50 ms on, against 1.06-1.1 back to back; the same on one thread), which a training
    loop, stepping back to back, does not pay. Round 9 left one call untimed: a short step's
    timed calls then still fell in the slow start (that row read 2.42 ms), a long one's mostly
    did not."""
    for fn in peers.values():
        for _ in range(warmup):
            fn()
    samples = {k: [] for k in peers}
    order = list(peers)
    for rnd in range(rounds):
        for name in (order if rnd % 2 == 0 else order[::-1]):
            if pause:
                until = time.perf_counter() + settle
                peers[name]()
                while time.perf_counter() < until:
                    peers[name]()
            samples[name] += timed(peers[name], per_block)
            time.sleep(pause)
    return {k: float(np.median(v)) for k, v in samples.items()}


def _f(v):
    return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def _e(v):
    return "-" if v is None else f"{v:.1e}"
