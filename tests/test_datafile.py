"""The user's own data: the file task's four target kinds, token inputs, lengths, held-out
splits, CSV forecasting windows, every malformed file as one clear error; then predict and
export on the trained model (export checked against torch when installed)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn import serve
from fastrnn.tasks import make_task
from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import load_model, train
from fastrnn_cli.main import cli

N, T = 60, 7


def rng(seed=0):
    return np.random.default_rng(seed)


def save(tmp_path, name="d.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def dense(n=N, t=T, i=3, seed=0):
    return rng(seed).normal(size=(n, t, i)).astype(np.float32)


@pytest.mark.parametrize("kind", ["class", "steps", "value", "values"])
def test_target_kinds_set_loss_output_metric_and_baseline(tmp_path, kind):
    x = dense()
    r = rng(1)
    y = {"class": r.integers(0, 3, N), "steps": r.integers(-1, 4, (N, T)),
         "value": r.normal(size=(N, 2)), "values": r.normal(size=(N, T, 2))}[kind]
    lengths = r.integers(2, T + 1, N)
    t = make_task("file", data=save(tmp_path, x=x, y=y, lengths=lengths), holdout_fraction=0.25)
    ce = kind in ("class", "steps")
    assert (t.loss, t.output) == ("ce" if ce else "mse", "all" if kind in ("steps", "values") else "last")
    assert (t.metric_name, t.higher_is_better) == (("accuracy", True) if ce else ("mse", False))
    assert t.input_size == 3 and t.output_size == (int(y.max()) + 1 if ce else 2) and t.seq_len == T
    assert not t.stop_when_solved and not t.solved(1.0) and not t.solved(0.0)
    xh, yh, lh = t.heldout
    assert xh.shape == (T, 15, 3) and lh.shape == (15,)
    xb, yb, lb = t.batch(rng(2), 5)
    assert xb.shape == (T, 5, 3) and lb.shape == (5,)
    assert yb.shape == {"class": (5,), "steps": (T, 5), "value": (5, 2), "values": (T, 5, 2)}[kind]
    if kind == "steps":  # labels past a sequence's length are ignored (-1)
        assert np.all(yh[np.arange(T)[:, None] >= lh[None, :]] == -1)
    # the memoryless baseline, recomputed from the split (which is a fixed draw)
    test_idx = np.sort(np.random.default_rng(20150101).permutation(N)[:15])
    train_idx = np.setdiff1d(np.arange(N), test_idx)
    np.testing.assert_array_equal(lh, lengths[test_idx])
    if kind == "class":
        major = np.bincount(y[train_idx], minlength=t.output_size).argmax()
        assert t.metric_baseline == pytest.approx(np.mean(y[test_idx] == major))
    if kind == "value":
        mean = y[train_idx].mean(0)
        assert t.metric_baseline == pytest.approx(np.mean((y[test_idx] - mean) ** 2))
        assert t.metric(np.broadcast_to(mean, yh.shape), yh) == pytest.approx(t.metric_baseline)


def test_tokens_and_an_explicit_test_split(tmp_path):
    x = rng().integers(0, 5, (N, T))
    p = save(tmp_path, x=x, y=x[:, 0] % 2, vocab=np.int64(5), x_test=x[:9, :4], y_test=x[:9, 0] % 2)
    t = make_task("file", data=p)
    assert t.tokens and t.input_size == 5 and t.output_size == 2
    assert t.heldout[0].shape == (4, 9) and t.heldout_size == 9 and t.batch(rng(), 3)[0].shape == (T, 3)


def test_csv_windows_horizon_and_scaling(tmp_path):
    s = np.stack([np.arange(50.0), 100 + 2 * np.arange(50.0)], 1)
    p = tmp_path / "s.csv"
    p.write_text("a,b\n" + "\n".join(f"{u},{v}" for u, v in s))
    t = make_task("file", data=p, window=5, horizon=2, holdout_fraction=0.2)
    n = 50 - 5 - 2 + 1  # 44 windows: the last 9 held out, in time order
    assert t.heldout_size == 9 and t.seq_len == 5 and (t.loss, t.output) == ("mse", "last")
    seen = s[:35 + 5 - 1 + 2]
    mean, std = seen.mean(0), seen.std(0)
    x, y, _ = t.heldout
    first = 35  # window 35 reads rows 35..39, predicts row 41
    np.testing.assert_allclose(x[:, 0], (s[first:first + 5] - mean) / std)
    np.testing.assert_allclose(y[0], (s[first + 6] - mean) / std)
    np.testing.assert_allclose(y[-1], (s[n - 1 + 6] - mean) / std)
    assert t.describe()["columns"] == ["a", "b"] and t.describe()["scale"]["mean"] == pytest.approx(mean)


@pytest.mark.parametrize("arrays, match", [
    (dict(y=np.zeros(N, int)), "lacks the array 'x'"),
    (dict(x=dense()), "lacks the array 'y'"),
    (dict(x=dense(), y=np.zeros(N, int), X_test=dense()), "unknown array"),
    (dict(x=dense()[..., 0], y=np.zeros(N, int)), r"x must be \(N, T, I\) floats or \(N, T\) integer"),
    (dict(x=rng().integers(0, 3, (N, T)), y=np.zeros(N, int)), "add the vocabulary size as 'vocab'"),
    (dict(x=rng().integers(0, 9, (N, T)), y=np.zeros(N, int), vocab=np.int64(5)), r"token ids must lie in \[0, 5\)"),
    (dict(x=np.full((N, T, 2), np.nan), y=np.zeros(N, int)), "x contains NaN or inf"),
    (dict(x=dense(), y=np.zeros(N - 1, int)), "one row per sequence"),
    (dict(x=dense(), y=np.zeros((N, T + 1), int)), r"\(N, T\) labels per step \(T = 7\)"),
    (dict(x=dense(), y=np.array(["a"] * N)), "integer class ids or float values"),
    (dict(x=dense(), y=np.full(N, np.inf)), "y contains NaN or inf"),
    (dict(x=dense(), y=-np.ones(N, int)), "class ids must be >= 0"),
    (dict(x=dense(), y=np.zeros(N, int)), "a single class"),
    (dict(x=dense(), y=np.arange(N) % 2, lengths=np.zeros(N, int)), r"lengths must lie in \[1, 7\]"),
    (dict(x=dense(), y=np.arange(N) % 2, x_test=dense(5)), "x_test and y_test come together"),
    (dict(x=dense(), y=np.arange(N) % 2, x_test=dense(5, i=4), y_test=np.arange(5) % 2), "4 features per step"),
    (dict(x=dense(), y=np.arange(N) % 2, x_test=dense(5), y_test=np.ones(5)), "different kinds"),
    (dict(x=dense(n=3), y=np.arange(3) % 2), "holdout_fraction 0.1 of 3 sequences leaves 0 held out"),
    (dict(x=dense(), y=np.arange(N) % 2, vocab=np.int64(3)), "vocab is only for token ids"),
])
def test_malformed_npz_is_one_clear_error(tmp_path, arrays, match):
    with pytest.raises(ValueError, match=match):
        make_task("file", data=save(tmp_path, **arrays))


@pytest.mark.parametrize("text, kw, match", [
    ("1,2\n3,x\n", dict(window=1), "line 2: expected numbers"),
    ("1,2\n3\n", dict(window=1), "line 2: 1 values; the first row has 2"),
    ("a,b,c\n1,2\n", dict(window=1), "header names 3 columns"),
    ("1\n2\n3\n", dict(window=3), "make 0 windows"),
    ("1\nnan\n3\n4\n", dict(window=1), "NaN or inf"),
    ("1\n2\n", dict(), "window: a CSV series needs --window"),
])
def test_malformed_csv_is_one_clear_error(tmp_path, text, kw, match):
    p = tmp_path / "s.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        make_task("file", data=p, **kw)


def test_config_rules_for_the_file_task():
    with pytest.raises(ValueError, match="seq_len: the file task's sequences are the data file's"):
        TrainConfig(task="file", data="d.npz", seq_len=5)
    with pytest.raises(ValueError, match="window: only for the file task"):
        TrainConfig(task="adding", window=5)
    with pytest.raises(ValueError, match=r"holdout_fraction: expected a number in \(0, 1\)"):
        TrainConfig(task="file", data="d.npz", holdout_fraction=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-layer bidirectional GRU with dropout on a learnable classification file, and an LSTM
    on a series."""
    d = tmp_path_factory.mktemp("own")
    x = dense(200, 8, 2, seed=3)
    y = (x[:, 1, 0] > 0).astype(np.int64)  # the class is the sign of an early input
    lengths = rng(4).integers(3, 9, 200)
    np.savez(d / "cls.npz", x=x, y=y, lengths=lengths)
    cfg = TrainConfig(task="file", data=str(d / "cls.npz"), cell="gru", hidden=12, layers=2, dropout=0.2,
                      bidirectional=True, steps=300, lr=0.02, eval_every=100, holdout_fraction=0.2)
    s = train(cfg, d / "cls")
    t = np.arange(300.0)
    np.savetxt(d / "s.csv", np.stack([np.sin(t / 6), 50 + 20 * np.cos(t / 9)], 1), delimiter=",")
    cfg2 = TrainConfig(task="file", data=str(d / "s.csv"), window=12, horizon=2, cell="lstm", hidden=12,
                       steps=300, lr=0.02, eval_every=100)
    s2 = train(cfg2, d / "csv")
    return d, s, s2


