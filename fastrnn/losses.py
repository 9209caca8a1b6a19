"""Losses on readout outputs, each returning (mean loss, gradient w.r.t. the outputs).

Outputs are flattened to rows: N = B for a last-step readout, N = T*B for every step.
Each loss is a mean of per-row terms over the rows that count, so a loss over a subset of
rows (used by truncated-BPTT checks) is the same formula.
"""
import numpy as np

from .choices import LOSSES


def mse(y, target, valid):
    """Mean squared error over valid rows and all O outputs.

    y (N, O) float, target (N, O) float, valid (N,) bool. Returns (loss, dy (N, O)).
    """
    count = int(valid.sum()) * y.shape[1]
    if count == 0:
        raise ValueError("target: no position counts towards the loss (all masked)")
    diff = np.where(valid[:, None], y - target, 0.0)
    return float((diff * diff).sum() / count), (2.0 / count) * diff.astype(y.dtype)


def softmax_ce(y, target, valid):
    """Softmax cross-entropy, mean over valid rows; rows with target < 0 are ignored too.

    y (N, C) float logits, target (N,) int class ids, valid (N,) bool.
    Returns (loss, dy (N, C)).
    """
    valid = valid & (target >= 0)
    count = int(valid.sum())
    if count == 0:
        raise ValueError("target: no position counts towards the loss (all masked)")
    z = y - y.max(axis=1, keepdims=True)  # stable log-sum-exp
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.nonzero(valid)[0]
    loss = -logp[rows, target[rows]].sum() / count
    dy = np.exp(logp)
    dy[rows, target[rows]] -= 1.0
    dy[~valid] = 0.0
    return float(loss), (dy / count).astype(y.dtype)


def get_loss(name):
    if name == "mse":
        return mse
    if name == "ce":
        return softmax_ce
    raise ValueError(f"loss: expected one of {', '.join(LOSSES)}; got {name!r}")
