"""Untrusted inputs (issue #11): sizes that would not fit in memory, hand-edited checkpoint
metadata, sweep specs with the wrong types, non-finite options and metrics, empty folders.
Each gives one clear error naming the argument or the file, never a traceback."""
import json
import math
import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn import fileio, memory
from fastrnn.sweep.spec import MAX_NAME, expand, load_spec
from fastrnn.tasks.mnist import load_mnist
from fastrnn.tasks.text import Text, _bigram_bits
from fastrnn.train import checkpoint as ckpt
from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import build, load_model, train
from fastrnn_cli.main import cli
from stops import StopAt

TINY = ["--seq-len", "8", "--hidden", "8", "--batch-size", "8", "--eval-every", "10"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def clean(r):
    """The command ended by itself (exit code) or by a usage error: no exception escaped."""
    return r.exception is None or isinstance(r.exception, SystemExit)


def strict_json(text):
    def bad(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=bad)


# ----------------------------------------------------------------------------- memory
@pytest.mark.parametrize("args", [["--hidden", "100000"], ["--layers", "100000"], ["--seq-len", "10000000000"]])
def test_runs_too_large_for_memory_are_refused(tmp_path, args):
    r = run("train", "--steps", "5", "--out", tmp_path / "o", *args)
    assert r.exit_code == 2 and clean(r), r.output
    assert "of memory;" in r.output and "is available" in r.output
    assert not (tmp_path / "o").exists()


def test_checkpoint_claiming_a_huge_model_allocates_nothing(tmp_path):
    out = tmp_path / "r"
    assert run("train", "--steps", "5", *TINY, "--out", out).exit_code == 0
    meta, params, opt, carry = ckpt.load(out / "checkpoint.npz")
    meta["model"]["hidden_size"] = 20000
    meta["config"]["hidden"] = 20000
    bad = tmp_path / "huge.npz"
    ckpt.save(bad, meta, params, opt, carry)
    assert os.path.getsize(bad) < 20000
    with pytest.raises(ValueError, match=r"holds \d+ parameters; its metadata describes \d+"):
        load_model(bad)
    for cmd in (["evaluate", bad], ["sample", bad]):
        r = run(*cmd)
        assert r.exit_code == 2 and clean(r) and "checkpoint:" in r.output


def test_text_with_a_huge_alphabet_needs_no_square_table(tmp_path):
    """58,000 distinct characters used to build a 58k x 58k bigram table (27 GB)."""
    chars = "".join([chr(c) for c in range(0xA0, 0x30000) if chr(c).isprintable()][:58000])
    rng = np.random.default_rng(0)
    f = tmp_path / "big.txt"
    f.write_text(chars + "".join(rng.choice(list(chars), 20000)), encoding="utf-8")
    tracemalloc.start()
    t = Text(f, seq_len=25)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert t.input_size == 58000 and peak < 200e6
    assert t.solved_at > 0


def test_sparse_bigram_equals_the_table():
    rng = np.random.default_rng(1)
    V = 7
    train_ids, held = rng.integers(0, V, 500), rng.integers(0, V, 80)
    bi = np.ones((V, V))
    np.add.at(bi, (train_ids[:-1], train_ids[1:]), 1.0)
    bi /= bi.sum(1, keepdims=True)
    dense = float(-np.mean(np.log2(bi[held[:-1], held[1:]])))
    assert _bigram_bits(train_ids, held, V) == pytest.approx(dense, rel=1e-12)


def mnist_arrays(n=20):
    return dict(x_train=np.zeros((n, 784)), y_train=np.zeros(n, int),
                x_test=np.zeros((n, 784)), y_test=np.zeros(n, int))


def test_zip_bomb_is_refused_before_decompressing(tmp_path, monkeypatch):
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, **mnist_arrays(20000))  # 250 MB of zeros in a small file
    assert os.path.getsize(p) < 2e6
    monkeypatch.setattr(memory, "available", lambda: 50 * 2**20)
    with pytest.raises(ValueError, match=r"data: .*bomb.npz.*needs about 359.\d MiB of memory; 50.0 MiB is available"):
        load_mnist(p)


