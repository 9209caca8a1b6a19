"""Run a grid of training runs in parallel worker processes and collect the results.

Calling it compares cells: ``fastrnn.compare(cells, seeds, out, **options)`` is
fastrnn.api.compare (returns the per-cell table).

Each run lives in OUT/runs/<name>/ with its own metrics.jsonl, summary.json and checkpoint,
so a run that fails or diverges never stops the others, and re-running the same command
skips the runs that already finished. OUT/spec.json records the grid; a different grid in
the same OUT is refused rather than mixed in.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import fileio
from .train.config import TrainConfig


@dataclass
class Plan:
    """A comparison ready to run: its task, its [(run name, config)] and its folder."""
    base: TrainConfig
    task: object
    runs: list
    out: Path


def plan(base: TrainConfig, cells, seeds=3, out=None):
    """Check everything that can fail before a run starts (options, data file, device) and
    name the runs: every cell x seed, other options from ``base``. out None:
    compare-TASK-SEQLEN. Nothing is written."""
    from .train.loop import preflight

    if not cells:
        raise ValueError("cells: expected at least one cell")
    task, _ = preflight(TrainConfig.from_dict(dict(base.to_dict(), cell=cells[0])))
    out = Path(out or f"compare-{base.task}-{getattr(task, 'seq_len', 'x')}")
    return Plan(base, task, compare_grid(base, cells, seeds), out)


def run(p: Plan, workers=None, on_done=None, on_progress=None, on_event=None):
    """Run a plan: every run in parallel worker processes (finished ones reused, interrupted
    ones resumed), then OUT/results.json, OUT/report.md, OUT/curves.png, OUT/recurrence.png
    and the gradient section. on_done(name, summary) after each run; on_progress(name, info) as runs train;
    on_event(kind, name, record): every event of fastrnn.sweep.engine.execute (started, done,
    reused, retry, interrupted, progress). Returns (per-cell table, report path).

    From Python: ``run(plan(TrainConfig(task="copy", seq_len=50), ["tanh", "lstm"], 3, "out"))``.
    """
    from .report import write_report

    records = {}
    results = run_grid(queue_order(p.runs), p.out, workers, on_done, on_progress=on_progress,
                       profile=profiled(p.runs), records=records, on_event=on_event)
    table = aggregate(p.runs, results)
    section = gradient_section(p.out, p.runs, p.task, records=records)
    info = p.task.describe()
    info.pop("vocab", None)
    report = write_report(p.out, p.runs, results, table, info, p.base, extra_sections=[section])
    return table, report


def compare_grid(base: TrainConfig, cells, seeds):
    """[(run name, config)] for every cell x seed (base.seed .. base.seed + seeds - 1), other
    options from ``base``."""
    runs = []
    for cell in cells:
        for seed in range(base.seed, base.seed + seeds):
            d = dict(base.to_dict(), cell=cell, seed=seed)
            runs.append((f"{cell}-s{seed}", TrainConfig.from_dict(d)))
    return runs


def profiled(runs):
    """The runs the gradient section profiles: each cell's first."""
    first = {}
    for name, cfg in runs:
        first.setdefault(cfg.cell, name)
    return set(first.values())


def queue_order(runs):
    """The runs in the order the workers take them: each cell's first run, then each cell's
    second, ..., the cells of one kernel family apart (tanh and ReLU share the Elman kernels):
    the first runs, on different workers, compile different kernels instead of the same ones
    at once (each process compiles what it uses; the on-disk cache then serves later runs)."""
    from .cells import CELLS

    family, place, nth, rank = {}, {}, {}, {}
    for name, cfg in runs:
        fam = CELLS[cfg.cell].kernels
        family.setdefault(fam, len(family))
        if cfg.cell not in place:  # the cell's place among its family's cells
            place[cfg.cell] = sum(CELLS[c].kernels == fam for c in place)
        nth[cfg.cell] = nth.get(cfg.cell, -1) + 1
        rank[name] = (nth[cfg.cell], place[cfg.cell], family[fam])
    return sorted(runs, key=lambda r: rank[r[0]])