def test_training_on_a_file_beats_its_baseline_and_finishes(trained):
    d, s, s2 = trained
    assert s["status"] == "finished" and s["steps"] == 300  # no solved level: the whole budget
    assert s["final_metric"] > s["baseline"] + 0.2  # accuracy well above the majority class
    assert s2["status"] == "finished" and s2["final_metric"] < 0.1 * s2["baseline"]


def test_predict_matches_the_model_and_keeps_units(trained, tmp_path):
    d, _, _ = trained
    data = np.load(d / "cls.npz")
    model, task, _ = serve.load(d / "cls" / "checkpoint.npz")
    assert (task["loss"], task["output"]) == ("ce", "last") and model.dropout == 0.2 and model.bidirectional
    out = serve.predict(model, task, data["x"][:70], data["lengths"][:70], batch_size=32)
    logits, _ = model.forward(np.swapaxes(data["x"][:70], 0, 1), data["lengths"][:70], output="last")
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out["probabilities"], p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)  # float32
    np.testing.assert_array_equal(out["labels"], logits.argmax(1))
    # the CLI: a CSV-trained model forecasts every window of a CSV in the series' own units
    r = CliRunner().invoke(cli, ["predict", str(d / "csv"), "--data", str(d / "s.csv"), "--out", str(tmp_path / "p.npz")])
    assert r.exit_code == 0, r.output
    f = np.load(tmp_path / "p.npz")["outputs"]
    s = np.loadtxt(d / "s.csv", delimiter=",")
    assert f.shape == (300 - 12 + 1, 2)
    err = np.abs(f[:-2] - s[13:]).max(0)  # window i ends at row i + 11, predicts row i + 13
    assert np.all(err < 0.25 * s.std(0)), err


