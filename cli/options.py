"""Options shared by `train`, `compare` and `gradients`, bundled in one decorator; the
conversion of library errors into one-line usage errors; progress, confirmation and output
helpers the commands share."""
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import click

from fastrnn.cells import CELLS, INITS
from fastrnn.choices import DEVICES, DTYPES, OPTIMIZERS, SCHEDULES, SEQ_LEN_MEANING, TASKS
from fastrnn.train.config import TrainConfig  # names, defaults and checks: NumPy- and Numba-free

TASK_NAMES, CELL_NAMES, OPTIMIZER_NAMES, INIT_NAMES = TASKS, tuple(CELLS), OPTIMIZERS, INITS
class _RecurrentMax(click.ParamType):
    """--recurrent-max: a positive number, or 'auto'."""
    name = "NUMBER|auto"

    def convert(self, value, param, ctx):
        if value is None or value == "auto" or isinstance(value, float):
            return value
        try:
            x = float(value)
        except ValueError:
            self.fail(f"expected a positive number or auto; got {value!r}", param, ctx)
        if not (x > 0 and x < float("inf")):
            self.fail(f"expected a positive number or auto; got {value!r}", param, ctx)
        return x


RECURRENT_MAX = _RecurrentMax()

# "irnn for relu, else pytorch": each cell's own default, from its declaration
DEFAULT_INITS = ", ".join([f"{c.default_init} for {c.name}" for c in CELLS.values() if c.default_init != "pytorch"]
                          + ["else pytorch"])

# TrainConfig's defaults; a command may override some (compare trains small models fast)
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

# The TrainConfig fields these options fill (option name = field), so commands build a
# config from **kwargs; cell and seed are each command's own options.
FIELDS = tuple(name for name in DEFAULTS if name not in ("cell", "seed"))


