"""Task generators: shapes, seeding, the baseline measured on generated data, the solved
criterion, and the data-file loaders on small files made here."""
import numpy as np
import pytest

from fastrnn.losses import softmax_ce
from fastrnn.tasks import TASKS, make_task
from fastrnn.tasks.agreement import FILLERS, PLURAL, SINGULAR, Agreement
from fastrnn.tasks.mnist import load_mnist
from fastrnn.tasks.text import load_text


def rng(seed=0):
    return np.random.default_rng(seed)


def test_adding_layout_and_baseline():
    t = make_task("adding", 20)
    x, y, lengths = t.batch(rng(), 20000)
    assert x.shape == (20, 20000, 2) and y.shape == (20000, 1) and lengths is None
    marks = x[:, :, 1]
    assert np.all(marks.sum(0) == 2)
    assert np.all(marks[:10].sum(0) == 1) and np.all(marks[10:].sum(0) == 1)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(0))
    # predicting 1 always: MSE = Var(X1 + X2) = 1/6, measured on generated data
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.005
    assert t.solved(0.009) and not t.solved(0.011)


@pytest.mark.parametrize("T, m", [(20, 6), (21, 5), (12, 10)])
def test_adding_min_lag_keeps_the_last_m_steps_unmarked(T, m):
    """Study 10's control: with min_lag m the markers fall in the halves of the first T - m
    steps, so each lies at least m steps before the last; the target and baseline are unchanged."""
    t = make_task("adding", T, min_lag=m)
    x, y, _ = t.batch(rng(), 20000)
    marks = x[:, :, 1]
    n = T - m
    assert np.all(marks[n:].sum(0) == 0) and np.all(marks.sum(0) == 2)
    assert np.all(marks[:n // 2].sum(0) == 1) and np.all(marks[n // 2:n].sum(0) == 1)
    # every allowed position is used: the lag m (position T - 1 - m) and the first step
    assert marks[n - 1].any() and marks[0].any() and marks[n // 2].any()
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(0))
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.005
    assert t.describe()["min_lag"] == m
    # min_lag 0 is the plain task, batch for batch
    a, b = make_task("adding", T, min_lag=0).batch(rng(3), 5), make_task("adding", T).batch(rng(3), 5)
    assert np.array_equal(a[0], b[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="adding", seq_len=10, min_lag=9), r"min_lag: .* at most seq_len - 2 = 8; got 9"),
    (dict(name="adding", min_lag=-1), r"min_lag: expected an integer >= 0; got -1"),
    (dict(name="adding", min_lag=2.5), r"min_lag: expected an integer >= 0; got 2.5"),
    (dict(name="adding", min_lag=99), r"min_lag: .* at most seq_len - 2 = 98; got 99"),
    (dict(name="copy", min_lag=3), r"min_lag: only for the adding task's markers; got --min-lag with copy"),
])
def test_adding_min_lag_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_task(**kwargs)


def test_same_seed_same_batch():
    for name in ("adding", "copy", "order", "order8", "agreement"):
        t = make_task(name, 12)
        a, b = t.batch(rng(5), 4), t.batch(rng(5), 4)
        assert all(np.array_equal(p, q) for p, q in zip(a[:2], b[:2]))
        c = t.batch(rng(6), 4)
        assert not np.array_equal(a[0], c[0])


def test_copy_layout_and_baseline():
    T = 15
    t = make_task("copy", T)
    x, y, _ = t.batch(rng(), 4000)
    assert x.shape == y.shape == (T + 20, 4000) and x.dtype.kind == "i"
    assert np.all((x[:10] >= 1) & (x[:10] <= 8))
    assert np.all(x[10:T + 9] == 0) and np.all(x[T + 9] == 9) and np.all(x[T + 10:] == 0)
    assert np.all(y[:T + 10] == 0) and np.array_equal(y[T + 10:], x[:10])
    # the memoryless predictor: blank for T+10 steps, uniform over 1..8 for the last 10
    logits = np.full((T + 20, 4000, 9), -1e9)
    logits[:T + 10, :, 0] = 0.0
    logits[T + 10:, :, 1:] = 0.0
    loss = softmax_ce(logits.reshape(-1, 9), y.reshape(-1), np.ones(y.size, bool))[0]
    assert abs(loss - t.loss_baseline) < 1e-9
    assert abs(t.loss_baseline - 10 * np.log(8) / (T + 20)) < 1e-12
    # symbols are uniform over 1..8
    counts = np.bincount(x[:10].ravel(), minlength=9)[1:]
    assert counts.min() > 0.9 * counts.mean()
    assert t.solved(0.99) and not t.solved(0.98)


