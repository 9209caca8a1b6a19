"""fastrnn command line. Each command parses options, calls the library, reports.

Heavy imports (NumPy, Numba kernels) happen inside command bodies so `fastrnn --help`
stays instant and never compiles anything.
"""
import sys

import click

from fastrnn import __version__ as _version  # fastrnn/__init__ is light until a kernel is used
from fastrnn.choices import REPORT_YS

from .options import (CELL_NAMES, DEVICES, RunsProgress, TrainProgress, checkpoint_file, config_kwargs, confirm_size,
                      describe_checkpoint, new_output, options_text, parse_cells, prepare_out, stored_options,
                      training_options, usage_errors)


COMPILE_NOTE = ("  each worker's first run compiles the kernels it uses (up to ~30 s, once: later runs and later "
                "commands load them from the disk cache)")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version, prog_name="fastrnn")
def cli():
    """fastrnn: train tanh, ReLU, GRU and LSTM networks with exact BPTT, and see why
    plain RNNs fail to learn long-range dependencies."""
    import logging

    class Stderr(logging.StreamHandler):
        """Writes to sys.stderr as it is at each note, not as it was when the handler was made
        (a program, or a test's CliRunner, that invokes the CLI twice swaps it in between)."""
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    log = logging.getLogger("fastrnn")  # the library's notes (a torn line dropped, where a run resumed)
    if not log.handlers:
        handler = Stderr()
        handler.setFormatter(logging.Formatter("note: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


@cli.command()
@click.option("--cell", type=click.Choice(CELL_NAMES + ("all",)), default="all", show_default=True,
              help="Which cell to check.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the models and inputs checked.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Whose kernels to check: the CPU's, or the CUDA ones (analytic gradient and every "
                   "perturbed loss on the GPU).")
def gradcheck(cell, seed, device):
    """Check every gradient against central differences in float64.

    Runs each cell over every loss, full and truncated BPTT, one and two layers, equal and
    variable lengths, dense and token inputs, and prints the largest relative error per
    parameter. Exits with status 1 if any error exceeds 1e-6.

    Example: fastrnn gradcheck --cell lstm
    """
    from fastrnn.finitediff import TOLERANCE, gradcheck as run

    if device == "cuda":
        from fastrnn.train.loop import check_device

        with usage_errors():
            click.echo(f"device: {check_device(device)}")
    worst_all = 0.0
    for c, cfg, errors in run(cell, seed=seed, device=device):
        batch = f" B={cfg['B']}" if "B" in cfg else ""
        desc = (f"{cfg['loss']}/{cfg['output']} L={cfg['num_layers']} "
                f"K={cfg['bptt_truncate']} {'var' if cfg['variable_lengths'] else 'eq'}-len"
                f"{' tokens' if cfg.get('tokens') else ''}{' dropout' if cfg.get('dropout') else ''}"
                f"{' bidir' if cfg.get('bidirectional') else ''}{batch}")
        worst = max(errors.values())
        worst_all = max(worst_all, worst)
        status = "ok" if worst < TOLERANCE else "FAIL"
        click.echo(f"{c:5s} {desc:34s} max rel err {worst:.1e}  {status}")
        if worst >= TOLERANCE:
            for name, e in errors.items():
                click.echo(f"        {name:16s} {e:.1e}")
    click.echo(f"worst relative error {worst_all:.1e} (tolerance {TOLERANCE:.0e})")
    if worst_all >= TOLERANCE:
        raise SystemExit(1)


@cli.command()
@click.option("--cell", "--cells", "cell", type=click.Choice(CELL_NAMES), default="lstm", show_default=True,
              help="The recurrent cell (--cells is the same option).")
@training_options({})
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the initialization, the batches and dropout.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out: an interrupted one, or a finished one to a "
                                            "larger --steps. Options not given are the run's own (its config.json).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(cell, seed, out, resume, quiet, **kw):
    """Train one model on a task; write metrics.jsonl, summary.json and a checkpoint.

    Ctrl-C stops at the next step boundary and writes a checkpoint; --resume continues to
    the same final weights as an uninterrupted run. `fastrnn train --out DIR --resume` alone
    continues with the options the run was started with (DIR/config.json also holds the full
    command), and with a larger --steps it extends a run that ran out of steps.

    Example: fastrnn train --task adding --cell gru --seq-len 100 --out runs/gru
    """
    from fastrnn.fileio import json_line
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import train as run

    with usage_errors():
        if resume:  # the options not given on this command line are the run's own
            kw = stored_options(out, dict(kw, cell=cell, seed=seed))
            cell, seed = kw.pop("cell"), kw.pop("seed")
        cfg = TrainConfig(cell=cell, seed=seed, **config_kwargs(kw))
        from fastrnn.train.loop import preflight
        prepared = preflight(cfg)  # the task's data and the device are checked before --out is touched
    prepare_out(out)
    task = prepared[0]
    if not quiet:  # what differs from the defaults, and a rough time, before anything runs
        from fastrnn.sweep.engine import estimate, format_hours

        click.echo(f"train: T = {task.describe()['seq_len']}, {task.describe()['seq_len_meaning']}; up to "
                   f"{cfg.steps:,} steps, roughly {format_hours(estimate([('run', cfg)], 1)['hours'])} "
                   f"(an upper-side guess)", err=True)
        click.echo(f"config: {options_text(cfg)} (every option: {out}/config.json)", err=True)
    with usage_errors(), TrainProgress(cfg, task.metric_name, quiet) as progress:
        summary = run(cfg, out, resume=resume, progress=progress, prepared=prepared)
    click.echo(json_line({k: summary[k] for k in ("status", "message", "final_metric", "baseline",
                                                  "steps", "steps_to_solve", "wall_seconds")}), nl=False)
    if summary["status"] == "interrupted":
        click.echo("interrupted: checkpoint written; continue with the same command and --resume", err=True)
        raise SystemExit(128 + summary["signal"])  # 130 for SIGINT, 143 for SIGTERM


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Data file, if it moved since training (text, mnist).")
def evaluate(checkpoint, data):
    """Evaluate a checkpoint on its task's held-out set; prints JSON.

    CHECKPOINT is a checkpoint file or a run folder (its best.npz, the model at the best
    held-out metric, else its last checkpoint.npz); which one was read goes to stderr.

    Example: fastrnn evaluate runs/lstm
    """
    import math

    from fastrnn.fileio import json_line
    from fastrnn.train.loop import load_run

    with usage_errors():
        checkpoint = checkpoint_file(checkpoint)
        cfg, task, model, meta = load_run(checkpoint, data)
        click.echo(f"evaluate: {describe_checkpoint(checkpoint, meta)}", err=True)
        ev = task.evaluate(model)
    finite = math.isfinite(ev["loss"]) and math.isfinite(ev["metric"])
    click.echo(json_line(dict(task=cfg.task, cell=cfg.cell, checkpoint=str(checkpoint),
                              kind=meta.get("kind", "last"), step=meta.get("step"), loss=ev["loss"],
                              metric_name=task.metric_name, metric=ev["metric"], finite=finite,
                              baseline=task.metric_baseline, solved=finite and task.solved(ev["metric"]))), nl=False)
    if not finite:  # a diverged model: its outputs are NaN or infinite (written as null above)
        click.echo(f"evaluate: {checkpoint} gives a non-finite loss or metric (a diverged model)", err=True)
        raise SystemExit(1)


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--length", type=click.IntRange(min=1), default=200, show_default=True,
              help="Characters to generate after the start.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Below 1: likelier characters, more repetitive; above 1: more random.")
@click.option("--prime", default="", help="Text to start from.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the characters drawn.")
def sample(checkpoint, length, temperature, prime, seed):
    """Generate text from a character-model checkpoint (task 'text').

    CHECKPOINT is a checkpoint file or a run folder (its best.npz, else checkpoint.npz). The
    output starts with --prime, or without one with the character drawn to start from.

    Example: fastrnn sample runs/char --length 300 --temperature 0.8
    """
    from fastrnn.tasks.text import sample as gen
    from fastrnn.train.loop import load_model

    with usage_errors():
        checkpoint = checkpoint_file(checkpoint)
        model, meta = load_model(checkpoint)
        vocab = meta["task"].get("vocab") if isinstance(meta.get("task"), dict) else None
        config = meta.get("config")
        if not isinstance(config, dict) or config.get("task") != "text" or not isinstance(vocab, str):
            raise ValueError(f"checkpoint: {checkpoint} is not a character model (task 'text')")
        if len(vocab) != model.input_size or len(set(vocab)) != len(vocab) or not model.tokens:
            raise ValueError(f"checkpoint: {checkpoint} has a vocabulary of {len(vocab)} characters "
                             f"for a model of {model.input_size} inputs")
        click.echo(f"sample: {describe_checkpoint(checkpoint, meta)}", err=True)
        click.echo(gen(model, vocab, length, temperature, prime, seed))


@cli.command()
@click.option("--cells", "--cell", "cells", default="tanh,relu,gru,lstm", show_default=True,
              help="Comma-separated cells to compare (--cell is the same option).")
@training_options(dict(seq_len=100, hidden=32, steps=4000, lr=1e-2))
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many seeds per cell: --seed .. --seed + N - 1.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="The first seed.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              show_default="one per core", help="Parallel worker processes.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              show_default="compare-TASK-SEQLEN", help="Output folder.")
@click.option("--yes", "-y", is_flag=True, help="Start a large comparison (over 500 runs or 2 hours, estimated) "
                                               "without asking.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def compare(cells, seeds, seed, workers, out, yes, quiet, **kw):
    """Train several cells on one task and report which of them learn it.

    Runs every cell x seed in parallel worker processes (a failed or diverged run never
    stops the others), then writes OUT/results.json, OUT/report.md and OUT/curves.png.
    Re-running the same command reuses finished runs and resumes interrupted ones. It starts
    by printing its size and a rough time; over 500 runs or 2 hours (estimated) it asks first
    on a terminal, and needs --yes elsewhere.

    With no options: the adding problem at T = 100, where the tanh RNN stays at the
    baseline while GRU and LSTM solve it. Its defaults differ from train's on purpose: small
    models that finish 12 runs in about a minute (hidden 32, lr 1e-2, at most 4000 steps,
    seq-len 100; train: hidden 128, lr 1e-3, 5000 steps, the task's own length). Each cell's
    verdict is never / sometimes / always: how many of its seeds solve the task.

    Example: fastrnn compare --task copy --seq-len 50 --cells tanh,lstm --steps 3000
    """
    from fastrnn import compare as cmp
    from fastrnn.train.config import TrainConfig

    from fastrnn.sweep.engine import describe_estimate, estimate

    names = parse_cells(cells)
    with usage_errors():
        cost = estimate([(seeds, TrainConfig(cell=c, seed=seed, **config_kwargs(kw))) for c in names], workers)
    confirm_size(cost, yes, "compare")  # before the grid is built: --seeds 1000000 is asked about first
    with usage_errors():
        p = cmp.plan(TrainConfig(cell=names[0], seed=seed, **config_kwargs(kw)), names, seeds, out)
    prepare_out(p.out)
    if not quiet:
        click.echo(f"compare: {describe_estimate(cost)} -> {p.out}", err=True)
        click.echo(COMPILE_NOTE, err=True)

    def event(kind, name, rec):
        if kind == "reused":
            bar.reused_run(name)
        elif kind == "done":
            s = rec.get("summary") or rec
            bar.finished(name, s.get("message", s.get("status")))
        elif kind == "progress":
            bar.progress(name, rec)

    with RunsProgress(p.runs, quiet) as bar, usage_errors():
        table, path = cmp.run(p, workers, on_event=event)
    task = p.task
    for cell, r in table.items():
        m = r["final_metric_mean"]
        solved = (f"  {task.level_words} {r['solved']}/{r['runs']} ({r['verdict']})" if task.has_solved_level
                  else "")
        click.echo(f"{cell:5s} {task.metric_name} {'-' if m is None else f'{m:.4g}'} "
                   f"(baseline {task.metric_baseline:.4g}){solved}")
    click.echo(f"report: {path}")


@cli.command()
@click.argument("checkpoint_arg", metavar="[CHECKPOINT]", required=False, type=click.Path())
@click.option("--cells", "--cell", "cells", default="tanh,relu,gru,lstm", show_default=True,
              help="Comma-separated cells to profile (--cell is the same option).")
@training_options(dict(seq_len=200, hidden=32, lr=1e-2), exclude=("steps", "eval_every", "early_stop", "bidirectional", "watch"))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the models and the batch profiled.")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="Profile this trained model (a checkpoint or a run folder, as the CHECKPOINT argument) "
                   "and its initialization instead of new ones.")
