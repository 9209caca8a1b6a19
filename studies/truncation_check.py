"""Study 5's check: do the LSTMs trained with bptt_truncate = 5 on the adding problem solve the
sequences whose marked values both lie outside the last 6 steps (where no gradient reached)?

    python studies/truncation_check.py runs/studies/truncation
"""
import sys
import numpy as np
from fastrnn.tasks import make_task
from fastrnn.train.loop import load_model

task = make_task("adding", 100)
x, y, _ = task.batch(np.random.default_rng(123), 20000)
second = np.argmax(x[50:, :, 1], axis=0) + 50          # where the second marked value sits
for seed in (0, 1, 2):
    model, _ = load_model(f"{sys.argv[1]}/runs/task=adding_cell=lstm_bptt_truncate=5_seed={seed}/best.npz")
    out, _ = model.forward(x, output="last")
    err = (out[:, 0] - y[:, 0]) ** 2
    near, far = second >= 94, second < 94                # inside the last 6 steps, or not
    print(f"seed {seed}: MSE {err.mean():.4f}; second value in the last 6 steps: {err[near].mean():.4f} "
          f"({near.mean():.0%} of sequences); earlier: {err[far].mean():.4f}")
