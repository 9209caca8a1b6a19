"""What watching the recurrence costs a training run (fastrnn train --watch, the default).

For each row: the median time of one watch record (fastrnn.watch.record: a forward and backward
pass over 8 held-out sequences, an eigenvalue problem per gate block, the gate quartiles) and
of one training step (Adam, clip 1.0, batch 32), warm, in the same process, alternated in
blocks; the share is what the record adds to an evaluation interval of --eval-every steps
(default 100): record / (100 steps). Writes bench/WATCH.md.

    python bench/watch_cost.py [--eval-every 100] [--repeats 7] [--out bench/WATCH.md]
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

ROWS = [(cell, H) for H in (32, 128, 256) for cell in ("tanh", "gru", "lstm", "indrnn")]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "WATCH.md"))
    a = ap.parse_args()

    from fastrnn import watch
    from fastrnn.cpu import threads
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import Run, build
    from fastrnn.train.optim import make_optimizer
    from fastrnn.train.schedule import Schedule

    lines = [f"# The recurrence watched: its cost ({cpu_name()}, {threads.get_threads()} threads)", "",
             f"Adding task, T = {a.seq_len}, batch 32, float32. Medians of {a.repeats} blocks, each a record and "
             f"10 training steps, warm. Share: one record per {a.eval_every} steps.", "",
             "| cell | H | record (ms) | training step (ms) | share of an interval |", "|---|---|---|---|---|"]
    for cell, H in ROWS:
        cfg = TrainConfig(task="adding", cell=cell, hidden=H, seq_len=a.seq_len, watch=False)
        task, model = build(cfg)
        run = Run(cfg, "/nonexistent", task, model)  # its step() only: nothing is written
        run.opt = make_optimizer(cfg.optimizer, model.num_parameters, cfg.lr, 0.0, 0.9, model.dtype, backend=model.backend)
        run.rng, run.schedule = np.random.default_rng(0), Schedule(cfg, False)
        run.step()
        watch.record(model, task)
        rec, step = [], []
        for _ in range(a.repeats):
            t = time.perf_counter()
            watch.record(model, task)
            rec.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(10):
                run.step()
            step.append((time.perf_counter() - t) / 10)
        r, s = statistics.median(rec), statistics.median(step)
        lines.append(f"| {cell} | {H} | {r * 1e3:.2f} | {s * 1e3:.2f} | {r / (a.eval_every * s):.1%} |")
        print(lines[-1], file=sys.stderr)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
