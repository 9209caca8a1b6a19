"""The README's worked example of `--task file`: noisy sine waves of three frequencies,
20-40 steps each, to classify by frequency. Writes waves.npz and new.npz here."""
import numpy as np

rng = np.random.default_rng(0)
N, T = 2000, 40
lengths = rng.integers(20, T + 1, N)                  # sequences of 20 to 40 steps
y = rng.integers(0, 3, N)                             # 3 classes: which frequency
t = np.arange(T)[None, :]
phase = rng.uniform(0, 2 * np.pi, (N, 1))
wave = np.sin(2 * np.pi * (0.05 + 0.05 * y[:, None]) * t + phase)
x = (wave + rng.normal(0, 0.8, (N, T)))[:, :, None].astype(np.float32)   # (N, T, 1), noisy
x[t.repeat(N, 0) >= lengths[:, None]] = 0             # padding (never read)
np.savez("waves.npz", x=x[:1800], y=y[:1800], lengths=lengths[:1800],
         x_test=x[1800:], y_test=y[1800:], lengths_test=lengths[1800:])
np.savez("new.npz", x=x[1800:1805], lengths=lengths[1800:1805])
