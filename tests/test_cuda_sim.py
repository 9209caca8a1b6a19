"""The CUDA kernels against the CPU kernels, on tiny shapes: under Numba's CUDA simulator in CI
(conftest.py turns it on), or on a real GPU when NUMBA_ENABLE_CUDASIM=0 and one is present.
The CPU kernels are themselves checked against the NumPy reference and finite differences, so
agreement to 1e-12 in float64 carries those checks over; a direct finite-difference check of
the device kernels is here too."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install '.[test-full]' to run them")

from fastrnn import cuda as fcuda  # noqa: E402
from fastrnn.cells import CELLS  # noqa: E402
from fastrnn.finitediff import check_gradients, make_problem  # noqa: E402
from fastrnn.train.optim import make_optimizer  # noqa: E402

if not fcuda.status()[0]:
    pytest.skip(f"CUDA not usable here: {fcuda.status()[1]}", allow_module_level=True)

from fastrnn_cli.main import cli  # noqa: E402

pytestmark = pytest.mark.slow  # real processes, the simulator or a cluster: not in the fast lane

CASES = [
    dict(loss="mse", output="last", num_layers=2, variable_lengths=True, K=None),
    dict(loss="ce", output="all", num_layers=1, variable_lengths=True, K=None),
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, K=1, state=True),
    dict(loss="mse", output="last", num_layers=1, variable_lengths=True, K=2, state=True),
    dict(loss="mse", output="last", num_layers=3, variable_lengths=True, K=2, dropout=0.5),  # masks fixed
    dict(loss="ce", output="all", num_layers=2, variable_lengths=True, K=None, dropout=0.3, bidirectional=True),
    dict(loss="mse", output="last", num_layers=2, variable_lengths=True, K=None, bidirectional=True),
]


def _state(cell, L, B, H, seed=5):
    rng = np.random.default_rng(seed)
    h = rng.normal(0, 0.5, (L, B, H))
    return (h, rng.normal(0, 0.5, (L, B, H))) if CELLS[cell].has_cell_state else h


def _host(s):
    return tuple(a.copy_to_host() for a in s) if isinstance(s, tuple) else s.copy_to_host()


def _case_id(c):
    return (f"{c['loss']}-{c['output']}-L{c['num_layers']}-K{c['K']}" + ("-state" if c.get("state") else "")
            + ("-dropout" if c.get("dropout") else "") + ("-bidir" if c.get("bidirectional") else ""))


# dropout and bidirectional layers are the model's composition of the same layer kernels: one
# path, and one cell with a hidden state alone and one with a cell state, suffice for them (the
# paths and the cells differ only inside a layer)
PARAMS = [pytest.param(cell, cfg, path, id=f"{cell}-{_case_id(cfg)}-{path}") for cell in CELLS for cfg in CASES
          for path in ("sequence", "steps")
          if not (cfg.get("dropout") or cfg.get("bidirectional")) or (path == "sequence" and cell in ("tanh", "lstm"))]


@pytest.mark.parametrize("cell, cfg, path", PARAMS)
def test_forward_and_every_gradient_match_the_cpu(cell, cfg, path):
    """Both ways of running a layer over the steps: one launch per sequence, or two per step."""
    cfg = dict(cfg)
    K, with_state = cfg.pop("K"), cfg.pop("state", False)
    model, b = make_problem(cell, T=4, B=3, I=2, H=3, O=2, seed=1, **cfg)
    state = _state(cell, cfg["num_layers"], 3, 3) if with_state else None
    cpu = model.loss_and_grad(**b, state=state, bptt_truncate=K)
    cpu_grad, cpu_dh = cpu.grad.copy(), model.hidden_grads()
    dev = model.copy("cuda", path)
    res = dev.loss_and_grad(**b, state=state, bptt_truncate=K)
    assert abs(res.loss - cpu.loss) < 1e-12
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu_grad, rtol=0, atol=1e-12)
    for a, c in zip(dev.hidden_grads(), cpu_dh):  # dL/dh_t, what `fastrnn gradients` plots
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12)
    for a, c in zip(np.atleast_3d(_host(res.state)), np.atleast_3d(cpu.state)):  # final states
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.output.copy_to_host() if hasattr(res.output, "copy_to_host") else res.output,
                               cpu.output, rtol=0, atol=1e-12)
    y, final = dev.forward(b["x"], b["lengths"], state=state, output=b["output"])  # no dropout here
    np.testing.assert_allclose(y, model.forward(b["x"], b["lengths"], state=state, output=b["output"])[0],
                               rtol=0, atol=1e-12)
    if with_state:  # a state handed back on the device continues the stream like the CPU's
        nxt_cpu = model.loss_and_grad(**b, state=cpu.state, bptt_truncate=K).loss
        assert abs(dev.loss_and_grad(**b, state=res.state, bptt_truncate=K).loss - nxt_cpu) < 1e-12


@pytest.mark.parametrize("threads", [2, 5])
@pytest.mark.parametrize("path", ["sequence", "steps"])
def test_layer_norm_sums_with_fewer_or_more_threads_than_units(monkeypatch, path, threads):
    """The LayerNorm LSTM's block sums (cuda/norm.py) where a thread owns two units (2 threads,
    H = 3) and where some own none (5): the launches ask sequence.threads_for, patched here."""
    from fastrnn.cuda import sequence

    model, b = make_problem("lnlstm", T=3, B=2, I=2, H=3, O=2, seed=2, num_layers=1)
    cpu = model.loss_and_grad(**b, bptt_truncate=1)
    grad = cpu.grad.copy()
    monkeypatch.setattr(sequence, "threads_for", lambda H, cap=256: threads)
    dev = model.copy("cuda", path)
    res = dev.loss_and_grad(**b, bptt_truncate=1)
    assert abs(res.loss - cpu.loss) < 1e-12
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("path", ["sequence", "steps"])
@pytest.mark.parametrize("cell", ["tanh", "gru", "lstm", "lnlstm"])
def test_step_jacobians_match_the_cpu(cell, path):
    from fastrnn.gradients import step_jacobians

    model, b = make_problem(cell, T=3, B=2, I=2, H=2, O=2, num_layers=2, seed=4)
    dev = model.copy("cuda", path)
    np.testing.assert_allclose(dev.step_jacobians(b["x"][:, :1]), step_jacobians(model, b["x"][:, :1]),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell,K,layers,loss,output", [("tanh", None, 1, "mse", "last"),
                                                        ("relu", 1, 2, "mse", "last")])
def test_device_gradients_match_finite_differences(cell, K, layers, loss, output):
    """The analytic gradient and every perturbed loss from the device kernels (full BPTT: the
    device forward; truncated: the device's windows from frozen states)."""
    model, b = make_problem(cell, T=3, B=2, I=2, H=2, O=2, num_layers=layers, seed=1, loss=loss, output=output)
    errors = check_gradients(model, bptt_truncate=K, device="cuda", **b)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("threads", [2, 7], ids=["units-per-thread", "idle-threads"])
@pytest.mark.parametrize("cell", ["relu", "gru", "lstm"])
def test_sequence_kernels_with_more_units_than_threads_and_idle_threads(cell, threads, monkeypatch):
    from fastrnn.cuda import sequence

    monkeypatch.setattr(sequence, "threads_for", lambda H, cap=256: threads)
    model, b = make_problem(cell, T=3, B=2, I=2, H=5, O=2, num_layers=1, seed=6)
    cpu = model.loss_and_grad(**b, bptt_truncate=1).grad.copy()
    dev = model.copy("cuda", "sequence")
    dev.loss_and_grad(**b, bptt_truncate=1)
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu, rtol=0, atol=1e-12)


