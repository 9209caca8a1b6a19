"""compare: a small grid in real worker processes, the report files, reuse of finished runs,
and one failing run not stopping the others."""
import json

import pytest
from click.testing import CliRunner

from fastrnn.compare import run_grid
from fastrnn.fileio import _umask
from fastrnn.train.config import TrainConfig
from fastrnn_cli.main import cli

pytestmark = pytest.mark.slow  # real processes, the simulator or a cluster: not in the fast lane

ARGS = ["--seq-len", "6", "--hidden", "6", "--batch-size", "8", "--steps", "30", "--eval-every", "10",
        "--seeds", "1", "--workers", "2", "--quiet"]


def test_compare_report_and_rerun(tmp_path):
    out = tmp_path / "cmp"
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,gru", *ARGS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "report:" in r.output
    res = json.loads((out / "results.json").read_text())
    assert set(res["cells"]) == {"tanh", "gru"}
    assert {c["verdict"] for c in res["cells"].values()} <= {"never", "sometimes", "always"}
    assert res["task"]["metric_baseline"] == 1 / 6
    assert {r["status"] for r in res["runs"].values()} <= {"solved", "unsolved"}
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| tanh |" in report and "| gru |" in report and "curves.png" in report
    assert (out / "recurrence.png").read_bytes()[:4] == b"\x89PNG" and "recurrence.png" in report
    assert "## The gradient through time" in report and (out / "gradients.png").exists()
    grads = json.loads((out / "gradients.json").read_text())
    assert [p["cell"] for p in grads["init"]] == ["tanh", "gru"] == [p["cell"] for p in grads["trained"]]
    stamp = (out / "runs" / "gru-s0" / "summary.json").stat().st_mtime_ns
    # the same command again reuses the finished runs
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,gru", *ARGS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "runs" / "gru-s0" / "summary.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["cells"] == res["cells"]
    # a folder written before an option existed (its spec.json lacks the field) still reruns
    spec = json.loads((out / "spec.json").read_text())
    for c in spec["runs"].values():
        del c["dropout"]
    (out / "spec.json").write_text(json.dumps(spec))
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,gru", *ARGS, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "runs" / "gru-s0" / "summary.json").stat().st_mtime_ns == stamp
    # other options in the same folder are refused, nothing overwritten
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,gru", *ARGS, "--lr", "0.5", "--out", str(out)])
    assert r.exit_code == 2 and "already holds a comparison with other options" in r.output


def test_compare_bad_cells(tmp_path):
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,elman", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "Invalid value for '--cells'" in r.output
    assert not (tmp_path / "x").exists()


def test_one_failed_run_does_not_stop_the_others(tmp_path):
    good = TrainConfig(task="adding", cell="tanh", seq_len=5, hidden=4, batch_size=4, steps=10, eval_every=5)
    bad = TrainConfig.from_dict(dict(good.to_dict(), task="text", data=str(tmp_path / "gone.txt")))
    res = run_grid([("good", good), ("bad", bad)], tmp_path / "g", workers=2)
    assert res["good"]["status"] == "unsolved" and res["good"]["steps"] == 10
    assert res["bad"]["status"] == "failed" and "data: no such file" in res["bad"]["message"]
    recorded = [json.loads(ln) for ln in (tmp_path / "g" / "results.jsonl").read_text().splitlines()]
    assert {r["name"]: r["status"] for r in recorded} == {"good": "unsolved", "bad": "failed"}


def test_compare_from_python_is_the_cli_without_the_printing(tmp_path):
    """fastrnn.compare.plan + run: what `fastrnn compare` does, callable from Python; a plan
    checks everything (here: a missing data file) before anything is written."""
    from fastrnn import compare

    base = TrainConfig(task="adding", seq_len=6, hidden=6, batch_size=8, steps=20, eval_every=10)
    with pytest.raises(ValueError, match="data: no such file"):
        compare.plan(TrainConfig.from_dict(dict(base.to_dict(), task="text", data=str(tmp_path / "gone.txt"))),
                     ["gru"], 1, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    p = compare.plan(base, ["tanh", "gru"], 1, tmp_path / "py")
    assert [name for name, _ in p.runs] == ["tanh-s0", "gru-s0"] and p.task.seq_len == 6
    done, seen = [], {}
    table, report = compare.run(p, workers=2, on_done=lambda name, s: done.append((name, s["status"])),
                                on_progress=lambda name, info: seen.setdefault(name, []).append(info))
    assert sorted(n for n, _ in done) == ["gru-s0", "tanh-s0"]
    for name in ("tanh-s0", "gru-s0"):  # live progress from the workers: every evaluation, in order
        evals = [i["eval_step"] for i in seen[name] if i["eval"]]
        assert evals == [0, 10, 20] or evals == [10, 20], (name, evals)  # step 0 is seen with step 1
        assert all(i["steps"] == 20 and 1 <= i["step"] <= 20 for i in seen[name])
        assert all(isinstance(i["metric"], float) for i in seen[name] if i["eval"])
    assert set(table) == {"tanh", "gru"} and all(r["runs"] == 1 for r in table.values())
    res = json.loads((tmp_path / "py" / "results.json").read_text())
    assert res["cells"] == table and report == tmp_path / "py" / "report.md" and report.exists()
    # the top-level config names the grid, not one cell; each run has the command that reruns it
    assert res["config"]["cells"] == ["tanh", "gru"] and res["config"]["seeds"] == [0] and "cell" not in res["config"]
    import shlex

    args = shlex.split(res["commands"]["gru-s0"])
    assert args[:2] == ["fastrnn", "train"] and args[-2:] == ["--out", "rerun-gru-s0"]
    r = CliRunner().invoke(cli, args[1:-1] + [str(tmp_path / "alone"), "--quiet"])
    assert r.exit_code == 0, r.output
    alone = json.loads((tmp_path / "alone" / "summary.json").read_text())
    ran = res["runs"]["gru-s0"]
    assert alone["config"] == ran["config"] and alone["final_metric"] == ran["final_metric"]  # bit for bit
    text = report.read_text()
    assert "One seed per cell" in text and "T = 6: the sequence length" in text and "vs memoryless" in text
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "py"), str(tmp_path / "alone"), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output  # fastrnn report reads a comparison folder and a run folder alike
    assert [ln.split(" | ")[0][2:] for ln in r.output.splitlines() if ln.startswith("| py/") or
            ln.startswith("| alone")] == ["py/gru-s0", "py/tanh-s0", "alone"]
    import stat

    for f in ("results.json", "report.md", "runs/gru-s0/checkpoint.npz", "runs/gru-s0/summary.json"):
        mode = stat.S_IMODE((tmp_path / "py" / f).stat().st_mode)
        assert mode == 0o666 & ~_umask(), (f, oct(mode))  # as any tool's new file, not 0600


