"""Copy memory, Arjovsky, Shah & Bengio (2016) layout.

Input token ids, length T + 20: [s1..s10, 0 x (T-1), 9, 0 x 10], s_i from {1..8}, 0 blank,
9 the delimiter (one-hot over 10 categories, gathered, never materialized).
Target: [0 x (T+10), s1..s10] over 9 classes; cross-entropy averaged over all T+20 steps.
Memoryless baseline loss: 10 ln(8) / (T + 20). Metric: accuracy on the ten recalled symbols
(chance 1/8). Solved: at least 99% of them right.
"""
import numpy as np

from .base import Task, check_seq_len


class Copy(Task):
    name = "copy"
    tokens = True
    input_size, output_size = 10, 9
    loss, output = "ce", "all"
    metric_name, higher_is_better = "recall_accuracy", True
    metric_baseline = 1.0 / 8.0
    solved_at = 0.99

    def __init__(self, seq_len=100):
        self.seq_len = check_seq_len(seq_len, 1)
        self.loss_baseline = float(10 * np.log(8) / (self.seq_len + 20))

    @property
    def dependency_length(self):
        return self.seq_len + 10  # the first symbol (step 0) is recalled at step T + 10

    def batch(self, rng, batch_size):
        T, B = self.seq_len, batch_size
        s = rng.integers(1, 9, (10, B))
        x = np.zeros((T + 20, B), np.int64)
        x[:10] = s
        x[T + 9] = 9
        target = np.zeros((T + 20, B), np.int64)
        target[T + 10:] = s
        return x, target, None

    def metric(self, y, target):
        return float(np.mean(y[-10:].argmax(-1) == target[-10:]))