def training_options(defaults, exclude=()):
    """Decorator adding the training options; ``defaults`` overrides per command, ``exclude``
    leaves options out (their TrainConfig defaults apply)."""
    d = dict(DEFAULTS, **defaults)
    opts = [
        click.option("--task", type=click.Choice(TASK_NAMES), default=d["task"], show_default=True,
                     help="A long-dependency benchmark (adding, copy, order, order8, agreement) or your "
                          "data with --data (text, mnist, file)."),
        click.option("--seq-len", type=click.IntRange(min=1), default=d["seq_len"],
                     show_default=True if d["seq_len"] else "task's default",
                     help="T, per task: " + "; ".join(f"{t}: {m}" for t, m in SEQ_LEN_MEANING.items()) + "."),
        click.option("--hidden", type=click.IntRange(min=1), default=d["hidden"], show_default=True,
                     help="Hidden units per layer."),
        click.option("--layers", type=click.IntRange(min=1), default=d["layers"], show_default=True,
                     help="Stacked recurrent layers."),
        click.option("--batch-size", type=click.IntRange(min=1), default=d["batch_size"], show_default=True,
                     help="Sequences per training step."),
        click.option("--steps", type=click.IntRange(min=1), default=d["steps"], show_default=True,
                     help="Training steps (at most: runs stop when solved)."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=d["lr"], show_default=True,
                     help="Learning rate."),
        click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES), default=d["optimizer"],
                     show_default=True, help="The update rule (PyTorch's: sgd with --momentum, adam, ...)."),
        click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=d["momentum"],
                     show_default=True, help="SGD momentum."),
        click.option("--clip", type=click.FloatRange(min=0), default=d["clip"], show_default=True,
                     help="Clip the gradient's global norm to this (0: off)."),
        click.option("--clip-value", type=click.FloatRange(min=0, min_open=True), default=d["clip_value"],
                     help="Also clip every gradient entry to [-v, v]."),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=d["weight_decay"], show_default=True,
                     help="L2 regularization strength."),
        click.option("--eval-every", type=click.IntRange(min=1), default=d["eval_every"], show_default=True,
                     help="Evaluate on the held-out set every N steps."),
        click.option("--watch/--no-watch", default=d["watch"], show_default=True,
                     help="At each evaluation also record the recurrence: its spectral radius, the gates' "
                          "memory times and the gradient across the task's lag (metrics.jsonl)."),
        click.option("--early-stop/--no-early-stop", default=d["early_stop"],
                     show_default="yes, except text, mnist and file", help="Stop a run as soon as it is solved."),
        click.option("--patience", type=click.IntRange(min=1), default=d["patience"],
                     help="Stop after N evaluations without a held-out improvement."),
        click.option("--min-delta", type=click.FloatRange(min=0), default=d["min_delta"], show_default=True,
                     help="How much better the held-out metric must get to count as an improvement."),
        click.option("--lr-schedule", type=click.Choice(SCHEDULES), default=d["lr_schedule"], show_default=True,
                     help="Learning-rate schedule (step: x lr-gamma every lr-step steps; plateau: x lr-gamma "
                          "after lr-patience evaluations without improvement)."),
        click.option("--warmup-steps", type=click.IntRange(min=0), default=d["warmup_steps"], show_default=True,
                     help="Grow the rate linearly from lr/N to lr over the first N steps."),
        click.option("--lr-gamma", type=click.FloatRange(0, 1, min_open=True), default=d["lr_gamma"],
                     show_default=True, help="step, plateau: the factor of each decay."),
        click.option("--lr-step", type=click.IntRange(min=1), default=d["lr_step"],
                     show_default="a third of the steps", help="step: decay every N steps."),
        click.option("--lr-patience", type=click.IntRange(min=1), default=d["lr_patience"], show_default=True,
                     help="plateau: decay after N evaluations without improvement."),
        click.option("--init", type=click.Choice(INIT_NAMES), default=d["init"],
                     show_default=DEFAULT_INITS, help="Weight initialization."),
        click.option("--forget-bias", type=float, default=d["forget_bias"], show_default=True,
                     help="LSTM forget-gate bias (not with --init chrono, which draws it)."),
        click.option("--chrono-tmax", type=click.IntRange(min=2), default=d["chrono_tmax"],
                     show_default="the task's dependency length",
                     help="--init chrono (lstm, gru): gate timescales drawn to span 1 to this many steps."),
        click.option("--spectral-radius", type=click.FloatRange(min=0, min_open=True), default=d["spectral_radius"],
                     help="Scale each recurrent gate block to this spectral radius."),
        click.option("--recurrent-max", type=RECURRENT_MAX, default=d["recurrent_max"],
                     help="indrnn: keep every |u| within this after each update; auto: 2^(1/T) for the task's T."),
        click.option("--bptt-truncate", type=click.IntRange(min=0), default=d["bptt_truncate"],
                     help="Each step's loss flows back at most K steps (default: full BPTT)."),
        click.option("--carry-state/--no-carry-state", default=d["carry_state"], show_default=True,
                     help="text: start each chunk of training from the previous chunk's final state "
                          "(--no-carry-state: from zeros; evaluation always carries it)."),
        click.option("--min-lag", type=click.IntRange(min=0), default=d["min_lag"], show_default=True,
                     help="adding: place both marked steps at least N steps before the last "
                          "(with --bptt-truncate K, N = K + 1 puts them beyond its reach)."),
        click.option("--data", type=click.Path(dir_okay=False), default=None,
                     help="Data file: UTF-8 text for 'text', mnist.npz for 'mnist', your sequences "
                          "(.npz: x, y, optional lengths, x_test, y_test, vocab) or a series (.csv) for 'file'."),
        click.option("--holdout-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     default=d["holdout_fraction"], show_default=True,
                     help="file: the share of sequences held out when the file has no x_test, y_test "
                          "(a fixed draw; a CSV series: the last windows)."),
        click.option("--window", type=click.IntRange(min=1), default=d["window"],
                     help="file, a CSV series: steps per input window."),
        click.option("--horizon", type=click.IntRange(min=1), default=d["horizon"], show_default=True,
                     help="file, a CSV series: predict the row this many steps after the window."),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=d["dropout"],
                     show_default=True, help="Dropout on the outputs of every layer but the last, "
                                             "training only (as PyTorch's dropout=)."),
        click.option("--permuted", is_flag=True, help="mnist: permute the pixels (fixed permutation)."),
        click.option("--bidirectional", is_flag=True,
                     help="A reverse direction per layer, outputs concatenated (PyTorch's bidirectional=True)."),
        click.option("--dtype", type=click.Choice(DTYPES), default=d["dtype"], show_default=True,
                     help="Float precision of parameters and arithmetic."),
        click.option("--device", type=click.Choice(DEVICES), default=d["device"], show_default=True,
                     help="cuda: train on an NVIDIA GPU (pip install 'fastrnn[cuda]')."),
    ]

    def deco(f):
        for o in reversed(opts):
            probe = o(lambda: None)
            if probe.__click_params__[0].name not in exclude:
                f = o(f)
        return f

    return deco


