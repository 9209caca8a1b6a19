"""fastrnn vs PyTorch (and the NumPy reference): training-step throughput on this machine.

    python bench/bench.py                  # the rows the targets are defined on (~10 min)
    python bench/bench.py --grid full      # H {32,128,512} x B {1,32,64} x T {100,784} x I {2,H/2}
    python bench/bench.py --grid quick     # a smoke run
    python bench/bench.py --grid close --threads 1   # the targets' rows under 2.1x on 2 threads (~4 min)

A training step = forward + backward (BPTT) + global-norm clip + SGD update, loss (MSE) on a
linear readout at the last step, float32, the same weights in both libraries, the same thread
count. Before anything is timed, fastrnn's loss and gradients are checked against the NumPy
reference (tests/naive.py) and, when PyTorch is installed, against PyTorch. Each library is
timed in blocks (warm-up first; compile time reported apart), blocks alternate over rounds with
a pause between them (each block starts with SETTLE seconds of untimed calls), and the median
is reported. The GEMM peak that a row's % peak is against is read in that row's blocks too (and
on one thread beside its 1-thread blocks): this VM's throughput moves from minute to minute.
Peak memory is measured in fresh processes.
Writes bench/RESULTS.md, bench/results.json and bench/ratio.png.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from shared import _e, _f, alternate, timed, torch_model  # bench/ is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the NumPy reference

from fastrnn.cells import CELLS as REGISTRY  # noqa: E402  (light: no NumPy, no Numba)

CELLS = tuple(REGISTRY)  # every cell, each against torch.nn's module or bench/torch_cells.py's


def grid(kind):
    rows = []
    if kind == "quick":
        for cell in CELLS:
            rows += [(cell, 2, 32, 32, 100), (cell, 1, 64, 1, 784)]
        return rows
    if kind == "lnlstm":  # the LayerNorm LSTM's targets (issue #29), each row beside our LSTM's step
        return [("lnlstm", 2, 32, 32, 100), ("lnlstm", 2, 128, 32, 100), ("lnlstm", 64, 128, 32, 100),
                ("lnlstm", 1, 128, 1, 784)]
    if kind == "exprnn":  # expRNN's 3x targets (issue #29)
        return [("exprnn", 2, 32, 32, 100), ("exprnn", 2, 128, 32, 100), ("exprnn", 64, 128, 32, 100)]
    if kind == "small":  # issue #32's H = 32 rows, where the per-step pointwise work weighs most
        return [(cell, I, 32, B, 100) for cell in ("lstm", "gru") for B in (16, 32) for I in (2, 16)]
    if kind == "close":  # the targets grid's rows under 2.1x on 2 threads (bench/RESULTS.md), for runs on 1 thread
        return [("lstm", 2, 128, 32, 100), ("lstm", 64, 128, 32, 100), ("lstm", 256, 512, 64, 100),
                ("gru", 256, 512, 64, 100), ("relu", 256, 512, 64, 100), ("tanh", 256, 512, 64, 100),
                ("lstm", 64, 128, 1, 784), ("lstm", 2, 128, 1, 784), ("lstm", 16, 32, 32, 100),
                ("lstm", 16, 32, 16, 100), ("lstm", 2, 32, 32, 100)]
    if kind == "lstm":  # the LSTM rows issue #32 read five times: a few minutes a run, for --noisy and spread.py
        return [("lstm", 128, 512, 64, 50), ("lstm", 128, 256, 64, 50), ("lstm", 2, 128, 32, 100),
                ("lstm", 2, 32, 32, 100), ("lstm", 1, 128, 1, 784)]
    Hs = (32, 128, 512) if kind == "full" else (32, 128)
    Bs = (1, 32, 64) if kind == "full" else (1, 32)
    for cell in CELLS:
        for H in Hs:
            for B in Bs:
                for T in (100, 784):
                    for I in (2, H // 2):
                        rows.append((cell, I, H, B, T))
        if kind != "full":
            if cell in ("gru", "lstm"):  # the default compare's sizes: B = 16 as well as 32
                rows += [(cell, 2, 32, 16, 100), (cell, 16, 32, 16, 100)]
            rows.append((cell, 256, 512, 64, 100))  # the large-size target
    return rows


def _speedup(r):
    return r.get("speedup_vs_torch")


def _peak_share(r):
    return r["gflops"] / r["gemm_gflops"]


def _scaling(r):
    return r.get("thread_scaling")


# issue #13's targets: (label, rows it is defined on, value of a row, at least, how it is shown)
TARGETS = [
    ("no row slower than PyTorch", lambda r: True, _speedup, 1.0, "x"),
    ("LSTM, H = 128, B = 32, T = 100: 1.3x PyTorch",
     lambda r: r["cell"] == "lstm" and r["H"] == 128 and r["B"] == 32 and r["T"] == 100, _speedup, 1.3, "x"),
    ("LSTM and GRU, H = 32, B in {16, 32}: 2.5x PyTorch",
     lambda r: r["cell"] in ("lstm", "gru") and r["H"] == 32 and r["B"] in (16, 32), _speedup, 2.5, "x"),
    ("IndRNN, H in {32, 128}, B = 32, T = 100: 3x a PyTorch IndRNN (bench/torch_cells.py)",
     lambda r: r["cell"] == "indrnn" and r["H"] in (32, 128) and r["B"] == 32 and r["T"] == 100, _speedup, 3.0, "x"),
    ("expRNN, H in {32, 128}, B = 32, T = 100: 3x a PyTorch expRNN (bench/torch_cells.py)",
     lambda r: r["cell"] == "exprnn" and r["H"] in (32, 128) and r["B"] == 32 and r["T"] == 100, _speedup, 3.0, "x"),
    ("LayerNorm LSTM, H in {32, 128}, B = 32, T = 100: 3x a PyTorch LayerNorm LSTM (bench/torch_cells.py)",
     lambda r: r["cell"] == "lnlstm" and r["H"] in (32, 128) and r["B"] == 32 and r["T"] == 100, _speedup, 3.0, "x"),
    ("LayerNorm LSTM: at most 1.5x our LSTM's step (same size, timed in the same blocks)",
     lambda r: "vs_lstm" in r, lambda r: r["vs_lstm"], 1.5, "x at most"),
    ("tanh, ReLU, GRU, every row at H <= 128: 3x PyTorch",
     lambda r: r["cell"] in ("tanh", "relu", "gru") and r["H"] <= 128, _speedup, 3.0, "x"),
    ("LSTM, B = 1, H <= 128, T = 784: 3x PyTorch",
     lambda r: r["cell"] == "lstm" and r["B"] == 1 and r["H"] <= 128 and r["T"] == 784, _speedup, 3.0, "x"),
    ("every cell at H >= 128, B >= 32: 70% of the GEMM peak",
     lambda r: r["H"] >= 128 and r["B"] >= 32, _peak_share, 0.70, "%"),
    ("H = 512, B = 64: 85% of the GEMM peak", lambda r: r["H"] == 512 and r["B"] == 64, _peak_share, 0.85, "%"),
    ("2 threads vs 1: 1.7x, at H >= 128 and B >= 32, and at B = 1, H = 128, T = 784",
     lambda r: _scaled(r), _scaling, 1.7, "x"),
]


def _scaled(r):
    """The rows whose 1-thread time is measured too (thread-scaling target)."""
    return (r["H"] >= 128 and r["B"] >= 32) or (r["B"] == 1 and r["H"] == 128 and r["T"] == 784)


def flops(cell, I, H, B, T):
    """Matrix-product FLOPs of one step (1 layer): forward W_ih x and W_hh h, backward
    W_hh^T d, and the weight gradients (a diagonal recurrence: W_ih's products alone; expRNN's
    exponential, once per step on the host, is not a product of this count)."""
    G = REGISTRY[cell].gates * H
    R = H if REGISTRY[cell].recurrence.product else 0
    return 2 * T * B * G * (I + R) + 2 * T * B * G * R + 2 * T * B * G * (I + R)


# ----------------------------------------------------------------------------- the three steps
def fastrnn_step(cell, I, H, B, T, seed=0):
    from fastrnn import RNN
    from fastrnn.clip import clip_global_norm

    model = RNN(cell, I, H, 1, dtype="float32", seed=seed, forget_bias=None)
    r = np.random.default_rng(seed)
    x = r.random((T, B, I), dtype=np.float32)
    y = r.random((B, 1), dtype=np.float32)

    def step():
        res = model.loss_and_grad(x, y, "mse", "last")
        clip_global_norm(res.grad, 1.0)
        model.flat -= np.float32(0.01) * res.grad
        return res
    return model, x, y, step


def torch_step(model, x, y, threads):
    import torch

    torch.set_num_threads(threads)
    mod, lin = torch_model(model)
    params = list(mod.parameters()) + list(lin.parameters())
    opt = torch.optim.SGD(params, lr=0.01)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        out, _ = mod(tx)
        loss = torch.nn.functional.mse_loss(lin(out[-1]), ty)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss
    return mod, lin, step


def reference_step(model, x, y):
    import naive

    def step():
        val, grads, _, _ = naive.loss_and_grad(model, x, y, "mse", "last")
        g = np.concatenate([grads[k].ravel() for k in model.shapes])
        n = np.sqrt((g * g).sum())
        g *= min(1.0, 1.0 / n)
        return val, g
    return step


# ----------------------------------------------------------------------------- checks
def check(cell, have_torch, threads):
    """fastrnn's gradients against the NumPy reference and PyTorch before timing."""
    import naive
    from fastrnn import RNN

    model = RNN(cell, 3, 16, 1, dtype="float32", seed=1, forget_bias=None)
    r = np.random.default_rng(1)
    x, y = r.random((20, 8, 3), dtype=np.float32), r.random((8, 1), dtype=np.float32)
    res = model.loss_and_grad(x, y, "mse", "last")
    _, grads, _, _ = naive.loss_and_grad(model, x, y, "mse", "last")
    ref = np.concatenate([grads[k].ravel() for k in model.shapes])
    err_ref = float(np.abs(res.grad - ref).max() / np.abs(ref).max())
    err_torch = None
    if have_torch:
        flat = res.grad.copy()
        mod, lin, _ = torch_step(model, x, y, threads)
        import torch
        out, _ = mod(torch.from_numpy(x))
        torch.nn.functional.mse_loss(lin(out[-1]), torch.from_numpy(y)).backward()
        tg = np.concatenate([p.grad.numpy().ravel() for p in list(mod.parameters()) + list(lin.parameters())])
        err_torch = float(np.abs(flat - tg).max() / np.abs(tg).max())
    ok = err_ref < 1e-4 and (err_torch is None or err_torch < 1e-4)
    return dict(cell=cell, max_rel_err_reference=err_ref, max_rel_err_torch=err_torch, ok=ok)