def test_path_choice():
    model, _ = make_problem("gru", T=3, B=2, I=2, H=3, O=2, num_layers=1)
    assert model.copy("cuda").backend.path == "sequence"
    assert model.copy("cuda", "steps").backend.path == "steps"
    with pytest.raises(ValueError, match="path"):
        model.copy("cuda", "fast")
    from fastrnn import RNN
    from fastrnn.cuda import sequence
    wide = RNN("tanh", 1, sequence.MAX_H + 1, 1)
    assert wide.copy("cuda").backend.path == "steps"  # too wide for the sequence kernels' shared memory
    with pytest.raises(ValueError, match="hidden_size"):
        wide.copy("cuda", "sequence")
    assert wide.device == "cpu"  # a refused move leaves the model where it was


def test_token_inputs_and_float32():
    model, b = make_problem("lstm", loss="ce", output="last", num_layers=1, tokens=True, T=4, B=3, I=5, H=3,
                            O=2, seed=2)
    cpu = model.loss_and_grad(**b)
    dev = model.copy("cuda")
    dev.loss_and_grad(**b)
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu.grad, rtol=0, atol=1e-12)
    from fastrnn import RNN
    m32 = RNN("gru", 2, 3, 2, 1, dtype="float32")
    m32.flat[:] = make_problem("gru", T=4, B=3, I=2, H=3, O=2, num_layers=1)[0].flat
    _, b32 = make_problem("gru", T=4, B=3, I=2, H=3, O=2, num_layers=1)
    c32 = m32.loss_and_grad(**b32).grad.copy()
    d32 = m32.copy("cuda")
    d32.loss_and_grad(**b32)
    g = d32.grad_flat.copy_to_host()
    assert g.dtype == np.float32 and np.abs(g - c32).max() < 1e-5 * np.abs(c32).max()


