"""Tables and plots of the studies in EXPERIMENTS.md, from their sweeps' results.

    python studies/figures.py STUDY SWEEP_FOLDER

reads SWEEP_FOLDER/results.jsonl (written by `fastrnn sweep studies/STUDY.toml --out
SWEEP_FOLDER`) and writes, under studies/results/STUDY/: results.jsonl (every run's config,
summary and held-out curve, compact: what the tables and plots need, small enough to commit),
table.md and STUDY.png. Given studies/results/STUDY itself, it redraws from the compact copy.
Nothing here trains: the numbers are the sweep's.
"""
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GROUP_KEYS = ("task", "cell", "lr", "hidden", "init", "spectral_radius", "clip", "bptt_truncate", "seq_len")


def load(folder):
    """[{name, config, summary, curve: [[step, loss, metric, grad_norm], ...]}] of finished runs;
    a run that watched its recurrence (fastrnn.watch) adds radius, timescale, grad_ratio to
    each row (the sweeps of studies 1-5, 8 and 11 predate it or were compacted without it)."""
    runs = []
    for line in (Path(folder) / "results.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash: the sweep ignores it too
        if r.get("status") == "failed" or "summary" not in r:
            continue
        curve = r.get("curve") or [[m["step"], m["loss"], m["metric"], m.get("grad_norm")]
                                   + ([m["radius"], m.get("timescale"), m.get("grad_ratio")] if "radius" in m else [])
                                   for m in r["metrics"]]
        runs.append(dict(name=r["name"], config=r["config"], summary=r["summary"], curve=curve))
    return sorted(runs, key=lambda r: r["name"])


def compact(runs, path):
    """The compact results.jsonl: 5 significant digits, curves as rows."""
    def rnd(v):
        return None if v is None else float(f"{v:.5g}")

    keep = ("status", "final_metric", "final_loss", "best_metric", "steps", "steps_to_solve", "diverged_at",
            "baseline", "loss_baseline", "solved_at", "metric", "wall_seconds", "key_accuracy", "key_lags")
    with open(path, "w") as f:
        for r in runs:
            s = {k: (rnd(v) if isinstance(v, float) else v) for k, v in r["summary"].items() if k in keep}
            curve = [[c[0]] + [rnd(v) for v in c[1:]] for c in r["curve"]]
            f.write(json.dumps(dict(name=r["name"], config=r["config"], summary=s, curve=curve),
                               separators=(",", ":")) + "\n")


def groups(runs, keys):
    """{tuple of config values: [runs]}: runs that differ only in their seed."""
    out = defaultdict(list)
    for r in runs:
        out[tuple(r["config"].get(k) for k in keys)].append(r)
    return out


def finals(rs):
    """Final held-out metrics of the runs that did not diverge."""
    return [r["summary"]["final_metric"] for r in rs if r["summary"]["status"] != "diverged"
            and r["summary"].get("final_metric") is not None]


def spread(vals, fmt="{:.3g}"):
    if not vals:
        return "-"
    return f"{fmt.format(np.mean(vals))} [{fmt.format(min(vals))}, {fmt.format(max(vals))}]"


def outcome(rs):
    """'k/n solved' plus diverged runs and mean steps to solve."""
    n = len(rs)
    solved = [r["summary"]["steps_to_solve"] for r in rs if r["summary"]["status"] == "solved"]
    div = sum(r["summary"]["status"] == "diverged" for r in rs)
    text = f"{len(solved)}/{n} solved" + (f", {div} diverged" if div else "")
    return text, (f"{np.mean(solved):.0f}" if solved else "-")


def label(cfg, keys):
    return ", ".join(f"{k}={cfg[k]}" for k in keys)


def curve_plot(ax, rs, color, name, y=2, mean=True):
    """Each seed's held-out curve (thin) and their mean (thick); a run that stopped early
    (solved, or diverged) is held at its last value in the mean. mean=False: the seeds alone,
    for runs that split into solved and unsolved (a mean of the two is neither)."""
    seed_lines(ax, rs, None if mean else name, y, color=color, lw=0.6 if mean else 1.0, alpha=0.45 if mean else 0.8)
    if not mean:
        return
    longest = max(rs, key=lambda r: len(r["curve"]))["curve"]
    steps = [p[0] for p in longest]
    rows = []
    for r in rs:
        vals = [np.nan if p[y] is None else p[y] for p in r["curve"]]
        if [p[0] for p in r["curve"]] != steps[:len(vals)]:
            return  # different evaluation steps: no mean
        rows.append(vals + [vals[-1]] * (len(steps) - len(vals)))
    ax.plot(steps, np.nanmean(rows, axis=0), color=color, lw=1.8, label=name)


def adding_lengths(runs, plt):
    g = groups(runs, ("cell", "lr"))
    Ts = sorted({r["config"]["seq_len"] for r in runs})
    rows = ["| cell | lr | " + " | ".join(f"T = {T}" for T in Ts) + " |", "|---|---|" + "---|" * len(Ts)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, ((cell, lr), rs) in enumerate(sorted(g.items(), key=lambda kv: (ORDER.index(kv[0][0]), -kv[0][1]))):
        by_T = groups(rs, ("seq_len",))
        cells = []
        mse, solve = [], []
        for T in Ts:
            sub = by_T.get((T,), [])
            text, steps = outcome(sub)
            f = finals(sub)
            cells.append(f"{spread(f)}; {text}" + (f" in {steps} steps" if steps != "-" else ""))
            mse.append(np.mean(f) if f else np.nan)
            solve.append(float(steps) if steps != "-" else np.nan)
        rows.append(f"| {cell} | {lr} | " + " | ".join(cells) + " |")
        # each seed, not a mean: the runs split into solved and unsolved, and a mean on a log
        # scale is neither; diverged runs on the top edge, unsolved ones at the step budget
        color, shift = f"C{i}", 1 + 0.06 * (i - 2)
        top = 0.5
        for T in Ts:
            sub = by_T.get((T,), [])
            ok = [r for r in sub if r["summary"]["status"] != "diverged"]
            axes[0].scatter([T * shift] * len(ok), [r["summary"]["final_metric"] for r in ok], color=color, s=12,
                            label=f"{cell} (lr {lr})" if T == Ts[0] else None)
            nd = len(sub) - len(ok)
            if nd:
                axes[0].scatter([T * shift] * nd, [top] * nd, color=color, marker="^", s=22)
            for r in sub:
                done = r["summary"]["status"] == "solved"
                axes[1].scatter([T * shift], [r["summary"]["steps_to_solve"] if done else r["config"]["steps"]],
                                s=14, color=color if done else "none", edgecolors=color,
                                label=f"{cell} (lr {lr})" if (T == Ts[0] and r is sub[0]) else None)
        axes[1].plot(Ts, solve, "-", color=color, lw=0.8, alpha=0.6)
    axes[0].axhline(1 / 6, color="gray", ls="--", lw=1, label="baseline 1/6")
    axes[0].axhline(0.01, color="gray", ls=":", lw=1, label="solved (0.01)")
    axes[0].set(xscale="log", yscale="log", xlabel="T", ylim=(None, 0.7),
                ylabel="final held-out MSE, each seed (^ at the top: diverged)", title="Adding problem: final error")
    axes[1].set(xscale="log", xlabel="T", ylabel="steps to solve, each seed (hollow: unsolved)",
                title="...and speed (line: mean of the solved)")
    for ax in axes:
        ax.set_xticks(Ts, [str(T) for T in Ts])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend(fontsize=7)
    return rows, fig


def copy_memory(runs, plt):
    from fastrnn.memory import parameter_count

    g = groups(runs, ("cell", "hidden", "init"))
    rows = ["| model | params | final CE (nats), mean [min, max] | best CE | recall accuracy | outcome |",
            "|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (key, rs) in enumerate(sorted(g.items(), key=lambda kv: (ORDER.index(kv[0][0]), kv[0][2] is not None))):
        cell, hidden, init = key
        name = f"{cell} {hidden}" + (f" ({init})" if init else "")
        losses = [r["summary"]["final_loss"] for r in rs if r["summary"].get("final_loss") is not None]
        best = [min(p[1] for p in r["curve"] if p[1] is not None) for r in rs]
        params = parameter_count(cell, 10, hidden, 9, 1)  # copy: 10 input symbols, 9 output classes
        rows.append(f"| {name} | {params:,} | {spread(losses, '{:.4f}')} | {spread(best, '{:.4f}')} | "
                    f"{spread(finals(rs), '{:.3f}')} | {outcome(rs)[0]} |")
        curve_plot(ax, rs, f"C{i}", name, y=1)
    base = runs[0]["summary"]["loss_baseline"]
    ax.axhline(base, color="gray", ls="--", lw=1, label=f"memoryless baseline {base:.3f}")
    low = min(p[1] for r in runs for p in r["curve"] if p[1] is not None)
    ax.set(ylim=(0.95 * low, 1.5 * base), xlabel="step", ylabel="held-out cross-entropy (nats)",
           title="Copy memory, T = 100 (near the baseline; the first steps fall from ln 9 = 2.2)")
    ax.legend(fontsize=7)
    return rows, fig


def temporal_order(runs, plt):
    g = groups(runs, ("task", "cell", "lr"))
    rows = ["| task | cell | lr | final accuracy, mean [min, max] | outcome | steps to solve (mean) |",
            "|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    tasks = sorted({k[0] for k in g})
    for (task, cell, lr), rs in sorted(g.items(), key=lambda kv: (kv[0][0], ORDER.index(kv[0][1]), -kv[0][2])):
        text, steps = outcome(rs)
        rows.append(f"| {task} | {cell} | {lr} | {spread(finals(rs), '{:.3f}')} | {text} | {steps} |")
        ax = axes[tasks.index(task)]
        i = ORDER.index(cell) + (4 if lr < 0.01 else 0)
        curve_plot(ax, rs, f"C{i}", f"{cell} (lr {lr})", mean=False)
    for ax, task in zip(axes, tasks):
        chance = runs[[r["config"]["task"] for r in runs].index(task)]["summary"]["baseline"]
        ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance {chance:.3f}")
        ax.set(xlabel="step", ylabel="held-out accuracy", title=f"{task} ({'4' if task == 'order' else '8'} classes), "
                                                                  f"T = 100-110")
        ax.legend(fontsize=7)
    return rows, fig


def init_radius(runs, plt):
    g = groups(runs, ("init", "spectral_radius", "clip"))
    rows = ["| init | spectral radius | clip | final MSE, mean [min, max] | solved | diverged | largest gradient norm at an evaluation (before clipping) |",
            "|---|---|---|---|---|---|---|"]
    for (init, rho, clip), rs in sorted(g.items(), key=lambda kv: (INITS.index(kv[0][0]), kv[0][1], kv[0][2] is None)):
        norms = [p[3] for r in rs for p in r["curve"] if p[3] is not None]
        div = sum(r["summary"]["status"] == "diverged" for r in rs)
        rows.append(f"| {init} | {rho} | {clip if clip else 'off'} | {spread(finals(rs), '{:.4f}')} | "
                    f"{outcome(rs)[0].split(' ')[0]} | {div}/{len(rs)} | {max(norms) if norms else float('nan'):.3g} |")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    profiles = gradient_profiles(runs)
    for i, (init, rho, norms) in enumerate(profiles):
        axes[0].plot(np.arange(len(norms)), norms, color=f"C{INITS.index(init)}",
                     ls={0.9: ":", 1.0: "-", 1.1: "--"}.get(rho, "-."), label=f"{init}, radius {rho}")
    axes[0].set(yscale="log", xlabel="lag k (steps before the loss)", ylabel="||dL/dh_{T-k}|| (float64, at init)",
                title="tanh RNN, T = 100: the gradient by lag")
    axes[0].legend(fontsize=6)
    for i, ((init, rho, clip), rs) in enumerate(sorted(g.items(), key=lambda kv: (INITS.index(kv[0][0]), kv[0][1]))):
        f = finals(rs)
        x = INITS.index(init) * 4 + [0.9, 1.0, 1.1].index(rho) + (0.2 if clip is None else -0.2)
        axes[1].scatter([x] * len(f), f, color=f"C{INITS.index(init)}", marker="o" if clip else "x", s=14)
    axes[1].axhline(1 / 6, color="gray", ls="--", lw=1)
    axes[1].axhline(0.01, color="gray", ls=":", lw=1)
    axes[1].set_xticks([i * 4 + j for i in range(3) for j in range(3)], [str(r) for _ in INITS for r in (0.9, 1.0, 1.1)],
                       fontsize=7)
    for i, init in enumerate(INITS):  # one init name under each group of three radii
        axes[1].text(i * 4 + 1, -0.13, init, transform=axes[1].get_xaxis_transform(), ha="center", va="top", fontsize=8)
    axes[1].set(yscale="log", ylabel="final held-out MSE per seed (o: clip 1, x: no clip)",
                title="...and where training ended (x axis: init, spectral radius)")
    return rows, fig


def gradient_profiles(runs):
    """The gradient-by-lag profile (fastrnn.gradients.profile, as `fastrnn gradients` computes
    it) of each (init, radius) at initialization, seed 0, with the study's model and task."""
    from fastrnn.gradients import profile
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import build

    out, seen = [], set()
    for r in runs:
        c = r["config"]
        key = (c["init"], c["spectral_radius"])
        if key in seen or c["seed"] != 0:
            continue
        seen.add(key)
        task, model = build(TrainConfig.from_dict(c))
        out.append((*key, profile(model, task)["grad_norm_by_lag"]))
    return sorted(out, key=lambda p: (INITS.index(p[0]), p[1]))


def truncation(runs, plt):
    g = groups(runs, ("task", "cell", "bptt_truncate"))
    rows = ["| task | cell | truncation K | final metric, mean [min, max] | outcome | steps to solve (mean) |",
            "|---|---|---|---|---|---|"]
    tasks = sorted({k[0] for k in g})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for (task, cell, K), rs in sorted(g.items(), key=lambda kv: (kv[0][0], 10 ** 9 if kv[0][2] is None else kv[0][2])):
        text, steps = outcome(rs)
        T = rs[0]["config"]["seq_len"]
        name = "full BPTT" if K is None else f"K = {K}"
        rows.append(f"| {task} | {cell} | {name} | {spread(finals(rs), '{:.4f}')} | {text} | {steps} |")
        ax = axes[0][tasks.index(task)]
        f = finals(rs)
        ax.scatter([T if K is None else K] * len(f), f, color="C0" if task == "adding" else "C2", s=18)
        ax.set_title(f"{cell}, {task}, T = {T}: final held-out {rs[0]['summary']['metric']} per seed", fontsize=9)
        ax.set_xlabel(f"K (full BPTT plotted at {T})")
    for ax, task in zip(axes[0], tasks):
        if task == "adding":
            ax.axhline(1 / 6, color="gray", ls="--", lw=1, label="nothing learned: Var(X1 + X2) = 1/6")
            ax.axhline(1 / 12, color="gray", ls="-.", lw=1, label="only the second value: Var(X1) = 1/12")
            ax.axhline(0.01, color="gray", ls=":", lw=1, label="solved (0.01)")
            ax.set(yscale="log")
        else:
            ax.axhline(0.25, color="gray", ls="--", lw=1, label="chance (4 classes)")
            ax.axhline(0.5, color="gray", ls="-.", lw=1, label="only the second symbol")
            ax.axhline(0.99, color="gray", ls=":", lw=1, label="solved (0.99)")
        ax.legend(fontsize=7)
    return rows, fig


def wilson(k, n, z=1.96):
    """The 95% Wilson score interval of a rate k/n: (low, high)."""
    if n == 0:
        return 0.0, 1.0
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * np.sqrt(k * (n - k) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def per_seed(rs, fmt="{:.2f}", key="final_metric"):
    """Runs of one setting, sorted by seed: (solved count, its 95% Wilson interval as text,
    each seed's steps to solve ('-' unsolved), each seed's summary[key] formatted)."""
    k = sum(r["summary"]["status"] == "solved" for r in rs)
    lo, hi = wilson(k, len(rs))
    steps = ", ".join(str(r["summary"]["steps_to_solve"]) if r["summary"]["status"] == "solved"
                      else ("diverged" if r["summary"]["status"] == "diverged" else "-") for r in rs)
    vals = ", ".join("-" if r["summary"].get(key) is None else fmt.format(r["summary"][key]) for r in rs)
    return k, f"{lo:.2f}-{hi:.2f}", steps, vals


def by_seed(rs):
    """Runs of one setting in seed order, as the tables list them."""
    return sorted(rs, key=lambda r: r["config"]["seed"])


def seed_lines(ax, rs, label, y=2, **style):
    """Each run's held-out curve (column y of its rows; a missing value a gap), the first one
    labelled (label None: none)."""
    for i, r in enumerate(rs):
        c = np.array([[p[0], np.nan if p[y] is None else p[y]] for p in r["curve"]])
        ax.plot(c[:, 0], c[:, 1], label=label if i == 0 else None, **style)


def layernorm(runs, plt):
    """Study 11: each seed's outcome (no means of bimodal runs), solve rates with their 95%
    Wilson interval, steps to solve with the unsolved runs shown."""
    from fastrnn.cells import CELLS

    g = groups(runs, ("task", "lr", "cell"))
    rows = ["| task | lr | cell | solved | 95% interval | steps to solve, each seed | final accuracy, each seed |",
            "|---|---|---|---|---|---|---|"]
    tasks = sorted({k[0] for k in g})
    rates = sorted({k[1] for k in g})
    fig, axes = plt.subplots(len(tasks), len(rates), figsize=(4 * len(rates), 3.3 * len(tasks)), squeeze=False)
    for (task, lr, cell), rs in sorted(g.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != "lstm")):
        rs = by_seed(rs)
        k, interval, steps, acc = per_seed(rs)
        rows.append(f"| {task} | {lr} | {cell} | {k}/{len(rs)} | {interval} | {steps} | {acc} |")
        seed_lines(axes[tasks.index(task)][rates.index(lr)], rs, f"{cell} ({k}/{len(rs)} solved)",
                   color=CELLS[cell].color, lw=0.9, alpha=0.7)
    for t, task in enumerate(tasks):
        chance = runs[[r["config"]["task"] for r in runs].index(task)]["summary"]["baseline"]
        for j, lr in enumerate(rates):
            ax = axes[t][j]
            ax.axhline(chance, color="gray", ls="--", lw=1)
            ax.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1.02),
                   title=f"{task} ({'4' if task == 'order' else '8'} classes), lr {lr}")
            ax.legend(fontsize=7, loc="center right")
    return rows, fig


def gate_init(runs, plt):
    """Study 8: the LSTM's gate init (forget bias 1, 3, 5; chrono) per task and rate: each seed's
    outcome, solve rates with their 95% Wilson interval, steps to solve with the unsolved runs
    shown, each seed's held-out curve."""
    def gate(cfg):
        return "chrono" if cfg["init"] == "chrono" else f"forget bias {cfg['forget_bias']:g}"

    setups = sorted({(r["config"]["task"], r["config"]["lr"]) for r in runs}, key=lambda s: (s[0] != "order", s))
    gates = sorted({gate(r["config"]) for r in runs}, key=lambda g: (g == "chrono", g))
    colors = dict(zip(gates, ["tab:red", "tab:orange", "tab:green", "tab:blue"]))
    rows = ["| task | lr | gate init | solved | 95% interval | steps to solve, each seed | final metric, each seed |",
            "|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(setups), figsize=(4.3 * len(setups), 3.5), squeeze=False)
    for j, (task, lr) in enumerate(setups):
        ax = axes[0][j]
        for g in gates:
            rs = by_seed(r for r in runs if (r["config"]["task"], r["config"]["lr"]) == (task, lr)
                         and gate(r["config"]) == g)
            if not rs:
                continue
            k, interval, steps, final = per_seed(rs)
            rows.append(f"| {task} | {lr} | {g} | {k}/{len(rs)} | {interval} | {steps} | {final} |")
            seed_lines(ax, rs, f"{g} ({k}/{len(rs)} solved)", color=colors[g], lw=0.9, alpha=0.7)
        first = next(r for r in runs if r["config"]["task"] == task)["summary"]
        ax.axhline(first["baseline"], color="gray", ls="--", lw=1)
        ax.set(xlabel="step", ylabel=f"held-out {first['metric'].replace('_', ' ')}", ylim=(0, 1.02),
               title=f"{'temporal order 6a' if task == 'order' else task}, T = 100, lr {lr}")
        ax.legend(fontsize=7, loc="center right")
    return rows, fig


def watch(runs, plt):
    """Studies 12 and 7: the recurrence over training, every cell on one task: per run, the held-out
    MSE, the recurrent spectral radius, the gate timescale and the gradient's ratio across the
    lag (fastrnn.watch), solid where the run solved the task, dotted where it did not; one
    column per rate. Table: each run's start and end of the three."""
    from fastrnn.cells import CELLS

    rates = sorted({r["config"]["lr"] for r in runs})
    cells = [c for c in CELLS if any(r["config"]["cell"] == c for r in runs)]
    panels = [(2, "held-out MSE", True), (4, "spectral radius (largest gate block)", False),
              (5, "gate timescale, median (steps)", True), (6, "gradient ratio across the lag", True)]
    fig, axes = plt.subplots(len(panels), len(rates), figsize=(5.5 * len(rates), 2.9 * len(panels)),
                             squeeze=False, sharex=True)
    rows = ["| cell | lr | seed | outcome | steps | final held-out metric | radius, start -> end | "
            "timescale, start -> end | gradient ratio, start -> end |", "|---|---|---|---|---|---|---|---|---|"]

    def num(v):
        return "-" if v is None else f"{v:.3g}"
    for cell in cells:
        for lr in rates:
            rs = by_seed(r for r in runs if r["config"]["cell"] == cell and r["config"]["lr"] == lr)
            for r in rs:
                s, c = r["summary"], r["curve"]
                steps = s["steps_to_solve"] if s["status"] == "solved" else s["steps"]
                rows.append(f"| {cell} | {lr} | {r['config']['seed']} | {s['status']} | {steps} | "
                            f"{num(s.get('final_metric'))} | "
                            + " | ".join(f"{num(c[0][i])} -> {num(c[-1][i])}" for i in (4, 5, 6)) + " |")
                for (i, _, _), ax in zip(panels, axes[:, rates.index(lr)]):
                    seed_lines(ax, [r], cell if (i == 2 and r is rs[0]) else None, i, color=CELLS[cell].color,
                               lw=1.0, alpha=0.8, ls="-" if s["status"] == "solved" else ":")
    for j, lr in enumerate(rates):
        for (i, ylabel, log), ax in zip(panels, axes[:, j]):
            ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.lines] or [np.zeros(1)])
            if log and np.any(ys > 0):  # (a panel with nothing above 0, such as a ratio that is 0 throughout, stays linear)
                ax.set_yscale("log")
            ax.set_ylabel(ylabel, fontsize=8)
            ax.grid(alpha=0.3)
        axes[0, j].set_title(f"{runs[0]['config']['task']}, T = {runs[0]['config']['seq_len']}, lr {lr} (solid: solved)")
        axes[0, j].axhline(runs[0]["summary"]["loss_baseline"], color="gray", ls="--", lw=1)
        axes[-1, j].set_xlabel("step")
        axes[0, j].legend(fontsize=7, ncol=2)
    return rows, fig


def rates(runs, plt):
    """The power studies: solve rate against the learning rate, per (task, cell, T), each
    rate with its 95% Wilson interval (10 seeds); diverged runs counted and shown."""
    from fastrnn.cells import CELLS

    keys = sorted({(r["config"]["task"], r["config"]["cell"], r["config"]["seq_len"]) for r in runs})
    lrs = sorted({r["config"]["lr"] for r in runs})
    rows = ["| task | cell | T | lr | solved | 95% interval | diverged | steps to solve, median [min, max] |",
            "|---|---|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = ["-", "--", ":", "-."]
    for n, key in enumerate(keys):
        task, cell, T = key
        ys, los, his = [], [], []
        for lr in lrs:
            rs = [r for r in runs if (r["config"]["task"], r["config"]["cell"], r["config"]["seq_len"]) == key
                  and r["config"]["lr"] == lr]
            if not rs:
                continue
            k = sum(r["summary"]["status"] == "solved" for r in rs)
            div = sum(r["summary"]["status"] == "diverged" for r in rs)
            lo, hi = wilson(k, len(rs))
            steps = sorted(r["summary"]["steps_to_solve"] for r in rs if r["summary"]["status"] == "solved")
            st = f"{int(np.median(steps))} [{steps[0]}, {steps[-1]}]" if steps else "-"
            rows.append(f"| {task} | {cell} | {T} | {lr} | {k}/{len(rs)} | {lo:.2f}-{hi:.2f} | {div} | {st} |")
            ys.append(k / len(rs))
            los.append(k / len(rs) - lo)
            his.append(hi - k / len(rs))
        same = [k2 for k2 in keys if k2[1] == cell]
        ax.errorbar(np.array(lrs[:len(ys)]) * (1 + 0.04 * (n - len(keys) / 2)), ys, yerr=[los, his], capsize=3,
                    color=CELLS[cell].color, ls=styles[same.index(key) % len(styles)], marker="o", ms=4,
                    label=f"{cell}, {task} T = {T}")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (Adam)", ylabel="solve rate (95% Wilson interval)", ylim=(-0.03, 1.03))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return rows, fig


def copy_orthogonal(runs, plt):
    """Study 6: copy memory at several gaps, expRNN against the gated cells and an orthogonally
    initialized tanh RNN: each seed's outcome and held-out cross-entropy, the memoryless
    baseline per gap."""
    from fastrnn.cells import CELLS
    from fastrnn.memory import parameter_count

    def model(cfg):
        return (f"{cfg['cell']} {cfg['hidden']}" + (f" ({cfg['init']})" if cfg["init"] else "")
                + (f", lr {cfg['lr']}" if cfg["cell"] == "exprnn" else ""))

    Ts = sorted({r["config"]["seq_len"] for r in runs})
    names = sorted({model(r["config"]) for r in runs},
                   key=lambda n: (n.split()[0] != "exprnn", n.split()[0], n))
    rows = ["| T | model | params | solved | 95% interval | steps to solve, each seed | final recall accuracy, each seed | "
            "final CE (nats), each seed |", "|---|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(Ts), figsize=(4.6 * len(Ts), 3.8), squeeze=False)
    for j, T in enumerate(Ts):
        ax = axes[0][j]
        for name in names:
            rs = by_seed(r for r in runs if r["config"]["seq_len"] == T and model(r["config"]) == name)
            if not rs:
                continue
            cfg = rs[0]["config"]
            k, interval, steps, acc = per_seed(rs, "{:.3f}")
            ce = per_seed(rs, "{:.4f}", "final_loss")[3]
            params = parameter_count(cfg["cell"], 10, cfg["hidden"], 9, 1)  # 10 input symbols, 9 classes
            rows.append(f"| {T} | {name} | {params:,} | {k}/{len(rs)} | {interval} | {steps} | {acc} | {ce} |")
            seed_lines(ax, rs, f"{name} ({k}/{len(rs)})", y=1, color=CELLS[cfg["cell"]].color,
                       ls="--" if "0.0002" in name else "-", lw=1.0, alpha=0.8)
        base = next(r for r in runs if r["config"]["seq_len"] == T)["summary"]["loss_baseline"]
        ax.axhline(base, color="gray", ls=":", lw=1)
        ax.set(yscale="log", ylim=(1e-3, 3), xlabel="step", ylabel="held-out cross-entropy (nats)",
               title=f"copy, T = {T} (dotted: memoryless, {base:.3f})")
        ax.legend(fontsize=6)
    return rows, fig


def pascanu(runs, plt):
    """Study 9: a tanh RNN on temporal order by plain SGD at initial radius 0.95, 1.5 and 3,
    clipped or not: each seed's outcome, the gradient's ratio across the lag at the start (the
    watch's first record: above 1 it grows back through time), the largest gradient norm seen
    at an evaluation; each seed's held-out accuracy, one panel per rate and radius."""
    lrs = sorted({r["config"]["lr"] for r in runs})
    radii = sorted({r["config"]["spectral_radius"] for r in runs})
    rows = ["| lr | initial radius | clip | solved | 95% interval | steps to solve, each seed | "
            "final accuracy, each seed | gradient ratio across the lag at the start | largest gradient norm at an "
            "evaluation |", "|---|---|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(len(lrs), len(radii), figsize=(4 * len(radii), 3.1 * len(lrs)), squeeze=False,
                             sharex=True, sharey=True)
    for i, lr in enumerate(lrs):
        for j, rho in enumerate(radii):
            for clip, color in ((1.0, "tab:blue"), (None, "tab:red")):
                rs = by_seed(r for r in runs if r["config"]["lr"] == lr and r["config"]["spectral_radius"] == rho
                             and r["config"]["clip"] == clip)
                if not rs:
                    continue
                k, interval, steps, acc = per_seed(rs)
                ratio = ", ".join(f"{r['curve'][0][6]:.2g}" for r in rs)
                norms = [max((p[3] for p in r["curve"] if p[3] is not None), default=float("nan")) for r in rs]
                rows.append(f"| {lr} | {rho} | {clip if clip else 'off'} | {k}/{len(rs)} | {interval} | {steps} | {acc} "
                            f"| {ratio} | {', '.join(f'{n:.3g}' for n in norms)} |")
                seed_lines(axes[i][j], rs, f"clip {clip if clip else 'off'} ({k}/{len(rs)} solved)", color=color,
                           lw=0.9, alpha=0.75)
            ax = axes[i][j]
            ax.axhline(0.25, color="gray", ls="--", lw=1)
            ax.set_title(f"lr {lr}, initial radius {rho}", fontsize=9)
            ax.legend(fontsize=7, loc="center right")
            if j == 0:
                ax.set_ylabel("held-out accuracy")
            if i == len(lrs) - 1:
                ax.set_xlabel("step")
    return rows, fig


def truncation_boundary(runs, plt):
    """Study 10: solve rate against the truncation length K (95% Wilson intervals), each seed's
    outcome; the information symbols' distance from the end shaded."""
    Ks = sorted({r["config"]["bptt_truncate"] for r in runs})
    rows = ["| task | cell | K | solved | 95% interval | steps to solve, each seed | final accuracy, each seed |",
            "|---|---|---|---|---|---|---|"]
    ys, lo, hi = [], [], []
    for K in Ks:
        rs = by_seed(r for r in runs if r["config"]["bptt_truncate"] == K)
        k, interval, steps, acc = per_seed(rs)
        rows.append(f"| {rs[0]['config']['task']} | {rs[0]['config']['cell']} | {K} | {k}/{len(rs)} | {interval} | "
                    f"{steps} | {acc} |")
        a, b = wilson(k, len(rs))
        ys.append(k / len(rs))
        lo.append(k / len(rs) - a)
        hi.append(b - k / len(rs))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    T = runs[0]["config"]["seq_len"]
    ax.axvspan(0.4 * T - 1, 0.6 * T, color="tab:green", alpha=0.12, label="second symbol's distance from the end")
    ax.errorbar(Ks, ys, yerr=[lo, hi], color="tab:green", marker="o", capsize=3, label="GRU, solve rate")
    ax.set(xlabel="truncation K (steps a loss flows back)", ylabel="solve rate (95% Wilson interval)",
           ylim=(-0.03, 1.03), title=f"temporal order 6a, T = {T}-{T + T // 10}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return rows, fig


def within_reach(cfg):
    """The share of the adding task's sequences whose second marker a truncated loss reaches
    (lag <= K; fastrnn/tasks/adding.py's placement), as text; full BPTT: 'all'."""
    K, T, m = cfg["bptt_truncate"], cfg["seq_len"], cfg.get("min_lag", 0)
    if K is None:
        return "all"
    n = T - m
    lags = [T - 1 - p for p in range(n // 2, n)]
    k = sum(lag <= K for lag in lags)
    return f"{k}/{len(lags)}"


def truncation_adding(runs, plt):
    """Study 10, second part: the adding problem with every marker at least min_lag steps back,
    truncated at K or not, per model: each seed's outcome with the solve rate's 95% Wilson
    interval; each seed's held-out MSE, one panel per model."""
    def model(cfg):
        return cfg["cell"] + (f", {cfg['init']} init" if cfg.get("init") else "")

    def setup(cfg):
        K = cfg["bptt_truncate"]
        return (K is None, cfg.get("min_lag", 0))

    models = list(dict.fromkeys(model(r["config"]) for r in sorted(runs, key=lambda r: r["config"]["cell"] != "lstm")))
    setups = sorted({setup(r["config"]) for r in runs})
    colors = ["tab:green", "tab:orange", "tab:red", "tab:blue"]
    rows = ["| model | K | min lag | second marker within reach | solved | 95% interval | steps to solve, each seed "
            "| final MSE, each seed |", "|---|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False, sharey=True)
    for i, name in enumerate(models):
        ax = axes[0][i]
        for j, key in enumerate(setups):
            rs = by_seed(r for r in runs if model(r["config"]) == name and setup(r["config"]) == key)
            if not rs:
                continue
            cfg = rs[0]["config"]
            K = "full" if cfg["bptt_truncate"] is None else cfg["bptt_truncate"]
            k, interval, steps, mse = per_seed(rs, "{:.3f}")
            rows.append(f"| {name} | {K} | {cfg.get('min_lag', 0)} | {within_reach(cfg)} | {k}/{len(rs)} | "
                        f"{interval} | {steps} | {mse} |")
            seed_lines(ax, rs, f"K {K}, min lag {cfg.get('min_lag', 0)} ({k}/{len(rs)} solved)",
                       color=colors[j % len(colors)], lw=0.8, alpha=0.7)
        ax.axhline(1 / 6, color="gray", ls="--", lw=1)
        ax.axhline(0.01, color="gray", ls=":", lw=1)
        ax.set(yscale="log", ylim=(5e-4, 3), xlabel="step", title=f"{name}, adding T = {runs[0]['config']['seq_len']}")
        if i == 0:
            ax.set_ylabel("held-out MSE (dashed: baseline; dotted: solved)")
        ax.legend(fontsize=7, loc="lower right")
    return rows, fig


def key_accuracy(runs, folder):
    """Study 10's character models: how often each run's best model names the key after '='
    on the held-out text, by lag (steps from the key to the '='), read from its checkpoint
    into summary['key_lags'] = [[lag, correct, count], ...] and summary['key_accuracy']."""
    from fastrnn.tasks.text import Text
    from fastrnn.train.loop import load_model

    for r in runs:
        cfg = r["config"]
        task = Text(cfg["data"], cfg["seq_len"])
        model, _ = load_model(Path(folder) / "runs" / r["name"] / "best.npz")
        ids = task.held_ids
        y, _ = model.forward(ids[:-1, None], output="all")
        pred = y[:, 0].argmax(-1)
        at = np.nonzero(ids[:-1] == task.vocab.index("="))[0]
        starts = np.nonzero(ids == task.vocab.index("\n"))[0] + 1
        line = np.searchsorted(starts, at, side="right") - 1
        at, lag = at[line >= 0], (at - starts[np.maximum(line, 0)])[line >= 0]  # the held-out text's first line may be cut
        right = pred[at] == ids[at + 1]
        r["summary"]["key_lags"] = [[int(k), int(right[lag == k].sum()), int((lag == k).sum())] for k in np.unique(lag)]
        r["summary"]["key_accuracy"] = float(right.mean())


def truncation_text(runs, plt):
    """Study 10, third part: each character model's accuracy at naming the key after '=' (chance
    1/4), for the lags a chunk can hold (lag < chunk) and those it cannot; accuracy by lag, with
    the state carried across chunks (solid) or reset at each (dashed)."""
    def setup(cfg):
        return (Path(cfg["data"]).stem, cfg["seq_len"])

    def carried(cfg):
        return cfg.get("carry_state", True)

    def acc(rs, keep):
        out = []
        for r in rs:
            rows = [(c, n) for lag, c, n in r["summary"]["key_lags"] if keep(lag, r["config"]["seq_len"])]
            out.append(sum(c for c, _ in rows) / sum(n for _, n in rows) if rows else None)
        return ", ".join("-" if a is None else f"{a:.2f}" for a in out)

    cells = sorted({r["config"]["cell"] for r in runs}, key=lambda c: c != "gru")
    setups = sorted({setup(r["config"]) for r in runs})
    colors = ["tab:red", "tab:orange", "tab:blue", "tab:green"]
    rows = ["| cell | data (key lags) | chunk | state | held-out bpc, each seed | key accuracy, each seed | "
            "lags < chunk | lags >= chunk |", "|---|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, len(cells), figsize=(4.6 * len(cells) + 2.6, 3.6), squeeze=False, sharey=True)
    for i, cell in enumerate(cells):
        ax = axes[0][i]
        for j, key, state in [(j, key, state) for j, key in enumerate(setups) for state in (True, False)]:
            rs = by_seed(r for r in runs if r["config"]["cell"] == cell and setup(r["config"]) == key
                         and carried(r["config"]) == state)
            if not rs:
                continue
            lags = [lag for r in rs for lag, _, _ in r["summary"]["key_lags"]]
            bpc = ", ".join(f"{r['summary']['final_metric']:.3f}" for r in rs)
            keys = ", ".join(f"{r['summary']['key_accuracy']:.2f}" for r in rs)
            rows.append(f"| {cell} | {key[0]} ({min(lags)}-{max(lags)}) | {key[1]} | "
                        f"{'carried' if state else 'reset'} | {bpc} | {keys} | "
                        f"{acc(rs, lambda lag, T: lag < T)} | {acc(rs, lambda lag, T: lag >= T)} |")
            for n, r in enumerate(rs):  # accuracy in bins of 4 lags
                kl = np.array(r["summary"]["key_lags"], float)
                edges = np.arange(kl[:, 0].min(), kl[:, 0].max() + 4, 4)
                b = np.digitize(kl[:, 0], edges)
                xs = [kl[b == k, 0].mean() for k in np.unique(b)]
                ys = [kl[b == k, 1].sum() / kl[b == k, 2].sum() for k in np.unique(b)]
                ax.plot(xs, ys, color=colors[j % len(colors)], marker=".", lw=0.9, alpha=0.8, ls="-" if state else "--",
                        label=f"{key[0]}, chunk {key[1]}, {'carried' if state else 'reset'}" if n == 0 else None)
            ax.axvline(key[1] - 0.5, color=colors[j % len(colors)], ls=":", lw=1)
        ax.axhline(0.25, color="gray", ls="--", lw=1)
        ax.set(xlabel="lag from the key to '=' (dotted: each chunk's length)", ylim=(0, 1.03),
               title=f"{cell} (solid: state carried; dashed: reset)")
        if i == 0:
            ax.set_ylabel("key named after '=' (dashed: chance)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return rows, fig


ORDER = ["tanh", "relu", "gru", "lstm"]
INITS = ["pytorch", "orthogonal", "irnn"]
STUDIES = {"adding-lengths": adding_lengths, "copy-memory": copy_memory, "temporal-order": temporal_order,
           "init-radius": init_radius, "truncation": truncation, "layernorm": layernorm,
           "gate-init": gate_init, "watch": watch, "power-adding": rates, "power-order": rates,
           "copy-orthogonal": copy_orthogonal, "pascanu": pascanu,
           "truncation-boundary": truncation_boundary, "indrnn-long": watch, "indrnn-20k": watch,
           "truncation-adding": truncation_adding, "truncation-text": truncation_text}
# what a study's tables read from the sweep folder beyond its results (the compact copy keeps it)
AUGMENT = {"truncation-text": key_accuracy}


def main(study, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if study not in STUDIES:
        sys.exit(f"study: expected one of {', '.join(STUDIES)}; got {study!r}")
    runs = load(folder)
    out = HERE / "results" / study
    out.mkdir(parents=True, exist_ok=True)
    if Path(folder).resolve() != out.resolve():
        if study in AUGMENT:
            AUGMENT[study](runs, folder)
        compact(runs, out / "results.jsonl")
        runs = load(out)  # tables from the committed precision, so that they regenerate byte for byte
    rows, fig = STUDIES[study](runs, plt)
    fig.tight_layout()
    fig.savefig(out / f"{study}.png", dpi=110)
    (out / "table.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    print(f"{len(runs)} runs; wrote {out / 'results.jsonl'}, {out / 'table.md'}, {out / f'{study}.png'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