# ----------------------------------------------------------------------------- timing
SETTLE = 0.15  # seconds of untimed calls at the start of each block (alternate)


def bench_row(cfg, have_torch, threads, rounds, per_block, with_reference):
    cell, I, H, B, T = cfg
    t0 = time.perf_counter()
    model, x, y, ours = fastrnn_step(cell, I, H, B, T)
    ours()
    first_call = time.perf_counter() - t0  # includes compilation if this shape/dtype is new
    peers = {"fastrnn": ours}
    if have_torch:
        peers["torch"] = torch_step(model, x, y, threads)[2]
    # The GEMM peak is read in the same alternating blocks as the steps: this VM's throughput
    # moves by up to ~2x from one minute to the next (a GEMM on 2 threads read 93-186 GFLOP/s
    # within an hour), so one reading at the start of a run is no scale for a row timed later.
    gemm = peers["gemm"] = gemm_call()
    if REGISTRY[cell].layer_norm:  # its target is against our own LSTM's step: timed in the same blocks
        peers["lstm"] = fastrnn_step("lstm", I, H, B, T)[3]
    # the pause lets spinning worker threads of the other library go to sleep
    med = alternate(peers, rounds, per_block, pause=0.2, settle=SETTLE)
    row = dict(cell=cell, I=I, H=H, B=B, T=T, fastrnn_ms=med["fastrnn"] * 1e3,
               fastrnn_first_call_s=first_call, samples=per_block * rounds)
    row["steps_per_s"] = 1.0 / med["fastrnn"]
    row["gflops"] = flops(cell, I, H, B, T) / med["fastrnn"] / 1e9
    if have_torch:
        row["torch_ms"] = med["torch"] * 1e3
        row["speedup_vs_torch"] = med["torch"] / med["fastrnn"]
    row["gemm_gflops"] = GEMM_FLOPS / med["gemm"] / 1e9
    if "lstm" in med:
        row["lstm_ms"] = med["lstm"] * 1e3
        row["vs_lstm"] = med["fastrnn"] / med["lstm"]
    if _scaled(row):  # the same step on one thread, alone (same blocks, same medians), and the GEMM
        from threadpoolctl import threadpool_limits

        from fastrnn.cpu import threads as fthreads

        fthreads.set_threads(1)
        with threadpool_limits(1, user_api="blas"):
            one = alternate({"one": ours, "gemm": gemm}, rounds, per_block, pause=0.2, settle=SETTLE)
        fthreads.set_threads(threads)
        row["fastrnn_1thread_ms"] = one["one"] * 1e3
        row["thread_scaling"] = row["fastrnn_1thread_ms"] / row["fastrnn_ms"]
        row["gemm_1thread_gflops"] = GEMM_FLOPS / one["gemm"] / 1e9
        row["gemm_thread_scaling"] = row["gemm_gflops"] / row["gemm_1thread_gflops"]
    if with_reference:
        ref = reference_step(model, x, y)
        row["reference_ms"] = float(np.median(timed(ref, 1))) * 1e3
    return row