def test_bad_state_and_truncation_are_clear_errors():
    model, b = make_problem("lstm", T=4, B=3, I=2, H=3, O=2, num_layers=1)
    dev = model.copy("cuda")
    with pytest.raises(ValueError, match="state"):
        dev.loss_and_grad(**b, state=np.zeros((1, 3, 3)))  # the LSTM needs (h, c)
    with pytest.raises(ValueError, match=r"state\[0\]"):
        dev.forward(b["x"], state=(np.zeros((1, 2, 3)), np.zeros((1, 3, 3))))
    with pytest.raises(ValueError, match="bptt_truncate"):
        dev.loss_and_grad(**b, bptt_truncate=-1)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_clip_and_one_optimizer_step_match_the_cpu(name):
    model, b = make_problem("gru", T=4, B=3, I=2, H=3, O=2, num_layers=1, seed=3)
    dev = model.copy("cuda")
    dev.loss_and_grad(**b)
    cpu = model.loss_and_grad(**b).grad.copy()
    from fastrnn.clip import clip_global_norm
    norm_cpu = clip_global_norm(cpu, 0.01)
    assert abs(dev.clip_grad_norm(0.01) - norm_cpu) < 1e-12
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu, rtol=0, atol=1e-15)
    opt_c = make_optimizer(name, model.flat.size, 0.1, weight_decay=0.01, momentum=0.9, dtype=np.float64)
    opt_d = make_optimizer(name, model.flat.size, 0.1, weight_decay=0.01, momentum=0.9, dtype=np.float64,
                           backend=dev.backend)
    for _ in range(2):
        opt_d.step(dev.flat, dev.grad_flat)
        opt_c.step(model.flat, cpu)
    np.testing.assert_allclose(dev.flat.copy_to_host(), model.flat, rtol=0, atol=1e-14)
    dev_state = opt_d.state_dict()[1]
    for s in opt_c.state:
        np.testing.assert_allclose(dev_state[s], opt_c.state[s], rtol=0, atol=1e-14)
    assert opt_d.t == opt_c.t == 2


@pytest.fixture
def tiny_heldout():
    from fastrnn.tasks.base import Task
    from fastrnn.tasks.text import Text

    keep = Task.heldout_size, Text.eval_streams
    Task.heldout_size, Text.eval_streams = 6, 2  # keep the simulated evaluation tiny
    yield
    Task.heldout_size, Text.eval_streams = keep