@pytest.mark.parametrize("args, match", [
    (["--data", "missing.npz"], "data: no such file"),
    (["--data", "{bad}"], "x must be (N, T, 2) floats for this model"),
    (["--data", "{tok}"], "x must be (N, T, 2) floats"),
    (["--data", "{lens}"], "lengths must lie in [1, 8]"),
    (["--data", "{nan}"], "x contains NaN or inf"),
])
def test_predict_errors_are_usage_errors(trained, tmp_path, args, match):
    d, _, _ = trained
    np.savez(tmp_path / "bad.npz", x=dense(4, 8, 3))
    np.savez(tmp_path / "tok.npz", x=np.zeros((4, 8), np.int64))
    np.savez(tmp_path / "lens.npz", x=dense(4, 8, 2), lengths=np.array([1, 2, 9, 3]))
    np.savez(tmp_path / "nan.npz", x=np.full((4, 8, 2), np.nan, np.float32))
    args = [a.format(bad=tmp_path / "bad.npz", tok=tmp_path / "tok.npz", lens=tmp_path / "lens.npz",
                     nan=tmp_path / "nan.npz") for a in args]
    r = CliRunner().invoke(cli, ["predict", str(d / "cls"), *args, "--out", str(tmp_path / "o.npz")])
    assert r.exit_code == 2 and match in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o.npz").exists()


