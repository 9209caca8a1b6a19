"""The user's own sequences: ``--task file --data DATA.npz`` (or a CSV series to forecast).

An .npz holds (read with allow_pickle=False, every array checked before use):
    x        (N, T, I) floats, or (N, T) integer token ids with ``vocab`` (a scalar) beside it
    y        (N,) integer class ids           -> classification, read at each sequence's end
             (N, T) integer labels, -1 ignored -> a label per step
             (N, O) or (N,) floats            -> regression at each sequence's end
             (N, T, O) floats                 -> regression at every step
    lengths  (N,) integers in [1, T], optional (labels past a sequence's length are ignored)
    x_test, y_test, lengths_test              optional held-out split, same kinds; without
             it the held-out split is ``holdout_fraction`` of the sequences, drawn with a fixed
             seed (never the run's).
Classes are 0 .. the largest label. Metric and memoryless baseline follow the target: accuracy
against always answering the training set's majority class, or MSE against always predicting
the training set's mean. There is no "solved" level: a run trains its whole budget.

A .csv is a series, one row per time step, one numeric column per variable (a first row of
names is skipped). ``window`` W and ``horizon`` K make one sequence per position: the W rows
ending at step t are the input, the row at step t + K the target (every column). The last
``holdout_fraction`` of the windows (in time) is held out. Columns are standardized with the
mean and standard deviation of the rows the training windows see, so the MSE is in units of
each column's variance (the mean predictor scores about 1); the scaling is kept with the
model so that `fastrnn predict` applies it.
"""
import os

import numpy as np

from ..npzfile import read_npz
from .base import HELDOUT_SEED, Task

KEYS = ("x", "y", "lengths", "vocab", "x_test", "y_test", "lengths_test")
# Class ids index a readout row each and size the class counts: a label of 1e9 would ask for
# a 7 GiB count before anything else could object. A million classes is far past any
# sequence-classification set (a word model's vocabulary is 10^4-10^5); the memory check on
# the model then decides what fits.
MAX_CLASSES = 1_000_000


def _held_bytes(name, shape, dtype):
    """What load_npz holds for one array: the file's copy, the converted copy (floats as
    float32 or float64, ids and labels as int64) and the split's copy of it."""
    n = int(np.prod(shape, dtype=object))
    if name.startswith("x"):
        out = 8 if dtype.kind in "iu" or dtype.itemsize > 4 else 4
    else:
        out = 8
    return n * (dtype.itemsize + 2 * out)


def _fail(path, msg):
    raise ValueError(f"data: {path}: {msg}")


def check_inputs(path, x, name, vocab=None, features=None):
    """Validated inputs: (N, T, I) floats (as float64) or (N, T) int64 ids in [0, vocab)."""
    if x.dtype.kind in "iu" and x.ndim == 2:
        if vocab is None:
            _fail(path, f"{name} holds token ids (N, T); add the vocabulary size as 'vocab' (a scalar)")
        if x.size and (x.min() < 0 or x.max() >= vocab):
            _fail(path, f"{name}: token ids must lie in [0, {vocab}) (vocab); got [{x.min()}, {x.max()}]")
        return x.astype(np.int64)
    if x.dtype.kind != "f" or x.ndim != 3:
        _fail(path, f"{name} must be (N, T, I) floats or (N, T) integer token ids; got {x.dtype} {x.shape}")
    if features is not None and x.shape[2] != features:
        _fail(path, f"{name} has {x.shape[2]} features per step; x has {features}")
    if not np.all(np.isfinite(x)):
        _fail(path, f"{name} contains NaN or inf")
    return x.astype(np.float64 if x.dtype.itemsize > 4 else np.float32)  # the model casts to its dtype


