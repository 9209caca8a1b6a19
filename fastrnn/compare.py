"""Run a grid of training runs in parallel worker processes and collect the results.

Each run lives in OUT/runs/<name>/ with its own metrics.jsonl, summary.json and checkpoint,
so a run that fails or diverges never stops the others, and re-running the same command
skips the runs that already finished. OUT/spec.json records the grid; a different grid in
the same OUT is refused rather than mixed in.
"""
import json
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from .train.checkpoint import atomic_write_json
from .train.config import TrainConfig


def compare_grid(base: TrainConfig, cells, seeds):
    """[(run name, config)] for every cell x seed, other options from ``base``."""
    runs = []
    for cell in cells:
        for seed in range(seeds):
            d = dict(base.to_dict(), cell=cell, seed=seed)
            runs.append((f"{cell}-s{seed}", TrainConfig.from_dict(d)))
    return runs


# Each worker process computes with one thread: the workers themselves fill the cores.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _worker_init():
    os.environ.update(WORKER_ENV)
    # Ctrl-C reaches every process of the group; the parent decides, workers stop at a step
    # boundary through train()'s own handler, installed when a run starts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_one(cfg_dict, out):
    """Train one run; any exception becomes a 'failed' summary instead of ending the grid."""
    from .train.loop import train

    try:
        cfg = TrainConfig.from_dict(cfg_dict)
        return train(cfg, out, resume=True)
    except Exception as e:  # noqa: BLE001 - recorded, reported, never swallowed silently
        summary = dict(status="failed", message=f"{type(e).__name__}: {e}", config=cfg_dict)
        Path(out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(out) / "failed.json", summary)
        return summary


def run_grid(runs, out, workers=None, on_done=None):
    """Run [(name, config)] under OUT/runs/; returns {name: summary} (finished runs reused).

    workers: processes (default: one per core, at most one per run). on_done(name, summary)
    is called as each run ends. Ctrl-C stops the workers at a step boundary; their
    checkpoints are kept and the same command resumes them.
    """
    out = Path(out)
    spec = {"runs": {name: cfg.to_dict() for name, cfg in runs}}
    spec_path = out / "spec.json"
    if spec_path.exists():
        old = json.loads(spec_path.read_text())
        if old != spec:
            raise ValueError(f"out: {out} already holds a comparison with other options; "
                             f"use another --out (finished runs are never overwritten)")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    atomic_write_json(spec_path, spec)

    results, todo = {}, []
    for name, cfg in runs:
        summary = out / "runs" / name / "summary.json"
        if summary.exists() and json.loads(summary.read_text()).get("status") != "interrupted":
            results[name] = json.loads(summary.read_text())
            if on_done:
                on_done(name, results[name])
        else:
            todo.append((name, cfg))
    if not todo:
        return results
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    ctx = multiprocessing.get_context("spawn")  # no forked BLAS/Numba thread state
    old_env = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)  # read by the children as they start (Numba reads it on import)
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            futures = {pool.submit(run_one, cfg.to_dict(), str(out / "runs" / name)): name
                       for name, cfg in todo}
            try:
                for fut in as_completed(futures):
                    name = futures[fut]
                    try:
                        results[name] = fut.result()
                    except Exception as e:  # noqa: BLE001 - a worker process died
                        results[name] = dict(status="failed", message=f"worker died: {e}")
                    if on_done:
                        on_done(name, results[name])
            except KeyboardInterrupt:
                # drop queued runs; running ones stop at a step boundary and checkpoint
                # (their train() handles SIGINT, which a terminal's Ctrl-C already sent them)
                pool.shutdown(wait=False, cancel_futures=True)
                for p in list(getattr(pool, "_processes", {}).values()):
                    try:
                        os.kill(p.pid, signal.SIGINT)
                    except ProcessLookupError:
                        pass
                raise
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results


def aggregate(runs, results):
    """Per-cell statistics over seeds: mean and spread of the final metric, solved count,
    steps to solve, steps/s, wall time."""
    by_cell = {}
    for name, cfg in runs:
        by_cell.setdefault(cfg.cell, []).append(results.get(name, {}))
    rows = {}
    for cell, rs in by_cell.items():
        finals = [r["final_metric"] for r in rs if r.get("final_metric") is not None
                  and r.get("status") != "diverged"]
        solve = [r["steps_to_solve"] for r in rs if r.get("steps_to_solve") is not None]
        sps = [r["steps_per_second"] for r in rs if r.get("steps_per_second")]
        rows[cell] = dict(
            runs=len(rs),
            solved=sum(r.get("status") == "solved" for r in rs),
            diverged=sum(r.get("status") == "diverged" for r in rs),
            failed=sum(r.get("status") == "failed" for r in rs),
            final_metric_mean=float(np.mean(finals)) if finals else None,
            final_metric_min=float(np.min(finals)) if finals else None,
            final_metric_max=float(np.max(finals)) if finals else None,
            steps_to_solve_mean=float(np.mean(solve)) if solve else None,
            steps_per_second_mean=float(np.mean(sps)) if sps else None,
            wall_seconds_mean=float(np.mean([r.get("wall_seconds", 0) for r in rs])),
        )
    return rows


def gradient_section(out, runs, task, batch_size=32):
    """Profile each cell's seed-0 run at initialization and after training, write
    OUT/gradients.png and OUT/gradients.json, and return the report's markdown section."""
    from .gradients import plot_profiles, profile
    from .train.loop import build, load_model

    out = Path(out)
    profiles = {"init": [], "trained": []}
    seen = set()
    for name, cfg in runs:
        if cfg.cell in seen:
            continue
        seen.add(cfg.cell)
        _, fresh = build(cfg)
        profiles["init"].append(profile(fresh, task, batch_size, cfg.seed, cfg.bptt_truncate))
        ck = out / "runs" / name / "checkpoint.npz"
        if ck.exists():
            trained, _ = load_model(ck)
            profiles["trained"].append(profile(trained, task, batch_size, cfg.seed, cfg.bptt_truncate))
    T = profiles["init"][0]["seq_len"]
    plot_profiles(profiles, out / "gradients.png", f"{task.name}, T = {T}: gradient of the last step's loss, by lag")
    atomic_write_json(out / "gradients.json", profiles)
    rows = ["## The gradient through time", "",
            "||dL/dh_k|| for L = the loss at the last step, relative to its value at the last step, by how far "
            "back step k lies (seed 0 of each cell; solid at initialization, dashed after training). Each step "
            "multiplies the gradient by a Jacobian whose norm is at most ||W_hh|| times the activation's "
            "derivative bound (1 for tanh, 1/4 for sigmoid), so it falls geometrically with the lag unless "
            "gates or initialization keep that factor near 1: a curve that falls many decades means the far "
            "past gets no learning signal.", "",
            "![gradient by lag](gradients.png)", "",
            "| cell | phase | ratio lag T-1 / lag 0 | per-step factor | mean ‖ds_t/ds_{t-1}‖ | σmax(W_hh) |",
            "|---|---|---|---|---|---|"]
    for phase in ("init", "trained"):
        for p in profiles[phase]:
            r, d = p["ratio_last_to_first"], p["decay_per_step"]
            rows.append(f"| {p['cell']} | {phase} | {'-' if r is None else f'{r:.2g}'} | "
                        f"{'-' if d is None else f'{d:.3f}'} | {p['jacobian_norm']['mean']:.3f} | "
                        f"{max(x['sigma_max'] for x in p['recurrent']):.3f} |")
    return "\n".join(rows)
