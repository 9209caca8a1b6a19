"""fastrnn's CUDA kernels vs PyTorch's cuDNN RNNs on the same GPU, in the same run.

    python bench/bench.py --device cuda                 # the target rows (H 64..1024, B 16/64, T 100)
    python bench/bench.py --device cuda --grid smoke    # tiny shapes: runs under NUMBA_ENABLE_CUDASIM=1

A training step = the batch copied to the GPU + forward + BPTT + global-norm clip + SGD update,
MSE at the last step, float32, 1 layer, the same weights in both libraries; each step ends
with a device synchronize. fastrnn reads the loss and the gradient norm back every step (its
training loop needs them for divergence detection); PyTorch does not. PyTorch runs with its
defaults (cuDNN; TF32 allowed where cuDNN uses it). Before anything is timed, every row's
gradients are checked against PyTorch with TF32 off (and against fastrnn's CPU kernels on the
smoke grid). Timing: warm-up first (the first call, which compiles the kernels, reported
apart), then alternating blocks, medians. Writes RESULTS.md and results.json to --out.
"""
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from shared import _e, _f, alternate, torch_model  # bench/ is on sys.path (as for bench.py)

CELLS = ("tanh", "relu", "gru", "lstm")
TARGETS = [
    ("no slower than cuDNN at H <= 256, B <= 64, T >= 100",
     lambda r: r["H"] <= 256 and r["B"] <= 64 and r["T"] >= 100, 1.0),
    ("within 2x of cuDNN at H = 1024", lambda r: r["H"] == 1024, 0.5),
]


def grid(kind):
    if kind == "smoke":
        return [(cell, 2, 3, 2, 3) for cell in CELLS]
    return [(cell, 32, H, B, 100) for cell in CELLS for H in (64, 256, 1024) for B in (16, 64)]


def problem(cell, I, H, B, T, seed=0):
    from fastrnn import RNN

    model = RNN(cell, I, H, 1, dtype="float32", seed=seed, forget_bias=None)
    r = np.random.default_rng(seed)
    return model, r.random((T, B, I), dtype=np.float32), r.random((B, 1), dtype=np.float32)


def fastrnn_step(model, x, y, path="auto"):
    from numba import cuda

    from fastrnn.train.optim import make_optimizer

    dev = model.copy("cuda", path)
    opt = make_optimizer("sgd", dev.num_parameters, 0.01, 0.0, 0.0, np.float32, backend=dev.backend)

    def step():
        res = dev.loss_and_grad(x, y, "mse", "last")
        dev.clip_grad_norm(1.0)
        opt.step(dev.flat, dev.grad_flat)
        cuda.synchronize()
        return res.loss
    return dev, step


def torch_step(model, x, y):
    import torch

    mod, lin = (m.cuda() for m in torch_model(model))
    params = list(mod.parameters()) + list(lin.parameters())
    opt = torch.optim.SGD(params, lr=0.01)

    def step():
        tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
        opt.zero_grad()
        out, _ = mod(tx)
        loss = torch.nn.functional.mse_loss(lin(out[-1]), ty)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        torch.cuda.synchronize()
        return loss
    return mod, lin, params, step


def check(cfg, have_torch):
    """Max relative gradient error of the device kernels (both paths) vs PyTorch/cuDNN (TF32
    off) and, on small shapes, vs fastrnn's CPU kernels."""
    model, x, y = problem(*cfg, seed=1)
    from fastrnn.cuda.sequence import MAX_H

    grads = []
    for path in ("sequence", "steps") if cfg[2] <= MAX_H else ("steps",):
        dev = model.copy("cuda", path)
        dev.loss_and_grad(x, y, "mse", "last")
        grads.append(dev.grad_flat.copy_to_host())
    out = {}
    if cfg[2] <= 64:
        cpu = model.loss_and_grad(x, y, "mse", "last").grad
        out["max_rel_err_cpu"] = max(float(np.abs(g - cpu).max() / np.abs(cpu).max()) for g in grads)
    if have_torch:
        import torch

        keep = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            mod, lin, params, _ = torch_step(model, x, y)
            out_t, _ = mod(torch.from_numpy(x).cuda())
            torch.nn.functional.mse_loss(lin(out_t[-1]), torch.from_numpy(y).cuda()).backward()
            tg = np.concatenate([p.grad.detach().cpu().numpy().ravel() for p in params])
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = keep
        out["max_rel_err_torch"] = max(float(np.abs(g - tg).max() / np.abs(tg).max()) for g in grads)
    out["ok"] = all(v < 1e-3 for v in out.values())
    return out


def bench_row(cfg, have_torch, rounds, per_block):
    """Both of fastrnn's paths (where the sequence kernels fit) and cuDNN, timed alternately;
    the speedup is that of the default ('auto') path."""
    from fastrnn.cuda.sequence import MAX_H

    cell, I, H, B, T = cfg
    peers, first_call = {}, {}
    for path in ("sequence", "steps") if H <= MAX_H else ("steps",):
        model, x, y = problem(*cfg)  # fresh, identical weights for every peer
        t0 = time.perf_counter()
        _, fn = fastrnn_step(model, x, y, path)
        fn()
        first_call[path] = time.perf_counter() - t0  # includes compiling kernels new to this process
        peers[path] = fn
    auto_path = "sequence" if H <= MAX_H else "steps"
    if have_torch:
        model, x, y = problem(*cfg)
        peers["torch"] = torch_step(model, x, y)[3]
    med = alternate(peers, rounds, per_block, warmup=2)
    row = dict(cell=cell, I=I, H=H, B=B, T=T, path=auto_path, fastrnn_ms=med[auto_path] * 1e3,
               sequence_ms=med["sequence"] * 1e3 if "sequence" in med else None, steps_ms=med["steps"] * 1e3,
               fastrnn_first_call_s=first_call, samples=rounds * per_block)
    if have_torch:
        row["torch_ms"] = med["torch"] * 1e3
        row["speedup_vs_torch"] = med["torch"] / med[auto_path]
    return row


