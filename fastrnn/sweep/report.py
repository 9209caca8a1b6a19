"""The report over a whole grid: per task, the held-out metric against sequence length for
each cell, which shows where each cell stops learning.

Runs that differ only in their seed are one group (mean and spread over seeds). Where the grid
also varies other options (learning rate, hidden size...), each (cell, sequence length) shows
its best group, and the table names that group's options.
"""
import json
from pathlib import Path

import numpy as np

from .. import fileio
from ..report import COLORS

FIXED = ("task", "cell", "seq_len", "seed")


def _groups(records):
    """{task: {(cell, seq_len): [group dicts]}} over finished (not failed) runs."""
    out = {}
    for rec in records.values():
        s = rec.get("summary")
        if not s:
            continue
        cfg = rec["config"]
        other = tuple(sorted((k, v) for k, v in cfg.items() if k not in FIXED))
        key = (cfg["cell"], cfg["seq_len"] if cfg["seq_len"] is not None else -1)
        task = out.setdefault(cfg["task"], {})
        group = next((g for g in task.setdefault(key, []) if g["other"] == other), None)
        if group is None:
            group = dict(other=other, finals=[], solved=0, runs=0, info=s)
            task[key].append(group)
        group["runs"] += 1
        group["solved"] += s["status"] == "solved"
        if s.get("final_metric") is not None and s["status"] != "diverged":
            group["finals"].append(s["final_metric"])
    return out


def _differing(groups, g):
    """The options in which this group differs from the other groups at the same point."""
    if len(groups) < 2:
        return "-"
    keys = {k for other in groups for k, v in other["other"] if v != dict(g["other"]).get(k)}
    return ", ".join(f"{k}={v}" for k, v in g["other"] if k in keys) or "-"


def _best(groups, higher):
    scored = [g for g in groups if g["finals"]]
    if not scored:
        return groups[0]
    pick = max if higher else min
    return pick(scored, key=lambda g: np.mean(g["finals"]))


def report_files(runs):
    """The names write_sweep_report writes in OUT, for a check before the sweep starts."""
    return ["results.json", "report.md"] + sorted({f"sweep-{cfg.task}.png" for _, cfg in runs})


def write_sweep_report(out, runs, records):
    """Write OUT/results.json, OUT/report.md and one OUT/sweep-<task>.png per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fileio.atomic_write_text(out / "results.json", json.dumps(dict(runs=records), indent=1) + "\n")
    failed = [r for r in records.values() if r.get("status") == "failed"]
    lines = ["# fastrnn sweep", "",
             f"{len(records)} of {len(runs)} runs finished ({len(failed)} failed). Each cell shows the mean held-out "
             "metric over seeds of its best option set at each sequence length, and how many of those runs solved "
             "the task.", ""]
    for task, table in _groups(records).items():
        info = next(iter(table.values()))[0]["info"]
        higher = info["higher_is_better"]
        lines += [f"## {task}", "", f"Metric: held-out {info['metric']} ({'higher' if higher else 'lower'} is better), "
                  f"baseline {info['baseline']:.4g}, solved at {info['solved_at']:.4g}.", "",
                  "| cell | seq_len | final metric mean [min, max] | solved | best options |",
                  "|---|---|---|---|---|"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for cell in sorted({c for c, _ in table}, key=lambda c: list(COLORS).index(c) if c in COLORS else 9):
            xs, ys, lo, hi, frac = [], [], [], [], []
            for (c, T) in sorted(k for k in table if k[0] == cell):
                g = _best(table[(c, T)], higher)
                f = g["finals"]
                opts = _differing(table[(c, T)], g)
                span = f"{np.mean(f):.4g} [{np.min(f):.4g}, {np.max(f):.4g}]" if f else "-"
                lines.append(f"| {cell} | {T} | {span} | {g['solved']}/{g['runs']} | {opts} |")
                if f:
                    xs.append(T), ys.append(np.mean(f)), lo.append(np.min(f)), hi.append(np.max(f))
                    frac.append(g["solved"] / g["runs"])
            if xs:
                axes[0].errorbar(xs, ys, yerr=[np.subtract(ys, lo), np.subtract(hi, ys)], marker="o", capsize=3,
                                 color=COLORS.get(cell), label=cell)
                axes[1].plot(xs, frac, marker="o", color=COLORS.get(cell), label=cell)
        axes[0].axhline(info["baseline"], color="k", ls="--", lw=1, label="memoryless baseline")
        axes[0].axhline(info["solved_at"], color="gray", ls=":", lw=1, label="solved")
        if not higher:
            axes[0].set_yscale("log")
        axes[0].set_ylabel(f"held-out {info['metric']} (mean over seeds, bar = min-max)")
        axes[1].set_ylabel("fraction of seeds solved")
        axes[1].set_ylim(-0.05, 1.05)
        for ax in axes:
            ax.set_xlabel("sequence length")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{task}: where each cell stops learning")
        fig.tight_layout()
        fileio.save_figure(fig, out / f"sweep-{task}.png")
        plt.close(fig)
        lines += ["", f"![{task}](sweep-{task}.png)", ""]
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{r['name']}`: {r.get('message')}" for r in failed] + [""]
    fileio.atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"