def test_npz_header_claiming_more_than_its_member(tmp_path):
    p = tmp_path / "liar.npz"
    arrays = mnist_arrays()
    del arrays["x_train"]
    np.savez(p, **arrays)
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**9, 784)}
    with zipfile.ZipFile(p, "a") as zf:  # x_train: a small member claiming 6 TB
        import io
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        buf.write(b"\0" * 64)
        zf.writestr("x_train.npy", buf.getvalue())
    with pytest.raises(ValueError, match=r"array x_train claims 6,272,000,000,000 bytes in a member of"):
        load_mnist(p)


def test_empty_mnist_split(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, **dict(mnist_arrays(), x_test=np.zeros((0, 784)), y_test=np.zeros(0, int)))
    with pytest.raises(ValueError, match=r"data: x_test in .*m.npz is empty"):
        load_mnist(p)


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """An interrupted character-model run: a checkpoint with every metadata field in use
    (optimizer, rng, step, config, task cursor, vocabulary, carried state)."""
    d = tmp_path_factory.mktemp("textrun")
    f = d / "book.txt"
    f.write_text("to be or not to be, that is the question. " * 40)
    args = ["--task", "text", "--data", str(f), "--cell", "lstm", "--seq-len", "12", "--hidden", "8",
            "--batch-size", "4", "--steps", "100", "--eval-every", "10"]
    cfg = TrainConfig(task="text", data=str(f), cell="lstm", seq_len=12, hidden=8, batch_size=4,
                      steps=100, eval_every=10)
    flag = StopAt(20)
    train(cfg, d / "run", stop=flag, progress=flag.progress)
    return d / "run", args


BAD_META = [
    ("optimizer", None), ("optimizer", {"t": "x"}), ("optimizer", {"t": -1}), ("optimizer", {}),
    ("rng", None), ("rng", "abc"), ("rng", {"bit_generator": "PCG64", "state": "x"}),
    ("rng", {"bit_generator": "MT19937", "state": {}}),
    ("step", "x"), ("step", -5), ("step", 10**30), ("step", 1.5), ("step", None),
    ("config", None), ("config", "x"), ("config", {"cell": 3}), ("config", {}),
    ("task_state", {"cursor": "x"}), ("task_state", {"cursor": [10**12]}), ("task_state", []),
    ("task_state", {"cursor": [1.5, 2]}),
    ("task", {"vocab": 5}), ("task", None), ("task", {"vocab": "ab"}), ("task", "x"),
    ("model", None), ("model", {"cell": "gru"}), ("model", "x"), ("model", {"hidden_size": -1}),
    ("wall_seconds", "x"), ("wall_seconds", -1.0),
]


@pytest.mark.parametrize("key, value", BAD_META)
def test_hand_edited_checkpoint_metadata(tmp_path, text_run, key, value):
    src, args = text_run
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (run_dir / p.name).write_bytes(p.read_bytes())
    meta, params, opt, carry = ckpt.load(src / "checkpoint.npz")
    if key == "model" and isinstance(value, dict):
        value = dict(meta["model"], **value)
    meta[key] = value
    ckpt.save(run_dir / "checkpoint.npz", meta, params, opt, carry)
    codes = []
    for cmd in (["evaluate", run_dir / "checkpoint.npz"], ["sample", run_dir / "checkpoint.npz", "--length", "5"],
                ["train", *args, "--resume", "--out", run_dir, "-q"]):  # last: a resume rewrites the file
        r = run(*cmd)
        assert clean(r), f"{cmd[0]}: {r.exception!r}"
        assert "Traceback" not in r.output
        if r.exit_code:
            assert r.exit_code == 2 and ("checkpoint:" in r.output and str(run_dir) in r.output
                                         or "data: characters not in the model's vocabulary" in r.output), r.output
        codes.append(r.exit_code)
    assert any(codes), "no command noticed the edited field"


# ----------------------------------------------------------------------------- specs
@pytest.mark.parametrize("text, match", [
    ('[base]\nearly_stop = "false"\n[grid]\ncell = ["tanh"]\n', r"early_stop: expected true or false; got 'false'"),
    ('[base]\nforget_bias = "x"\n[grid]\ncell = ["lstm"]\n', r"forget_bias: expected a finite number; got 'x'"),
    ('[base]\npermuted = 1\n[grid]\ncell = ["lstm"]\n', r"permuted: expected true or false; got 1"),
    ('[base]\ndata = 5\n[grid]\ncell = ["lstm"]\n', r"data: expected a file path; got 5"),
    ('[base]\nlr = inf\n[grid]\ncell = ["lstm"]\n', r"lr: expected a finite positive number; got inf"),
    ('[base]\nweight_decay = nan\n[grid]\ncell = ["lstm"]\n', r"weight_decay: expected a finite number >= 0"),
    ('[base]\ntask = "mnist"\ndata = "m.npz"\n[grid]\nseq_len = [100]\n', r"seq_len: the mnist task"),
])
def test_spec_types(tmp_path, text, match):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_spec(p)


