"""The adding problem, Le, Jaitly & Hinton (2015) form (Hochreiter & Schmidhuber 1997, Exp. 4).

Layout used here: input (T, B, 2); channel 0 a value from U[0, 1] at every step, channel 1
a marker that is 1 at exactly two steps, one drawn uniformly from the first half
[0, T//2) and one from the second half [T//2, T) (the uRNN/nnRNN placement).
Target: the sum of the two marked values, read at the last step; loss MSE.
Baseline: always predicting 1 gives MSE = Var(X1 + X2) = 1/6. Solved: held-out MSE < 0.01.
"""
import numpy as np

from .base import Task, check_seq_len


class Adding(Task):
    name = "adding"
    input_size, output_size = 2, 1
    loss, output = "mse", "last"
    metric_name, higher_is_better = "mse", False
    loss_baseline = metric_baseline = 1.0 / 6.0
    solved_at = 0.01

    def __init__(self, seq_len=100):
        self.seq_len = check_seq_len(seq_len, 2)

    def batch(self, rng, batch_size):
        T, B = self.seq_len, batch_size
        x = np.zeros((T, B, 2))
        x[:, :, 0] = rng.random((T, B))
        cols = np.arange(B)
        first = rng.integers(0, T // 2, B)
        second = rng.integers(T // 2, T, B)
        x[first, cols, 1] = 1.0
        x[second, cols, 1] = 1.0
        target = (x[first, cols, 0] + x[second, cols, 0])[:, None]
        return x, target, None

    def metric(self, y, target):
        return float(np.mean((y - target) ** 2))