GEMM_N = 1024  # reaches the same GFLOP/s as 2048^3 here (1 and 2 threads) for an eighth of the time
GEMM_FLOPS = 2 * GEMM_N ** 3


def gemm_call():
    """A float32 GEMM through NumPy's BLAS, GEMM_N^3 (this machine's float32 peak, as far as a
    tuned BLAS reaches it), for alternate() beside the steps."""
    r = np.random.default_rng(0)
    a = r.random((GEMM_N, GEMM_N), dtype=np.float32)
    b = r.random((GEMM_N, GEMM_N), dtype=np.float32)
    out = np.empty_like(a)
    return lambda: np.matmul(a, b, out=out)


MEM_SCRIPT = r"""
import sys, json
import numpy as np
sys.path.insert(0, {bench!r})
from bench import fastrnn_step, torch_step
cell, I, H, B, T, which, threads = {args!r}
model, x, y, step = fastrnn_step(cell, I, H, B, T)
if which == "torch":
    step = torch_step(model, x, y, threads)[2]
else:
    fastrnn_step(cell, I, 4, 2, 3)[3]()  # load the compiled kernels with a tiny model, outside the window
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS counter (VmHWM) to now
base = status("VmRSS:")
step(); step()
print(json.dumps({{"peak_mb": status("VmHWM:") - base}}))
"""


