"""Planted links (issue #27): run, compare and sweep folders are shared, unpacked and downloaded,
so any name fastrnn writes in one may be a symbolic link (or a hard link) to a file of the
user's. Each test plants one and checks that the file it points to is intact, and that the
command stops with one clear line naming the link. Before the fix, a `.lock` link had its target
truncated and overwritten with "pid N on HOST", and every other file was written through."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn import fileio
from fastrnn.cpu import threads
from fastrnn.sweep import engine
from fastrnn.train.config import TrainConfig
from fastrnn_cli.main import cli

TINY = ["--seq-len", "6", "--hidden", "6", "--batch-size", "8", "--eval-every", "10", "--steps", "20", "-q"]
PRECIOUS = "precious: not fastrnn's\n"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def victim(tmp_path):
    v = tmp_path / "victim.txt"
    v.write_text(PRECIOUS)
    return v


@pytest.fixture
def victim_dir(tmp_path):
    d = tmp_path / "victim-dir"
    d.mkdir()
    (d / "keep.txt").write_text(PRECIOUS)
    return d


def intact(victim):
    return victim.read_text() == PRECIOUS


def intact_dir(d):
    return sorted(os.listdir(d)) == ["keep.txt"] and intact(d / "keep.txt")


def refused(r, name):
    """One clear line (exit 2, no traceback) that names the planted file."""
    return r.exit_code == 2 and r.exception is not None and isinstance(r.exception, SystemExit) \
        and name in r.output and ("symbolic link" in r.output or "hard links" in r.output
                                  or "not a regular file" in r.output)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run, for the commands that read one (report, predict, export)."""
    d = tmp_path_factory.mktemp("trained")
    assert run("train", "--cell", "tanh", *TINY, "--out", d / "run").exit_code == 0
    np.savez(d / "x.npz", x=np.zeros((3, 6, 2), np.float32))
    return d


# ------------------------------------------------------------------------------------ train
@pytest.mark.parametrize("name, plant", [(n, os.symlink) for n in (".lock", "metrics.jsonl", "checkpoint.npz",
                                                                    "best.npz", "summary.json")]
                         + [(n, os.link) for n in (".lock", "metrics.jsonl")], ids=lambda p: getattr(p, "__name__", p))
def test_train_never_writes_through_a_planted_link(tmp_path, victim, name, plant):
    out = tmp_path / "r"
    out.mkdir()
    plant(victim, out / name)
    r = run("train", "--cell", "tanh", *TINY, "--out", out)
    assert intact(victim)
    assert refused(r, name), r.output


def test_a_planted_fifo_lock_is_refused_without_blocking(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    os.mkfifo(out / ".lock")
    r = run("train", "--cell", "tanh", *TINY, "--out", out)
    assert refused(r, ".lock"), r.output


def test_the_write_probe_never_follows_a_link(tmp_path, victim):
    """--out is probed for writing before anything runs; the probe once had a fixed name."""
    out = tmp_path / "r"
    out.mkdir()
    os.symlink(victim, out / ".fastrnn-write-test")
    assert run("train", "--cell", "tanh", *TINY, "--out", out).exit_code == 0
    assert intact(victim)


def test_resume_never_writes_through_a_link_planted_after_a_run(tmp_path, victim):
    out = tmp_path / "r"
    assert run("train", "--cell", "tanh", *TINY, "--out", out, "--steps", "10").exit_code == 0
    (out / "summary.json").unlink()  # as if interrupted: --resume continues it
    (out / "metrics.jsonl").unlink()
    os.symlink(victim, out / "metrics.jsonl")
    r = run("train", "--cell", "tanh", *TINY, "--out", out, "--steps", "10", "--resume")
    assert intact(victim) and refused(r, "metrics.jsonl"), r.output


# ------------------------------------------------------------- the writers themselves (races)
def test_writers_refuse_a_link_planted_after_the_folder_was_checked(tmp_path, victim):
    """check_folder runs first; a link planted after it still meets the writers' own guards."""
    target = tmp_path / "f"
    os.symlink(victim, target)
    with pytest.raises(fileio.LinkRefused, match="symbolic link"):
        fileio.append_bytes(target, b"x\n")
    with pytest.raises(fileio.LinkRefused, match="symbolic link"):
        fileio.atomic_write_bytes(target, b"x\n")
    with pytest.raises(fileio.LinkRefused, match="symbolic link"):
        fileio.open_exclusive(target)
    with pytest.raises(fileio.LinkRefused, match="symbolic link"):
        fileio.read_bytes(target)
    assert intact(victim) and os.path.islink(target)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(fileio.TEMP_PREFIX)]