@pytest.mark.parametrize("name, windows", [
    ("order", [(5, 10), (25, 30)]),                # 6a at T = 50: 0.1-0.2 T, 0.5-0.6 T
    ("order8", [(5, 10), (16, 22), (33, 38)]),     # 6b: 0.1-0.2 T, 0.33-0.43 T, 0.66-0.76 T
])
def test_order_layout(name, windows):
    T, B = 50, 4000
    t = make_task(name, T)
    x, y, lengths = t.batch(rng(), B)
    cols = np.arange(B)
    assert x.shape == (T + 5, B) and y.shape == (B,) and lengths.shape == (B,)
    # lengths uniform over T .. T + T/10 (Hochreiter & Schmidhuber's 100-110 at T = 100)
    assert lengths.min() == T and lengths.max() == T + 5
    assert np.abs(np.bincount(lengths - T) / B - 1 / 6).max() < 0.03
    assert np.all(x[0] == 6) and np.all(x[lengths - 1, cols] == 7)
    inside = np.arange(T + 5)[:, None] < lengths[None, :]
    info = ((x == 4) | (x == 5)) & inside
    k = len(windows)
    assert np.all(info.sum(0) == k)
    assert np.all(((x == 6) & inside).sum(0) == 1) and np.all(((x == 7) & inside).sum(0) == 1)
    pos = np.argwhere(info.T)[:, 1].reshape(-1, k)  # argwhere is in row order: positions ascend
    label = np.zeros(B, np.int64)
    for j, (lo, hi) in enumerate(windows):
        assert pos[:, j].min() == lo and pos[:, j].max() == hi
        label = 2 * label + x[pos[:, j], cols] - 4
    np.testing.assert_array_equal(y, label)
    # chance: every class equally likely, so always guessing one class scores 1 / 2**k
    assert np.abs(np.bincount(y) / B - 2.0 ** -k).max() < 0.03
    assert abs(t.loss_baseline - k * np.log(2)) < 1e-12 and t.output_size == 2 ** k


def test_order_padding_is_never_read():
    """Each sequence's class is read at its own length: the padded batch gives exactly what
    each sequence gives alone, cut to its length."""
    from fastrnn.model import RNN

    t = make_task("order8", 20)
    x, y, lengths = t.batch(rng(3), 6)
    model = RNN("gru", t.input_size, 5, t.output_size, tokens=True, seed=1, dtype="float64")
    out, _ = model.forward(x, lengths, output="last")
    x2 = x.copy()
    x2[np.arange(x.shape[0])[:, None] >= lengths[None, :]] = 3  # other padding: same outputs
    out2, _ = model.forward(x2, lengths, output="last")
    np.testing.assert_array_equal(out, out2)
    for b in range(6):
        alone, _ = model.forward(x[:lengths[b], b:b + 1], output="last")
        np.testing.assert_allclose(out[b], alone[0], rtol=1e-13, atol=1e-15)


def test_agreement_has_no_shortcut():
    t = Agreement(30)
    x, y, _ = t.batch(rng(), 8000)
    nS = len(SINGULAR)
    assert x.shape == (31, 8000)
    subj_plural = x[0] >= nS
    np.testing.assert_array_equal(subj_plural.astype(int), y)
    assert np.all(x[0] < nS + len(PLURAL))
    clause = x[1:]
    plural_nouns = ((clause >= nS) & (clause < 2 * nS)).sum(0)
    singular_nouns = (clause < nS).sum(0)
    assert (plural_nouns + singular_nouns).mean() > 4  # attractors do appear
    # the clause's noun counts say nothing about the label
    assert abs(np.corrcoef(plural_nouns - singular_nouns, y)[0, 1]) < 0.05
    assert abs(y.mean() - 0.5) < 0.02
    assert Agreement.render(x[:, 0]).split()[0] in SINGULAR + PLURAL
    assert set(Agreement.render(x[1:, 0]).split()) <= set(SINGULAR + PLURAL + FILLERS)


