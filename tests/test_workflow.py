"""Training as researchers run it (issue #14): schedules, patience, the best checkpoint, which
checkpoint a command read, progress lines off a terminal, and what --seq-len means per task."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn.choices import SEQ_LEN_MEANING, TASKS
from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import train
from fastrnn.train.schedule import Schedule
from fastrnn_cli.main import cli

SMALL = dict(task="adding", seq_len=8, hidden=8, batch_size=8, eval_every=10)


def test_schedule_rates():
    cos = Schedule(TrainConfig(lr=0.1, steps=110, lr_schedule="cosine", warmup_steps=10), False)
    assert [cos.lr(s) for s in (0, 4, 9)] == pytest.approx([0.01, 0.05, 0.1])  # linear warmup
    assert cos.lr(10) == pytest.approx(0.1) and cos.lr(60) == pytest.approx(0.05) and cos.lr(110) == pytest.approx(0)
    step = Schedule(TrainConfig(lr=0.1, steps=90, lr_schedule="step", lr_gamma=0.5), False)
    assert [step.lr(s) for s in (0, 29, 30, 59, 60, 89)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    const = Schedule(TrainConfig(lr=0.1, steps=90), False)
    assert {const.lr(s) for s in range(90)} == {0.1}


def test_plateau_and_patience_bookkeeping():
    s = Schedule(TrainConfig(lr=1.0, lr_schedule="plateau", lr_patience=2, lr_gamma=0.5, patience=3,
                             min_delta=0.01), higher_is_better=False)
    seen = [s.observe(i, m) for i, m in enumerate([1.0, 0.5, 0.495, 0.49, 0.6])]
    assert seen == [True, True, False, False, False]  # 0.495 is better, but not by min_delta
    assert s.best == 0.5 and s.best_step == 1 and s.bad == 3 and s.out_of_patience()
    assert s.decays == 1 and s.lr(0) == 0.5  # two evaluations without improvement: one decay
    acc = Schedule(TrainConfig(), higher_is_better=True)
    assert [acc.observe(i, m) for i, m in enumerate([0.2, 0.5, 0.4])] == [True, True, False]
    fresh = Schedule(TrainConfig(lr_schedule="plateau"), False)
    fresh.load_state_dict(s.state_dict())
    assert fresh.state_dict() == s.state_dict()
    for bad in ({"best": "x"}, {"bad": -1}, {"decays": 1.5}, []):
        with pytest.raises((TypeError, ValueError)):
            Schedule(TrainConfig(), False).load_state_dict(bad)


@pytest.mark.parametrize("kw, match", [
    (dict(lr_schedule="linear"), "lr_schedule: expected one of constant, cosine, step, plateau"),
    (dict(patience=0), "patience: expected a positive integer"),
    (dict(lr_gamma=1.5), r"lr_gamma: expected a number in \(0, 1\]"),
    (dict(warmup_steps=-1), "warmup_steps: expected an integer >= 0"),
    (dict(min_delta=-0.1), "min_delta: expected a finite number >= 0"),
    (dict(early_stop="no"), "early_stop: expected true or false"),
])
def test_schedule_option_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_patience_stops_and_keeps_the_best_model(tmp_path):
    """min_delta 10: nothing after the first evaluation is an improvement, so patience 2 stops
    at the second evaluation after step 0; best.npz holds the step-0 model, and evaluate on the
    folder reads it and says so."""
    out = tmp_path / "run"
    s = train(TrainConfig(cell="tanh", steps=200, patience=2, min_delta=10.0, **SMALL), out)
    assert s["stopped"] == "patience" and s["steps"] == 20 and s["status"] == "unsolved"
    assert s["best_step"] == 0 and "no held-out improvement in 2 evaluations" in s["message"]
    r = CliRunner().invoke(cli, ["evaluate", str(out)])
    assert r.exit_code == 0, r.output
    assert "best.npz (the best held-out model, step 0)" in r.stderr
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["kind"] == "best" and rec["step"] == 0 and rec["metric"] == pytest.approx(s["best_metric"])
    r = CliRunner().invoke(cli, ["evaluate", str(out / "checkpoint.npz")])
    assert r.exit_code == 0 and "the last checkpoint, step 20" in r.output


def test_best_checkpoint_is_the_best_evaluation(tmp_path):
    out = tmp_path / "run"
    s = train(TrainConfig(cell="gru", steps=80, lr=3e-2, **SMALL), out)
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    best = min(recs, key=lambda r: r["metric"])
    assert s["best_step"] == best["step"] and s["best_metric"] == best["metric"]
    r = CliRunner().invoke(cli, ["evaluate", str(out / "best.npz")])
    assert json.loads(r.output.strip().splitlines()[-1])["metric"] == pytest.approx(best["metric"], rel=1e-12)
    assert [r["lr"] for r in recs] == [None] + [3e-2] * (len(recs) - 1)  # the rate is in every record


def test_text_trains_past_solved_unless_asked(tmp_path):
    """Beating the bigram is not where a character model stops (the task's default); it does
    with --early-stop, and the long-dependency tasks still stop by default."""
    f = tmp_path / "t.txt"
    f.write_text("to be or not to be, that is the question. " * 50)
    base = dict(task="text", data=str(f), cell="gru", seq_len=12, hidden=16, batch_size=4, steps=100,
                eval_every=10, lr=0.01)
    on = train(TrainConfig(**base), tmp_path / "a")
    assert on["steps"] == 100 and on["status"] == "finished" and on["steps_to_solve"] < 100  # measured: 50
    assert on["message"] == f"finished (beat the bigram baseline at step {on['steps_to_solve']})"
    stop = train(TrainConfig(early_stop=True, **base), tmp_path / "b")
    assert stop["steps"] == stop["steps_to_solve"] == on["steps_to_solve"]
    add = train(TrainConfig(cell="lstm", task="adding", seq_len=5, hidden=16, batch_size=32, steps=3000,
                            lr=3e-2, eval_every=50), tmp_path / "c")
    assert add["status"] == "solved" and add["steps"] == add["steps_to_solve"] < 3000


def test_train_off_a_terminal_prints_one_line_per_evaluation(tmp_path):
    r = CliRunner().invoke(cli, ["train", "--cell", "tanh", "--seq-len", "6", "--hidden", "4", "--steps", "30",
                                 "--eval-every", "10", "--lr-schedule", "cosine", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["0/30", "10/30", "20/30", "30/30"]
    assert all("train loss" in ln and "held-out loss" in ln and " mse " in ln and "steps/s" in ln for ln in lines)
    lr = [float(ln.split(" lr ")[1].split()[0]) for ln in lines[1:]]
    assert lr == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * s / 30)) for s in (9, 19, 29)], rel=1e-2)
    assert "train: T = 6, the sequence length (reads T steps); up to 30 steps, roughly 1 min" in r.output
    line = r.output.split("config: ")[1].splitlines()[0]  # what differs from the defaults, short
    assert line.startswith("cell=tanh seed=0 task=adding seq_len=6 hidden=4 steps=30") and "lr_schedule=cosine" in line
    assert len(line) < 200 and "config.json" in line
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert cfg["cell"] == "tanh" and cfg["hidden"] == 4 and cfg["lr_schedule"] == "cosine"
    quiet = CliRunner().invoke(cli, ["train", "--cell", "tanh", "--seq-len", "6", "--hidden", "4", "--steps", "10",
                                     "--quiet", "--out", str(tmp_path / "q")])
    assert quiet.exit_code == 0 and len(quiet.output.strip().splitlines()) == 1  # only the JSON result


def test_seq_len_says_what_it_means_for_every_task():
    r = CliRunner().invoke(cli, ["train", "--help"])
    text = " ".join(r.output.split())
    assert set(SEQ_LEN_MEANING) == set(TASKS)
    for task, meaning in SEQ_LEN_MEANING.items():
        assert f"{task}: {meaning}" in text, task


def test_sample_without_prime_shows_the_character_it_started_from(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcabd abcabd " * 30)
    out = tmp_path / "char"
    r = CliRunner().invoke(cli, ["train", "--task", "text", "--data", str(f), "--cell", "gru", "--seq-len", "6",
                                 "--hidden", "8", "--batch-size", "4", "--steps", "20", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    from fastrnn.tasks.text import sample
    from fastrnn.train.loop import load_model

    model, meta = load_model(out / "checkpoint.npz")
    vocab = meta["task"]["vocab"]
    text = sample(model, vocab, 12, seed=3)
    assert len(text) == 13 and set(text) <= set(vocab)
    first = vocab[int(np.random.default_rng(3).integers(len(vocab)))]
    assert text[0] == first  # the drawn start, then 12 generated characters
    r = CliRunner().invoke(cli, ["sample", str(out), "--length", "12", "--seed", "3"])
    assert r.exit_code == 0 and text in r.output and "read " in r.output


def test_report_overlays_runs_and_comparison_folders(tmp_path):
    """fastrnn report on a sweep-like folder (runs/*) and a single run: one curve, one table row
    and one CSV block per run; a folder without runs is a usage error."""
    sweep = tmp_path / "sweep"
    a = train(TrainConfig(cell="tanh", steps=20, **SMALL), sweep / "runs" / "tanh-s0")
    b = train(TrainConfig(cell="gru", steps=30, **SMALL), sweep / "runs" / "gru-s0")
    one = train(TrainConfig(cell="lstm", steps=10, **SMALL), tmp_path / "solo")
    out = tmp_path / "rep"
    r = CliRunner().invoke(cli, ["report", str(sweep), str(tmp_path / "solo"), "--out", str(out), "--csv",
                                 "--y", "loss"])
    assert r.exit_code == 0, r.output
    rows = [ln for ln in r.output.splitlines() if ln.startswith("| sweep/") or ln.startswith("| solo")]
    assert [ln.split(" | ")[0][2:] for ln in rows] == ["sweep/gru-s0", "sweep/tanh-s0", "solo"]
    assert f"| {b['steps']} |" in rows[0] and f"| {a['steps']} |" in rows[1] and f"| {one['steps']} |" in rows[2]
    assert (out / "overlay.png").read_bytes()[:4] == b"\x89PNG" and (out / "overlay.md").exists()
    import csv

    recs = list(csv.DictReader(open(out / "overlay.csv")))
    assert len(recs) == 4 + 3 + 2  # evaluations at 0, 10, 20, 30 / 0, 10, 20 / 0, 10
    assert {r["run"] for r in recs} == {"sweep/gru-s0", "sweep/tanh-s0", "solo"}
    gru_last = [r for r in recs if r["run"] == "sweep/gru-s0"][-1]
    assert float(gru_last["metric"]) == pytest.approx(b["final_metric"], rel=1e-12)
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "empty"), "--out", str(out)])
    assert r.exit_code == 2 and "holds no run" in r.output