def peak_memory(cfg, which, threads):
    """Growth of the peak resident set over two steps, in a fresh process (MB): the kernel's
    peak counter is reset once the model, data, imports and compiled code are loaded, so this
    is what training needs: activations, gradients and workspace, fastrnn's buffers allocated
    in its first step included. Linux only."""
    code = MEM_SCRIPT.format(bench=str(HERE), args=tuple(cfg) + (which, threads))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


COMPILE_SCRIPT = r"""
import time
t0 = time.perf_counter()
import numpy as np
from fastrnn import RNN, CELLS
for dtype in ("float32", "float64"):
    for cell in CELLS:
        m = RNN(cell, 3, 4, 2, 2, dtype=dtype)
        m.loss_and_grad(np.zeros((5, 2, 3), dtype), np.zeros((2, 2), dtype))
        m = RNN(cell, 3, 128, 2, 1, dtype=dtype)  # B = 1, T = 512: the column split (threads.share_columns)
        m.loss_and_grad(np.zeros((512, 1, 3), dtype), np.zeros((1, 2), dtype))
print(time.perf_counter() - t0)
"""


def compile_times():
    """Cold: a new process with an empty Numba cache compiles every kernel (every cell x 2 dtypes,
    batch-split and column-split).
    Warm: a second process with that cache, `fastrnn train --steps 1` from start to end."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t0 = time.perf_counter()
        cold = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True)
        cold_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            warm = subprocess.run([sys.executable, "-m", "fastrnn_cli", "train", "--steps", "1", "--eval-every", "1",
                                   "--seq-len", "20", "--hidden", "16", "--quiet", "--out", out + "/r"],
                                  env=env, capture_output=True, text=True)
            warm_s = time.perf_counter() - t0
    return dict(cold_compile_all_s=cold_s if cold.returncode == 0 else None,
                warm_start_train_one_step_s=warm_s if warm.returncode == 0 else None)


def machine():
    info = dict(python=platform.python_version(), platform=platform.platform(), cpus=os.cpu_count())
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import scipy
    info.update(numpy=np.__version__, numba=numba.__version__, scipy=scipy.__version__)
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NUMBA_NUM_THREADS",
                                                   "OMP_NUM_THREADS")}
    return info


# ----------------------------------------------------------------------------- report
def write_results(doc, out):
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    rows, m, compile_ = doc["rows"], doc["machine"], doc.get("compile", {})
    has_torch = any("torch_ms" in r for r in rows)
    lines = [
        "# fastrnn benchmark results", "",
        f"Measured {doc['date']} on {m.get('cpu', '?')} ({m['cpus']} CPUs), {doc['threads']} threads for both "
        f"libraries; Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}, SciPy {m['scipy']}, "
        f"PyTorch {m['torch'] or 'not installed'}. Grid: `{doc['grid']}`."
        + (" **Noisy host**: one busy process ran beside the benchmark throughout (`--noisy`)." if doc.get("noisy")
           else ""), "",
        "A training step = forward + BPTT + global-norm clip + SGD update, MSE at the last step, float32, "
        "1 layer, the same weights in both libraries. Medians of "
        f"{rows[0]['samples'] if rows else '?'} timed steps per library after warm-up, in alternating blocks "
        f"with a pause between them, each block's first {SETTLE * 1e3:.0f} ms of steps untimed (this VM runs slow for a while after "
        "a pause, whatever runs; a training loop steps back to back). "
        "This is a shared, noisy machine: read the ratios, not single absolute times.", "",
        f"Machine float32 GEMM peak ({GEMM_N}^3 through NumPy's BLAS), read in every row's alternating blocks "
        f"(this VM's throughput moves from minute to minute; each row's % peak is against its own reading): "
        f"**{_spread([r['gemm_gflops'] for r in rows])} GFLOP/s** (median, lowest-highest) on {doc['threads']} threads; "
        f"{_spread([r['gemm_1thread_gflops'] for r in rows if 'gemm_1thread_gflops' in r])} on one. "
        f"Cold compile of every kernel (every cell x 2 dtypes, empty cache, new process): "
        f"**{_f(compile_.get('cold_compile_all_s'))} s**; warm start (`fastrnn train --steps 1`, "
        f"CLI start to end, cache present): **{_f(compile_.get('warm_start_train_one_step_s'))} s**.", "",
        "Correctness before timing (max relative gradient error, float32):", "",
        "| cell | vs NumPy reference | vs PyTorch |", "|---|---|---|",
    ]
    for c in doc["checks"]:
        lines.append(f"| {c['cell']} | {c['max_rel_err_reference']:.1e} | {_e(c['max_rel_err_torch'])} |")
    lines += ["", "| cell | I | H | B | T | fastrnn ms | steps/s | PyTorch ms | speedup | GFLOP/s | GEMM GFLOP/s | "
              "% peak | ref ms | peak MB fastrnn / torch | 1 thread ms (2 vs 1; GEMM's 2 vs 1) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speedup = r.get("speedup_vs_torch")
        lines.append(
            f"| {r['cell']} | {r['I']} | {r['H']} | {r['B']} | {r['T']} | {r['fastrnn_ms']:.2f} | "
            f"{r['steps_per_s']:.1f} | {_f(r.get('torch_ms'))} | {'-' if speedup is None else f'{speedup:.2f}x'} | "
            f"{r['gflops']:.1f} | {r['gemm_gflops']:.0f} | {100 * _peak_share(r):.0f}% | {_f(r.get('reference_ms'))} | "
            f"{_f(r.get('peak_mb_fastrnn'))} / {_f(r.get('peak_mb_torch'))} | {_f(r.get('fastrnn_1thread_ms'))}"
            f"{_scale(r)} |")
    lines += ["", "## Targets (issue #13)", "", "| target | rows | met | worst |", "|---|---|---|---|"]
    for label, sel, value, need, unit in TARGETS:
        vals = [value(r) for r in rows if sel(r) and value(r) is not None]
        if vals:
            if unit == "x at most":  # a ceiling: the worst row is the highest
                met, worst = sum(v <= need for v in vals), f"{max(vals):.2f}x"
            else:
                met = sum(v >= need for v in vals)
                worst = f"{100 * min(vals):.0f}%" if unit == "%" else f"{min(vals):.2f}x"
            lines.append(f"| {label} | {len(vals)} | {met}/{len(vals)} | {worst} |")
    for label, key, limit in (("cold compile of every kernel under 30 s", "cold_compile_all_s", 30.0),
                              ("warm start under 3 s", "warm_start_train_one_step_s", 3.0)):
        v = compile_.get(key)
        if v is not None:
            lines.append(f"| {label} | 1 | {int(v < limit)}/1 | {v:.1f} s |")
    mem = [r for r in rows if r.get("peak_mb_fastrnn") is not None and r.get("peak_mb_torch") is not None]
    if mem:
        ok = sum(r["peak_mb_fastrnn"] <= r["peak_mb_torch"] for r in mem)
        lines.append(f"| peak memory no larger than PyTorch's | {len(mem)} | {ok}/{len(mem)} | - |")
    gs = [r["gemm_thread_scaling"] for r in rows if r.get("gemm_thread_scaling") is not None]
    if gs:
        lines += ["", f"For the thread-scaling rows' scale: NumPy's GEMM, in the same blocks, ran 2 threads against 1 at "
                  f"{_spread_x(gs)} (median, lowest-highest), 1.7x or more in {sum(g >= 1.7 for g in gs)} of {len(gs)} rows."]
    lines += ["", "The README's main command under 60 s is measured apart (a fresh virtual environment): "
              "bench/PROFILE.md. Where a target is missed, bench/PROFILE.md shows where the time goes and "
              "what bounds it."]
    if has_torch:
        lines += ["", "![speedup vs PyTorch](ratio.png)"]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")


def _scale(r):
    if r.get("thread_scaling") is None:
        return ""
    return f" ({r['thread_scaling']:.2f}x; {r['gemm_thread_scaling']:.2f}x)"


def _spread_x(vals):
    return f"{np.median(vals):.2f}x ({min(vals):.2f}-{max(vals):.2f}x)"


def _spread(vals):
    return "-" if not vals else f"{np.median(vals):.0f} ({min(vals):.0f}-{max(vals):.0f})"


def plot(doc, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastrnn.report import COLORS
    rows = [r for r in doc["rows"] if "speedup_vs_torch" in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for cell in CELLS:
        rs = [r for r in rows if r["cell"] == cell]
        size = [flops(r["cell"], r["I"], r["H"], r["B"], r["T"]) / 1e9 for r in rs]
        ax.scatter(size, [r["speedup_vs_torch"] for r in rs], color=COLORS[cell], label=cell)
    ax.axhline(1, color="k", lw=1)
    ax.axhline(3, color="gray", ls=":", lw=1, label="3x target (H <= 128)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GFLOP per training step")
    ax.set_ylabel("speedup vs PyTorch (higher is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: fastrnn's CUDA kernels vs PyTorch/cuDNN on this GPU (bench/gpu.py)")
    ap.add_argument("--grid", choices=("targets", "full", "quick", "small", "lstm", "close", "lnlstm", "exprnn", "smoke"),
                    default="targets",
                    help="lstm: the five LSTM rows of issue #32 (minutes; for --noisy and spread.py); "
                         "close: the targets' rows under 2.1x on 2 threads (for runs on 1 thread); "
                         "small: the LSTM's and GRU's H = 32 rows (B = 16 and 32); "
                         "lnlstm: the LayerNorm LSTM's target rows, each beside our LSTM; exprnn: expRNN's; "
                         "smoke: tiny shapes, --device cuda only (runs in the CUDA simulator)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-block", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--out", default=None, help="results folder (default: bench/, or bench/gpu/ for cuda)")
    ap.add_argument("--noisy", action="store_true",
                    help="a noisy host: one busy process runs beside the benchmark for its whole length "
                         "(the hours a user does not choose); RESULTS.md says so")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        if args.grid not in ("targets", "smoke"):
            ap.error(f"--grid {args.grid}: with --device cuda, use targets or smoke")
        import gpu

        args.out = args.out or str(HERE / "gpu")
        return gpu.main(args)
    if args.grid == "smoke":
        ap.error("--grid smoke: only with --device cuda")
    args.out = args.out or str(HERE)
    if args.threads < 1:
        ap.error("--threads: expected a positive integer")
    from fastrnn.cpu import threads
    threads.set_threads(args.threads)
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)  # for the subprocesses
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch is not installed: timing fastrnn and the reference only", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checks = [check(c, have_torch, args.threads) for c in CELLS]
    for c in checks:
        print(f"check {c['cell']}: reference {c['max_rel_err_reference']:.1e} torch {c['max_rel_err_torch']}", flush=True)
    if not all(c["ok"] for c in checks):
        print("correctness check failed: nothing timed", file=sys.stderr)
        return 1
    doc = dict(date=datetime.date.today().isoformat(), grid=args.grid, threads=args.threads, machine=machine(),
               checks=checks, rows=[], noisy=args.noisy)
    with (busy_neighbour() if args.noisy else contextlib.nullcontext()):
        run_rows(doc, args, have_torch, out)
    doc["compile"] = compile_times()
    write_results(doc, out)
    plot(doc, out / "ratio.png")
    print(f"wrote {out / 'RESULTS.md'}")
    return 0


@contextlib.contextmanager
def busy_neighbour():
    """One CPU-bound process beside the benchmark (a pure-Python spin at normal priority): the
    host taking a core's time away, as a shared machine's other tenants do."""
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def run_rows(doc, args, have_torch, out):
    for cfg in grid(args.grid):
        cell, I, H, B, T = cfg
        # the NumPy reference is a Python loop per step: timed where it takes seconds, not minutes
        row = bench_row(cfg, have_torch, args.threads, args.rounds, args.per_block,
                        with_reference=H <= 128 and T <= 100 and B <= 32)
        if not args.no_memory and ((H == 128 and B == 32) or H == 512 or args.grid == "quick"):
            row["peak_mb_fastrnn"] = peak_memory(cfg, "fastrnn", args.threads)
            if have_torch:
                row["peak_mb_torch"] = peak_memory(cfg, "torch", args.threads)
        doc["rows"].append(row)
        print(f"{cell:5s} I={I:<3d} H={H:<3d} B={B:<2d} T={T:<3d} fastrnn {row['fastrnn_ms']:8.2f} ms  "
              f"torch {_f(row.get('torch_ms')):>8s} ms  speedup {_f(row.get('speedup_vs_torch')):>6s}  "
              f"{row['gflops']:.1f} GFLOP/s" + (f"  {row['vs_lstm']:.2f}x our LSTM's step" if "vs_lstm" in row else ""),
              flush=True)
        write_results(doc, out)  # partial results survive an interrupted run


if __name__ == "__main__":
    sys.exit(main())
