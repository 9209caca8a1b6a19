"""The recurrence watched while it trains (fastrnn/watch.py): each recorded number against an
independent computation, the records in a run, the run unchanged by them, and the reports."""
import json

import numpy as np
import pytest

import naive
from fastrnn import gradients, watch
from fastrnn.cells import CELLS
from fastrnn.init import spectral_radius
from fastrnn.tasks import make_task
from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import build, train


def _model(cell, task="adding", seq_len=12, H=6, layers=1):
    return build(TrainConfig(task=task, cell=cell, seq_len=seq_len, hidden=H, layers=layers, dtype="float64"))


@pytest.mark.parametrize("cell", list(CELLS))
def test_radius_is_each_gate_blocks_spectral_radius(cell):
    task, model = _model(cell, layers=2)
    got = watch.record(model, task)
    p, H = model.numpy_params(), model.hidden_size
    want = []
    for k in range(2):
        w = p[f"weight_hh_l{k}"]
        if cell == "exprnn":  # the recurrent matrix is expm(A): orthogonal, so its radius is 1
            w = naive.expm(naive.skew(w, H))
            assert abs(spectral_radius(w) - 1) < 1e-12
        for g in range(CELLS[cell].gates):
            block = w[g * H:(g + 1) * H]
            want.append(np.abs(block).max() if block.ndim == 1 else spectral_radius(block))
    np.testing.assert_allclose([r["radius"] for r in got["recurrence"]["radius"]], want, rtol=1e-12)
    assert got["radius"] == pytest.approx(max(want), rel=1e-12)


@pytest.mark.parametrize("cell", list(CELLS))
def test_timescale_against_the_reference_gates(cell):
    """Median of -1/ln(g) over units, sequences and real steps (order task: lengths vary), g the
    gate that keeps the state, from the float64 reference's forward pass."""
    task, model = _model(cell, task="order", seq_len=20)
    got = watch.record(model, task)
    if CELLS[cell].memory_gate < 0:
        assert got["timescale"] is None and got["recurrence"]["timescale"] is None
        return
    x, _, lengths = task.probe(watch.PROBE)
    onehot = np.eye(task.input_size)[x]
    caches, _, _ = naive.forward(cell, naive.params_of(model), 1, onehot, lengths)
    gate = [c[0][3][1] for c in caches]  # the LSTM's f of (i, f, g, o, c), the GRU's z of (r, z, n, .)
    g = np.stack(gate)[np.arange(len(gate))[:, None] < lengths[None, :]]
    want = -1 / np.log(np.quantile(g.ravel(), [0.25, 0.5, 0.75], method="lower"))
    rec = got["recurrence"]["timescale"][0]
    np.testing.assert_allclose([rec["q25"], rec["median"], rec["q75"]], want, rtol=1e-10)
    assert got["timescale"] == rec["median"]


@pytest.mark.parametrize("cell", ["tanh", "lstm", "indrnn"])
def test_grad_ratio_is_the_gradient_reports_ratio(cell):
    """At lag T - 1 on a fixed-length task it is `fastrnn gradients`' last/first ratio on the same batch."""
    task, model = _model(cell, seq_len=10)
    x, target, lengths = task.probe(watch.PROBE)
    norms = gradients.grad_norm_by_lag(model, task, x, target, lengths)
    got = watch.grad_ratio(model, task, x, target, lengths, lag=9)
    np.testing.assert_allclose(got, norms[-1] / norms[0], rtol=1e-12)
    assert watch.record(model, task)["recurrence"]["lag"] == 9  # the adding task's lag is T, capped at T - 1


def test_copy_lag_and_probe_leaves_the_text_stream(tmp_path):
    assert make_task("copy", 30).dependency_length == 40
    book = tmp_path / "book.txt"
    book.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    task = make_task("text", 10, str(book))
    rng = np.random.default_rng(0)
    task.batch(rng, 4)
    cursor = task.cursor.copy()
    x, target, _ = task.probe(8)
    assert x.shape == (10, 8) and np.array_equal(target[:-1], x[1:])
    np.testing.assert_array_equal(task.cursor, cursor)


def _run(tmp_path, name, **kw):
    cfg = TrainConfig(task="adding", cell="lstm", seq_len=15, hidden=8, steps=40, eval_every=10, **kw)
    train(cfg, tmp_path / name)
    recs = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return recs, np.load(tmp_path / name / "checkpoint.npz", allow_pickle=False)


def test_watching_changes_nothing_it_watches(tmp_path):
    """Every record gains the fields; the training itself (losses, final weights) is the same
    bits with --watch and --no-watch."""
    on, ck_on = _run(tmp_path, "on")
    off, ck_off = _run(tmp_path, "off", watch=False)
    assert len(on) == len(off) == 5
    for a, b in zip(on, off):
        assert set(a) - set(b) == {"radius", "timescale", "grad_ratio", "recurrence", "watch_seconds"}
        assert a["loss"] == b["loss"] and a["train_loss"] == b["train_loss"] and a["grad_norm"] == b["grad_norm"]
        assert a["radius"] > 0 and a["timescale"] > 0 and 0 < a["grad_ratio"] and a["recurrence"]["lag"] == 14
    for k in ck_on.files:
        if k != "meta":
            np.testing.assert_array_equal(ck_on[k], ck_off[k])


def test_reports_plot_what_was_watched(tmp_path):
    from fastrnn.overlay import overlay

    _run(tmp_path, "lstm")
    cfg = TrainConfig(task="adding", cell="tanh", seq_len=15, hidden=8, steps=20, eval_every=10)
    train(cfg, tmp_path / "tanh")
    for y in ("radius", "timescale", "grad_ratio"):
        res = overlay([tmp_path / "lstm", tmp_path / "tanh"], tmp_path / f"rep-{y}", y=y, write_csv=True)
        assert res["png"].stat().st_size > 0
    header = (tmp_path / "rep-radius" / "overlay.csv").read_text().splitlines()[0]
    assert header.endswith("radius,timescale,grad_ratio")
    with pytest.raises(ValueError, match="y: none of these runs recorded timescale .only the LSTM and GRU"):
        overlay([tmp_path / "tanh"], tmp_path / "rep-x", y="timescale")
    train(TrainConfig(task="adding", cell="gru", seq_len=15, hidden=8, steps=10, eval_every=10, watch=False),
          tmp_path / "quiet")
    with pytest.raises(ValueError, match="y: none of these runs recorded radius; .* unless trained with --no-watch"):
        overlay([tmp_path / "quiet"], tmp_path / "rep-y", y="radius")