# ------------------------------------------------------------------------------------ sweep
SPEC = '[base]\ntask = "adding"\nseq_len = 6\nhidden = 6\nbatch_size = 8\nsteps = 20\neval_every = 10\n' \
       '[grid]\ncell = ["tanh"]\n'


@pytest.mark.parametrize("name", [".lock", "results.jsonl", "results.json", "report.md", "sweep-adding.png"])
def test_sweep_refuses_planted_links_before_any_run(tmp_path, victim, name):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "o"
    out.mkdir()
    os.symlink(victim, out / name)
    r = run("sweep", spec, "--out", out, "-q")
    assert intact(victim) and refused(r, name), r.output
    assert not (out / "runs").exists() or not os.listdir(out / "runs")  # nothing ran


def test_sweep_refuses_a_runs_folder_that_is_a_link(tmp_path, victim_dir):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    out = tmp_path / "o"
    out.mkdir()
    os.symlink(victim_dir, out / "runs")
    r = run("sweep", spec, "--out", out, "-q")
    assert intact_dir(victim_dir) and refused(r, "runs"), r.output


@pytest.mark.parametrize("plant", ["folder", "attempt.json", ".lock", "metrics.jsonl", "checkpoint.npz"])
def test_a_sweep_run_never_writes_through_a_link_in_its_folder(tmp_path, victim, victim_dir, plant):
    run_dir = tmp_path / "o" / "runs" / "cell=tanh"
    run_dir.parent.mkdir(parents=True)
    if plant == "folder":
        os.symlink(victim_dir, run_dir)
    else:
        run_dir.mkdir()
        os.symlink(victim, run_dir / plant)
    cfg = TrainConfig(task="adding", cell="tanh", seq_len=6, hidden=6, batch_size=8, steps=20, eval_every=10)
    before = threads.get_threads()
    try:
        rec = engine.run_task("cell=tanh", cfg.to_dict(), str(run_dir), lock_wait=0)
    finally:
        threads.set_threads(before)
    assert intact(victim) and intact_dir(victim_dir)
    assert rec["status"] == "failed" and ("symbolic link" in rec["message"]), rec


# ---------------------------------------------------------------------------------- compare
@pytest.mark.parametrize("name", [".lock", "spec.json", "results.json", "report.md", "curves.png",
                                  "recurrence.png", "gradients.json", "gradients.png", "results.jsonl"])
def test_compare_refuses_planted_links_before_any_run(tmp_path, victim, name):
    out = tmp_path / "c"
    out.mkdir()
    os.symlink(victim, out / name)
    r = run("compare", "--cells", "tanh", "--seeds", "1", *TINY, "--out", out)
    assert intact(victim) and refused(r, name), r.output
    assert not (out / "runs").exists() or not os.listdir(out / "runs")


# -------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["gradients.json", "gradients.png"])
def test_gradients_refuses_planted_links_before_profiling(tmp_path, victim, name):
    out = tmp_path / "g"
    out.mkdir()
    os.symlink(victim, out / name)
    r = run("gradients", "--cells", "tanh", "--seq-len", "6", "--hidden", "6", "--out", out)
    assert intact(victim) and refused(r, name), r.output


def test_gradients_refuses_a_training_folder_that_is_a_link(tmp_path, victim_dir):
    out = tmp_path / "g"
    out.mkdir()
    os.symlink(victim_dir, out / "train-tanh")
    r = run("gradients", "--cells", "tanh", "--seq-len", "6", "--hidden", "6", "--train-steps", "5", "--out", out)
    assert intact_dir(victim_dir) and refused(r, "train-tanh"), r.output


# ------------------------------------------------------------------ report, predict, export
@pytest.mark.parametrize("name", ["overlay.png", "overlay.md", "overlay.csv"])
def test_report_refuses_planted_links(tmp_path, trained, victim, name):
    out = tmp_path / "rep"
    out.mkdir()
    os.symlink(victim, out / name)
    r = run("report", trained / "run", "--out", out, "--csv")
    assert intact(victim) and refused(r, name), r.output


@pytest.mark.parametrize("cmd", ["predict", "export"])
def test_predict_and_export_never_write_through_a_link_even_with_force(tmp_path, trained, victim, cmd):
    pytest.importorskip("safetensors") if cmd == "export" else None
    out = tmp_path / "out.bin"
    os.symlink(victim, out)
    extra = ["--data", trained / "x.npz"] if cmd == "predict" else []
    for force in ([], ["--force"]):
        r = run(cmd, trained / "run", *extra, "--out", out, *force)
        assert intact(victim) and refused(r, "out.bin"), r.output
