"""Resuming by folder (issue #30): every run folder keeps its options and command in
config.json, `fastrnn train --out DIR --resume` alone continues with them, a larger --steps
extends a run that ran out of steps (to the same weights as a run given that budget from the
start), and the command says where it resumed from."""
import json
import shlex

import numpy as np
from click.testing import CliRunner

from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import load_model, train
from fastrnn_cli.main import cli
from stops import StopAt

OPTS = ["--cell", "gru", "--hidden", "7", "--seq-len", "9", "--batch-size", "6", "--eval-every", "10",
        "--lr", "3e-3", "--clip", "0", "--seed", "3", "-q"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def weights(folder):
    return load_model(folder / "checkpoint.npz")[0].flat.copy()


def test_the_folder_holds_its_options_and_command(tmp_path):
    out = tmp_path / "r"
    assert run("train", *OPTS, "--steps", "20", "--out", out).exit_code == 0
    doc = json.loads((out / "config.json").read_text())
    cfg = TrainConfig.from_dict(doc["config"])
    assert (cfg.cell, cfg.hidden, cfg.seq_len, cfg.clip, cfg.seed, cfg.steps) == ("gru", 7, 9, None, 3, 20)
    words = shlex.split(doc["command"])
    assert words[:2] == ["fastrnn", "train"] and words[-2:] == ["--out", str(out)]
    again = tmp_path / "again"  # the command, as written, reruns the same run
    assert run(*words[1:-2], "--out", again, "-q").exit_code == 0
    np.testing.assert_array_equal(weights(out), weights(again))


def test_resume_alone_continues_with_the_stored_options(tmp_path):
    out, whole = tmp_path / "r", tmp_path / "whole"
    cfg = TrainConfig.from_dict(dict(task="adding", cell="gru", hidden=7, seq_len=9, batch_size=6, eval_every=10,
                                     lr=3e-3, clip=None, seed=3, steps=40))
    train(cfg, whole)
    interrupted = train(cfg, out, stop=(s := StopAt(20)), progress=s.progress)
    assert interrupted["status"] == "interrupted"
    r = run("train", "--out", out, "--resume")  # no other option
    assert r.exit_code == 0, r.output
    assert "resumed from step 20 (of 40)" in r.stderr
    np.testing.assert_array_equal(weights(out), weights(whole))


def test_a_larger_steps_extends_a_finished_run(tmp_path):
    out, whole = tmp_path / "r", tmp_path / "whole"
    assert run("train", *OPTS, "--steps", "20", "--out", out).exit_code == 0
    r = run("train", "--out", out, "--resume", "--steps", "40")
    assert r.exit_code == 0, r.output
    assert "extended from step 20 (of 40)" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["config"]["steps"] == 40
    assert [rec["step"] for rec in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == \
        [0, 10, 20, 30, 40]
    assert run("train", *OPTS, "--steps", "40", "--out", whole).exit_code == 0
    np.testing.assert_array_equal(weights(out), weights(whole))  # a constant rate: the same run
    r = run("train", "--out", out, "--resume")  # nothing left to do: the summary as it stands
    assert r.exit_code == 0 and json.loads(r.stdout)["steps"] == 40


def test_resume_refuses_other_options_and_a_run_that_cannot_go_on(tmp_path):
    out = tmp_path / "r"
    assert run("train", *OPTS, "--steps", "20", "--out", out).exit_code == 0
    r = run("train", "--out", out, "--resume", "--hidden", "8")
    assert r.exit_code == 2 and "other options (hidden)" in r.output
    solved = tmp_path / "s"  # a run that ended solved (early stop) is not trained on
    assert run("train", "--cell", "gru", "--task", "adding", "--seq-len", "3", "--hidden", "16", "--lr", "3e-2",
               "--steps", "600", "--eval-every", "20", "-q", "--out", solved).exit_code == 0
    done = json.loads((solved / "summary.json").read_text())
    assert done["status"] == "solved", done
    r = run("train", "--out", solved, "--resume", "--steps", "5000")
    assert r.exit_code == 0 and "nothing is extended" in r.stderr
    assert json.loads((solved / "summary.json").read_text()) == done


def test_resume_reads_a_run_written_before_config_json(tmp_path):
    out = tmp_path / "r"
    assert run("train", *OPTS, "--steps", "20", "--out", out).exit_code == 0
    (out / "config.json").unlink()  # as runs written before this version
    r = run("train", "--out", out, "--resume", "--steps", "30")
    assert r.exit_code == 0 and "extended from step 20 (of 30)" in r.stderr, r.output


def test_a_broken_config_json_is_one_clear_error(tmp_path):
    out = tmp_path / "r"
    assert run("train", *OPTS, "--steps", "20", "--out", out).exit_code == 0
    (out / "summary.json").unlink()
    doc = json.loads((out / "config.json").read_text())
    doc["config"]["hidden"] = -3  # edited by hand
    (out / "config.json").write_text(json.dumps(doc))
    r = run("train", "--out", out, "--resume")
    assert r.exit_code == 2 and "config.json holds no usable config (hidden:" in r.output, r.output
    (out / "config.json").write_text("[" * 100000)
    r = run("train", "--out", out, "--resume")
    assert r.exit_code == 2 and "config.json" in r.output and r.exception is not None \
        and isinstance(r.exception, SystemExit), r.output