def test_queue_order_starts_each_kernel_family_on_its_own():
    from fastrnn.compare import compare_grid, profiled, queue_order

    runs = compare_grid(TrainConfig(), ["tanh", "relu", "gru", "lstm"], 2)
    assert [n for n, _ in queue_order(runs)] == ["tanh-s0", "gru-s0", "lstm-s0", "relu-s0",
                                                 "tanh-s1", "gru-s1", "lstm-s1", "relu-s1"]
    assert sorted(queue_order(runs)) == sorted(runs)
    assert profiled(runs) == {"tanh-s0", "relu-s0", "gru-s0", "lstm-s0"}


def test_profiles_made_by_the_run_are_used_and_bad_ones_recomputed(tmp_path):
    """run_task(profile=True) records the run's gradient profiles, computed beside its training;
    compare's gradient section takes them from the record, and recomputes any that a tampered
    or older results file does not hold in full (results files are untrusted)."""
    from fastrnn.compare import gradient_section
    from fastrnn.gradients import run_profiles
    from fastrnn.sweep.engine import run_task
    from fastrnn.tasks import make_task

    cfg = TrainConfig(task="adding", cell="gru", seq_len=6, hidden=5, batch_size=4, steps=4, eval_every=2)
    run_dir = tmp_path / "runs" / "gru-s0"
    rec = run_task("gru-s0", cfg.to_dict(), str(run_dir), profile=True)
    assert rec["status"] == "unsolved" and "gradients_error" not in rec
    here = run_profiles(cfg, run_dir, batch_size=32)
    assert json.loads(json.dumps(rec["gradients"])) == json.loads(json.dumps(here))
    assert rec["gradients"]["trained"]["grad_norm_by_lag"] != rec["gradients"]["init"]["grad_norm_by_lag"]
    task = make_task("adding", 6)
    gradient_section(tmp_path, [("gru-s0", cfg)], task, records={"gru-s0": rec})
    want = json.loads((tmp_path / "gradients.json").read_text())
    assert want["init"] == [rec["gradients"]["init"]] and want["trained"] == [rec["gradients"]["trained"]]
    # a profile the report could not read, or of another cell, is recomputed: same file
    for bad in ({"init": {"cell": "gru", "grad_norm_by_lag": "x"}}, {"init": dict(here["init"], cell="lstm")},
                {"init": here["init"], "trained": None}, "junk"):
        (tmp_path / "gradients.json").unlink()
        gradient_section(tmp_path, [("gru-s0", cfg)], task, records={"gru-s0": dict(rec, gradients=bad)})
        assert json.loads((tmp_path / "gradients.json").read_text()) == want
    # a record that was not used is proven by a marker no computation would give
    marked = json.loads(json.dumps(rec))
    marked["gradients"]["init"]["jacobian_norm"]["mean"] = 12345.0
    gradient_section(tmp_path, [("gru-s0", cfg)], task, records={"gru-s0": marked})
    assert json.loads((tmp_path / "gradients.json").read_text())["init"][0]["jacobian_norm"]["mean"] == 12345.0


def test_compare_logs_off_a_terminal(tmp_path):
    """Off a terminal (logs, CI): the compile is announced, each finished run is one line with
    the runs done, evaluations are not echoed line by line, and a rerun says how many finished
    runs it reused (it used to print ~300 interleaved lines and reuse runs silently)."""
    args = [a for a in ARGS if a != "--quiet"]
    out = tmp_path / "cmp"
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,gru", *args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    err = r.stderr
    assert "compiles the kernels it uses" in err and "roughly" in err
    done = [ln for ln in err.splitlines() if "runs done" in ln]
    assert len(done) == 2 and done[-1].rstrip().endswith("[2/2 runs done]"), err
    assert not any("step 10/30" in ln for ln in err.splitlines())  # no line per evaluation
    r = CliRunner().invoke(cli, ["compare", "--cells", "tanh,gru", *args, "--out", str(out)])
    assert r.exit_code == 0 and "2 finished runs reused" in r.stderr, r.stderr
