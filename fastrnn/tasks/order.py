"""Temporal order, Hochreiter & Schmidhuber (1997) Exp. 6a (as in Pascanu et al. 2013's code).

Tokens: 0-3 distractors a, b, c, d; 4 X; 5 Y; 6 the start marker B; 7 the end marker E.
A sequence of length T is B, random distractors, E; an information symbol (X or Y) replaces
the distractor at one step drawn from [0.1 T, 0.2 T] and at one from [0.5 T, 0.6 T].
Class (read at the last step): XX, XY, YX, YY -> 0..3. Chance loss ln 4 = 1.386 nats.
Solved: 99% held-out accuracy.
"""
import numpy as np

from .base import Task, check_seq_len


class Order(Task):
    name = "order"
    tokens = True
    input_size, output_size = 8, 4
    loss, output = "ce", "last"
    metric_name, higher_is_better = "accuracy", True
    loss_baseline = float(np.log(4))
    metric_baseline = 0.25
    solved_at = 0.99

    def __init__(self, seq_len=100):
        self.seq_len = check_seq_len(seq_len, 10)

    def batch(self, rng, batch_size):
        T, B = self.seq_len, batch_size
        cols = np.arange(B)
        x = rng.integers(0, 4, (T, B))
        x[0], x[-1] = 6, 7
        t1 = rng.integers(round(0.1 * T), round(0.2 * T) + 1, B)
        t2 = rng.integers(round(0.5 * T), round(0.6 * T) + 1, B)
        v1, v2 = rng.integers(0, 2, B), rng.integers(0, 2, B)
        x[t1, cols] = 4 + v1
        x[t2, cols] = 4 + v2
        return x, 2 * v1 + v2, None

    def metric(self, y, target):
        return float(np.mean(y.argmax(-1) == target))
