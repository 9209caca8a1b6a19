"""Hostile and careless inputs (issue #27): archives that inflate past their checks, class ids
that size allocations, memory limits the guard ignored, JSON and TOML nested to crash the
parser, and options that were silently accepted. Each failed (a traceback, gigabytes
allocated, or a silent no-op) on main d8fbe39; each is now one clear error naming the input."""
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn import fileio, memory
from fastrnn.serve import read_inputs
from fastrnn.sweep.spec import load_spec
from fastrnn.tasks import make_task
from fastrnn.tasks.base import HELDOUT_SEED
from fastrnn.tasks.datafile import MAX_CLASSES, DataFile
from fastrnn.tasks.mnist import load_mnist
from fastrnn.train import checkpoint as ckpt
from fastrnn.train.config import TrainConfig
from fastrnn_cli.main import cli

TINY = ["--seq-len", "6", "--hidden", "6", "--batch-size", "8", "--eval-every", "10", "--steps", "20", "-q"]
INFLATED = 200 * 2**20  # bytes a hostile member inflates to; its file is a few hundred KB


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def clean(r):
    return r.exception is None or isinstance(r.exception, SystemExit)


def npz_with_member(path, member, arrays=None, npy_header=None, nbytes=INFLATED):
    """An .npz of ``arrays`` plus one deflated member ``member`` of nbytes zeros (an .npy header
    first when npy_header is given), streamed so the test never holds it."""
    np.savez(path, **(arrays or {}))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member, "w", force_zip64=True) as f:
            if npy_header is not None:
                np.lib.format.write_array_header_1_0(f, npy_header)
            chunk = bytes(2**20)
            for _ in range(nbytes // len(chunk)):
                f.write(chunk)
    assert os.path.getsize(path) < 2e6
    return path


def peak_while(fn):
    """(exception raised by fn, peak bytes traced while it ran)."""
    tracemalloc.start()
    try:
        fn()
        err = None
    except ValueError as e:
        err = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return err, peak


def small_data(**extra):
    return dict(x=np.zeros((20, 5, 2), np.float32), y=np.arange(20) % 2, **extra)


# ----------------------------------------------------------------------- inflating archives
@pytest.mark.parametrize("member", ["x", "junk.npy", "junk"])
def test_a_member_outside_the_checks_is_refused_before_it_inflates(tmp_path, member):
    """A member named without .npy (np.load reads it as raw bytes) or an unknown array was
    inflated whole before validation: 1.56 GB and 3.1 GB resident from a 1.5 MB file."""
    arrays = small_data()
    if member == "x":
        del arrays["x"]
    p = npz_with_member(tmp_path / "d.npz", member, arrays)
    err, peak = peak_while(lambda: make_task("file", data=p))
    assert err is not None and "unknown array(s)" in str(err) and member.removesuffix(".npy") in str(err)
    assert peak < 20 * 2**20


def test_a_checkpoint_with_an_extra_member_is_refused_before_it_inflates(tmp_path):
    meta = np.frombuffer(json.dumps(dict(format=ckpt.FORMAT, version=ckpt.VERSION)).encode(), np.uint8)
    p = npz_with_member(tmp_path / "c.npz", "junk", dict(meta=meta, params=np.zeros(3)))
    err, peak = peak_while(lambda: ckpt.load(p))
    assert err is not None and "not a fastrnn checkpoint (unknown array(s) junk)" in str(err)
    assert peak < 20 * 2**20


def test_predict_never_inflates_the_arrays_it_ignores(tmp_path):
    """predict reads x (and lengths) and ignores other arrays, such as y: they stay unread."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (INFLATED - 128,)}
    p = npz_with_member(tmp_path / "new.npz", "y.npy", dict(x=np.zeros((4, 5, 2), np.float32)), header)

    class Model:
        tokens, input_size = False, 2

    tracemalloc.start()
    x, lengths = read_inputs(p, Model(), {})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert x.shape == (4, 5, 2) and lengths is None and peak < 20 * 2**20


# ------------------------------------------------------------------------------- class ids
@pytest.mark.parametrize("label", [10**9, 2**62])
def test_a_huge_class_id_is_refused_before_anything_is_sized_by_it(tmp_path, label):
    y = np.arange(20) % 2
    y[3] = label
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((20, 5, 2), np.float32), y=y)
    err, peak = peak_while(lambda: make_task("file", data=p))
    assert err is not None and f"past the limit of {MAX_CLASSES:,} classes" in str(err) and "d.npz" in str(err)
    assert peak < 20 * 2**20
    r = run("train", "--task", "file", "--data", p, "--cell", "tanh", "--hidden", "4", "--steps", "2",
            "--out", tmp_path / "o")
    assert r.exit_code == 2 and clean(r) and "classes" in r.output


def test_a_held_out_class_never_seen_in_training_is_refused(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((20, 5, 2), np.float32), y=np.arange(20) % 2,
             x_test=np.zeros((3, 5, 2), np.float32), y_test=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="y_test has class.es. 2 that no training sequence has"):
        make_task("file", data=p)
    q = tmp_path / "e.npz"  # a class with one sequence, which the random split holds out
    held_out = np.random.default_rng(HELDOUT_SEED).permutation(40)[:20]  # the split is fixed
    y = np.arange(40) % 2
    y[held_out[0]] = 2
    np.savez(q, x=np.zeros((40, 5, 2), np.float32), y=y)
    with pytest.raises(ValueError, match=r"held-out part \(holdout_fraction\) drew class\(es\) 2 .* x_test"):
        DataFile(q, holdout_fraction=0.5)


# -------------------------------------------------------------------------- memory limits
def test_available_memory_counts_the_address_space_limit():
    script = textwrap.dedent("""
        import resource
        from fastrnn import memory
        free = memory.available()
        vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + 300 * 2**20, resource.RLIM_INFINITY))
        limited = memory.available()
        print(free > 400 * 2**20, 250 * 2**20 < limited < 310 * 2**20)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr


