"""Faults with real processes and real signals: Ctrl-C / SIGTERM to a sweep's driver, a worker
killed with -9, a driver killed with -9, two writers on one folder, a full disk, torn files.
Each test failed before the fix it guards (issue #11)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fastrnn.sweep.engine import ResultStore, execute
from fastrnn.sweep.spec import expand
from fastrnn.train import checkpoint as ckpt
from fastrnn.train.config import TrainConfig
from fastrnn.train.lock import FolderBusy, FolderLock
from fastrnn.train.loop import train
from stops import StopAt

pytestmark = pytest.mark.slow

TINY = dict(task="adding", seq_len=6, hidden=6, batch_size=8, early_stop=False)
CLI = [sys.executable, "-m", "fastrnn_cli"]


def spec_file(tmp_path, steps, cells=("tanh", "relu", "gru"), eval_every=20):
    p = tmp_path / "spec.toml"
    p.write_text('[base]\ntask = "adding"\nseq_len = 6\nhidden = 6\nbatch_size = 8\nearly_stop = false\n'
                 f'eval_every = {eval_every}\nsteps = {steps}\n[grid]\ncell = {json.dumps(list(cells))}\n')
    return p


def wait_for(cond, timeout=120, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def holder_pid(folder):
    """The pid written in a held folder lock ('pid N on host')."""
    text = (folder / ".lock").read_text()
    return int(text.split()[1])


def lock_is_free(folder):
    try:
        FolderLock(folder).acquire().release()
        return True
    except FolderBusy:
        return False


def strict_json(text):
    """json.loads that refuses NaN and Infinity, as strict parsers do."""
    def bad(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=bad)


# ----------------------------------------------------------------------------- sweeps
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_driver_alone_stops_every_run(tmp_path, sig, code):
    """A signal sent to the driver alone (a supervisor, a scheduler) stops both running runs at
    a step boundary with a checkpoint, starts nothing new, and exits 128 + signal, one line."""
    out = tmp_path / "o"
    p = subprocess.Popen(CLI + ["sweep", str(spec_file(tmp_path, 10**6)), "--out", str(out), "--workers", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    names = ["cell=tanh", "cell=relu"]
    wait_for(lambda: all((out / "runs" / n / "checkpoint.npz").exists() for n in names), what="checkpoints")
    p.send_signal(sig)  # the driver only: its workers are not in the signal's path
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == code, stderr
    assert "Traceback" not in stderr and "interrupted:" in stderr
    for n in names:  # every worker has let go of its run folder: none is left running
        assert lock_is_free(out / "runs" / n)
        meta, *_ = ckpt.load(out / "runs" / n / "checkpoint.npz")
        assert meta["step"] > 0
    assert not (out / "runs" / "cell=gru" / "attempt.json").exists()  # the queued run never started
    assert not (out / "results.jsonl").exists() or (out / "results.jsonl").read_text() == ""


def test_killed_worker_retries_only_its_run(tmp_path):
    """kill -9 of the worker running one run: that run alone is retried (resuming from its
    checkpoint) on a fresh worker; the other runs finish undisturbed, none is marked failed."""
    runs = expand(dict(TINY, eval_every=20, steps=1500), {"cell": ["tanh", "relu", "gru", "lstm"]})
    victim = tmp_path / "runs" / "cell=tanh"
    killed = {}

    def kill_when_checkpointed():
        wait_for(lambda: (victim / "checkpoint.npz").exists(), what="the victim's checkpoint")
        killed["pid"] = holder_pid(victim)
        os.kill(killed["pid"], signal.SIGKILL)

    t = threading.Thread(target=kill_when_checkpointed)
    t.start()
    res = execute(runs, tmp_path, workers=2, retries=1)
    t.join()
    assert all(r["status"] in ("solved", "unsolved") for r in res.values()), res
    assert res["cell=tanh"]["attempts"] == 2 and res["cell=tanh"]["pid"] != killed["pid"]
    assert [res[n]["attempts"] for n in ("cell=relu", "cell=gru", "cell=lstm")] == [1, 1, 1]
    assert res["cell=tanh"]["summary"]["steps"] == 1500
    steps = [m["step"] for m in res["cell=tanh"]["metrics"]]
    assert steps == sorted(set(steps)) and steps[-1] == 1500  # resumed: no record twice


def test_rerun_retries_failed_runs(tmp_path):
    runs = expand(dict(TINY, eval_every=10, steps=20), {"cell": ["tanh", "gru"]})
    store = ResultStore(tmp_path)
    store.append(dict(name="cell=tanh", config=runs[0][1].to_dict(), status="failed", message="worker died"))
    skipped = execute(runs, tmp_path, workers=1, skip_failed=True)
    assert skipped["cell=tanh"]["status"] == "failed" and skipped["cell=gru"]["status"] == "unsolved"
    again = execute(runs, tmp_path, workers=1)
    assert again["cell=tanh"]["status"] == "unsolved"
    assert ResultStore(tmp_path).records["cell=tanh"]["status"] == "unsolved"  # the last record counts


def test_killed_driver_leaves_no_orphans(tmp_path):
    """kill -9 of the driver alone: its workers checkpoint and exit at their next step (no run
    starts in an orphan), and a rerun finishes every run with one metrics record per eval."""
    out = tmp_path / "o"
    spec = spec_file(tmp_path, 3000, eval_every=50)
    cmd = CLI + ["sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    busy = [out / "runs" / n for n in ("cell=tanh", "cell=relu")]
    wait_for(lambda: all((d / "checkpoint.npz").exists() for d in busy), what="checkpoints")
    workers = [holder_pid(d) for d in busy]
    p.kill()
    p.wait()
    wait_for(lambda: all(lock_is_free(d) for d in busy), timeout=30, what="the orphans to exit")
    for pid in workers:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                 open(f"/proc/{pid}/stat").read().split()[2] == "Z", timeout=30, what=f"worker {pid} to exit")
    time.sleep(1.0)
    assert not (out / "runs" / "cell=gru" / "attempt.json").exists()  # nothing started in an orphan
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for line in (out / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        steps = [m["step"] for m in rec["metrics"]]
        assert steps == list(range(0, 3001, 50)), rec["name"]


def test_two_sweeps_on_one_folder(tmp_path):
    runs = expand(dict(TINY, steps=10), {"cell": ["tanh"]})
    with FolderLock(tmp_path, what="out"):
        busy = rf"out: {tmp_path} is in use by another fastrnn process \(pid {os.getpid()}"
        with pytest.raises(FolderBusy, match=busy):
            execute(runs, tmp_path, workers=1)


# ----------------------------------------------------------------------------- run folders
def test_second_writer_on_a_run_folder_is_refused(tmp_path):
    """Two `fastrnn train` on one --out: the second stops at once naming the first's pid; once
    the first dies (kill -9: the OS drops its lock) the folder can be resumed."""
    out = tmp_path / "run"
    args = ["train", "--task", "adding", "--seq-len", "6", "--hidden", "6", "--batch-size", "8",
            "--steps", "100000", "--eval-every", "20", "--no-early-stop", "--cell", "tanh", "--out", str(out)]
    first = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (out / "checkpoint.npz").exists(), what="the first run's checkpoint")
        second = subprocess.run(CLI + args + ["--resume"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"in use by another fastrnn process (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()
    assert lock_is_free(out)


def test_torn_metrics_line_does_not_block_resume(tmp_path, caplog):
    cfg = TrainConfig(cell="gru", steps=60, eval_every=10, **TINY)
    whole = train(cfg, tmp_path / "whole")
    flag = StopAt(30)
    train(cfg, tmp_path / "r", stop=flag, progress=flag.progress)
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "loss": 0.1')  # a crash in the middle of a write
    with caplog.at_level("WARNING", logger="fastrnn"):
        resumed = train(cfg, tmp_path / "r", resume=True)
    assert "dropped 1 unreadable line" in caplog.text and "metrics.jsonl" in caplog.text
    assert resumed["final_metric"] == whole["final_metric"]
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [strict_json(ln)["step"] for ln in lines] == list(range(0, 61, 10))


def test_torn_results_line_is_cut_before_appending(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"name": "a", "status": "solved"}\n{"name": "b", "sta')
    store = ResultStore(tmp_path)
    store.append({"name": "c", "status": "solved"})
    assert path.read_text() == '{"name": "a", "status": "solved"}\n{"name": "c", "status": "solved"}\n'
    assert set(ResultStore(tmp_path).records) == {"a", "c"}


def test_full_disk_is_one_clear_error(tmp_path):
    """A write that the OS refuses (here a file-size limit, which fails a write as a full disk
    does) ends the run with one line naming the file, exit 1, the previous checkpoint intact."""
    out = tmp_path / "run"
    args = CLI + ["train", "--task", "adding", "--seq-len", "6", "--hidden", "40", "--batch-size", "8",
                  "--steps", "100000", "--eval-every", "10", "--no-early-stop", "--cell", "lstm", "-q",
                  "--out", str(out)]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (out / "checkpoint.npz").exists(), what="a checkpoint")
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130
    before = (out / "checkpoint.npz").read_bytes()
    best_before = (out / "best.npz").read_bytes()
    limit = len(before) // 2  # metrics lines fit, a checkpoint does not
    limited = [sys.executable, "-c",
               "import resource, signal, runpy, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
               "sys.argv = sys.argv[1:]; runpy.run_module('fastrnn_cli', run_name='__main__')", "fastrnn"]
    r = subprocess.run(limited + args[3:] + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "note: " in r.stderr and "resumed from step" in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("note: ")]
    # the first checkpoint written after the resume fails: the best one, or the last one
    assert len(lines) == 1 and "cannot write" in lines[0] and ("checkpoint.npz" in lines[0]
                                                              or "best.npz" in lines[0]), r.stderr
    assert (out / "checkpoint.npz").read_bytes() == before and (out / "best.npz").read_bytes() == best_before
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