def test_spec_clip_zero_turns_clipping_off():
    (_, cfg), = expand({"clip": 0}, {"cell": ["tanh"]})
    assert cfg.clip is None


def test_long_run_names_fit_a_folder():
    runs = expand({"task": "file"}, {"data": ["/" + "d" * 300 + str(i) for i in range(2)], "cell": ["tanh"]})
    names = [n for n, _ in runs]
    assert len(set(names)) == 2 and all(len(n) <= MAX_NAME for n in names)


def test_spec_asking_for_a_gpu_is_checked_before_running(tmp_path):
    pytest.importorskip("numba.cuda")
    p = tmp_path / "s.toml"
    p.write_text('[base]\ndevice = "cuda"\nsteps = 5\n[grid]\ncell = ["tanh"]\n')
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")  # the real driver: there is no GPU here
    r = subprocess.run([sys.executable, "-m", "fastrnn_cli", "sweep", str(p), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=120)
    if r.returncode == 0:
        pytest.skip("a GPU is present")
    assert r.returncode == 2 and 'device = "cuda"' in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("args, name", [
    (["--lr", "inf"], "lr"), (["--weight-decay", "inf"], "weight_decay"), (["--forget-bias", "nan"], "forget_bias"),
    (["--spectral-radius", "inf"], "spectral_radius"), (["--clip", "nan"], "clip"), (["--lr", "nan"], "lr"),
])
def test_non_finite_options_are_refused(tmp_path, args, name):
    r = run("train", "--steps", "5", *TINY, *args, "--out", tmp_path / "o")
    assert r.exit_code == 2 and clean(r) and f"{name}: expected" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_diverged_run_writes_strict_json_and_evaluate_fails(tmp_path):
    out = tmp_path / "d"
    r = run("train", "--cell", "relu", "--init", "xavier", "--optimizer", "sgd", "--lr", "1e6", "--clip", "0",
            "--steps", "50", "--spectral-radius", "3", *TINY, "--out", out)
    assert r.exit_code == 0, r.output
    summary = strict_json((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["message"].startswith("diverged at step")
    for ln in (out / "metrics.jsonl").read_text().splitlines():
        strict_json(ln)
    strict_json(r.output.strip().splitlines()[-1])
    # a model whose weights are no longer finite: evaluate says so and fails
    assert run("train", "--steps", "10", *TINY, "--out", tmp_path / "ok").exit_code == 0
    meta, params, opt, carry = ckpt.load(tmp_path / "ok" / "checkpoint.npz")
    ckpt.save(tmp_path / "nan.npz", meta, np.full_like(params, np.nan), opt, carry)
    r = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "nan.npz")])
    assert r.exit_code == 1 and clean(r)
    rec = strict_json(r.stdout.strip().splitlines()[0])
    assert rec["loss"] is None and rec["finite"] is False and rec["solved"] is False


def test_sample_temperature_must_be_finite(tmp_path):
    r = run("sample", tmp_path / "none.npz", "--temperature", "nan")
    assert r.exit_code == 2 and "temperature" in r.output


def test_result_records_are_strict_json():
    line = fileio.json_line({"a": float("nan"), "b": [float("inf"), 1.5], "c": np.float32(2.0)})
    assert strict_json(line) == {"a": None, "b": [None, 1.5], "c": 2.0}
    assert math.isfinite(strict_json(line)["c"])


# ----------------------------------------------------------------------------- folders
def test_empty_out_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("train", "--steps", "5", *TINY, "--out", "")
    assert r.exit_code == 2 and "out: expected a folder name" in r.output
    assert list(tmp_path.iterdir()) == []


def test_mnist_refuses_a_seq_len(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, **mnist_arrays())
    r = run("train", "--task", "mnist", "--data", p, "--seq-len", "100", "--steps", "1", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "seq_len: the mnist task reads its 784 pixels" in r.output
    cfg = TrainConfig(task="mnist", data=str(p), hidden=4, steps=1)
    task, _ = build(cfg)
    assert task.seq_len == 784
