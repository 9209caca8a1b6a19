"""The compare report: results.json, report.md and PNG plots.

Plots are drawn with matplotlib's Agg backend (no display needed). Each cell is one colour;
every run is drawn (thin), and the thick line is the median over seeds: runs are often
bimodal (some seeds solve, others stay at the baseline), and a mean would be a curve no run
followed. The dashed line is the memoryless baseline.
"""
import warnings
from pathlib import Path

import numpy as np

from . import fileio
from .cells import CELLS
from .train.checkpoint import read_records

COLORS = {name: cell.color for name, cell in CELLS.items()}  # each cell's colour, in every plot


def _histories(out, runs):
    h = {}
    for name, cfg in runs:
        recs, _ = read_records(Path(out) / "runs" / name / "metrics.jsonl")
        h.setdefault(cfg.cell, []).append(recs)
    return h


def plot_curves(out, runs, task_info, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = _histories(out, runs)
    panels = [("metric", task_info["metric_baseline"], f"held-out {task_info['metric']}")]
    if task_info["metric"] != "mse":  # for MSE tasks the loss is the metric: one panel
        panels.insert(0, ("loss", task_info["loss_baseline"], "held-out loss"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (key, base, label) in zip(axes[0], panels):
        _runs_and_median(ax, hist, key)
        ax.axhline(base, color="k", ls="--", lw=1, label="memoryless baseline")
        if key == "metric":
            ax.axhline(task_info["solved_at"], color="gray", ls=":", lw=1, label="solved")
        if key == "loss" or not task_info["higher_is_better"]:
            ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    what = " and ".join(label for _, _, label in panels)
    fig.suptitle(f"{task_info['task']}: {what} (thin: each run; thick: the median over seeds)")
    fig.tight_layout()
    fileio.save_figure(fig, path)
    plt.close(fig)


def _runs_and_median(ax, hist, key, positive=False):
    """Each cell's runs (thin) and their median over seeds (thick) of record field ``key``
    against the step; positive: values <= 0 (an underflowed ratio) are left out. Returns
    whether anything was drawn."""
    drawn = False
    for cell, seeds in hist.items():
        steps = sorted({r["step"] for recs in seeds for r in recs})
        if not steps:
            continue
        # runs that stop early (solved) hold their last value, so the median is over all seeds
        grid = np.full((len(seeds), len(steps)), np.nan)
        for i, recs in enumerate(seeds):
            at = {r["step"]: r.get(key) for r in recs}
            last = np.nan
            for j, s in enumerate(steps):
                v = at.get(s, last)
                last = v if isinstance(v, (int, float)) and (v > 0 or not positive) else np.nan
                grid[i, j] = last
        if np.isnan(grid).all():
            continue
        drawn = True
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step where every seed is NaN
            median = np.nanmedian(grid, 0) if len(seeds) > 1 else grid[0]
        c = COLORS.get(cell)
        for row in grid if len(seeds) > 1 else ():
            ax.plot(steps, row, color=c, lw=0.7, alpha=0.45)
        ax.plot(steps, median, color=c, lw=2, label=f"{cell} (median of {len(seeds)})" if len(seeds) > 1 else cell)
    return drawn


WATCH_PANELS = (("radius", "largest spectral radius of W_hh's gate blocks", False),
                ("timescale", "median memory time, -1/ln(gate) (steps)", True),
                ("grad_ratio", "gradient across the task's lag / at the last step", True))


def plot_recurrence(out, runs, task_info, path):
    """The recurrence watched while training (fastrnn/watch.py): spectral radius, memory time
    and the gradient ratio across the lag, per cell, each run thin and the median thick.
    Returns False (and draws nothing) when no run recorded it (--no-watch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = _histories(out, runs)
    if not any(isinstance(r.get("radius"), (int, float)) for seeds in hist.values() for recs in seeds for r in recs):
        return False
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.5))
    for ax, (key, label, log) in zip(axes, WATCH_PANELS):
        drawn = _runs_and_median(ax, hist, key, positive=log)
        if key == "radius":
            ax.axhline(1.0, color="gray", ls=":", lw=1)
        if log and drawn:
            ax.set_yscale("log")
        if not drawn:
            ax.text(0.5, 0.5, "no cell here has a gate that keeps the state" if key == "timescale" else "none recorded",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_xlabel("training step")
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    fig.suptitle(f"{task_info['task']}: the recurrence while training (thin: each run; thick: the median over seeds)")
    fig.tight_layout()
    fileio.save_figure(fig, path)
    plt.close(fig)
    return True


def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def write_report(out, runs, results, cells_table, task_info, base_cfg, extra_sections=()):
    """Write OUT/results.json, OUT/curves.png and OUT/report.md; return the report path."""
    out = Path(out)
    level = task_info["solved_at"]
    has_level = level is not None and level == level  # NaN (or null): a task with no level to reach
    plot_curves(out, runs, task_info, out / "curves.png")
    watched = plot_recurrence(out, runs, task_info, out / "recurrence.png")
    cells = list(dict.fromkeys(cfg.cell for _, cfg in runs))
    seeds = sorted({cfg.seed for _, cfg in runs})
    config = {k: v for k, v in base_cfg.to_dict().items() if k not in ("cell", "seed")}
    commands = {name: cfg.command(f"rerun-{name}") for name, cfg in runs}  # each run alone, exactly
    results_doc = dict(task=task_info, config=dict(config, cells=cells, seeds=seeds), cells=cells_table,
                       runs={name: results.get(name) for name, _ in runs}, commands=commands)
    fileio.atomic_write_json(out / "results.json", results_doc)

    better = "higher" if task_info["higher_is_better"] else "lower"
    words = task_info.get("level_words", "solved")
    lines = [
        f"# fastrnn compare: {task_info['task']}",
        "",
        f"Task `{task_info['task']}`, T = {task_info.get('seq_len')}: {task_info.get('seq_len_meaning', '')}. "
        f"Hidden {base_cfg.hidden}, layers {base_cfg.layers}, batch {base_cfg.batch_size}, up to {base_cfg.steps} "
        f"steps, {base_cfg.optimizer} lr {base_cfg.lr}, clip {base_cfg.clip}, dtype {base_cfg.dtype}, "
        f"seeds {', '.join(map(str, seeds))}.",
        f"Metric: held-out {task_info['metric']} ({better} is better); memoryless baseline "
        f"{_fmt(task_info['metric_baseline'])}; "
        + (f"{words} at {_fmt(task_info['solved_at'])}" if has_level else "no solved level (your own data)")
        + ". Held-out loss: "
        f"{'MSE' if task_info['metric'] == 'mse' else 'cross-entropy (nats)'}, against the best memoryless "
        f"predictor's {_fmt(task_info['loss_baseline'])}.",
        "",
        f"| cell | final metric (mean [min, max]) | vs baseline | held-out loss (mean) | vs memoryless | {words} "
        f"| steps to reach it (mean) | steps/s | wall s (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, r in cells_table.items():
        m = r["final_metric_mean"]
        ratio = "-" if m is None else f"{m / task_info['metric_baseline']:.3g}x"
        span = "-" if m is None else f"{_fmt(m)} [{_fmt(r['final_metric_min'])}, {_fmt(r['final_metric_max'])}]"
        solved = f"{r['solved']}/{r['runs']} ({r.get('verdict') or '-'})" + \
                 (f" ({r['diverged']} diverged)" if r["diverged"] else "") + \
                 (f" ({r['failed']} failed)" if r["failed"] else "")
        fl = r.get("final_loss_mean")
        lratio = "-" if fl is None else f"{fl / task_info['loss_baseline']:.3g}x"
        lines.append(f"| {cell} | {span} | {ratio} | {_fmt(fl)} | {lratio} | {solved} | "
                     f"{_fmt(r['steps_to_solve_mean'])} | {_fmt(r['steps_per_second_mean'], 3)} | "
                     f"{_fmt(r['wall_seconds_mean'], 3)} |")
    if len(seeds) == 1:
        lines += ["", "**One seed per cell**: a single run's outcome can turn on its seed, and an ordering of the "
                      "cells seen with one seed has inverted with another (the agreement task, in our runs). Rerun "
                      "with `--seeds 3` or more before drawing a conclusion."]
    stop = ("Each run stops at its first evaluation that meets the solved criterion; its curve holds that value "
            "afterwards." if has_level and (base_cfg.early_stop or base_cfg.early_stop is None
                                            and task_info["stop_when_solved"]) else
            "Runs train their whole budget (no stop when solved).")
    lines += ["", "![held-out curves](curves.png)", "", stop + " Thin lines are the runs, the thick one each cell's median over seeds.", ""]
    if watched:
        lines += ["![the recurrence while training](recurrence.png)", "",
                  f"The recurrence at each evaluation (`fastrnn train --watch`): the largest spectral radius of a "
                  f"recurrent gate block; the median memory time of the top layer's units, -1/ln(g) steps for the "
                  f"gate g that keeps the state (LSTM: forget, GRU: update); and the gradient of the last step's "
                  f"loss {task_info.get('dependency_length', 'the task lag')} steps back over the gradient at the "
                  f"last step (a ratio under float32's 1e-38 reads 0 and is not drawn).", ""]
    problems = [(n, r) for n, r in results.items() if r and r.get("status") in ("failed", "diverged")]
    if problems:
        lines += ["## Runs that did not finish normally", ""]
        lines += [f"- `{n}`: {r.get('message')}" for n, r in problems] + [""]
    for section in extra_sections:
        lines += [section, ""]
    lines += ["## Rerunning one run alone", "",
              "Each run is exactly this `fastrnn train` command (`train`'s defaults differ from `compare`'s; "
              "every option that matters is spelled out). All of them are in results.json under `commands`:", "",
              "    " + next(iter(commands.values())), ""]
    path = out / "report.md"
    fileio.atomic_write_text(path, "\n".join(lines))
    return path
