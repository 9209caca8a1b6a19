"""Reports of runs that already finished: overlay their curves, tabulate their outcomes.

A folder given is a run folder (it holds metrics.jsonl), or a comparison or sweep folder (its
runs live in runs/<name>/). Every run's metrics.jsonl is read as the training loop wrote it
(torn lines skipped, as a resume would), its summary.json when it has one (else the run is
reported as unfinished). Writes OUT/overlay.png, OUT/overlay.md and, on request, the numbers
as OUT/overlay.csv (one row per run and evaluation).
"""
import csv
import io
from pathlib import Path

from . import fileio
from .choices import REPORT_YS
from .train.checkpoint import read_records

YS = REPORT_YS
WATCHED = ("radius", "timescale", "grad_ratio")
LABELS = {"loss": "held-out loss", "train_loss": "training loss", "lr": "learning rate",
          "radius": "largest spectral radius of a recurrent gate block",
          "timescale": "median memory time of the top layer's units (steps)",
          "grad_ratio": "gradient ratio across the task's lag"}
CSV_FIELDS = ("step", "wall_seconds", "compile_seconds", "loss", "metric", "train_loss", "lr", "radius", "timescale",
              "grad_ratio")
XS = ("step", "wall")


def find_runs(paths):
    """[(label, run folder)] for every run under the given folders, in the order given."""
    found = []
    for p in map(Path, paths):
        if (p / "metrics.jsonl").is_file():
            found.append((p.name or str(p), p))
            continue
        runs = sorted(d for d in (p / "runs").glob("*") if (d / "metrics.jsonl").is_file()) if p.is_dir() else []
        if not runs:
            raise ValueError(f"runs: {p} holds no run (no metrics.jsonl, nor runs/*/metrics.jsonl)")
        found += [(f"{p.name}/{d.name}", d) for d in runs]
    labels = [label for label, _ in found]
    if len(set(labels)) < len(labels):  # the same name in two places: use the paths
        found = [(str(d), d) for _, d in found]
    return found


def read_run(folder):
    """(records, summary or None) of one run folder."""
    recs, _ = read_records(folder / "metrics.jsonl")
    try:
        summary = fileio.read_json(folder / "summary.json", "summary", limit=2**20)
    except ValueError:
        summary = None  # unreadable, a link, or not ours: the run is shown as unfinished
    return recs, summary if isinstance(summary, dict) else None


def _best(recs, higher):
    vals = [(r["metric"], r["step"]) for r in recs if isinstance(r.get("metric"), (int, float))]
    if not vals:
        return None, None
    return (max if higher else min)(vals)


def overlay(paths, out, y="metric", x="step", write_csv=False):
    """Overlay the curves of the runs under ``paths``; returns {"rows": [...], "png", "md", "csv"}."""
    if y not in YS:
        raise ValueError(f"y: expected one of {', '.join(YS)}; got {y!r}")
    if x not in XS:
        raise ValueError(f"x: expected one of {', '.join(XS)}; got {x!r}")
    runs = [(label, folder, *read_run(folder)) for label, folder in find_runs(paths)]
    if y in WATCHED and not any(isinstance(r.get(y), (int, float)) for _, _, recs, _ in runs for r in recs):
        why = " (only the LSTM and GRU have a gate that keeps the state)" if y == "timescale" else ""
        raise ValueError(f"y: none of these runs recorded {y}{why}; runs record the recurrence unless trained "
                         f"with --no-watch (or before fastrnn recorded it)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fileio.check_folder(out, ["overlay.png", "overlay.md", "overlay.csv"])
    rows = []
    for label, folder, recs, s in runs:
        cfg = (s or {}).get("config") or {}
        higher = bool((s or {}).get("higher_is_better", False))
        best, best_step = _best(recs, higher)
        rows.append(dict(run=label, task=cfg.get("task"), cell=cfg.get("cell"),
                         status=(s or {}).get("status", "unfinished"), steps=recs[-1]["step"] if recs else 0,
                         metric=(s or {}).get("metric"), final_metric=recs[-1].get("metric") if recs else None,
                         best_metric=best, best_step=best_step, wall_seconds=recs[-1].get("wall_seconds") if recs else None))
    png = out / "overlay.png"
    names = {r["metric"] for r in rows if r["metric"]}
    _plot(runs, png, y, x, names.pop() if y == "metric" and len(names) == 1 else None)
    md = out / "overlay.md"
    fileio.atomic_write_text(md, _table(rows, y, x))
    result = dict(rows=rows, png=png, md=md, csv=None)
    if write_csv:
        result["csv"] = out / "overlay.csv"
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(("run",) + CSV_FIELDS)
        for label, _, recs, _ in runs:
            for r in recs:
                w.writerow([label] + [r.get(k) for k in CSV_FIELDS])
        fileio.atomic_write_text(result["csv"], buf.getvalue())
    return result


STYLES = ("-", "--", ":", "-.")


def _plot(runs, path, y, x, metric_name=None):
    """One line per run: its cell's colour (as in every fastrnn plot), a line style per seed;
    against steps, or against wall time less the compile (each run's first step per process)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import COLORS

    fig, ax = plt.subplots(figsize=(8, 5))
    positive, others = True, iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    colors = {}
    for label, _, recs, s in runs:
        cfg = (s or {}).get("config") or {}
        cell, seed = cfg.get("cell"), cfg.get("seed")
        if cell not in colors:
            colors[cell] = COLORS.get(cell) or next(others, "gray")
        pts = [(_x(r, x), r.get(y)) for r in recs]
        pts = [(a, b) for a, b in pts if isinstance(a, (int, float)) and isinstance(b, (int, float))]
        if y == "grad_ratio":  # decades apart: log scale, an underflowed 0 left out
            pts = [(a, b) for a, b in pts if b > 0]
        if pts:
            positive &= all(b > 0 for _, b in pts)
            style = STYLES[seed % len(STYLES)] if isinstance(seed, int) else "-"
            ax.plot(*zip(*pts), style, marker=".", ms=3, color=colors[cell], label=label)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("training step" if x == "step" else "wall time, compile excluded (s)")
    what = f"held-out {metric_name or 'metric'}" if y == "metric" else LABELS[y]
    ax.set_ylabel(what)
    ax.set_title(f"{what} of {len(runs)} run(s): colour = cell, line style = seed", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fileio.save_figure(fig, path)
    plt.close(fig)


def _x(rec, x):
    """A record's position: its step, or its wall time less the compile (recorded apart since
    compile_seconds existed; older runs' wall time includes it)."""
    if x == "step":
        return rec.get("step")
    wall, comp = rec.get("wall_seconds"), rec.get("compile_seconds") or 0.0
    return wall - comp if isinstance(wall, (int, float)) and isinstance(comp, (int, float)) else None


def _fmt(v):
    return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _table(rows, y, x):
    lines = [f"# fastrnn report: {len(rows)} runs", "", f"![{y} by {x}](overlay.png)", "",
             "| run | task | cell | status | steps | metric | final | best (step) | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {_fmt(r['task'])} | {_fmt(r['cell'])} | {r['status']} | {r['steps']} | "
                     f"{_fmt(r['metric'])} | {_fmt(r['final_metric'])} | {_fmt(r['best_metric'])} "
                     f"({_fmt(r['best_step'])}) | {_fmt(r['wall_seconds'])} |")
    return "\n".join(lines) + "\n"
