"""The adding problem, Le, Jaitly & Hinton (2015) form (Hochreiter & Schmidhuber 1997, Exp. 4).

Layout used here: input (T, B, 2); channel 0 a value from U[0, 1] at every step, channel 1
a marker that is 1 at exactly two steps, one drawn uniformly from the first half
[0, T//2) and one from the second half [T//2, T) (the uRNN/nnRNN placement).
min_lag m > 0 (a control for truncated BPTT, EXPERIMENTS.md study 10): the halves are those of
the first T - m steps, so every marked step lies at least m steps before the last (with
--bptt-truncate K, m = K + 1 puts both beyond the gradient's reach).
Target: the sum of the two marked values, read at the last step; loss MSE.
Baseline: always predicting 1 gives MSE = Var(X1 + X2) = 1/6. Solved: held-out MSE < 0.01.
"""
import numpy as np

from .. import validate
from .base import Task, check_seq_len


class Adding(Task):
    name = "adding"
    input_size, output_size = 2, 1
    loss, output = "mse", "last"
    metric_name, higher_is_better = "mse", False
    loss_baseline = metric_baseline = 1.0 / 6.0
    solved_at = 0.01

    def __init__(self, seq_len=100, min_lag=0):
        self.seq_len = check_seq_len(seq_len, 2)
        self.min_lag = validate.min_lag(min_lag, self.name, self.seq_len)

    def batch(self, rng, batch_size):
        T, B = self.seq_len, batch_size
        x = np.zeros((T, B, 2))
        x[:, :, 0] = rng.random((T, B))
        cols = np.arange(B)
        n = T - self.min_lag  # the steps that may hold a marker
        first = rng.integers(0, n // 2, B)
        second = rng.integers(n // 2, n, B)
        x[first, cols, 1] = 1.0
        x[second, cols, 1] = 1.0
        target = (x[first, cols, 0] + x[second, cols, 0])[:, None]
        return x, target, None

    def describe(self):
        return dict(super().describe(), min_lag=self.min_lag)

    def metric(self, y, target):
        return float(np.mean((y - target) ** 2))
