"""The training commands through the CLI: results, and one-line usage errors (exit 2, no
traceback, nothing written) for bad input."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn_cli.main import cli

TINY = ["--seq-len", "8", "--hidden", "8", "--batch-size", "8", "--eval-every", "10"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_train_writes_results_and_never_overwrites(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--task", "adding", "--cell", "tanh", "--steps", "30", *TINY, "--out", out)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["status"] == "unsolved" and summary["steps"] == 30
    assert {p.name for p in out.iterdir()} == {"metrics.jsonl", "summary.json", "checkpoint.npz", "best.npz",
                                             "config.json"}
    before = (out / "summary.json").read_bytes()
    r = run("train", "--task", "adding", "--cell", "tanh", "--steps", "30", *TINY, "--out", out)
    assert r.exit_code == 2 and "already holds a finished run" in r.output
    assert (out / "summary.json").read_bytes() == before
    r = run("evaluate", out / "checkpoint.npz")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)  # stderr says which checkpoint was read
    assert ev["metric_name"] == "mse" and ev["step"] == 30 and ev["solved"] is False
    assert abs(ev["metric"] - summary["final_metric"]) < 1e-12


@pytest.mark.parametrize("args, match", [
    (["--task", "parity"], "Invalid value for '--task'"),
    (["--cell", "elman"], "Invalid value for '--cell'"),
    (["--hidden", "0"], "Invalid value for '--hidden'"),
    (["--batch-size", "-3"], "Invalid value for '--batch-size'"),
    (["--lr", "0"], "Invalid value for '--lr'"),
    (["--lr", "-0.1"], "Invalid value for '--lr'"),
    (["--steps", "0"], "Invalid value for '--steps'"),
    (["--task", "text"], "data: the text task needs a data file"),
    (["--task", "text", "--data", "/nonexistent/book.txt"], "data: no such file"),
    (["--task", "mnist", "--data", "/nonexistent/mnist.npz"], "data: no such file"),
])
def test_train_usage_errors(tmp_path, args, match):
    out = tmp_path / "never"
    r = run("train", *args, "--out", out)
    assert r.exit_code == 2, r.output
    assert match in r.output and "Traceback" not in r.output
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("content, match", [
    (b"", "data: the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "data: looks binary"),
])
def test_bad_text_files(tmp_path, content, match):
    f = tmp_path / "book.txt"
    f.write_bytes(content)
    r = run("train", "--task", "text", "--data", f, "--out", tmp_path / "o")
    assert r.exit_code == 2 and match in r.output and not (tmp_path / "o").exists()


def test_malformed_mnist(tmp_path):
    f = tmp_path / "mnist.npz"
    np.savez(f, x_train=np.zeros((3, 5)), y_train=np.zeros(3, int))
    r = run("train", "--task", "mnist", "--data", f, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "lacks arrays" in r.output and not (tmp_path / "o").exists()


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("train", "--steps", "5", *TINY, "--out", blocker / "sub")
    assert r.exit_code == 2 and "out: cannot write to" in r.output and "Traceback" not in r.output


def test_evaluate_and_sample_errors(tmp_path):
    bad = tmp_path / "c.npz"
    bad.write_bytes(b"junk")
    for cmd in ("evaluate", "sample"):
        r = run(cmd, bad)
        assert r.exit_code == 2 and "checkpoint:" in r.output and "Traceback" not in r.output


def test_text_train_and_sample(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("to be or not to be, that is the question. " * 50)
    out = tmp_path / "char"
    r = run("train", "--task", "text", "--data", f, "--cell", "gru", "--seq-len", "12", "--hidden", "16",
            "--batch-size", "4", "--steps", "40", "--eval-every", "20", "--lr", "0.01", "--out", out)
    assert r.exit_code == 0, r.output
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads(r.output.strip().splitlines()[-1])
    vocab = len(set(f.read_text()))  # 15 characters: an untrained model predicts about uniformly
    assert abs(recs[0]["metric"] - np.log2(vocab)) < 0.3, recs[0]
    # bits per character: learned, well below the unigram baseline (measured: 1.95 vs 3.43 after 40 steps)
    assert recs[-1]["step"] == 40 and recs[-1]["metric"] < summary["baseline"] - 0.5, (recs[-1], summary)
    r = run("sample", out / "checkpoint.npz", "--length", "30", "--prime", "to be", "--temperature", "0.5")
    assert r.exit_code == 0, r.output
    text = r.stdout.rstrip("\n")  # stderr says which checkpoint was read
    assert text.startswith("to be") and len(text) == 35 and set(text) <= set((f.read_text()))
    r = run("sample", out / "checkpoint.npz", "--prime", "XYZ")
    assert r.exit_code == 2 and "prime: characters not in the model's vocabulary" in r.output
    adding = tmp_path / "add"
    assert run("train", "--steps", "5", *TINY, "--out", adding).exit_code == 0
    r = run("sample", adding / "checkpoint.npz")
    assert r.exit_code == 2 and "is not a character model" in r.output


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "fastrnn_cli", "train", "--cell", "tanh", "--steps", "40000",
            "--seq-len", "6", "--hidden", "4", "--batch-size", "2", "--eval-every", "200",
            "--no-early-stop", "--quiet", "--out", str(out)]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        m = out / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    assert (out / "checkpoint.npz").exists() and not (out / "summary.json").exists()
    assert json.loads(stdout.strip().splitlines()[-1])["status"] == "interrupted"
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 40000
