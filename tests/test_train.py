"""Optimizers against hand-computed steps, clipping, divergence handling, checkpoints,
and resume equality."""
import json

import numpy as np
import pytest

from fastrnn.train import checkpoint as ckpt
from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import RunExists, load_model, train
from fastrnn.clip import clip_by_value, clip_global_norm
from fastrnn.train.optim import make_optimizer
from stops import StopAt

P0 = np.array([1.0, -2.0])
G1 = np.array([0.5, 0.25])
G2 = np.array([-0.1, 0.4])


def two_steps(name, **kw):
    opt = make_optimizer(name, 2, 0.1, dtype=np.float64, **kw)
    p = P0.copy()
    opt.step(p, G1.copy())
    p1 = p.copy()
    opt.step(p, G2.copy())
    return p1, p


def test_sgd():
    p1, p2 = two_steps("sgd", momentum=0.0)
    np.testing.assert_allclose(p1, [0.95, -2.025])
    np.testing.assert_allclose(p2, [0.96, -2.065])


def test_sgd_momentum():
    p1, p2 = two_steps("sgd", momentum=0.9)
    np.testing.assert_allclose(p1, [0.95, -2.025])
    v2 = 0.9 * G1 + G2  # [0.35, 0.625]
    np.testing.assert_allclose(p2, p1 - 0.1 * v2)
    np.testing.assert_allclose(p2, [0.915, -2.0875])


def test_adam():
    p1, p2 = two_steps("adam")
    np.testing.assert_allclose(p1, P0 - 0.1 * G1 / (np.abs(G1) + 1e-8))  # first step ~ lr * sign(g)
    m = 0.9 * 0.1 * G1 + 0.1 * G2
    v = 0.999 * 0.001 * G1 ** 2 + 0.001 * G2 ** 2
    expect = p1 - 0.1 * (m / 0.19) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(p2, expect, rtol=1e-12)
    # by hand (eps left out): p1 = [0.9, -2.1], m = [0.035, 0.0625], v = [0.00025975, 0.0002224375]
    np.testing.assert_allclose(p2, [0.9 - 0.1 * 0.035 / 0.19 / np.sqrt(0.00025975 / 0.001999),
                                    -2.1 - 0.1 * 0.0625 / 0.19 / np.sqrt(0.0002224375 / 0.001999)], rtol=1e-7)


def test_rmsprop():
    p1, p2 = two_steps("rmsprop")
    v1 = 0.1 * G1 ** 2
    np.testing.assert_allclose(p1, P0 - 0.1 * G1 / (np.sqrt(v1) + 1e-8))
    v2 = 0.9 * v1 + 0.1 * G2 ** 2
    np.testing.assert_allclose(p2, p1 - 0.1 * G2 / (np.sqrt(v2) + 1e-8))


def test_adagrad():
    p1, p2 = two_steps("adagrad")
    np.testing.assert_allclose(p1, P0 - 0.1 * np.sign(G1), rtol=1e-7)
    np.testing.assert_allclose(p2, p1 - 0.1 * G2 / (np.sqrt(G1 ** 2 + G2 ** 2) + 1e-8))


def test_weight_decay_is_l2():
    opt = make_optimizer("sgd", 2, 0.1, weight_decay=0.5, momentum=0.0, dtype=np.float64)
    p = P0.copy()
    opt.step(p, G1.copy())
    np.testing.assert_allclose(p, P0 - 0.1 * (G1 + 0.5 * P0))


def test_optimizer_errors():
    with pytest.raises(ValueError, match="lr: expected a finite positive number; got 0"):
        make_optimizer("adam", 2, 0)
    with pytest.raises(ValueError, match="optimizer: expected one of sgd, adam, rmsprop, adagrad; got 'lbfgs'"):
        make_optimizer("lbfgs", 2, 0.1)


def test_clip_global_norm():
    g = np.array([3.0, 4.0])
    assert clip_global_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g, [0.6, 0.8])
    g = np.array([0.3, 0.4])
    assert clip_global_norm(g, 1.0) == pytest.approx(0.5)
    np.testing.assert_allclose(g, [0.3, 0.4])  # below the threshold: untouched
    g = np.array([np.nan, 1.0])
    assert not np.isfinite(clip_global_norm(g, 1.0))
    g = np.array([-7.0, 0.5, 9.0])
    clip_by_value(g, 5.0)
    np.testing.assert_array_equal(g, [-5.0, 0.5, 5.0])


