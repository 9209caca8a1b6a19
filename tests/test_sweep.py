"""Sweeps: spec validation, durable results, a real Dask LocalCluster (same results as the
local pool, a killed worker's run retried), and a killed driver losing nothing."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn.sweep.engine import ResultStore, execute
from fastrnn.sweep.spec import expand, load_spec
from fastrnn.train.loop import load_model
from fastrnn_cli.main import cli

pytestmark = pytest.mark.slow  # real processes, the simulator or a cluster: not in the fast lane

SMALL = dict(task="adding", seq_len=6, hidden=6, batch_size=8, steps=40, eval_every=20, early_stop=False)


def write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_spec_expands_the_grid(tmp_path):
    p = write(tmp_path, '[base]\ntask = "adding"\nsteps = 10\n[grid]\ncell = ["tanh", "gru"]\nseq_len = [5, 8]\nseed = [0]\n')
    runs = load_spec(p)
    assert [n for n, _ in runs] == ["cell=tanh_seq_len=5_seed=0", "cell=tanh_seq_len=8_seed=0",
                                    "cell=gru_seq_len=5_seed=0", "cell=gru_seq_len=8_seed=0"]
    assert runs[3][1].cell == "gru" and runs[3][1].seq_len == 8 and runs[3][1].steps == 10


def test_spec_bundles_vary_options_together(tmp_path):
    p = write(tmp_path, '[base]\nsteps = 10\n[grid]\nmodel = [{cell = "tanh"}, {cell = "tanh", init = "orthogonal"},'
                        ' {cell = "lstm", hidden = 40}]\ntrunc = [{bptt_truncate = 5}, {}]\nseed = [0]\n')
    runs = load_spec(p)
    assert [n for n, _ in runs] == [
        "cell=tanh_bptt_truncate=5_seed=0", "cell=tanh_trunc=default_seed=0",
        "cell=tanh_init=orthogonal_bptt_truncate=5_seed=0", "cell=tanh_init=orthogonal_trunc=default_seed=0",
        "cell=lstm_hidden=40_bptt_truncate=5_seed=0", "cell=lstm_hidden=40_trunc=default_seed=0"]
    cfgs = [c for _, c in runs]
    assert [(c.cell, c.init, c.hidden, c.bptt_truncate) for c in cfgs[::2]] == [
        ("tanh", None, 128, 5), ("tanh", "orthogonal", 128, 5), ("lstm", None, 40, 5)]
    assert cfgs[1].bptt_truncate is None and all(c.steps == 10 for c in cfgs)


@pytest.mark.parametrize("text, match", [
    ('[grid]\nm = [{cells = "tanh"}]\n', r"grid.m has unknown option\(s\) cells"),
    ('[grid]\nm = [{cell = "tanh"}]\ncell = ["gru"]\n', r"cell set in both grid.cell and grid.m"),
    ('[grid]\nm = [{cell = "tanh"}]\nn = [{cell = "gru"}]\n', r"cell set in both grid.m and grid.n"),
    ('[base]\ncell = "lstm"\n[grid]\nm = [{cell = "tanh"}]\n', r"cell set in both \[base\] and \[grid\]"),
    ('[grid]\nm = [{cell = "tanh"}, "gru"]\n', r"\[grid\] has unknown option\(s\) m"),
    ('[grid]\nm = [{cell = "tanh", hidden = 0}]\n', r"hidden: expected a positive integer"),
])
def test_malformed_bundles(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_spec(write(tmp_path, text))


@pytest.mark.parametrize("text, match", [
    ('[grid]\ncells = ["tanh"]\n', r"\[grid\] has unknown option\(s\) cells"),
    ('[base]\nlearning_rate = 0.1\n[grid]\ncell = ["tanh"]\n', r"\[base\] has unknown option\(s\) learning_rate"),
    ('[grid]\ncell = []\n', "grid.cell must be a non-empty list"),
    ('[grid]\n', r"\[grid\] is empty"),
    ('[grid]\nhidden = ["many"]\n', "hidden: expected a positive integer; got 'many'"),
    ('[grid]\ncell = "tanh"\n', "grid.cell must be a non-empty list; got 'tanh'"),
    ('[runs]\nx = 1\n', r"unknown table\(s\) runs"),
    ('[grid\ncell = [', "is not valid TOML"),
    ('[base]\ncell = "gru"\n[grid]\ncell = ["tanh"]\n', "cell set in both"),
])
def test_malformed_specs(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_spec(write(tmp_path, text))


def test_sweep_cli_errors(tmp_path):
    r = CliRunner().invoke(cli, ["sweep", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "spec: no such file" in r.output and not (tmp_path / "o").exists()
    p = write(tmp_path, '[grid]\ncell = ["tanh"]\n[base]\nsteps = 5\n')
    r = CliRunner().invoke(cli, ["sweep", str(p), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"])
    import importlib.util
    want = ("scheduler: cannot reach tcp://127.0.0.1:1" if importlib.util.find_spec("distributed")
            else "scheduler: Dask is not installed; pip install 'fastrnn[dask]'")  # the light test install
    assert r.exit_code == 2 and want in r.output
    assert "Traceback" not in r.output


def test_runs_recorded_before_an_option_existed_are_still_finished(tmp_path):
    """Upgrading fastrnn adds options: a sweep recorded by an older version, whose configs lack
    them, continues (their defaults are what it ran with) instead of refusing its own folder."""
    runs = expand(dict(SMALL), {"cell": ["tanh"]})
    name, cfg = runs[0]
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("dropout", "bidirectional", "window")}
    (tmp_path / "results.jsonl").write_text(json.dumps(dict(name=name, config=old, status="unsolved",
                                                            summary={"status": "unsolved"})) + "\n")
    records = execute(runs, tmp_path)
    assert set(records) == {name} and records[name]["summary"] == {"status": "unsolved"}
    changed = expand(dict(SMALL, hidden=7), {"cell": ["tanh"]})
    with pytest.raises(ValueError, match="already holds run cell=tanh with other options"):
        execute(changed, tmp_path)


def test_torn_last_line_is_ignored(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"name": "a", "status": "solved"}\n{"name": "b", "sta')
    assert set(ResultStore(tmp_path).records) == {"a"}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed", reason="Dask is not installed: pip install '.[test-full]' to run them")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as c, distributed.Client(c) as client:
        yield c, client


def test_dask_results_equal_local_pool(tmp_path, cluster):
    _, client = cluster
    runs = expand(SMALL, {"cell": ["tanh", "lstm"], "seed": [0, 1]})
    local = execute(runs, tmp_path / "local", workers=2)
    dask = execute(runs, tmp_path / "dask", scheduler=client)
    assert set(local) == set(dask) == {n for n, _ in runs}
    for name in local:
        a, b = local[name]["summary"], dask[name]["summary"]
        assert a["final_metric"] == b["final_metric"] and a["steps"] == b["steps"] == 40
        wa, _ = load_model(tmp_path / "local" / "runs" / name / "checkpoint.npz")
        wb, _ = load_model(tmp_path / "dask" / "runs" / name / "checkpoint.npz")
        np.testing.assert_array_equal(wa.flat, wb.flat)
    # the same command again: nothing is redone
    before = (tmp_path / "dask" / "results.jsonl").read_text()
    again = execute(runs, tmp_path / "dask", scheduler=client)
    assert again.keys() == dask.keys() and (tmp_path / "dask" / "results.jsonl").read_text() == before


def test_killed_worker_run_is_retried(tmp_path, cluster):
    """Kill -9 the worker process that holds a run, found through the run's attempt record (a
    kill of any worker may hit an idle one and prove nothing): that run is retried on another
    worker process, resumes from its checkpoint, is recorded exactly once, and ends with the
    same weights as an uninterrupted run."""
    _, client = cluster
    base = dict(SMALL, steps=3000, eval_every=100, seq_len=30, hidden=32)
    runs = expand(base, {"cell": ["lstm", "tanh"]})
    name = "cell=lstm"
    run_dir = tmp_path / "dask" / "runs" / name
    import threading

    killed = {}
    t = threading.Thread(target=lambda: killed.update(_kill_holder(client, run_dir)))
    t.start()
    res = execute(runs, tmp_path / "dask", scheduler=client, retries=3)
    t.join()
    assert killed.get("pid") in killed.get("workers", ()), killed  # a worker process, holding this run
    rec = res[name]
    assert rec["status"] == "unsolved" and rec["summary"]["steps"] == 3000, rec
    assert rec["attempts"] == 2 and rec["pid"] != killed["pid"]  # retried once, in another process
    attempt = json.loads((run_dir / "attempt.json").read_text())
    assert attempt["attempts"] == 2 and attempt["pid"] == rec["pid"]
    lines = [json.loads(ln)["name"] for ln in (tmp_path / "dask" / "results.jsonl").read_text().splitlines()]
    assert sorted(lines) == sorted(n for n, _ in runs)  # every run recorded exactly once
    assert res["cell=tanh"]["attempts"] == 1
    alone = execute(runs[:1], tmp_path / "alone", workers=1)[name]  # the same run, never killed
    assert alone["summary"]["final_metric"] == rec["summary"]["final_metric"]
    wa, _ = load_model(tmp_path / "alone" / "runs" / name / "checkpoint.npz")
    wb, _ = load_model(run_dir / "checkpoint.npz")
    np.testing.assert_array_equal(wa.flat, wb.flat)


def _kill_holder(client, run_dir):
    """Once the run has a checkpoint, kill -9 the process its attempt record names."""
    deadline = time.time() + 120
    while time.time() < deadline and not ((run_dir / "checkpoint.npz").exists()
                                          and (run_dir / "attempt.json").exists()):
        time.sleep(0.02)
    pid = json.loads((run_dir / "attempt.json").read_text())["pid"]
    workers = set(client.run(os.getpid).values())
    os.kill(pid, signal.SIGKILL)
    return dict(pid=pid, workers=workers)


def test_killed_driver_loses_nothing(tmp_path):
    spec = write(tmp_path, '[base]\ntask = "adding"\nseq_len = 6\nhidden = 6\nbatch_size = 8\neval_every = 20\n'
                           'early_stop = false\n[grid]\ncell = ["tanh", "relu", "gru"]\nsteps = [40, 3000]\n')
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "fastrnn_cli", "sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 2):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and its workers, all at once
    p.wait()
    first = {json.loads(ln)["name"]: ln for ln in results.read_text().splitlines()}
    assert len(first) >= 2
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = results.read_text().splitlines()
    names = [json.loads(ln)["name"] for ln in lines]
    assert len(names) == len(set(names)) == 6  # every run once, none redone
    for name, line in first.items():
        assert line in lines  # finished records untouched
        assert json.loads((out / "runs" / name / "attempt.json").read_text())["attempts"] == 1
    assert (out / "report.md").exists() and (out / "sweep-adding.png").exists()