def test_predict_reads_checkpoints_written_before_tasks_described_their_outputs(tmp_path):
    from fastrnn.train import checkpoint as ckpt

    train(TrainConfig(task="copy", seq_len=3, cell="tanh", hidden=4, steps=2, eval_every=2), tmp_path / "r")
    path = tmp_path / "r" / "checkpoint.npz"
    meta, params, opt, carry = ckpt.load(path)
    for k in ("loss", "output", "tokens"):
        del meta["task"][k]
    ckpt.save(path, meta, params, opt, carry)
    _, task, _ = serve.load(path)
    assert (task["loss"], task["output"]) == ("ce", "all")  # the copy task's, from its class


def test_export_is_loadable_without_fastrnn(trained, tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from safetensors.numpy import load_file

    d, _, _ = trained
    r = CliRunner().invoke(cli, ["export", str(d / "cls"), "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 0, r.output
    tensors = load_file(tmp_path / "m.safetensors")
    model, _ = load_model(d / "cls" / "best.npz")
    assert set(tensors) == set(model.shapes)
    for k, a in model.numpy_params().items():
        np.testing.assert_array_equal(tensors[k], a)
    with safe_open(tmp_path / "m.safetensors", "np") as f:
        meta = f.metadata()
    assert json.loads(meta["fastrnn_model"])["num_layers"] == 2
    assert json.loads(meta["fastrnn_task"])["loss"] == "ce"
    module = json.loads(meta["torch_module"])
    assert module["cls"] == "torch.nn.GRU" and module["bidirectional"] is True
    torch = pytest.importorskip("torch")  # the README's snippet: straight into torch.nn.GRU
    from safetensors.torch import load_file as load_torch

    sd = load_torch(tmp_path / "m.safetensors")
    gru = torch.nn.GRU(2, 12, num_layers=2, bidirectional=True)
    gru.load_state_dict({k: v for k, v in sd.items() if not k.startswith("readout.")})
    lin = torch.nn.Linear(24, 2)
    lin.load_state_dict({k.removeprefix("readout."): v for k, v in sd.items() if k.startswith("readout.")})
    x = dense(5, 8, 2, seed=9)
    with torch.no_grad():
        _, h_n = gru(torch.from_numpy(x).transpose(0, 1))
        ref = lin(torch.cat([h_n[-2], h_n[-1]], 1)).numpy()  # both directions' final states
    np.testing.assert_allclose(ref, model.forward(np.swapaxes(x, 0, 1), output="last")[0], rtol=1e-4, atol=1e-5)


def test_export_without_safetensors_is_a_clear_error(trained, tmp_path, monkeypatch):
    import sys

    d, _, _ = trained
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    r = CliRunner().invoke(cli, ["export", str(d / "cls"), "--out", str(tmp_path / "m.safetensors")])
    assert r.exit_code == 2 and "pip install 'fastrnn[export]'" in r.output


@pytest.mark.slow  # worker processes
def test_compare_on_a_file_reports_no_solved_level(tmp_path):
    x = dense(40, 5, 2)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0, 0] > 0).astype(np.int64))
    r = CliRunner().invoke(cli, ["compare", "--task", "file", "--data", str(tmp_path / "d.npz"), "--cells", "tanh",
                                 "--seeds", "1", "--steps", "20", "--eval-every", "10", "--hidden", "4",
                                 "--workers", "1", "--out", str(tmp_path / "c"), "-q"])
    assert r.exit_code == 0, r.output
    assert "tanh  accuracy" in r.output and "solved" not in r.output
    report = (tmp_path / "c" / "report.md").read_text()
    assert "no solved level (your own data)" in report and "Runs train their whole budget" in report
    assert json.loads((tmp_path / "c" / "runs" / "tanh-s0" / "summary.json").read_text())["status"] == "finished"