def checkpoint_file(path):
    """fastrnn.train.checkpoint.checkpoint_file, imported when a command runs (it brings NumPy,
    which `fastrnn --help` never loads)."""
    from fastrnn.train.checkpoint import checkpoint_file as find

    return find(path)


def describe_checkpoint(path, meta):
    """Which model a command read: the file, and whether it is the run's best or its last."""
    step = meta.get("step")
    if meta.get("kind") == "best":
        return f"read {path} (the best held-out model, step {step})"
    return f"read {path} (the last checkpoint, step {step})"


def parse_cells(text):
    """The cell names of a comma-separated --cells value, or a usage error naming it."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names or any(c not in CELL_NAMES for c in names):
        raise click.BadParameter(f"expected a comma-separated list of {', '.join(CELL_NAMES)}; got {text!r}",
                                 param_hint="'--cells'")
    return names


def config_kwargs(kwargs):
    """The TrainConfig fields from a command's kwargs (clip 0 means off; a command's default
    --seq-len does not apply to mnist and file, whose lengths are fixed)."""
    d = {k: kwargs[k] for k in FIELDS if k in kwargs}
    if d.get("clip") == 0:
        d["clip"] = None
    ctx = click.get_current_context(silent=True)
    if (d.get("task") in ("mnist", "file") and ctx is not None
            and ctx.get_parameter_source("seq_len") == click.core.ParameterSource.DEFAULT):
        d["seq_len"] = None
    return d


@contextlib.contextmanager
def usage_errors():
    """Library ValueErrors (bad options, files, checkpoints, a folder in use) become one-line
    usage errors (exit 2); a file that cannot be written (disk full) one line and exit 1."""
    try:
        yield
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    except OSError as e:
        raise click.ClickException(str(e)) from None


def prepare_out(out, files=()):
    """Create --out (and parents), or fail with a usage error naming it; files: the names the
    command will write there, refused now if any is a link (fastrnn.fileio.check_folder)."""
    if not str(out).strip():
        raise click.UsageError("out: expected a folder name; got an empty string")
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fastrnn-write-test-", dir=p)  # O_EXCL: never through a link
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise click.UsageError(f"out: cannot write to {out} ({e.strerror or e})") from None
    if files:
        from fastrnn.fileio import check_folder

        with usage_errors():
            check_folder(p, files)
    return p


def stored_options(out, kw):
    """A resumed run's options: each one this command line left at its default is taken from
    the run folder (fastrnn.train.loop.stored_config); those given explicitly stay, and the
    resume checks them against the run."""
    from fastrnn.train.loop import stored_config

    stored = stored_config(out)
    if stored is None:
        return kw
    ctx = click.get_current_context()
    kw = dict(kw)
    for name in kw:
        if name in stored and ctx.get_parameter_source(name) == click.core.ParameterSource.DEFAULT:
            kw[name] = stored[name]
    return kw


def new_output(out, force):
    """Refuse to overwrite an existing output file (predict, export) unless --force, as run
    folders refuse to be overwritten; a link is refused even with --force (fastrnn.fileio)."""
    from fastrnn.fileio import check_target

    if os.path.lexists(out):
        if os.path.isdir(out) and not os.path.islink(out):
            raise ValueError(f"out: {out} is a folder; give a file name")
        check_target(out)
        if not force:
            raise ValueError(f"out: {out} exists; pass --force to overwrite it, or give another --out")


def confirm_size(cost, yes, what):
    """Ask before a grid above the stated size starts (engine.CONFIRM_RUNS runs or
    CONFIRM_HOURS hours): on a terminal a yes/no question, elsewhere (scripts, CI, nohup) a
    usage error unless --yes was given. A typo such as --seeds 1000000 then costs nothing."""
    from fastrnn.sweep.engine import CONFIRM_HOURS, CONFIRM_RUNS, describe_estimate

    if not cost["large"] or yes:
        return
    msg = (f"{what}: {describe_estimate(cost)}: more than {CONFIRM_RUNS} runs or {CONFIRM_HOURS:g} hours")
    if sys.stdin.isatty() and sys.stderr.isatty():
        if not click.confirm(f"{msg}. Start it?", err=True):
            raise click.Abort()
        return
    raise click.UsageError(f"{msg}; pass --yes to start it")


def options_text(cfg):
    """'cell=lstm task=adding seq_len=100 ...': the cell, seed and task, then every option that
    differs from `fastrnn train`'s defaults (a short line; config.json holds them all)."""
    d = cfg.to_dict()
    keys = ["cell", "seed", "task"] + [k for k, v in d.items() if k not in ("cell", "seed", "task") and v != DEFAULTS[k]]
    return " ".join(f"{k}={d[k]}" for k in keys)


