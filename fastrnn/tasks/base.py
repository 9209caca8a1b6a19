"""What every task provides: a seeded batch generator, a fixed held-out set, a metric, the
chance/baseline level and a "solved" criterion.

A task describes its model interface: ``input_size`` (the vocabulary when ``tokens``),
``output_size``, the ``loss`` ('mse' | 'ce') and where it is read (``output``: 'last' | 'all').
"""
import numpy as np

from ..choices import SEQ_LEN_MEANING
from ..losses import get_loss

HELDOUT_SEED = 20150101  # the held-out set never depends on the training seed


class Task:
    name = "task"
    tokens = False
    input_size = output_size = 0
    loss = "mse"
    output = "last"
    metric_name = "mse"
    higher_is_better = False
    stateful = False  # True: the hidden state is carried from one batch to the next
    stop_when_solved = True  # the default of --early-stop: stop at the first solved evaluation
    heldout_size = 1000
    eval_batch = 250

    # set by subclasses
    loss_baseline = float("nan")  # held-out loss of the best memoryless predictor
    metric_baseline = float("nan")  # metric at chance
    solved_at = float("nan")  # threshold on the metric
    # What reaching solved_at is called, and the status of a run that reached it: a long-
    # dependency task is "solved"; a character model "beat the bigram baseline" and is
    # "finished" either way (beating the bigram is where language modelling starts).
    level_words = "solved"
    reached_status = "solved"

    def batch(self, rng, batch_size):
        """Return (x, target, lengths): x (T, B, I) floats or (T, B) ids; lengths or None."""
        raise NotImplementedError

    def metric(self, y, target):
        """The task's metric on outputs y and targets of the held-out set."""
        raise NotImplementedError

    @property
    def dependency_length(self):
        """The longest lag, in steps, between an input that matters and the output that needs
        it (the chrono init's default T_max); a task of unknown lags: its sequence length."""
        return int(self.seq_len)

    @property
    def has_solved_level(self):
        """False for a task with no level to reach (solved_at NaN: the user's own data)."""
        return self.solved_at == self.solved_at

    def solved(self, metric):
        if self.higher_is_better:
            return bool(metric >= self.solved_at)
        return bool(metric < self.solved_at)

    def describe(self):
        return dict(task=self.name, metric=self.metric_name, higher_is_better=self.higher_is_better,
                    loss_baseline=self.loss_baseline, metric_baseline=self.metric_baseline,
                    solved_at=self.solved_at, seq_len=getattr(self, "seq_len", None),
                    loss=self.loss, output=self.output, tokens=self.tokens,
                    stop_when_solved=self.stop_when_solved, level_words=self.level_words,
                    seq_len_meaning=SEQ_LEN_MEANING[self.name], dependency_length=self.dependency_length)

    # ------------------------------------------------------------------ held-out evaluation
    @property
    def heldout(self):
        if getattr(self, "_heldout", None) is None:
            self._heldout = self.batch(np.random.default_rng(HELDOUT_SEED), self.heldout_size)
        return self._heldout

    def probe(self, n):
        """(x, target, lengths) of the held-out set's first n sequences (fewer if it has fewer),
        drawn without touching the training stream (fastrnn.watch reads it at every evaluation)."""
        x, target, lengths = self.heldout
        n = min(n, x.shape[1])
        target = target[:, :n] if self.output == "all" else target[:n]
        return x[:, :n], target, None if lengths is None else lengths[:n]

    def evaluate(self, model):
        """Held-out {'loss', 'metric'} of the model (forward only, in slices of eval_batch)."""
        x, target, lengths = self.heldout
        ys = []
        for s in range(0, x.shape[1], self.eval_batch):
            sl = slice(s, s + self.eval_batch)
            y, _ = model.forward(x[:, sl], None if lengths is None else lengths[sl], output=self.output)
            ys.append(y)
        y = np.concatenate(ys, axis=1 if self.output == "all" else 0)
        return dict(loss=self.heldout_loss(y, target, lengths), metric=float(self.metric(y, target)))

    def heldout_loss(self, y, target, lengths):
        fn = get_loss(self.loss)
        O = y.shape[-1]
        rows = y.reshape(-1, O).astype(np.float64)
        tgt = target.reshape(-1, O) if self.loss == "mse" else target.reshape(-1)
        valid = np.ones(rows.shape[0], bool)
        if lengths is not None and self.output == "all":
            valid = (np.arange(y.shape[0])[:, None] < lengths[None, :]).reshape(-1)
        return fn(rows, tgt, valid)[0]

    # tasks that keep a cursor (text) save and restore it with checkpoints
    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def check_seq_len(seq_len, minimum):
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < minimum:
        raise ValueError(f"seq_len: expected an integer >= {minimum}; got {seq_len!r}")
    return int(seq_len)
