"""Central-difference gradient check in float64 on a small random model.

For truncated BPTT the check differentiates the truncated graph itself: for each step t
that carries a loss, the states before step t-K are frozen at their current values and
only the cells at steps t-K..t see the perturbed parameters. Its finite differences are
exactly what ``bptt_truncate=K`` claims to compute.
"""
import numpy as np

from .cells import CELLS
from .losses import get_loss
from .model import RNN

TOLERANCE = 1e-6


def make_problem(cell, *, loss="mse", output="last", num_layers=2, variable_lengths=True,
                 tokens=False, dropout=0.0, bidirectional=False, T=6, B=3, I=3, H=4, O=3, seed=0):
    """A tiny float64 model and a random batch: (model, kwargs for loss_and_grad); with
    dropout, the batch's masks are drawn once and stay fixed."""
    rng = np.random.default_rng(seed)
    model = RNN(cell, I, H, O, num_layers, tokens=tokens, dtype="float64", seed=seed, dropout=dropout,
                bidirectional=bidirectional)
    # perturb the biases so that no gate starts exactly symmetric
    model.flat += rng.normal(0, 0.1, model.flat.size)  # still on the CPU here
    x = rng.integers(0, I, (T, B)) if tokens else rng.normal(0, 1, (T, B, I))
    lengths = rng.integers(2, T + 1, B) if variable_lengths else None
    if variable_lengths:
        lengths[0] = T
    lead = (T, B) if output == "all" else (B,)
    if loss == "mse":
        target = rng.normal(0, 1, lead + (O,))
    else:
        target = rng.integers(0, O, lead)
        if output == "all":
            target[rng.random(lead) < 0.2] = -1
            target[0, 0] = 0
    batch = dict(x=x, target=target, loss=loss, output=output, lengths=lengths)
    if dropout:
        batch["masks"] = model.dropout_masks(rng, T, B)
    return model, batch


def truncated_objective(model, x, target, loss, output, lengths, K, masks=None):
    """A function of model.flat whose gradient is the truncated-BPTT gradient at the
    current parameters (see module docstring), on the model's device. Returns f() -> float."""
    x, lengths = model.check_inputs(x, lengths)
    T, B = x.shape[:2]
    tgt = model.check_target(target, loss, output, T, B)
    model.loss(x, target, loss, output, lengths, masks)  # the states with this batch's masks
    tapes = model.tape_arrays()  # states before each step, per layer, frozen at the current parameters
    hs = np.stack([t.h for t in tapes])  # (L, T+1, B, H)
    cs = np.stack([t.c for t in tapes]) if model.cell.has_cell_state else None
    valid = model.loss_rows(loss, output, tgt, lengths, T, B)
    origins = model.loss_steps(output, valid, lengths, T, B)
    fn = get_loss(loss)

    def f():
        y = np.zeros((valid.shape[0], model.output_size))
        for s1 in origins:
            s0 = max(0, s1 - K)
            W = s1 - s0 + 1
            h0 = np.ascontiguousarray(hs[:, s0])
            state = (h0, np.ascontiguousarray(cs[:, s0])) if cs is not None else h0
            # the model's own readout of the state after step s1 (frozen if past a length)
            r = model.readout_after(x[s0:s1 + 1], np.clip(lengths - s0, 0, W), state,
                                    None if masks is None else [m[s0:s1 + 1] for m in masks])
            if output == "all":
                y[s1 * B:(s1 + 1) * B] = r
            else:
                sel = lengths - 1 == s1
                y[sel] = r[sel]
        return fn(y, tgt, valid)[0]

    return f


def check_gradients(model, x, target, loss="mse", output="last", lengths=None,
                    bptt_truncate=None, eps=1e-6, device=None, masks=None):
    """Max relative error per parameter between analytic and central-difference gradients.

    relative error = max_i |analytic_i - numeric_i| / max(max|analytic|, max|numeric|, 1e-8)
    Both the analytic gradient and every perturbed loss come from the model's device
    (``device``: move the model there first); masks: fixed dropout masks. Returns
    {parameter name: error}.
    """
    if model.dtype != np.float64:
        raise ValueError(f"model: gradcheck needs a float64 model; got {model.dtype}")
    if device is not None and device != model.device:
        model.to(device)
    res = model.loss_and_grad(x, target, loss, output, lengths, bptt_truncate=bptt_truncate, masks=masks)
    analytic = np.array(model.backend.to_host(res.grad))
    if bptt_truncate is None:
        def f():
            return model.loss(x, target, loss, output, lengths, masks)
    else:
        f = truncated_objective(model, x, target, loss, output, lengths, bptt_truncate, masks)
    numeric = np.zeros_like(analytic)
    theta = model.numpy_flat().copy()
    for i in range(theta.size):
        keep = theta[i]
        theta[i] = keep + eps
        model.load_flat(theta)
        up = f()
        theta[i] = keep - eps
        model.load_flat(theta)
        down = f()
        theta[i] = keep
        numeric[i] = (up - down) / (2 * eps)
    model.load_flat(theta)
    errors, at = {}, 0
    for name, shape in model.shapes.items():
        n = int(np.prod(shape))
        a, b = analytic[at:at + n], numeric[at:at + n]
        scale = max(np.abs(a).max(), np.abs(b).max(), 1e-8)
        errors[name] = float(np.abs(a - b).max() / scale)
        at += n
    return errors


# The configurations `fastrnn gradcheck` runs for each cell: every loss, full and
# truncated BPTT, one to three layers, equal and variable lengths, dense and token inputs,
# dropout between layers (masks fixed), bidirectional layers.
SUITE = [
    dict(loss="mse", output="last", num_layers=2, variable_lengths=True, bptt_truncate=None),
    dict(loss="mse", output="last", num_layers=1, variable_lengths=False, bptt_truncate=2),
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, bptt_truncate=None),
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, bptt_truncate=2),
    dict(loss="ce", output="last", num_layers=1, variable_lengths=True, bptt_truncate=None,
         tokens=True),
    dict(loss="mse", output="all", num_layers=2, variable_lengths=False, bptt_truncate=3),
    dict(loss="mse", output="last", num_layers=3, variable_lengths=True, bptt_truncate=None, dropout=0.4),
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, bptt_truncate=2, dropout=0.5,
         tokens=True),
    dict(loss="mse", output="last", num_layers=2, variable_lengths=True, bptt_truncate=None, bidirectional=True),
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, bptt_truncate=None, dropout=0.5,
         tokens=True, bidirectional=True),
    # B = 6: the recurrent product's 4-row tiles and its leftover rows in one batch (the rest use B = 3)
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, bptt_truncate=None, B=6),
]


def gradcheck(cell="all", seed=0, device="cpu"):
    """Run SUITE for one cell or all, on the device's kernels; returns a list of
    (cell, config, {param: error})."""
    cells = list(CELLS) if cell == "all" else [cell]
    for c in cells:
        if c not in CELLS:
            raise ValueError(f"cell: expected one of all, {', '.join(CELLS)}; got {c!r}")
    out = []
    for c in cells:
        for cfg in SUITE:
            cfg = dict(cfg)
            K = cfg.pop("bptt_truncate")
            model, batch = make_problem(c, seed=seed, **cfg)
            errs = check_gradients(model, bptt_truncate=K, device=device, **batch)
            out.append((c, dict(cfg, bptt_truncate=K), errs))
    return out
