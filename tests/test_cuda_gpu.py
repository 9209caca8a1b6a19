"""On a real GPU only (NUMBA_ENABLE_CUDASIM=0 and a usable device; skipped otherwise, as in CI):
the device kernels against the CPU kernels at realistic sizes, and a short training run on the
GPU that solves a small adding problem. bench/gpu_check.sh runs these on a lent machine."""
import os

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed: pip install '.[test-full]' to run them")
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "0":
    pytest.skip("needs a real GPU: run with NUMBA_ENABLE_CUDASIM=0", allow_module_level=True)

from fastrnn import RNN  # noqa: E402
from fastrnn import cuda as fcuda  # noqa: E402

if not fcuda.status()[0]:
    pytest.skip(f"CUDA not usable here: {fcuda.status()[1]}", allow_module_level=True)



@pytest.mark.parametrize("K", [None, 20])
@pytest.mark.parametrize("cell", ["tanh", "relu", "gru", "lstm"])
def test_realistic_sizes_match_the_cpu(cell, K):
    T, B, I, H = 100, 64, 32, 256
    rng = np.random.default_rng(0)
    model = RNN(cell, I, H, 10, 2, dtype="float64", seed=0)
    x = rng.normal(0, 1, (T, B, I))
    lengths = rng.integers(T // 2, T + 1, B)
    target = rng.integers(0, 10, (T, B))
    cpu = model.loss_and_grad(x, target, "ce", "all", lengths, bptt_truncate=K)
    g = cpu.grad.copy()
    dev = model.copy("cuda")
    res = dev.loss_and_grad(x, target, "ce", "all", lengths, bptt_truncate=K)
    assert abs(res.loss - cpu.loss) < 1e-10 * abs(cpu.loss)
    dg = dev.grad_flat.copy_to_host()
    assert np.abs(dg - g).max() < 1e-10 * np.abs(g).max()

    m32 = RNN(cell, I, H, 10, 2, dtype="float32", seed=0)
    c32 = m32.loss_and_grad(x.astype(np.float32), target, "ce", "all", lengths, bptt_truncate=K).grad.copy()
    d32 = m32.copy("cuda")
    d32.loss_and_grad(x.astype(np.float32), target, "ce", "all", lengths, bptt_truncate=K)
    assert np.abs(d32.grad_flat.copy_to_host() - c32).max() < 1e-3 * np.abs(c32).max()


def test_gpu_training_solves_a_small_adding_problem(tmp_path):
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import train

    cfg = TrainConfig(cell="lstm", task="adding", seq_len=30, hidden=32, batch_size=64, steps=3000,
                      lr=1e-2, eval_every=100, device="cuda")
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "solved", summary