@click.option("--train-steps", type=click.IntRange(min=1), default=None,
              help="Also train each cell this many steps and profile it again.")
@click.option("--profile-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Sequences the gradient norms are averaged over.")
@click.option("--out", type=click.Path(file_okay=False), default="gradients", show_default=True,
              help="Output folder (gradients.json, gradients.png, and train-CELL/ runs with --train-steps).")
def gradients(checkpoint_arg, cells, seed, checkpoint, train_steps, profile_batch, out, **kw):
    """Show the vanishing (or exploding) gradient, cell by cell.

    For L = the loss at the last step: ||dL/dh_k|| for every step k (by time lag, averaged over
    a batch), the per-step Jacobian norm ||ds_t/ds_{t-1}||, the recurrent matrix's largest
    singular value and spectral radius per gate block, and the fraction of saturated (or dead)
    units; at initialization and, with --train-steps or --checkpoint, after training. Writes
    OUT/gradients.json and OUT/gradients.png and prints a table.

    How to read it: each step multiplies the gradient by a Jacobian whose norm is at most
    ||W_hh|| times the activation's derivative bound (1 for tanh, 1/4 for sigmoid), so the
    norm falls geometrically with the lag unless gates or initialization hold it near 1.

    Its defaults are compare's (hidden 32, lr 1e-2) at seq-len 200, where the tanh RNN's
    gradient has vanished many decades. A cell whose training diverges keeps its profile at
    initialization and is reported as diverged (table, JSON, plot); the others go on. Exit
    status 1 only if every cell diverged.

    Example: fastrnn gradients --task adding --seq-len 200 --train-steps 500 --out grads
    """
    from fastrnn.gradients import OUTPUTS, profile, table, write_profiles
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import build, check_device, load_model, load_run, train as run_train

    from fastrnn import fileio

    names = parse_cells(cells)
    profiles = {"init": [], "trained": [], "untrained": []}
    K, device = kw.get("bptt_truncate"), kw.get("device", "cpu")
    if checkpoint_arg and checkpoint and checkpoint_arg != checkpoint:
        raise click.UsageError("give the checkpoint once: as the CHECKPOINT argument or as --checkpoint")
    checkpoint = checkpoint_arg or checkpoint
    with usage_errors():
        check_device(device)
        if checkpoint:
            checkpoint = checkpoint_file(checkpoint)
            cfg, task, trained, _ = load_run(checkpoint, kw.get("data"))
            _, fresh = build(cfg)  # the same seed gives the initialization the run started from
            prepare_out(out, OUTPUTS)
            profiles["init"].append(profile(fresh, task, profile_batch, seed, K, device=device))
            profiles["trained"].append(profile(trained, task, profile_batch, seed, K, device=device))
        else:
            configs = [TrainConfig(cell=c, seed=seed, steps=train_steps or 1, eval_every=train_steps or 1,
                                   early_stop=False, **config_kwargs(kw)) for c in names]
            built = [build(cfg) for cfg in configs]  # every option and data file checked first
            prepare_out(out, OUTPUTS)
            for cfg in configs:
                fileio.check_folder(f"{out}/train-{cfg.cell}")
            for cfg, (task, model) in zip(configs, built):
                profiles["init"].append(profile(model, task, profile_batch, seed, K, device=device))
                if train_steps:
                    run_dir = f"{out}/train-{cfg.cell}"
                    summary = run_train(cfg, run_dir, resume=True, prepared=(task, model))
                    if summary["status"] == "interrupted":
                        raise click.ClickException(f"interrupted while training {cfg.cell}; rerun the same command "
                                                   f"to resume it")
                    if summary["status"] == "diverged":  # no checkpoint: its initialization stands alone
                        profiles["untrained"].append(dict(cell=cfg.cell, status=summary["status"],
                                                          message=f"training {summary['message']}"))
                        continue
                    trained, _ = load_model(f"{run_dir}/checkpoint.npz")
                    profiles["trained"].append(profile(trained, task, profile_batch, seed, K, device=device))
        write_profiles(out, task, profiles)
    for line in table(profiles):
        click.echo(line)
    click.echo(f"wrote {out}/gradients.json and {out}/gradients.png")
    if train_steps and not profiles["trained"]:
        click.echo("gradients: no cell finished training without diverging", err=True)
        raise SystemExit(1)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Sweep folder.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="Run on this Dask cluster (pip install 'fastrnn[dask]') instead of a local pool.")