SMALL = dict(task="adding", seq_len=8, hidden=8, batch_size=8, eval_every=10)


def test_divergence_is_recorded_not_raised(tmp_path):
    cfg = TrainConfig(cell="relu", optimizer="sgd", lr=1e6, momentum=0.0, clip=None, steps=200, **SMALL)
    s = train(cfg, tmp_path / "run")
    assert s["status"] == "diverged"
    assert s["message"] == f"diverged at step {s['diverged_at']}" and 1 <= s["diverged_at"] <= 200
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["status"] == "diverged"


def test_lstm_solves_a_short_adding_problem(tmp_path):
    cfg = TrainConfig(task="adding", cell="lstm", seq_len=10, hidden=16, batch_size=32, steps=1500,
                      lr=2e-2, eval_every=50)
    s = train(cfg, tmp_path / "run")
    assert s["status"] == "solved" and s["final_metric"] < 0.01 and s["steps_to_solve"] <= 1500
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["step"] == 0 and json.loads(lines[-1])["step"] == s["steps"]


@pytest.mark.parametrize("task_cfg", [
    dict(cell="gru", **SMALL),
    dict(cell="lstm", task="text", seq_len=6, hidden=8, batch_size=4, eval_every=10, optimizer="adagrad"),
    # schedules: the plateau's decays (every evaluation: min_delta leaves none an improvement)
    # and the patience counters live in the checkpoint; cosine and step are functions of the step
    dict(cell="tanh", lr_schedule="plateau", lr_patience=1, min_delta=10.0, **SMALL),
    dict(cell="relu", lr_schedule="cosine", warmup_steps=12, **SMALL),
    dict(cell="gru", lr_schedule="step", lr_step=20, lr_gamma=0.5, optimizer="sgd", **SMALL),
    # dropout masks come from the run's generator, whose state the checkpoint keeps
    dict(cell="lstm", dropout=0.5, **dict(SMALL, layers=3)),
], ids=["gru", "text", "plateau", "cosine-warmup", "step", "dropout"])
def test_resume_gives_the_same_final_weights(tmp_path, task_cfg):
    if task_cfg["task"] == "text":
        (tmp_path / "t.txt").write_text("hello world, hello recurrent networks. " * 30)
        task_cfg = dict(task_cfg, data=str(tmp_path / "t.txt"))
    cfg = TrainConfig(steps=60, lr=1e-2, early_stop=False, **task_cfg)
    full = train(cfg, tmp_path / "a")
    flag = StopAt(35)  # not on an evaluation step: the checkpoint is the interrupt's own
    part = train(cfg, tmp_path / "b", progress=flag.progress, stop=flag)
    assert part["status"] == "interrupted" and part["steps"] == 35
    assert not (tmp_path / "b" / "summary.json").exists()
    with pytest.raises(RunExists, match="pass --resume"):
        train(cfg, tmp_path / "b")
    rest = train(cfg, tmp_path / "b", resume=True)
    assert rest["steps"] == full["steps"] == 60
    a, _ = load_model(tmp_path / "a" / "checkpoint.npz")
    b, _ = load_model(tmp_path / "b" / "checkpoint.npz")
    np.testing.assert_array_equal(a.flat, b.flat)
    strip = lambda p: [{k: v for k, v in json.loads(ln).items() if k not in ("wall_seconds", "compile_seconds", "watch_seconds")}  # noqa: E731
                       for ln in p.read_text().splitlines()]
    assert strip(tmp_path / "a" / "metrics.jsonl") == strip(tmp_path / "b" / "metrics.jsonl")
    if task_cfg.get("lr_schedule") == "plateau":  # the rate fell at every evaluation, and resumed so
        rates = [json.loads(ln)["lr"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[1:]]
        assert rates == pytest.approx([1e-2 * 0.1 ** k for k in range(len(rates))], rel=1e-12)


def test_finished_run_is_never_overwritten(tmp_path):
    cfg = TrainConfig(cell="tanh", steps=20, **SMALL)
    first = train(cfg, tmp_path / "r")
    before = (tmp_path / "r" / "summary.json").read_bytes()
    with pytest.raises(RunExists, match="already holds a finished run"):
        train(cfg, tmp_path / "r")
    assert train(cfg, tmp_path / "r", resume=True) == first  # resume of a finished run: nothing to do
    assert (tmp_path / "r" / "summary.json").read_bytes() == before


def test_resume_with_other_options_is_refused(tmp_path):
    cfg = TrainConfig(cell="tanh", steps=40, **SMALL)
    flag = StopAt(15)
    train(cfg, tmp_path / "r", progress=flag.progress, stop=flag)
    other = TrainConfig(cell="tanh", steps=40, lr=0.5, **SMALL)
    with pytest.raises(ValueError, match=r"written with other options \(lr\)"):
        train(other, tmp_path / "r", resume=True)


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="checkpoint: .* corrupt or not a fastrnn checkpoint"):
        ckpt.load(bad)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastrnn checkpoint"):
        ckpt.load(tmp_path / "plain.npz")
    np.savez(tmp_path / "obj.npz", meta=np.array([{"x": 1}], dtype=object), params=np.zeros(3))
    with pytest.raises(ValueError, match="corrupt or not a fastrnn checkpoint"):
        ckpt.load(tmp_path / "obj.npz")  # never unpickled
    meta = np.frombuffer(json.dumps({"format": "fastrnn-checkpoint", "version": 99}).encode(), np.uint8)
    np.savez(tmp_path / "v99.npz", meta=meta, params=np.zeros(3))
    with pytest.raises(ValueError, match="format version 99"):
        ckpt.load(tmp_path / "v99.npz")
    with pytest.raises(ValueError, match="no such file"):
        ckpt.load(tmp_path / "missing.npz")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temp file."""
    path = tmp_path / "c.npz"
    ckpt.save(path, {"step": 1}, np.arange(3.0))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        ckpt.save(path, {"step": 2}, np.arange(3.0) + 1)
    meta, params, _, _ = ckpt.load(path)
    assert meta["step"] == 1 and np.array_equal(params, np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden=0), "hidden: expected a positive integer; got 0"),
    (dict(lr=-1.0), "lr: expected a finite positive number; got -1.0"),
    (dict(cell="elman"), "cell: expected one of tanh, relu, gru, lstm"),
    (dict(task="parity"), "task: expected one of adding"),
    (dict(steps=0), "steps: expected a positive integer"),
    (dict(momentum=1.0), r"momentum: expected a finite number in \[0, 1\)"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="config: unknown option"):
        TrainConfig.from_dict({"cell": "gru", "hiden": 3})


@pytest.mark.parametrize("carry", [True, False])
def test_text_chunks_carry_the_state_unless_told_not_to(tmp_path, carry):
    """--no-carry-state (study 10's ablation): every training chunk starts from zeros; by
    default each starts from the previous chunk's final state."""
    from fastrnn.train.loop import build

    (tmp_path / "t.txt").write_text("hello world, hello recurrent networks. " * 30)
    cfg = TrainConfig(task="text", data=str(tmp_path / "t.txt"), cell="gru", seq_len=6, hidden=8, batch_size=4,
                      steps=4, eval_every=10, carry_state=carry, watch=False)
    task, model = build(cfg)
    seen, inner = [], model.loss_and_grad

    def spy(*a, **kw):
        seen.append(kw.get("state"))
        res = inner(*a, **kw)
        seen[-1] = (seen[-1], res.state)
        return res
    model.loss_and_grad = spy
    train(cfg, tmp_path / "run", prepared=(task, model))
    assert len(seen) == 4 and seen[0][0] is None
    for (_, before), (given, _) in zip(seen, seen[1:]):
        assert (given is before) if carry else (given is None)


def test_carry_state_is_for_the_text_task_only():
    with pytest.raises(ValueError, match="carry_state: only the text task carries its state"):
        TrainConfig(task="adding", carry_state=False)
    assert "--no-carry-state" in TrainConfig(task="text", data="t.txt", carry_state=False).command("o")