@pytest.mark.parametrize("extra", [
    ["--cell", "lstm", "--seq-len", "4", "--optimizer", "adam", "--layers", "2", "--dropout", "0.3"],
    # the stateful text task (state carried on the device) with truncated BPTT
    ["--cell", "gru", "--task", "text", "--seq-len", "3", "--bptt-truncate", "1", "--optimizer", "adagrad"],
], ids=["adding", "text-truncated"])
def test_train_on_cuda_gives_the_cpu_result(tmp_path, tiny_heldout, extra):
    (tmp_path / "t.txt").write_text("abcabd abcabd " * 6)
    if "text" in extra:
        extra = extra + ["--data", str(tmp_path / "t.txt")]
    args = ["train", "--hidden", "3", "--batch-size", "3", "--steps", "4", "--eval-every", "2",
            "--dtype", "float64", "--lr", "0.05", "--quiet"] + extra
    r_cpu = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "cpu")])
    r_gpu = CliRunner().invoke(cli, args + ["--device", "cuda", "--out", str(tmp_path / "gpu")])
    assert r_cpu.exit_code == 0 and r_gpu.exit_code == 0, (r_cpu.output, r_gpu.output)
    a = json.loads(r_cpu.output.strip().splitlines()[-1])
    g = json.loads(r_gpu.output.strip().splitlines()[-1])
    assert abs(a["final_metric"] - g["final_metric"]) < 1e-10
    from fastrnn.train import checkpoint as ckpt
    _, wa, _, ca = ckpt.load(tmp_path / "cpu" / "checkpoint.npz")
    _, wg, _, cg = ckpt.load(tmp_path / "gpu" / "checkpoint.npz")
    np.testing.assert_allclose(wa, wg, rtol=0, atol=1e-12)
    assert len(ca) == len(cg) == (1 if "text" in extra else 0)  # the carried state, from the device too
    for x, y in zip(ca, cg):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)


def test_gradients_command_on_cuda_matches_the_cpu(tmp_path):
    args = ["gradients", "--cells", "gru", "--seq-len", "3", "--hidden", "2", "--profile-batch", "2",
            "--dtype", "float64"]
    r_cpu = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "cpu")])
    r_gpu = CliRunner().invoke(cli, args + ["--device", "cuda", "--out", str(tmp_path / "gpu")])
    assert r_cpu.exit_code == 0 and r_gpu.exit_code == 0, r_gpu.output
    a = json.loads((tmp_path / "cpu" / "gradients.json").read_text())["init"][0]
    g = json.loads((tmp_path / "gpu" / "gradients.json").read_text())["init"][0]
    assert g["device"] == "cuda" and a["device"] == "cpu"
    np.testing.assert_allclose(g["grad_norm_by_lag"], a["grad_norm_by_lag"], rtol=1e-12)
    for key in ("mean", "max", "min"):
        assert abs(g["jacobian_norm"][key] - a["jacobian_norm"][key]) < 1e-12
    assert g["saturated"] == a["saturated"]


@pytest.mark.parametrize("command", [["train", "--steps", "1"], ["gradcheck", "--cell", "tanh"],
                                     ["gradients", "--seq-len", "5"]])
def test_cuda_without_a_gpu_is_one_clear_error(tmp_path, command):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("running on a real GPU: there is no 'no GPU' case to check")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")  # the real target, on this GPU-less machine
    out_args = [] if command[0] == "gradcheck" else ["--out", str(tmp_path / "o")]
    out = subprocess.run([sys.executable, "-m", "fastrnn_cli", *command, "--device", "cuda", *out_args],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 2, out.stderr
    assert "device: cuda is not usable here" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o").exists()


def test_gpu_benchmark_runs_and_checks_first(tmp_path):
    """bench/bench.py --device cuda on its smoke grid: correctness checked, rows written (the
    simulator's times mean nothing; the point is that a lent GPU finds a working script)."""
    import argparse

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import gpu

    args = argparse.Namespace(grid="smoke", rounds=1, per_block=1, out=str(tmp_path))
    assert gpu.main(args) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [r["cell"] for r in doc["rows"]] == ["tanh", "relu", "gru", "lstm"]
    assert all(r["check"]["ok"] and r["check"]["max_rel_err_cpu"] < 1e-5 for r in doc["rows"])
    for r in doc["rows"]:  # both paths timed (positive medians), the default one reported
        assert r["path"] == "sequence" and r["sequence_ms"] > 0 and r["steps_ms"] > 0
        assert r["fastrnn_ms"] == r["sequence_ms"] and set(r["fastrnn_first_call_s"]) == {"sequence", "steps"}
    assert "simulator" in doc["machine"]["gpu"]  # the report knows these times are not a GPU's
    md = (tmp_path / "RESULTS.md").read_text()
    assert md.count("\n| ") >= 1 + len(doc["rows"]) and doc["machine"]["gpu"] in md