def progress_enabled(quiet):
    return not quiet and sys.stderr.isatty()


def eta(rate, remaining):
    """'ETA m:ss' (or h:mm:ss) from a rate in steps/s and the steps left; '' without a rate."""
    if not rate or remaining <= 0:
        return ""
    s = int(remaining / rate)
    return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"ETA {s // 60}:{s % 60:02d}"


class TrainProgress:
    """fastrnn train's progress: on a terminal a bar with an ETA from the steps/s measured since
    the end of the first step (so neither the JIT compile nor the steps before a resume skew
    it), elsewhere (nohup, cluster logs, CI) one plain line per evaluation; nothing with
    --quiet. Called as progress(step, steps, latest record)."""

    def __init__(self, cfg, metric_name, quiet):
        self.metric, self.steps = metric_name, cfg.steps
        self.lines = not quiet and not sys.stderr.isatty()
        self.bar = None
        if progress_enabled(quiet):
            self.bar = click.progressbar(length=cfg.steps, label=f"{cfg.cell} on {cfg.task}", file=sys.stderr,
                                         show_eta=False, item_show_func=lambda s: s)
        self.t_first = self.step_first = self.logged = None
        self.t0 = time.perf_counter()

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def rate(self, step):
        """Steps per second since the first step finished (compile excluded), or None."""
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first, self.step_first = now, step
            return None
        return (step - self.step_first) / (now - self.t_first) if now > self.t_first else None

    def __call__(self, step, steps, rec):
        rate = self.rate(step)
        if self.bar is not None:
            parts = [] if rec is None else [f"held-out {self.metric} {rec['metric']:.4g} (loss {rec['loss']:.4g})"]
            if rec is not None and rec.get("train_loss") is not None:
                parts.append(f"train loss {rec['train_loss']:.4g}")
            if rate:
                parts.append(f"{rate:.1f} steps/s {eta(rate, steps - step)}")
            self.bar.update(step - self.bar.pos, " | ".join(parts) or None)
        elif self.lines and rec is not None and rec["step"] != self.logged:
            self.logged = rec["step"]
            tl = "-" if rec.get("train_loss") is None else f"{rec['train_loss']:.4g}"
            lr = "-" if rec.get("lr") is None else f"{rec['lr']:.3g}"
            click.echo(f"step {rec['step']}/{self.steps}  train loss {tl}  held-out loss {rec['loss']:.4g}  "
                       f"{self.metric} {rec['metric']:.4g}  lr {lr}  "
                       f"{'-' if not rate else f'{rate:.1f}'} steps/s  {time.perf_counter() - self.t0:.0f} s",
                       err=True)