@click.option("--workers", type=click.IntRange(min=1), default=None, show_default="one per core",
              help="Local pool size (without --scheduler).")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Times a run is retried after its worker process dies.")
@click.option("--skip-failed", is_flag=True,
              help="Leave runs recorded as failed alone (by default a rerun retries them).")
@click.option("--yes", "-y", is_flag=True, help="Start a large sweep (over 500 runs or 2 hours, estimated) "
                                               "without asking.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def sweep(spec, out, scheduler, workers, retries, skip_failed, yes, quiet):
    """Run a grid of training runs from a TOML spec, locally or on a Dask cluster.

    SPEC has a [base] table of training options and a [grid] table of option lists; every
    combination is one run. Each finished run is appended to OUT/results.jsonl at once;
    re-running the same command skips finished runs, resumes interrupted ones and retries
    failed ones. Ctrl-C or SIGTERM stops every run at a step boundary with a checkpoint (exit
    130 / 143). At the end, OUT/report.md and OUT/sweep-TASK.png show the metric against
    sequence length per cell. It starts by printing its size and a rough time; a sweep of
    over 500 runs or 2 hours (estimated) asks first on a terminal, and needs --yes elsewhere.
    On a Dask cluster, add --scheduler tcp://HOST:8786.

    \b
    Example spec:
        [base]
        task = "adding"
        steps = 2000
        [grid]
        cell = ["tanh", "gru", "lstm"]
        seq_len = [50, 100, 200]
        seed = [0, 1, 2]

    Example: fastrnn sweep study.toml --out study
    """
    from fastrnn.sweep.engine import describe_estimate, estimate, execute
    from fastrnn.sweep.report import report_files, write_sweep_report
    from fastrnn.sweep.spec import load_spec

    with usage_errors():
        runs = load_spec(spec, local=scheduler is None)
    cost = estimate(runs, workers)
    confirm_size(cost, yes, "sweep")
    prepare_out(out)
    counts = {"done": 0, "running": 0, "failed": 0}
    if not quiet:
        click.echo(f"sweep: {describe_estimate(cost)} -> {out}", err=True)
        click.echo(COMPILE_NOTE, err=True)

    def event(kind, name, rec):
        if kind == "progress":
            bar.progress(name, rec)
            return
        if kind == "started":
            counts["running"] += 1
            return
        if kind == "reused":
            counts["done"] += 1
            counts["failed"] += rec.get("status") == "failed"
            bar.reused_run(name)
            return
        if kind == "done":
            counts["running"] = max(0, counts["running"] - 1)
            counts["done"] += 1
            counts["failed"] += rec.get("status") == "failed"
        elif kind in ("retry", "interrupted"):
            counts["running"] = max(0, counts["running"] - 1)
        status = rec.get("message", rec.get("status")) if rec else kind
        note = f"{status} (done {counts['done']}, running {counts['running']}, failed {counts['failed']})"
        bar.finished(name, note) if kind == "done" else bar.note(name, note)

    with RunsProgress(runs, quiet) as bar, usage_errors():
        records = execute(runs, out, scheduler=scheduler, workers=workers, retries=retries, on_event=event,
                          skip_failed=skip_failed, files=report_files(runs))
    with usage_errors():
        report = write_sweep_report(out, runs, records)
    failed = sum(r.get("status") == "failed" for r in records.values())
    click.echo(f"{len(records)} runs finished, {failed} failed; report: {report}")



@cli.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Output folder (overlay.png, overlay.md, overlay.csv).")
@click.option("--y", "y", type=click.Choice(REPORT_YS), default="metric",
              show_default=True, help="What to plot: the held-out metric or loss, the training loss, the rate, "
                                      "or the recurrence watched while training (--watch): the largest spectral "
                                      "radius, the median memory time, the gradient ratio across the task's lag.")
@click.option("--x", "x", type=click.Choice(("step", "wall")), default="step", show_default=True,
              help="Against training steps or wall-clock seconds.")
@click.option("--csv", "write_csv", is_flag=True, help="Also write every evaluation as OUT/overlay.csv.")
def report(folders, out, y, x, write_csv):
    """Overlay the curves of finished runs, comparisons and sweeps; tabulate how each ended.

    Each FOLDER is a run folder (`fastrnn train --out`) or a comparison or sweep folder (its
    runs/ are all read). Writes OUT/overlay.png and OUT/overlay.md, prints the table.

    Example: fastrnn report compare-adding-100 runs/lstm --y loss --csv
    """
    from fastrnn.overlay import overlay

    with usage_errors():
        res = overlay(folders, prepare_out(out), y=y, x=x, write_csv=write_csv)
    click.echo(res["md"].read_text().split("\n", 4)[4].rstrip())
    click.echo(f"wrote {res['png']}, {res['md']}" + (f" and {res['csv']}" if res["csv"] else ""))


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--data", type=click.Path(dir_okay=False), required=True,
              help="An .npz with x: (N, T, I) floats or (N, T) token ids, sequences first; optional "
                   "lengths (N,). A model trained on a CSV series also takes a CSV (every window).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the predictions (.npz).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Sequences per forward pass.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def predict(checkpoint, data, out, force, batch_size, quiet):
    """Run a trained model on new sequences; write its outputs as an .npz.

    A classifier writes `probabilities` (N, O) and `labels` (N,) (at every step: (N, T, O)
    and (N, T), -1 past a sequence's length); a regression model writes `outputs`. A model
    trained on a CSV series takes and gives values in the series' own units: given a CSV, it
    forecasts from every window (row i of `outputs`: --horizon steps after window i ends).

    Example: fastrnn predict runs/waves --data new.npz --out new-predictions.npz
    """
    import io

    import numpy as np

    from fastrnn import serve
    from fastrnn.fileio import atomic_write_bytes

    with usage_errors():
        new_output(out, force)
        checkpoint = checkpoint_file(checkpoint)
        model, task, meta = serve.load(checkpoint)
        x, lengths = serve.read_inputs(data, model, task)
        click.echo(f"predict: {describe_checkpoint(checkpoint, meta)}", err=True)
        if quiet or x.shape[0] <= batch_size:
            res = serve.predict(model, task, x, lengths, batch_size)
        else:
            with click.progressbar(length=x.shape[0], label="predict", file=sys.stderr) as bar:
                done = [0]

                def step(n):
                    bar.update(n - done[0])
                    done[0] = n

                res = serve.predict(model, task, x, lengths, batch_size, step)
        buf = io.BytesIO()
        np.savez(buf, **res)
        atomic_write_bytes(out, buf.getvalue())
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in res.items())
    click.echo(f"wrote {out}: {shapes}")


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The .safetensors file to write.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def export(checkpoint, out, force):
    """Export a model's weights as safetensors, under PyTorch's names.

    The recurrent weights are named as torch.nn.RNN/GRU/LSTM name them (weight_ih_l0, ...),
    the readout readout.weight and readout.bias; the file's metadata holds the model's
    config (fastrnn_model), what its outputs mean (fastrnn_task) and the torch module to
    build (torch_module). Needs the safetensors package: pip install 'fastrnn[export]'.

    Example: fastrnn export runs/lstm --out lstm.safetensors
    """
    from fastrnn import serve

    with usage_errors():
        new_output(out, force)
        checkpoint = checkpoint_file(checkpoint)
        model, task, meta = serve.load(checkpoint)
        click.echo(f"export: {describe_checkpoint(checkpoint, meta)}", err=True)
        tensors, _ = serve.export_safetensors(model, task, out)
    click.echo(f"wrote {out}: {len(tensors)} tensors, {model.num_parameters:,} parameters ({model.cell.name}, "
               f"{model.num_layers} layer(s) of {model.hidden_size})")
