"""Study 1's check: what Adam's first step (lr 0.01) does to an IRNN on the adding problem.
Prints, per T and seed, W_hh's spectral radius after the step and the loss on a fresh batch.

    python studies/irnn_first_step.py
"""
import numpy as np

from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import build
from fastrnn.train.optim import make_optimizer

for T in (100, 200, 400):
    for seed in (0, 1, 2):
        cfg = TrainConfig(task="adding", cell="relu", seq_len=T, hidden=32, lr=0.01, seed=seed)
        task, model = build(cfg)  # the study's model and data stream, as a run builds them
        opt = make_optimizer("adam", model.num_parameters, cfg.lr, 0.0, 0.9, model.dtype, backend=model.backend)
        rng = np.random.default_rng([seed, 1])
        x, y, lengths = task.batch(rng, cfg.batch_size)
        model.loss_and_grad(x, y, "mse", "last", lengths)
        model.clip_grad_norm(cfg.clip)
        opt.step(model.flat, model.grad_flat)
        radius = np.abs(np.linalg.eigvals(model.numpy_params()["weight_hh_l0"].astype(np.float64))).max()
        x, y, lengths = task.batch(rng, cfg.batch_size)
        with np.errstate(over="ignore"):
            loss = model.loss(x, y, "mse", "last", lengths)
        print(f"T = {T}, seed {seed}: spectral radius {radius:.3f}, next batch's loss {loss:.2g}")