def run_grid(runs, out, workers=None, on_done=None, scheduler=None, on_progress=None, profile=(), records=None,
             on_event=None):
    """Run [(name, config)] through the sweep engine under OUT; returns {name: summary}.

    OUT/spec.json records the grid: a different grid in the same OUT is refused rather than
    mixed in. Finished runs are reused; interrupted ones resume (see fastrnn.sweep.engine).
    profile: names of runs to profile in their worker (engine.run_task); records: a dict that
    receives every run's full record (the profiles among them).
    """
    from .gradients import OUTPUTS
    from .sweep.engine import execute
    from .train.lock import FolderLock

    out = Path(out)
    spec = {"runs": {name: cfg.to_dict() for name, cfg in runs}}
    spec_path = out / "spec.json"
    with FolderLock(out, what="out"):  # one comparison per folder at a time
        fileio.check_folder(out, ["spec.json", "results.json", "report.md", "curves.png", "recurrence.png", *OUTPUTS])
        if spec_path.exists():
            try:
                held = fileio.read_json(spec_path, "spec")["runs"]
                same = {n: TrainConfig.normalized(c) for n, c in held.items()} == spec["runs"]
            except (ValueError, KeyError, TypeError, AttributeError):
                same = False
            if not same:
                raise ValueError(f"out: {out} already holds a comparison with other options; "
                                 f"use another --out (finished runs are never overwritten)")
        fileio.atomic_write_json(spec_path, spec)

        def event(kind, name, rec):
            if on_event:
                on_event(kind, name, rec)
            if kind in ("done", "reused") and on_done:
                on_done(name, rec.get("summary") or rec)
            elif kind == "progress" and on_progress:
                on_progress(name, rec)

        got = execute(runs, out, scheduler=scheduler, workers=workers, on_event=event, lock=False, profile=profile)
    if records is not None:
        records.update(got)
    return {name: rec.get("summary") or rec for name, rec in got.items()}


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
        losses = [r["final_loss"] for r in rs if r.get("final_loss") is not None and r.get("status") != "diverged"]
        solve = [r["steps_to_solve"] for r in rs if r.get("steps_to_solve") is not None]
        sps = [r["steps_per_second"] for r in rs if r.get("steps_per_second")]
        rows[cell] = dict(
            runs=len(rs),
            verdict=None,  # set below, from solved / runs
            solved=sum(r.get("status") == "solved" or (r.get("status") == "finished"
                                                        and r.get("steps_to_solve") is not None) for r in rs),
            diverged=sum(r.get("status") == "diverged" for r in rs),
            failed=sum(r.get("status") == "failed" for r in rs),
            final_metric_mean=float(np.mean(finals)) if finals else None,
            final_metric_min=float(np.min(finals)) if finals else None,
            final_metric_max=float(np.max(finals)) if finals else None,
            final_loss_mean=float(np.mean(losses)) if losses else None,
            steps_to_solve_mean=float(np.mean(solve)) if solve else None,
            steps_per_second_mean=float(np.mean(sps)) if sps else None,
            wall_seconds_mean=float(np.mean([r.get("wall_seconds", 0) for r in rs])),
        )
        rows[cell]["verdict"] = verdict(rows[cell]["solved"], len(rs))
    return rows


def verdict(solved, runs):
    """'never', 'sometimes' or 'always': the level reached by none, some or all of a cell's seeds.
    The coarse word is what holds across machines: float32 sums round differently with another
    CPU's vector width or BLAS build, and a cell at the edge of its budget (the IRNN on the
    default compare) then solves 1 of 3 seeds on one machine and 2 of 3 on another."""
    return "never" if solved == 0 else "always" if solved == runs else "sometimes"


def gradient_section(out, runs, task, batch_size=32, records=None):
    """Profiles of each cell's first run (profiled) at initialization and after training:
    from its record where its worker made them (records: {name: record}), else computed here.
    Writes OUT/gradients.png and OUT/gradients.json; returns the report's markdown section."""
    from .gradients import JACOBIAN_NOTE, run_profiles, usable_profile, write_profiles

    out = Path(out)
    profiles = {"init": [], "trained": []}
    first = profiled(runs)
    for name, cfg in runs:
        if name not in first:
            continue
        got = (records or {}).get(name, {}).get("gradients")
        trained = (out / "runs" / name / "checkpoint.npz").exists()
        if not (isinstance(got, dict) and usable_profile(got.get("init"), cfg.cell, batch_size)
                and (usable_profile(got.get("trained"), cfg.cell, batch_size) or not trained)):
            got = run_profiles(cfg, out / "runs" / name, task, batch_size)  # an older record, or none
        profiles["init"].append(got["init"])
        if trained:
            profiles["trained"].append(got["trained"])
    write_profiles(out, task, profiles)
    rows = ["## The gradient through time", "",
            "||dL/dh_k|| for L = the loss at the last step, relative to its value at the last step, by how far "
            "back step k lies (the first seed of each cell; solid at initialization, dashed after training). Each step "
            "multiplies the gradient by a Jacobian whose norm is at most ||W_hh|| times the activation's "
            "derivative bound (1 for tanh, 1/4 for sigmoid), so it falls geometrically with the lag unless "
            "gates or initialization keep that factor near 1: a curve that falls many decades means the far "
            "past gets no learning signal.", "",
            "![gradient by lag](gradients.png)", "",
            "| cell | phase | ratio lag T-1 / lag 0 | per-step factor (measured) | mean ρ(ds_t/ds_{t-1}) "
            "| mean ‖ds_t/ds_{t-1}‖ (upper bound) | σmax(W_hh) |",
            "|---|---|---|---|---|---|---|"]
    for phase in ("init", "trained"):
        for p in profiles[phase]:
            r, d = p["ratio_last_to_first"], p["decay_per_step"]
            ratio = "-" if r is None else (f"0 ({p['zero_cause']})" if r == 0 else f"{r:.2g}")
            rows.append(f"| {p['cell']} | {phase} | {ratio} | {'-' if d is None else f'{d:.3f}'} | "
                        f"{p['jacobian_radius']['mean']:.3f} | {p['jacobian_norm']['mean']:.3f} | "
                        f"{max(x['sigma_max'] for x in p['recurrent']):.3f} |")
    return "\n".join(rows + ["", JACOBIAN_NOTE])


def _compare(cells=("tanh", "relu", "gru", "lstm"), seeds=3, out=None, workers=None, **options):
    from .api import compare

    return compare(cells, seeds, out, workers, **options)


from .callable import make_callable  # noqa: E402

make_callable(__name__, _compare)
