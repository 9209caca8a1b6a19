"""Temporal order, Hochreiter & Schmidhuber (1997) Exp. 6a (``order``) and 6b (``order8``).

Tokens: 0-3 distractors a, b, c, d; 4 X; 5 Y; 6 the start marker B; 7 the end marker E.
A sequence is B, random distractors, E; its length is drawn uniformly from [T, T + T//10]
(the paper's 100-110 at T = 100), and a batch is padded to T + T//10 steps (the padding is
never read: each sequence ends at its own length, where the class is read).
Information symbols (X or Y) replace the distractor at one step drawn from each window:
  6a (4 classes XX, XY, YX, YY): [0.1 T, 0.2 T] and [0.5 T, 0.6 T] (the paper: 10-20, 50-60);
  6b (8 classes XXX .. YYY):     [0.1 T, 0.2 T], [0.33 T, 0.43 T], [0.66 T, 0.76 T]
                                 (the paper: 10-20, 33-43, 66-76).
The class is the symbols read as binary digits, X = 0. Chance loss ln 4 (ln 8) nats.
Solved: 99% held-out accuracy (the paper stops at no error on 2000 recent training sequences).
"""
import numpy as np

from .base import Task, check_seq_len

WINDOWS = {2: ((0.1, 0.2), (0.5, 0.6)), 3: ((0.1, 0.2), (0.33, 0.43), (0.66, 0.76))}


class Order(Task):
    name = "order"
    symbols = 2  # information symbols per sequence: 2 ** symbols classes
    tokens = True
    input_size = 8
    loss, output = "ce", "last"
    metric_name, higher_is_better = "accuracy", True
    solved_at = 0.99

    def __init__(self, seq_len=100):
        self.seq_len = check_seq_len(seq_len, 10)
        self.output_size = 2 ** self.symbols
        self.loss_baseline = float(np.log(self.output_size))
        self.metric_baseline = 1.0 / self.output_size

    def batch(self, rng, batch_size):
        T, B = self.seq_len, batch_size
        cols = np.arange(B)
        lengths = rng.integers(T, T + T // 10 + 1, B)
        x = rng.integers(0, 4, (T + T // 10, B))
        x[0] = 6
        x[lengths - 1, cols] = 7
        label = np.zeros(B, np.int64)
        for lo, hi in WINDOWS[self.symbols]:
            t = rng.integers(round(lo * T), round(hi * T) + 1, B)
            v = rng.integers(0, 2, B)
            x[t, cols] = 4 + v
            label = 2 * label + v
        return x, label, lengths

    def metric(self, y, target):
        return float(np.mean(y.argmax(-1) == target))


class Order8(Order):
    name = "order8"
    symbols = 3