def test_text_task(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 40
    p = tmp_path / "t.txt"
    p.write_text(text)
    t = make_task("text", 8, data=p)
    assert t.vocab == "".join(sorted(set(text)))
    x, y, _ = t.batch(rng(), 4)
    assert x.shape == y.shape == (8, 4)
    np.testing.assert_array_equal(x[1:], y[:-1])  # the target is the next character
    x2, _, _ = t.batch(rng(), 4)
    np.testing.assert_array_equal(x2[0], y[-1])  # streams continue where they stopped
    # unigram baseline in bits measured from the held-out text with train counts
    counts = np.bincount(t.train_ids, minlength=len(t.vocab)) + 1.0
    expect = -np.mean(np.log2(counts[t.held_ids] / counts.sum()))
    assert abs(t.metric_baseline - expect) < 1e-12
    assert t.solved_at < t.metric_baseline  # a bigram model beats the unigram one on text
    state = t.state_dict()
    t2 = make_task("text", 8, data=p)
    t2.load_state_dict(state)
    np.testing.assert_array_equal(t2.batch(rng(), 4)[0], t.batch(rng(), 4)[0])


@pytest.mark.parametrize("content, match", [
    (None, "data: no such file"),
    (b"", "data: the file is empty"),
    (b"abc\x00\x01def", "data: looks binary"),
    (b"\xff\xfe\xfa abc", "data: not UTF-8 text"),
])
def test_text_file_errors(tmp_path, content, match):
    p = tmp_path / "f.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_text(p)


def test_text_too_short(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("abcab")
    with pytest.raises(ValueError, match="data: 5 characters is too short for seq_len 25"):
        make_task("text", 25, data=p)


def make_mnist(path, n=20, **override):
    r = rng(3)
    arrays = dict(x_train=r.integers(0, 256, (n, 28, 28)).astype(np.uint8), y_train=r.integers(0, 10, n),
                  x_test=r.integers(0, 256, (n, 784)).astype(np.uint8), y_test=r.integers(0, 10, n))
    arrays.update(override)
    np.savez(path, **arrays)
    return arrays


def test_mnist_loader_and_task(tmp_path):
    p = tmp_path / "mnist.npz"
    a = make_mnist(p)
    xtr, ytr, xte, yte = load_mnist(p)
    assert xtr.shape == (20, 784) and xtr.max() <= 1.0 and xtr.dtype == np.float32
    np.testing.assert_allclose(xtr[3], a["x_train"][3].reshape(-1) / 255.0, rtol=1e-6)
    t = make_task("mnist", data=p)
    x, y, _ = t.batch(rng(), 5)
    assert x.shape == (784, 5, 1) and y.shape == (5,)
    tp = make_task("mnist", data=p, permuted=True)
    xp, _, _ = tp.batch(rng(), 5)
    assert not np.array_equal(x, xp)
    np.testing.assert_array_equal(np.sort(x[:, :, 0], 0), np.sort(xp[:, :, 0], 0))  # same pixels
    assert t.heldout[0].shape == (784, 20, 1)


@pytest.mark.parametrize("override, match", [
    (dict(y_test=None), r"lacks arrays \['y_test'\]"),
    (dict(x_train=np.zeros((20, 27, 27))), "x_train must be numeric"),
    (dict(y_train=np.full(20, 11)), "labels must lie in 0..9"),
    (dict(y_train=np.zeros(19, int)), "y_train must be integer labels of shape"),
    (dict(x_train=np.array([{"a": 1}] * 20, dtype=object)), "cannot be read safely"),
])
def test_mnist_malformed(tmp_path, override, match):
    p = tmp_path / "m.npz"
    arrays = dict(x_train=np.zeros((20, 784)), y_train=np.zeros(20, int),
                  x_test=np.zeros((20, 784)), y_test=np.zeros(20, int))
    arrays.update(override)
    np.savez(p, **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(ValueError, match=match):
        load_mnist(p)


def test_mnist_not_a_zip(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="data: not a readable .npz file"):
        load_mnist(p)


def test_unknown_task_and_missing_data():
    with pytest.raises(ValueError, match="task: expected one of"):
        make_task("parity")
    with pytest.raises(ValueError, match="data: the text task needs a data file"):
        make_task("text")
    assert set(TASKS) == {"adding", "copy", "order", "order8", "agreement", "text", "mnist", "file"}
    with pytest.raises(ValueError, match="data: the file task needs a data file"):
        make_task("file")


@pytest.mark.parametrize("name, solved, unsolved", [
    ("order", 0.99, 0.989), ("order8", 0.99, 0.989), ("agreement", 0.99, 0.98), ("copy", 1.0, 0.985), ("adding", 0.0099, 0.0101),
])
def test_solved_criteria(name, solved, unsolved):
    t = make_task(name, 20)
    assert t.solved(solved) and not t.solved(unsolved)
    # the chance level itself is never "solved"
    assert not t.solved(t.metric_baseline)


def test_text_and_mnist_solved_criteria(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("abcabcabd " * 60)
    t = make_task("text", 5, data=p)
    assert t.solved(t.solved_at - 1e-9) and not t.solved(t.solved_at) and not t.solved(t.metric_baseline)
    m = tmp_path / "m.npz"
    make_mnist(m)
    task = make_task("mnist", data=m)
    assert task.solved(0.97) and not task.solved(0.969) and not task.solved(task.metric_baseline)