class RunsProgress:
    """Progress of many runs (compare, sweep), counted in training steps, not runs: a bar on a
    terminal whose ETA comes from the steps done and whose text shows the runs in flight (step,
    latest held-out metric, steps/s); elsewhere (logs) one line per finished run and at most
    one progress line every LOG_EVERY seconds, each with the runs done and an ETA; nothing with
    --quiet. Runs finished before this command are counted once, in one line. A finished run
    counts its whole budget (a solved run stops early). Ctrl-C ends with a note and exit status
    130 (143 for SIGTERM): finished runs are kept and the same command resumes the rest."""
    LOG_EVERY = 15.0

    def __init__(self, runs, quiet):
        self.budget = {name: cfg.steps for name, cfg in runs}
        self.total, self.done, self.live, self.reused = sum(self.budget.values()), {}, {}, []
        self.quiet, self.bar = quiet, None
        self.t_first = self.pos_first = None  # the ETA counts from the first progress report
        self.logged = time.perf_counter()
        if progress_enabled(quiet):
            self.bar = click.progressbar(length=self.total, label=f"{len(runs)} runs", file=sys.stderr,
                                         show_eta=False, item_show_func=lambda m: m)

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, kind, exc, tb):
        self._say_reused()
        if self.bar is not None:
            self.bar.__exit__(kind, exc, tb)
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            click.echo("\ninterrupted: finished runs are kept; the same command resumes the rest", err=True)
            raise SystemExit(128 + getattr(exc, "signum", 2))  # the engine's Interrupted names the signal
        return False

    def _eta(self):
        """(position in steps, 'ETA m:ss' or '')."""
        pos = sum(self.done.values()) + sum(i["step"] for i in self.live.values())
        now = time.perf_counter()
        if self.t_first is None and self.live:  # workers started and compiled: count from here
            self.t_first, self.pos_first = now, pos
        rate = (pos - self.pos_first) / (now - self.t_first) if self.t_first and now > self.t_first else None
        return pos, (eta(rate, self.total - pos) if self.pos_first is not None and pos > self.pos_first else "")

    def _update(self, message):
        pos, left = self._eta()
        if self.bar is not None:
            self.bar.update(pos - self.bar.pos, f"{left}  {message}" if left else message)
        elif not self.quiet:
            self.logged = time.perf_counter()
            counts = f"[{len(self.done)}/{len(self.budget)} runs done{', ' + left if left else ''}]"
            click.echo(f"  {message}  {counts}", err=True)

    def _say_reused(self):
        if self.reused and not self.quiet:
            n = len(self.reused)
            click.echo(f"  {n} finished run{'s' if n > 1 else ''} reused (this folder holds {'them' if n > 1 else 'it'}"
                       f"; another --out trains afresh)", err=True)
            self.reused = []

    def reused_run(self, name):
        """A run that finished before this command: counted, said once in a line of its own."""
        self.done[name] = self.budget.get(name, 0)
        self.reused.append(name)

    def progress(self, name, info):
        if name in self.done:
            return
        self._say_reused()
        self.live[name] = info
        if self.bar is not None:
            flight = [f"{n} {i['step']}/{i['steps']}" + (f" {i['metric']:.3g}" if i.get("metric") is not None else "")
                      + (f" {i['rate']:.0f}/s" if i.get("rate") else "") for n, i in sorted(self.live.items())]
            self._update(" | ".join(flight[:3]) + (f" (+{len(flight) - 3})" if len(flight) > 3 else ""))
        elif info.get("eval") and time.perf_counter() - self.logged >= self.LOG_EVERY:
            flight = ", ".join(f"{n} {i['step']}/{i['steps']}" + (f" ({i['metric']:.4g})" if i.get("metric") is not None
                                                                  else "") for n, i in sorted(self.live.items()))
            self._update(f"running: {flight}")

    def finished(self, name, message):
        self._say_reused()
        self.live.pop(name, None)
        self.done[name] = self.budget.get(name, 0)
        self._update(f"{name}: {message}")

    def note(self, name, message):
        """A run that stopped without finishing (retried, interrupted): its steps leave the count."""
        self.live.pop(name, None)
        self._update(f"{name}: {message}")
