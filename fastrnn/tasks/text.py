"""Character-level language model on any UTF-8 text file (karpathy's min-char-rnn, batched).

The file's distinct characters are the vocabulary (token ids, gathered, no one-hot). The first
90% of the text trains, the last 10% is held out. Training reads B parallel streams in chunks
of ``seq_len`` characters, the hidden state carried from chunk to chunk (truncated BPTT at the
chunk boundary); the target is the next character at every step. Metric: held-out
cross-entropy in bits per character (bpc). Baseline: the unigram (memoryless) model's bpc.
Solved: below the bpc of the best one-character-context (bigram) model, both estimated on the
training split with add-one smoothing.
"""
from pathlib import Path

import numpy as np

from .base import Task, check_seq_len


def load_text(path):
    """Read a UTF-8 text file, with a clear error naming --data for anything else."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"data: no such file: {path}")
    raw = p.read_bytes()
    if not raw.strip():
        raise ValueError(f"data: the file is empty: {path}")
    if b"\x00" in raw:
        raise ValueError(f"data: looks binary (contains NUL bytes), expected UTF-8 text: {path}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"data: not UTF-8 text ({e.reason} at byte {e.start}): {path}") from None


def _bits(counts, ids):
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[ids])))


def _bigram_bits(train_ids, held_ids, V):
    """Held-out bits per character of the add-one-smoothed bigram model of the training text,
    p(b | a) = (n(a, b) + 1) / (n(a) + V), from the pair counts alone: a V x V table would
    need 27 GB for a text of 58,000 distinct characters."""
    pairs = train_ids[:-1] * V + train_ids[1:]
    keys, counts = np.unique(pairs, return_counts=True)
    rows = np.bincount(train_ids[:-1], minlength=V)
    held = held_ids[:-1] * V + held_ids[1:]
    at = np.clip(np.searchsorted(keys, held), 0, len(keys) - 1)
    n_ab = np.where(keys[at] == held, counts[at], 0)
    p = (n_ab + 1.0) / (rows[held_ids[:-1]] + V)
    return float(-np.mean(np.log2(p)))


class Text(Task):
    name = "text"
    tokens = True
    loss, output = "ce", "all"
    metric_name, higher_is_better = "bpc", False
    stateful = True
    stop_when_solved = False  # beating the bigram is where a character model starts, not ends
    level_words, reached_status = "beat the bigram baseline", "finished"
    eval_streams = 8

    def __init__(self, path, seq_len=25, vocab=None):
        self.seq_len = check_seq_len(seq_len, 1)
        text = load_text(path)
        self.vocab = vocab if vocab is not None else "".join(sorted(set(text)))
        index = {ch: i for i, ch in enumerate(self.vocab)}
        unknown = set(text) - set(index)
        if unknown:
            raise ValueError(f"data: characters not in the model's vocabulary: {sorted(unknown)[:10]}")
        if len(self.vocab) < 2:
            raise ValueError("data: the text needs at least two distinct characters")
        ids = np.fromiter((index[ch] for ch in text), np.int64, len(text))
        n_held = max(len(ids) // 10, self.seq_len + 1)
        if len(ids) - n_held < 2 * (self.seq_len + 1):
            raise ValueError(f"data: {len(ids)} characters is too short for seq_len {self.seq_len}")
        self.train_ids, self.held_ids = ids[:-n_held], ids[-n_held:]
        self.input_size = self.output_size = V = len(self.vocab)
        uni = np.bincount(self.train_ids, minlength=V) + 1.0
        self.metric_baseline = _bits(uni, self.held_ids)
        self.loss_baseline = self.metric_baseline * np.log(2)
        self.solved_at = _bigram_bits(self.train_ids, self.held_ids, V)
        self.cursor = None

    def describe(self):
        return dict(super().describe(), vocab=self.vocab)

    def batch(self, rng, batch_size):
        n = len(self.train_ids) - 1
        if self.cursor is None or len(self.cursor) != batch_size:
            self.cursor = (np.arange(batch_size) * (n // batch_size)) % n
        idx = (self.cursor[None, :] + np.arange(self.seq_len)[:, None]) % n
        self.cursor = (self.cursor + self.seq_len) % n
        return self.train_ids[idx], self.train_ids[idx + 1], None

    def probe(self, n):
        """n held-out windows of seq_len characters (the training cursor is left alone)."""
        T = self.seq_len
        n = max(1, min(n, (len(self.held_ids) - 1) // T))
        idx = np.arange(n)[None, :] * T + np.arange(T)[:, None]
        return self.held_ids[idx], self.held_ids[idx + 1], None

    def evaluate(self, model):
        """Held-out bpc: eval_streams contiguous streams, read in chunks, state carried."""
        T = self.seq_len
        S = max(1, min(self.eval_streams, (len(self.held_ids) - 1) // T))
        per = (len(self.held_ids) - 1) // S
        starts = np.arange(S) * per
        state, nats, count = None, 0.0, 0
        for a in range(0, per, T):
            w = min(T, per - a)
            idx = starts[None, :] + a + np.arange(w)[:, None]
            y, state = model.forward(self.held_ids[idx], state=state, output="all")
            z = y.reshape(-1, y.shape[-1]).astype(np.float64)
            z -= z.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            tgt = self.held_ids[idx + 1].reshape(-1)
            nats -= logp[np.arange(tgt.size), tgt].sum()
            count += tgt.size
        loss = nats / count
        return dict(loss=float(loss), metric=float(loss / np.log(2)))

    def state_dict(self):
        return {} if self.cursor is None else {"cursor": [int(c) for c in self.cursor]}

    def load_state_dict(self, state):
        cur = state.get("cursor")
        if cur is None:
            self.cursor = None
            return
        n = len(self.train_ids) - 1
        if (not isinstance(cur, list) or not cur
                or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n for c in cur)):
            raise ValueError(f"cursor: expected a list of positions in 0..{n - 1}")
        self.cursor = np.asarray(cur, np.int64)


def sample(model, vocab, length, temperature=1.0, prime="", seed=0):
    """``prime`` (or, without one, a character drawn at random to start from) followed by
    ``length`` characters generated from a character model, each sample fed back in."""
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature: expected a finite positive number; got {temperature!r}")
    rng = np.random.default_rng(seed)
    index = {ch: i for i, ch in enumerate(vocab)}
    bad = [ch for ch in prime if ch not in index]
    if bad:
        raise ValueError(f"prime: characters not in the model's vocabulary: {bad[:10]}")
    ids = [index[ch] for ch in prime] or [int(rng.integers(len(vocab)))]
    y, state = model.forward(np.array(ids)[:, None], output="all")
    out = []
    for _ in range(length):
        z = y[-1, 0].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        nxt = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[nxt])
        y, state = model.forward(np.array([[nxt]]), state=state, output="all")
    return "".join(vocab[i] for i in ids) + "".join(out)
