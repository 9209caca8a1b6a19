"""The CUDA kernels against the CPU kernels, on tiny shapes: under Numba's CUDA simulator in CI
(conftest.py turns it on), or on a real GPU when NUMBA_ENABLE_CUDASIM=0 and one is present."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("numba_cuda")

from fastrnn import cuda as fcuda  # noqa: E402
from fastrnn.finitediff import make_problem  # noqa: E402
from fastrnn.train.optim import make_optimizer  # noqa: E402

if not fcuda.status()[0]:
    pytest.skip(f"CUDA not usable here: {fcuda.status()[1]}", allow_module_level=True)

from fastrnn.cuda.model import CudaRNN  # noqa: E402
from fastrnn_cli.main import cli  # noqa: E402

CASES = [
    dict(loss="mse", output="last", num_layers=2, variable_lengths=True),
    dict(loss="ce", output="all", num_layers=1, variable_lengths=True),
]


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c['loss']}-{c['output']}-L{c['num_layers']}")
@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
def test_forward_and_every_gradient_match_the_cpu(cell, cfg):
    model, b = make_problem(cell, T=4, B=3, I=2, H=3, O=2, seed=1, **cfg)
    cpu = model.loss_and_grad(**b)
    dev = CudaRNN(model)
    value = dev.loss_and_grad(b["x"], b["target"], b["loss"], b["output"], b["lengths"])
    assert abs(value - cpu.loss) < 1e-12
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu.grad, rtol=0, atol=1e-12)
    y, _ = dev.forward(b["x"], b["lengths"], output=b["output"])
    np.testing.assert_allclose(y, cpu.output, rtol=0, atol=1e-12)


def test_token_inputs_and_float32():
    model, b = make_problem("lstm", loss="ce", output="last", num_layers=1, tokens=True, T=4, B=3, I=5, H=3,
                            O=2, seed=2)
    cpu = model.loss_and_grad(**b)
    dev = CudaRNN(model)
    dev.loss_and_grad(b["x"], b["target"], "ce", "last", b["lengths"])
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu.grad, rtol=0, atol=1e-12)
    from fastrnn import RNN
    m32 = RNN("gru", 2, 3, 2, 1, dtype="float32")
    m32.flat[:] = make_problem("gru", T=4, B=3, I=2, H=3, O=2, num_layers=1)[0].flat
    _, b32 = make_problem("gru", T=4, B=3, I=2, H=3, O=2, num_layers=1)
    c32 = m32.loss_and_grad(**b32).grad.copy()
    d32 = CudaRNN(m32)
    d32.loss_and_grad(b32["x"], b32["target"], b32["loss"], b32["output"], b32["lengths"])
    g = d32.grad_flat.copy_to_host()
    assert g.dtype == np.float32 and np.abs(g - c32).max() < 1e-5 * np.abs(c32).max()


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_clip_and_one_optimizer_step_match_the_cpu(name):
    model, b = make_problem("gru", T=4, B=3, I=2, H=3, O=2, num_layers=1, seed=3)
    dev = CudaRNN(model)
    dev.loss_and_grad(b["x"], b["target"], b["loss"], b["output"], b["lengths"])
    cpu = model.loss_and_grad(**b).grad.copy()
    from fastrnn.train.optim import clip_global_norm
    norm_cpu = clip_global_norm(cpu, 0.01)
    assert abs(dev.clip(0.01) - norm_cpu) < 1e-12
    np.testing.assert_allclose(dev.grad_flat.copy_to_host(), cpu, rtol=0, atol=1e-15)
    opt_c = make_optimizer(name, model.flat.size, 0.1, weight_decay=0.01, momentum=0.9, dtype=np.float64)
    opt_d = make_optimizer(name, model.flat.size, 0.1, weight_decay=0.01, momentum=0.9, dtype=np.float64)
    for _ in range(2):
        dev.step(opt_d)
        opt_c.step(model.flat, cpu)
    np.testing.assert_allclose(dev.flat.copy_to_host(), model.flat, rtol=0, atol=1e-14)
    dev.sync_optimizer(opt_d)
    for s in opt_c.state:
        np.testing.assert_allclose(opt_d.state[s], opt_c.state[s], rtol=0, atol=1e-14)
    assert opt_d.t == opt_c.t == 2


def test_train_on_cuda_gives_the_cpu_result(tmp_path):
    args = ["train", "--cell", "lstm", "--seq-len", "4", "--hidden", "3", "--batch-size", "3", "--steps", "4",
            "--eval-every", "2", "--dtype", "float64", "--optimizer", "adam", "--lr", "0.05"]
    from fastrnn.tasks.base import Task
    Task.heldout_size = 6  # keep the simulated evaluation tiny
    try:
        r_cpu = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "cpu")])
        r_gpu = CliRunner().invoke(cli, args + ["--device", "cuda", "--out", str(tmp_path / "gpu")])
    finally:
        Task.heldout_size = 1000
    assert r_cpu.exit_code == 0 and r_gpu.exit_code == 0, r_gpu.output
    a = json.loads(r_cpu.output.strip().splitlines()[-1])
    g = json.loads(r_gpu.output.strip().splitlines()[-1])
    assert abs(a["final_metric"] - g["final_metric"]) < 1e-10
    from fastrnn.train.loop import load_model
    wa, _ = load_model(tmp_path / "cpu" / "checkpoint.npz")
    wg, _ = load_model(tmp_path / "gpu" / "checkpoint.npz")
    np.testing.assert_allclose(wa.flat, wg.flat, rtol=0, atol=1e-12)


def test_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("running on a real GPU: there is no 'no GPU' case to check")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")  # the real target, on this GPU-less machine
    out = subprocess.run([sys.executable, "-m", "fastrnn_cli", "train", "--device", "cuda", "--steps", "1",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env)
    assert out.returncode == 2, out.stderr
    assert "device: cuda is not usable here" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o").exists()