def machine(have_torch):
    from fastrnn.cuda import status

    import numba
    info = dict(python=platform.python_version(), platform=platform.platform(), gpu=status()[1],
                numpy=np.__version__, numba=numba.__version__)
    try:
        from importlib.metadata import version
        info["numba_cuda"] = version("numba-cuda")
    except Exception:  # noqa: BLE001 - only a label
        info["numba_cuda"] = None
    if have_torch:
        import torch
        info.update(torch=torch.__version__, cudnn=torch.backends.cudnn.version(),
                    torch_gpu=torch.cuda.get_device_name(0))
    return info


def write_results(doc, out):
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    m, rows = doc["machine"], doc["rows"]
    lines = [
        "# fastrnn on the GPU vs PyTorch/cuDNN", "",
        f"Measured {doc['date']} on **{m['gpu']}**; numba-cuda {m['numba_cuda']}, Numba {m['numba']}, "
        f"PyTorch {m.get('torch', 'not installed')} (cuDNN {m.get('cudnn', '-')}). Grid `{doc['grid']}`.", "",
        "A training step = batch to the GPU + forward + BPTT + global-norm clip + SGD, MSE at the last step, "
        "float32, 1 layer, same weights; each step ends with a synchronize. PyTorch with its defaults. "
        f"Medians of {rows[0]['samples'] if rows else '?'} steps per library after warm-up, alternating blocks.", "",
        "fastrnn runs a layer over the steps either with one launch per layer and direction (`sequence`: one "
        "block per sequence) or with two launches per step (`steps`: a tiled GEMM, then the cell); the "
        "default (`auto`) is `sequence` up to H = 1024, and the speedup is the default's.", "",
        "| cell | I | H | B | T | grad err vs cuDNN | vs CPU | sequence ms | steps ms | cuDNN ms | speedup "
        "| first call s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if "simulator" in m["gpu"]:
        lines[3:3] = ["**The CUDA simulator runs each GPU thread as a Python thread: these times check that the "
                      "benchmark runs, they say nothing about speed.**", ""]
    for r in rows:
        sp = r.get("speedup_vs_torch")
        lines.append(f"| {r['cell']} | {r['I']} | {r['H']} | {r['B']} | {r['T']} | "
                     f"{_e(r['check'].get('max_rel_err_torch'))} | {_e(r['check'].get('max_rel_err_cpu'))} | "
                     f"{_f(r['sequence_ms'])} | {_f(r['steps_ms'])} | {_f(r.get('torch_ms'))} | "
                     f"{'-' if sp is None else f'{sp:.2f}x'} | {max(r['fastrnn_first_call_s'].values()):.1f} |")
    if any("speedup_vs_torch" in r for r in rows):
        lines += ["", "| target | rows | met | worst speedup |", "|---|---|---|---|"]
        for label, sel, need in TARGETS:
            rs = [r for r in rows if sel(r) and "speedup_vs_torch" in r]
            if rs:
                lines.append(f"| {label} | {len(rs)} | {sum(r['speedup_vs_torch'] >= need for r in rs)}/{len(rs)} | "
                             f"{min(r['speedup_vs_torch'] for r in rs):.2f}x |")
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")


def main(args):
    from fastrnn.cuda import status

    ok, why = status()
    if not ok:
        print(f"device: cuda is not usable here: {why}", file=sys.stderr)
        return 2
    try:
        import torch
        have_torch = bool(torch.cuda.is_available())
    except ImportError:
        have_torch = False
    if not have_torch:
        print("PyTorch with CUDA is not available: timing fastrnn only (no cuDNN peer)", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = dict(date=datetime.date.today().isoformat(), grid=args.grid, machine=machine(have_torch), rows=[])
    for cfg in grid(args.grid):
        chk = check(cfg, have_torch)
        if not chk["ok"]:
            print(f"correctness check failed for {cfg}: {chk}; nothing more timed", file=sys.stderr)
            doc["failed_check"] = dict(config=list(cfg), **chk)
            write_results(doc, out)
            return 1
        row = bench_row(cfg, have_torch, args.rounds, args.per_block)
        row["check"] = chk
        doc["rows"].append(row)
        print(f"{cfg[0]:5s} I={cfg[1]} H={cfg[2]} B={cfg[3]} T={cfg[4]}  sequence {_f(row['sequence_ms'])} ms  "
              f"steps {_f(row['steps_ms'])} ms  cuDNN {_f(row.get('torch_ms'))} ms  "
              f"speedup {_f(row.get('speedup_vs_torch'))}", flush=True)
        write_results(doc, out)  # partial results survive an interrupted run
    print(f"wrote {out / 'RESULTS.md'}")
    return 0