def test_mnist_under_ulimit_v_is_one_clear_error(tmp_path):
    """An mnist file that honestly declares its pixels as uint8, which fit, but whose float32
    copy does not: under `ulimit -v` this was a MemoryError traceback. Counted now."""
    n = 60000  # 47 MB of uint8 pixels, 188 MB as float32
    p = tmp_path / "m.npz"
    np.savez_compressed(p, x_train=np.zeros((n, 784), np.uint8), y_train=np.zeros(n, np.uint8),
                        x_test=np.zeros((10, 784), np.uint8), y_test=np.zeros(10, np.uint8))
    script = textwrap.dedent(f"""
        import resource, sys
        from click.testing import CliRunner
        from fastrnn_cli.main import cli
        import numpy, fastrnn.tasks.mnist, fastrnn.train.loop, fastrnn.sweep.engine  # imported before the limit
        vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + 150 * 2**20, resource.RLIM_INFINITY))
        r = CliRunner().invoke(cli, ["train", "--task", "mnist", "--data", {str(p)!r}, "--steps", "1",
                                     "--out", {str(tmp_path / 'o')!r}])
        print(r.exit_code, type(r.exception).__name__)
        print(r.output)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    code, exc = out.stdout.split("\n")[0].split()
    assert (code, exc) == ("2", "SystemExit"), out.stdout + out.stderr
    assert "of memory;" in out.stdout and "m.npz" in out.stdout


def test_the_guard_counts_the_converted_copies(tmp_path, monkeypatch):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((1000, 50, 8), np.float16), y=np.arange(1000) % 2)  # 0.8 MB as stored
    monkeypatch.setattr(memory, "available", lambda: 2 * 2**20)  # fits as stored, not as float32 twice
    with pytest.raises(ValueError, match=r"d.npz .*needs about 3.8 MiB of memory; 2.0 MiB is available"):
        make_task("file", data=p)


# ------------------------------------------------------------------------------ CSV files
def test_a_csv_of_only_a_header_is_one_clear_error(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"s.csv: holds no rows of numbers \(only a header row\)"):
        make_task("file", data=p, window=1)


def test_a_csv_too_large_to_standardize_is_refused(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("\n".join(f"{v},1" for v in [1e308, -1e308, 5e307, 1.0] * 5) + "\n")
    with pytest.raises(ValueError, match=r"s.csv: holds a value of magnitude 1e\+308.*rescale the data"):
        make_task("file", data=p, window=2)


# ------------------------------------------------------------------- JSON and TOML depth
@pytest.mark.parametrize("meta, match", [
    ("[" * 100000 + "]" * 100000, "nested too deep"),
    ('{"format": "fastrnn-checkpoint", "version": 1, "step": ' + "9" * 5000 + "}", "digits"),
])
def test_hostile_checkpoint_metadata_is_one_clear_error(tmp_path, meta, match):
    p = tmp_path / "c.npz"
    np.savez(p, meta=np.frombuffer(meta.encode(), np.uint8), params=np.zeros(3))
    with pytest.raises(ValueError, match=f"checkpoint: .*c.npz has unreadable metadata.*{match}"):
        ckpt.load(p)
    r = run("evaluate", p)
    assert r.exit_code == 2 and clean(r) and "c.npz" in r.output


def test_hostile_summary_in_a_run_folder_is_one_clear_error(tmp_path):
    out = tmp_path / "r"
    assert run("train", "--cell", "tanh", *TINY, "--out", out).exit_code == 0
    (out / "summary.json").write_text("[" * 100000 + "]" * 100000)
    r = run("train", "--cell", "tanh", *TINY, "--out", out, "--resume")
    assert r.exit_code == 2 and clean(r) and "summary.json" in r.output and "nested too deep" in r.output


@pytest.mark.parametrize("text, match", [
    ('[base]\nsteps = ' + "[" * 5000 + "]" * 5000 + '\n[grid]\ncell = ["tanh"]\n', "nested too deep"),
    ('[base]\nsteps = ' + "9" * 5000 + '\n[grid]\ncell = ["tanh"]\n', "digits"),
])
def test_hostile_sweep_spec_is_one_clear_error(tmp_path, text, match):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=f"spec: .*s.toml .*{match}"):
        load_spec(p)
    r = run("sweep", p, "--out", tmp_path / "o")
    assert r.exit_code == 2 and clean(r) and "s.toml" in r.output


def test_loads_names_what_it_read():
    for text in ("{bad", "[" * 50000, b"\xff\xfe"):
        with pytest.raises(ValueError, match="^metrics: "):
            fileio.loads(text, "metrics")


# ------------------------------------------------------------- wrongly accepted options
@pytest.mark.parametrize("args, match", [
    (["--warmup-steps", "50", "--steps", "20"], "warmup_steps: 50 is more than the run's 20 steps"),
    (["--dropout", "0.2"], "dropout: .*with one layer it would do nothing"),
])
def test_options_that_would_do_nothing_are_refused(tmp_path, args, match):
    r = run("train", "--cell", "tanh", *TINY, *args, "--out", tmp_path / "o")
    assert r.exit_code == 2 and clean(r), r.output
    import re
    assert re.search(match, r.output), r.output
    assert not (tmp_path / "o").exists()
    TrainConfig(dropout=0.2, layers=2, warmup_steps=20, steps=20)  # what is meaningful still passes


def test_predict_and_export_refuse_to_overwrite_without_force(tmp_path):
    d = tmp_path / "run"
    assert run("train", "--cell", "tanh", *TINY, "--out", d).exit_code == 0
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 6, 2), np.float32))
    cmds = [["predict", d, "--data", tmp_path / "x.npz"]]
    try:
        import safetensors  # noqa: F401
        cmds.append(["export", d])
    except ImportError:
        pass
    for cmd in cmds:
        out = tmp_path / f"{cmd[0]}.out"
        out.write_bytes(b"mine")
        r = run(*cmd, "--out", out)
        assert r.exit_code == 2 and clean(r) and "exists; pass --force" in r.output
        assert out.read_bytes() == b"mine"
        r = run(*cmd, "--out", out, "--force")
        assert r.exit_code == 0 and out.read_bytes() != b"mine", r.output


def test_a_huge_compare_is_asked_about_before_anything_is_built(tmp_path):
    """compare --seeds 1000000 used to start 4 million runs without a word."""
    import time
    t0 = time.perf_counter()
    r = run("compare", "--seeds", "1000000", "--out", tmp_path / "c")
    assert r.exit_code == 2 and clean(r) and "4,000,000 runs" in r.output and "--yes" in r.output, r.output
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "c").exists()


def test_a_huge_sweep_needs_yes_off_a_terminal(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[base]\ntask = "adding"\nsteps = 10\n[grid]\ncell = ["tanh", "gru"]\nseed = '
                 f'{list(range(500))}\n')
    r = run("sweep", p, "--out", tmp_path / "o")
    assert r.exit_code == 2 and clean(r) and "1,000 runs" in r.output and "pass --yes" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_a_sweep_prints_its_estimated_time(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[base]\ntask = "adding"\nseq_len = 6\nhidden = 6\nbatch_size = 8\nsteps = 10\neval_every = 5\n'
                 '[grid]\ncell = ["tanh"]\n')
    r = run("sweep", p, "--out", tmp_path / "o", "--workers", "1")
    assert r.exit_code == 0 and "sweep: 1 runs, 10 training steps at most" in r.output and "roughly 1 min" in r.output


@pytest.mark.parametrize("line, match", [
    ('data = "missing.txt"', "run cell=tanh: data: no such file: missing.txt"),
    ("", "run cell=tanh: data: the text task needs a data file"),
])
def test_a_spec_data_path_is_checked_before_any_run(tmp_path, line, match):
    p = tmp_path / "s.toml"
    p.write_text(f'[base]\ntask = "text"\nsteps = 10\n{line}\n[grid]\ncell = ["tanh"]\n')
    with pytest.raises(ValueError, match=match):
        load_spec(p)


@pytest.mark.parametrize("x, match", [
    (np.zeros((5, 16, 49)), r"x_train must be numeric \(N, 28, 28\) or \(N, 784\)"),
    (np.full((5, 784), -3.0), r"pixels must lie in 0..255"),
    (np.full((5, 784), 300.0), r"pixels must lie in 0..255"),
])
def test_mnist_refuses_other_shapes_and_pixel_ranges(tmp_path, x, match):
    p = tmp_path / "m.npz"
    np.savez(p, x_train=x, y_train=np.zeros(5, int), x_test=np.zeros((5, 784)), y_test=np.zeros(5, int))
    with pytest.raises(ValueError, match=match):
        load_mnist(p)


# --------------------------------------------------------------------- stale temporaries
def test_a_killed_writers_temporaries_are_swept_when_the_folder_is_opened(tmp_path):
    """kill -9 between a checkpoint's temporary file and its rename left .tmp-*.npz behind for
    good (about 1 kill in 12); the next process to hold the folder's lock removes them."""
    out = tmp_path / "r"
    assert run("train", "--cell", "tanh", *TINY, "--out", out, "--steps", "10").exit_code == 0
    (out / "summary.json").unlink()
    stale = out / ".tmp-k1ll3d.npz"
    stale.write_bytes(b"half a checkpoint")
    assert run("train", "--cell", "tanh", *TINY, "--out", out, "--steps", "10", "--resume").exit_code == 0
    assert not stale.exists()
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]


# ------------------------------------------------- a diverging cell in `fastrnn gradients`
def test_gradients_reports_a_diverged_cell_and_keeps_the_others(tmp_path):
    """At T = 200 the IRNN diverges on Adam's first step; the command used to exit 2 ("no such
    file: .../checkpoint.npz") and throw away the cells it had profiled."""
    out = tmp_path / "g"
    r = run("gradients", "--cells", "relu,tanh", "--task", "adding", "--seq-len", "200", "--train-steps", "3",
            "--out", out)
    assert r.exit_code == 0 and clean(r), r.output
    assert "relu  trained training diverged at step" in r.output
    g = json.loads((out / "gradients.json").read_text())
    assert [p["cell"] for p in g["init"]] == ["relu", "tanh"] and [p["cell"] for p in g["trained"]] == ["tanh"]
    assert g["untrained"][0]["cell"] == "relu" and g["untrained"][0]["status"] == "diverged"
    r = run("gradients", "--cells", "relu", "--task", "adding", "--seq-len", "200", "--train-steps", "3",
            "--out", tmp_path / "g1")
    assert r.exit_code == 1 and clean(r) and "no cell finished training without diverging" in r.output
    assert (tmp_path / "g1" / "gradients.json").exists()  # what it has is still written
