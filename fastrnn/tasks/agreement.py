"""Agreement across a clause: "The man who wore a wig on his head went inside".

A synthetic version of the tutorial's example (real English: Linzen, Dupoux & Goldberg 2016).
A sequence is a subject noun, singular or plural, then a clause of ``seq_len`` words, then the
model must say whether the verb is singular (class 0) or plural (class 1): the subject's number.
Clause words are fillers, or (with probability 0.2 each) nouns whose number is drawn at
random. Nouns of the other number (attractors) thus appear, but nothing in the clause tells the
subject's number, so only a model that carries it across the clause can beat chance (50%).
Solved: 99% held-out accuracy.
"""
import numpy as np

from .base import Task, check_seq_len

SINGULAR = ["man", "woman", "dog", "teacher", "child", "king", "cat", "doctor"]
PLURAL = ["men", "women", "dogs", "teachers", "children", "kings", "cats", "doctors"]
FILLERS = ["who", "wore", "a", "wig", "on", "his", "her", "head", "near", "the", "old", "red",
           "in", "with", "big", "house", "saw", "yesterday", "quietly", "that"]
VOCAB = SINGULAR + PLURAL + FILLERS


class Agreement(Task):
    name = "agreement"
    tokens = True
    input_size, output_size = len(VOCAB), 2
    loss, output = "ce", "last"
    metric_name, higher_is_better = "accuracy", True
    loss_baseline = float(np.log(2))
    metric_baseline = 0.5
    solved_at = 0.99
    noun_rate = 0.2

    def __init__(self, seq_len=50):
        self.seq_len = check_seq_len(seq_len, 1)

    def batch(self, rng, batch_size):
        T, B = self.seq_len + 1, batch_size
        nS, nP, nF = len(SINGULAR), len(PLURAL), len(FILLERS)
        number = rng.integers(0, 2, B)  # 0 singular, 1 plural
        x = np.empty((T, B), np.int64)
        x[0] = rng.integers(0, nS, B) + number * nS
        fill = nS + nP + rng.integers(0, nF, (T - 1, B))
        noun = rng.integers(0, nS + nP, (T - 1, B))  # either number: no shortcut
        x[1:] = np.where(rng.random((T - 1, B)) < self.noun_rate, noun, fill)
        return x, number, None

    def metric(self, y, target):
        return float(np.mean(y.argmax(-1) == target))

    @staticmethod
    def render(ids):
        """The words of one sequence of ids, for reading examples."""
        return " ".join(VOCAB[i] for i in ids)