def target_kind(path, y, name, N, T):
    """'class', 'steps' (a label per step), 'value' or 'values' (regression per step)."""
    if y.ndim == 0 or y.shape[0] != N:
        _fail(path, f"{name} must have one row per sequence ({N}); got shape {y.shape}")
    if y.dtype.kind in "iu":
        if y.ndim == 1:
            return "class"
        if y.ndim == 2 and y.shape[1] == T:
            return "steps"
        _fail(path, f"{name}: integer labels must be (N,) class ids or (N, T) labels per step "
                    f"(T = {T}); got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            _fail(path, f"{name} contains NaN or inf")
        if y.ndim in (1, 2):
            return "value"
        if y.ndim == 3 and y.shape[1] == T:
            return "values"
        _fail(path, f"{name}: float targets must be (N,) or (N, O) values, or (N, T, O) per step "
                    f"(T = {T}); got shape {y.shape}")
    _fail(path, f"{name} must be integer class ids or float values; got dtype {y.dtype}")


def check_lengths(path, lengths, name, N, T):
    if lengths is None:
        return None
    if lengths.dtype.kind not in "iu" or lengths.shape != (N,):
        _fail(path, f"{name} must be ({N},) integers; got {lengths.dtype} {lengths.shape}")
    if N and (lengths.min() < 1 or lengths.max() > T):
        _fail(path, f"{name} must lie in [1, {T}] (T = {T}); got [{lengths.min()}, {lengths.max()}]")
    return lengths.astype(np.int64)


def load_npz(path, holdout_fraction):
    """(train, test, meta): train and test are (x (N, T, ...), y, lengths or None) with
    sequences first; meta: kind, tokens, input_size, output_size."""
    if not os.path.isfile(path):
        raise ValueError(f"data: no such file: {path}")
    a = read_npz(path, "data", corrupt="is not a readable .npz file or holds arrays that cannot be read safely",
                 keys=KEYS, cost=_held_bytes)
    for k in ("x", "y"):
        if k not in a:
            _fail(path, f"lacks the array {k!r} (needs x and y; see `fastrnn train --help`)")
    if ("x_test" in a) != ("y_test" in a):
        _fail(path, "x_test and y_test come together (or neither: holdout_fraction splits x)")
    if "lengths_test" in a and "x_test" not in a:
        _fail(path, "lengths_test without x_test")
    vocab = None
    if "vocab" in a:
        v = a["vocab"]
        if v.ndim != 0 or v.dtype.kind not in "iu" or int(v) < 1:
            _fail(path, f"vocab must be a positive integer scalar; got {v.dtype} {v.shape}")
        vocab = int(v)
    splits = []
    for suffix in ("", "_test"):
        if "x" + suffix not in a:
            continue
        x = a["x" + suffix]
        if x.ndim < 2 or x.shape[0] == 0 or x.shape[1] == 0:
            _fail(path, f"x{suffix} must hold at least one sequence of at least one step; got shape {x.shape}")
        features = splits[0][0].shape[2] if splits and splits[0][0].ndim == 3 else None
        x = check_inputs(path, x, "x" + suffix, vocab, features)
        if splits and (x.ndim == 2) != (splits[0][0].ndim == 2):
            _fail(path, "x_test must be of x's kind (token ids or float features)")
        N, T = x.shape[:2]
        y = a["y" + suffix]
        kind = target_kind(path, y, "y" + suffix, N, T)
        lengths = check_lengths(path, a.get("lengths" + suffix), "lengths" + suffix, N, T)
        splits.append((x, y, lengths, kind))
    kinds = {s[3] for s in splits}
    if len(kinds) > 1:
        _fail(path, f"y and y_test are of different kinds ({' and '.join(sorted(kinds))})")
    kind = splits[0][3]
    if vocab is not None and splits[0][0].ndim == 3:
        _fail(path, "vocab is only for token ids (x of shape (N, T) integers)")
    if len(splits) == 1:
        train, test = _split(path, splits[0][:3], holdout_fraction)
    else:
        train, test = (s[:3] for s in splits)
    train, test = (_labels(x, y, lengths, kind) for x, y, lengths in (train, test))
    if kind in ("class", "steps"):
        output_size = _classes(path, train[1], test[1], kind, explicit_test=len(splits) == 2)
    else:
        if train[1].shape[-1] != test[1].shape[-1]:
            _fail(path, f"y has {train[1].shape[-1]} outputs, y_test {test[1].shape[-1]}")
        output_size = train[1].shape[-1]
    tokens = train[0].ndim == 2
    meta = dict(kind=kind, tokens=tokens, input_size=vocab if tokens else train[0].shape[2],
                output_size=output_size)
    return train, test, meta


def _classes(path, y_train, y_test, kind, explicit_test):
    """The number of classes (the largest id + 1), after checking the ids: none below 0 (-1
    ignores a step), none at or past MAX_CLASSES, every held-out class seen in training."""
    low = 0 if kind == "class" else -1
    for name, y in (("y", y_train), ("y_test" if explicit_test else "y (held-out part)", y_test)):
        if y.size and y.min() < low:
            _fail(path, f"{name}: class ids must be >= 0" + (" (or -1 to ignore a step)" if low else ""))
        if y.size and y.max() >= MAX_CLASSES:
            _fail(path, f"{name}: class id {int(y.max()):,} is past the limit of {MAX_CLASSES:,} classes "
                        f"(ids are 0 .. classes - 1)")
    if np.all(y_train < 0):
        _fail(path, "every training label is -1 (ignored): nothing to learn from")
    output_size = int(max(y_train.max(), y_test.max() if y_test.size else 0)) + 1
    if output_size < 2:
        _fail(path, "the labels name a single class: nothing to learn")
    seen = np.unique(y_train[y_train >= 0])
    unseen = np.setdiff1d(np.unique(y_test[y_test >= 0]), seen)
    if unseen.size:
        where = ("y_test has" if explicit_test
                 else "the held-out part (holdout_fraction) drew")
        _fail(path, f"{where} class(es) {', '.join(map(str, unseen[:5].tolist()))}"
                    f"{' ...' if unseen.size > 5 else ''} that no training sequence has: a model cannot learn a "
                    f"class it never sees" + ("" if explicit_test else "; give x_test and y_test, or more "
                                              "sequences of that class"))
    return output_size


def _split(path, data, fraction):
    """A held-out part of ``fraction`` of the sequences, by a fixed permutation."""
    x, y, lengths = data
    N = x.shape[0]
    n_test = int(round(fraction * N))
    if n_test < 1 or n_test >= N:
        _fail(path, f"holdout_fraction {fraction} of {N} sequences leaves {n_test} held out and {N - n_test} "
                    f"to train on; give x_test and y_test, or more sequences")
    perm = np.random.default_rng(HELDOUT_SEED).permutation(N)
    pick = lambda idx: (x[idx], y[idx], None if lengths is None else lengths[idx])  # noqa: E731
    return pick(np.sort(perm[n_test:])), pick(np.sort(perm[:n_test]))


def _labels(x, y, lengths, kind):
    """Targets in the model's layout rules: (N, O) values, per-step labels past a sequence's
    length set to -1 (ignored by the loss and the metric)."""
    if kind == "value":
        y = y.reshape(y.shape[0], -1).astype(np.float64)
    elif kind == "values":
        y = y.astype(np.float64)
    else:
        y = y.astype(np.int64)
        if kind == "steps" and lengths is not None:
            y = np.where(np.arange(y.shape[1])[None, :] < lengths[:, None], y, -1)
    return x, y, lengths


# Standardizing squares each value: past ~1e154 the variance overflows to inf and every window
# turns to NaN (the run then "diverges" on its data). A sane series is nowhere near.
MAX_CSV_VALUE = 1e150


def read_csv(path):
    """(series (L, C) float64, column names or None) from a CSV file, validated."""
    if not os.path.isfile(path):
        raise ValueError(f"data: no such file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
    except UnicodeDecodeError as e:
        raise ValueError(f"data: {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not lines:
        _fail(path, "the file is empty")
    header = None
    try:
        [float(v) for v in lines[0].split(",")]
    except ValueError:
        header, lines = [h.strip() for h in lines[0].split(",")], lines[1:]
    rows = []
    for i, ln in enumerate(lines, start=2 if header else 1):
        fields = ln.split(",")
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            _fail(path, f"line {i}: expected numbers separated by commas; got {ln[:60]!r}")
        if len(fields) != len(rows[0]):
            _fail(path, f"line {i}: {len(fields)} values; the first row has {len(rows[0])}")
    if not rows:
        _fail(path, "holds no rows of numbers" + (" (only a header row)" if header is not None else ""))
    s = np.array(rows, dtype=np.float64)
    if header is not None and len(header) != s.shape[1]:
        _fail(path, f"the header names {len(header)} columns; the rows have {s.shape[1]}")
    if not np.all(np.isfinite(s)):
        _fail(path, "contains NaN or inf")
    big = np.abs(s).max()
    if big > MAX_CSV_VALUE:
        _fail(path, f"holds a value of magnitude {big:.3g}, past {MAX_CSV_VALUE:.0e}: the columns' standardization "
                    f"(mean, variance) would overflow; rescale the data")
    return s, header


def windows(s, window):
    """(N, window, C): every run of ``window`` consecutive rows of s, in order."""
    idx = np.arange(s.shape[0] - window + 1)[:, None] + np.arange(window)[None, :]
    return s[idx]


def load_csv(path, window, horizon, holdout_fraction):
    """(train, test, meta) for forecasting from a CSV series; meta adds the column scaling."""
    s, header = read_csv(path)
    L = s.shape[0]
    N = L - window - horizon + 1
    n_test = int(round(holdout_fraction * N))
    if N < 2 or n_test < 1 or n_test >= N:
        _fail(path, f"{L} rows make {max(N, 0)} windows of {window} steps with horizon {horizon}, "
                    f"{n_test} of them held out (holdout_fraction {holdout_fraction}); need at least one of each")
    n_train = N - n_test
    seen = s[:n_train + window - 1 + horizon]  # every row a training window reads or predicts
    mean, std = seen.mean(0), seen.std(0)
    std = np.where(std > 0, std, 1.0)  # a constant column is left unscaled
    z = (s - mean) / std
    x, y = windows(z, window)[:N], z[np.arange(N) + window - 1 + horizon]
    meta = dict(kind="value", tokens=False, input_size=s.shape[1], output_size=s.shape[1],
                scale=dict(mean=mean.tolist(), std=std.tolist()), columns=header)
    return (x[:n_train], y[:n_train], None), (x[n_train:], y[n_train:], None), meta


class DataFile(Task):
    """Sequences and targets from the user's file (see the module docstring)."""
    name = "file"
    stop_when_solved = False
    solved_at = float("nan")  # no level counts as solved: never stops early, never "solved"

    def __init__(self, path, holdout_fraction=0.1, window=None, horizon=1):
        path = os.fspath(path)
        self.path = path
        if path.lower().endswith(".csv"):
            if window is None:
                raise ValueError("window: a CSV series needs --window W (steps per input window)")
            train, test, meta = load_csv(path, window, horizon, holdout_fraction)
        else:
            if window is not None:
                raise ValueError("window: only for a CSV series (the .npz gives its sequences)")
            train, test, meta = load_npz(path, holdout_fraction)
        self.meta = meta
        self.kind, self.tokens = meta["kind"], meta["tokens"]
        self.input_size, self.output_size = meta["input_size"], meta["output_size"]
        self.loss = "ce" if self.kind in ("class", "steps") else "mse"
        self.output = "all" if self.kind in ("steps", "values") else "last"
        self.higher_is_better = self.loss == "ce"
        self.metric_name = "accuracy" if self.higher_is_better else "mse"
        self.train = train
        self.seq_len = train[0].shape[1]
        self.heldout_size = test[0].shape[0]
        self._heldout = self._layout(*test)
        self._baselines(train[1], self._heldout)

    def _layout(self, x, y, lengths):
        """Sequences first -> the model's time-first layout."""
        x = np.swapaxes(x, 0, 1)
        if self.output == "all":
            y = np.swapaxes(y, 0, 1)
        return np.ascontiguousarray(x), np.ascontiguousarray(y), lengths

    def _baselines(self, y_train, heldout):
        """The best memoryless predictor fitted on the training targets, scored on held-out."""
        _, y_test, lengths = heldout
        if self.loss == "ce":
            labels = y_train[y_train >= 0]
            prior = (np.bincount(labels, minlength=self.output_size) + 1.0) / (labels.size + self.output_size)
            target = y_test[y_test >= 0]
            self.loss_baseline = float(-np.mean(np.log(prior[target])))
            self.metric_baseline = float(np.mean(target == prior.argmax()))
        else:
            mean = y_train.reshape(-1, self.output_size).mean(0)
            self.metric_baseline = self.loss_baseline = float(self._mse(np.broadcast_to(mean, y_test.shape), y_test, lengths))

    def _mse(self, y, target, lengths):
        valid = (np.ones(target.shape[:-1], bool) if lengths is None or self.output == "last"
                 else np.arange(target.shape[0])[:, None] < lengths[None, :])
        return np.sum(((y - target) ** 2)[valid]) / (valid.sum() * target.shape[-1])

    def batch(self, rng, batch_size):
        x, y, lengths = self.train
        idx = rng.integers(0, x.shape[0], batch_size)
        return self._layout(x[idx], y[idx], None if lengths is None else lengths[idx])

    def metric(self, y, target):
        """On the held-out set: accuracy over the labels that count, or the MSE."""
        if self.loss == "ce":
            keep = target >= 0
            return float(np.mean(y.argmax(-1)[keep] == target[keep]))
        return float(self._mse(y, target, self._heldout[2]))

    def describe(self):
        extra = {k: self.meta[k] for k in ("scale", "columns") if k in self.meta}
        return dict(super().describe(), target=self.kind, data=self.path, **extra)
