"""The recurrence watched while it trains: what each evaluation records about it.

At every evaluation (``fastrnn train --watch``, the default) a training run adds to its
metrics.jsonl record, from a fixed probe of PROBE held-out sequences (``Task.probe``):

    radius      the largest spectral radius of any recurrent gate block in any layer (each
                block's in ``recurrence.radius``: a diagonal recurrence's is max |u|)
    timescale   the top layer's median memory time, -1/ln(g) steps for the gate g that keeps
                the state (the LSTM's forget gate, the GRU's update gate), over its units, the
                probe's sequences and their steps; quartiles per layer in ``recurrence.timescale``
                (None for a cell without such a gate)
    grad_ratio  ||dL/dh|| at the task's dependency lag before the last step over ||dL/dh|| at
                the last step, for the last step's loss (``fastrnn gradients``' ratio, in the
                model's dtype: 0 means below its range, 1e-38 for float32, or no path back at all,
                ReLU units at exactly 0; `fastrnn gradients` tells them apart, in float64)
    recurrence  the detail: lag, radius per layer and gate block, timescale quartiles per layer
    watch_seconds  what recording it took (a forward and backward pass over the probe, an
                eigenvalue problem per gate block)
All of it is read from the forward direction of a bidirectional model.
"""
import time

import numpy as np

from .gradients import last_step_only, norms

PROBE = 8  # sequences: enough for quartiles over units x steps, a small share of a training step


def grad_ratio(model, task, x, target, lengths, lag):
    """Mean over sequences of ||dL/dh|| ``lag`` steps before each sequence's last step, over
    the mean at its last step, for the loss at the last step (None: no gradient reached it)."""
    model.loss_and_grad(x, last_step_only(task, x, target), task.loss, task.output, lengths)
    dh = model.hidden_grads()[-1].astype(np.float64)  # (T, B, H)
    T, B = dh.shape[:2]
    last = np.full(B, T - 1) if lengths is None or task.output == "all" else np.asarray(lengths) - 1
    first = np.maximum(last - lag, 0)
    at_last, at_lag = norms(dh[last, np.arange(B)]).mean(), norms(dh[first, np.arange(B)]).mean()
    return float(at_lag / at_last) if at_last > 0 else None


def timescales(model, lengths):
    """Per layer, the quartiles of -1/ln(g) (steps) for the cell's memory gate g over units,
    sequences and their real steps, from the model's last forward pass; None without such a gate."""
    cell, H = model.cell, model.hidden_size
    if cell.memory_gate < 0:
        return None
    out = []
    for k, tape in enumerate(model.tape_arrays()):
        g = tape.gates[..., cell.memory_gate * H:(cell.memory_gate + 1) * H]  # (T, B, H)
        if lengths is not None:
            g = g[np.arange(g.shape[0])[:, None] < np.asarray(lengths)[None, :]]
        # quartiles of g itself (order statistics), then the increasing map g -> -1/ln g:
        # a gate of exactly 1 keeps forever (inf, recorded as null), interpolation never meets it
        q = np.quantile(g.astype(np.float64).ravel(), (0.25, 0.5, 0.75), method="lower")
        with np.errstate(divide="ignore"):
            ts = -1.0 / np.log(q)
        out.append(dict(layer=k, q25=float(ts[0]), median=float(ts[1]), q75=float(ts[2])))
    return out


def radii(model):
    """[{layer, gate, radius}] of every recurrent gate block (forward direction)."""
    H, rows, p = model.hidden_size, [], model.numpy_params()
    gates = model.cell.layout.split(",")
    for k in range(model.num_layers):
        blocks = model.cell.recurrence.radii(p[f"weight_hh_l{k}"].astype(np.float64), H)
        rows += [dict(layer=k, gate=g, radius=rho) for g, rho in zip(gates, blocks)]
    return rows


def record(model, task):
    """The fields an evaluation record gains (see the module docstring)."""
    t0 = time.perf_counter()
    x, target, lengths = task.probe(PROBE)
    lag = int(min(task.dependency_length, x.shape[0] - 1))
    ratio = grad_ratio(model, task, x, target, lengths, lag)
    ts = timescales(model, lengths)  # from the same forward pass
    rad = radii(model)
    return dict(radius=max(r["radius"] for r in rad), timescale=None if ts is None else ts[-1]["median"],
                grad_ratio=ratio, recurrence=dict(lag=lag, radius=rad, timescale=ts),
                watch_seconds=round(time.perf_counter() - t0, 4))
