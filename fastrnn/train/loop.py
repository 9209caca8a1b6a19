"""One training run: a step loop with periodic held-out evaluation, early stop when solved,
divergence detection, metrics.jsonl + summary.json, and atomic, resumable checkpoints.

Files in the run folder:
    metrics.jsonl    one JSON record per evaluation (step, loss, metric, train_loss, grad_norm, ...,
                     and the recurrence watched: radius, timescale, grad_ratio; fastrnn/watch.py)
    summary.json     written once the run ends: status solved | unsolved | diverged | interrupted,
                     or finished (a task with no solved level: the user's own data)
    checkpoint.npz   model + optimizer + RNG state + step (+ carried state), written atomically
    best.npz         the model at the best held-out metric so far
    config.json      the run's options and the `fastrnn train` command that runs them, so that
                     `fastrnn train --out DIR --resume` alone continues it
None of them is ever written, or read back, through a link (fastrnn.fileio).
"""
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np

from .. import fileio, memory, watch
from ..model import RNN
from ..cells import CELLS
from ..tasks import make_task
from . import checkpoint as ckpt
from .config import TrainConfig
from .lock import FolderLock
from .signals import StopFlag
from .optim import make_optimizer
from .schedule import Schedule

log = logging.getLogger("fastrnn")


class RunExists(ValueError):
    """The output folder already holds a run that would be overwritten."""


def build(cfg: TrainConfig, vocab=None, expect_params=None, source=None):
    """The task and a freshly initialized model for a config. Refuses, before allocating, a
    run that will not fit in memory, and (expect_params, from a checkpoint at ``source``) a
    config that does not describe the parameters it came with."""
    task = make_task(cfg.task, cfg.seq_len, cfg.data, cfg.permuted, vocab=vocab,
                     holdout_fraction=cfg.holdout_fraction, window=cfg.window, horizon=cfg.horizon,
                     min_lag=cfg.min_lag)
    if expect_params is not None:
        _check_count(source, expect_params, cfg.cell, task.input_size, cfg.hidden, task.output_size, cfg.layers,
                     2 if cfg.bidirectional else 1)
    memory.require(memory.training_bytes(cfg, task), f"hidden {cfg.hidden} x layers {cfg.layers}, "
                   f"batch {cfg.batch_size}, sequence length {getattr(task, 'seq_len', '?')}")
    model = RNN(cfg.cell, task.input_size, cfg.hidden, task.output_size, cfg.layers,
                tokens=task.tokens, dtype=cfg.dtype, init=cfg.init_scheme,
                forget_bias=cfg.forget_bias, spectral_radius=cfg.spectral_radius, seed=cfg.seed,
                dropout=cfg.dropout, bidirectional=cfg.bidirectional, chrono_tmax=chrono_tmax(cfg, task))
    return task, model


def chrono_tmax(cfg, task):
    """--chrono-tmax, or the task's dependency length, for the chrono init (else None)."""
    if cfg.init_scheme != "chrono":
        return None
    return cfg.chrono_tmax or max(2, task.dependency_length)


def recurrent_bound(cfg, task):
    """--recurrent-max as a number (None: off); 'auto' is Li et al.'s 2^(1/T) for the T steps
    the task's sequences have (the gradient through a unit then grows at most 2x over them)."""
    if cfg.recurrent_max != "auto":
        return cfg.recurrent_max
    T = getattr(task, "seq_len", None)
    if not T:
        raise ValueError(f"recurrent_max: 'auto' needs a task with a known sequence length; the {cfg.task} "
                         f"task has none: give a number")
    return 2.0 ** (1.0 / T)


def _check_count(path, n, cell, input_size, hidden, output_size, layers, directions=1):
    """A checkpoint's parameter vector must be the size its metadata describes: checked
    before the described model is built, so metadata claiming a huge model allocates nothing."""
    want = memory.parameter_count(cell, input_size, hidden, output_size, layers, directions)
    if n != want:
        raise ValueError(f"checkpoint: {path} holds {n} parameters; its metadata describes {want}")


def check_device(device):
    """Raise a ValueError naming the option if ``device`` cannot run here; else describe it."""
    if device != "cuda":
        return "cpu"
    from ..cuda import require

    return require()


def preflight(cfg):
    """Everything that can fail before a run writes anything: the task and its data file,
    the model, the device. Returns (task, model)."""
    task, model = build(cfg)
    check_device(cfg.device)
    return task, model


def load_run(path, data=None):
    """(cfg, task, model, meta) from a checkpoint file; ``data`` overrides the data file path."""
    meta, params, _, _ = ckpt.load(path)
    try:
        d = dict(meta["config"])
        if data is not None:
            d["data"] = str(data)
        cfg = TrainConfig.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint: {path} has an invalid config ({e})") from None
    task_meta = meta.get("task")
    vocab = task_meta.get("vocab") if isinstance(task_meta, dict) else None
    if vocab is not None and not isinstance(vocab, str):
        raise ValueError(f"checkpoint: {path} has an invalid vocabulary (expected a string)")
    task, model = build(cfg, vocab=vocab, expect_params=params.size, source=path)
    model.load_flat(params)
    return cfg, task, model, meta


def _read_history(metrics_path, step):
    """The evaluation records of metrics.jsonl up to ``step`` (the checkpoint's): the checkpoint
    is the truth, so later records are redone, and a line torn by a crash or a full disk is
    dropped (and said so) instead of blocking the resume."""
    records, torn = ckpt.read_records(metrics_path)
    history = [r for r in records if r["step"] <= step]
    if torn:
        log.warning(f"{metrics_path}: dropped {torn} unreadable line(s) (torn by a crash?); "
                    f"the checkpoint at step {step} is intact and the run resumes from it")
    return history


def _finite(x):
    return bool(np.isfinite(x))


CONFIG_FILE = "config.json"
# The options a resume may change: a larger --steps extends a run (its schedule ends later).
RESUMABLE = ("steps",)


def _differing(stored, cfg):
    """The options in which a stored config (a checkpoint's or summary's: untrusted) differs
    from cfg, those a resume may change left out; ['config'] if it is not a config at all."""
    d = TrainConfig.normalized(stored)
    if not isinstance(d, dict) or set(d) != set(cfg.to_dict()):
        return ["config"]
    return sorted(k for k, val in cfg.to_dict().items() if k not in RESUMABLE and d.get(k) != val)


def stored_config(folder):
    """A run folder's options, for `fastrnn train --out DIR --resume` given no others: from its
    config.json, else (a run written before config.json) its summary or checkpoint; None if
    the folder holds no run."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for name in (CONFIG_FILE, "summary.json"):  # both hold {"config": {...}, ...}
        doc = fileio.read_json(folder / name, f"out: {folder / name}", limit=2**20)
        if doc is not None:
            try:
                return TrainConfig.from_dict(doc["config"]).to_dict()
            except (KeyError, TypeError, ValueError) as e:  # hand-edited, or not ours
                raise ValueError(f"out: {folder / name} holds no usable config ({e})") from None
    if (folder / "checkpoint.npz").is_file():
        meta = ckpt.load(folder / "checkpoint.npz")[0]
        try:
            return TrainConfig.from_dict(meta["config"]).to_dict()
        except (KeyError, TypeError) as e:
            raise ValueError(f"checkpoint: {folder / 'checkpoint.npz'} has an invalid config ({e})") from None
    return None


def _restore(path, cfg, model, opt, rng, task, schedule):
    """Load a checkpoint into the run's model, optimizer, RNG, task and schedule; return (step,
    wall_seconds, compile_seconds, carried state). Its metadata is untrusted (it may have been edited by hand):
    each field is checked, and any problem is one ValueError naming the file and the field."""
    meta, params, opt_arrays, carry_arrays = ckpt.load(path)
    diff = _differing(meta.get("config"), cfg)
    if diff:
        raise ValueError(f"checkpoint: {path} was written with other options ({', '.join(diff)}); "
                         f"resume with the same options (--resume alone takes the stored ones) or use another --out")
    if params.shape != (model.num_parameters,):
        raise ValueError(f"checkpoint: {path} does not match the model")

    def field(name, load):
        try:
            return load()
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as e:
            msg = str(e)
            if msg.startswith("checkpoint:"):
                msg = msg.split(": ", 1)[1]
            raise ValueError(f"checkpoint: {path} has an invalid {name} ({type(e).__name__}: {msg})") from None

    def load_step():
        step = meta["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"expected an integer >= 0; got {step!r}")
        if step > cfg.steps:
            raise ValueError(f"the run is at step {step}, past --steps {cfg.steps}; pass --steps {step} or more")
        return step

    def load_wall(key="wall_seconds"):
        w = float(meta.get(key, 0.0))
        if not (w >= 0 and np.isfinite(w)):
            raise ValueError(f"expected seconds >= 0; got {w!r}")
        return w

    def load_optimizer():
        state = meta["optimizer"]
        t = state["t"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"step count t must be an integer >= 0; got {t!r}")
        opt.load_state_dict(state, opt_arrays)

    def load_rng():
        state = meta["rng"]
        if not isinstance(state, dict) or state.get("bit_generator") != type(rng.bit_generator).__name__:
            raise ValueError(f"expected a {type(rng.bit_generator).__name__} state")
        rng.bit_generator.state = state

    def load_task_state():
        state = meta.get("task_state", {})
        if not isinstance(state, dict):
            raise TypeError(f"expected a mapping; got {type(state).__name__}")
        task.load_state_dict(state)

    def load_schedule():
        schedule.load_state_dict(meta.get("schedule", {}))

    def load_carry():
        if not carry_arrays:
            return None
        want = 2 if model.cell.has_cell_state else 1
        if len(carry_arrays) != want:
            raise ValueError(f"expected {want} arrays; got {len(carry_arrays)}")
        B, shape = cfg.batch_size, (model.num_layers, cfg.batch_size, model.hidden_size)
        if any(a.shape != shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)) for a in carry_arrays):
            raise ValueError(f"expected finite float arrays of shape {shape} (batch {B})")
        return tuple(carry_arrays) if want == 2 else carry_arrays[0]

    step = field("step", load_step)
    wall = field("wall_seconds", load_wall)
    compiled = field("compile_seconds", lambda: load_wall("compile_seconds"))
    model.load_flat(params)
    field("optimizer state", load_optimizer)
    field("rng state", load_rng)
    field("task state", load_task_state)
    field("schedule state", load_schedule)
    carry = field("carried state", load_carry)
    return step, wall, compiled, carry


def train(cfg: TrainConfig, out, resume=False, progress=None, stop=None, prepared=None, lock=True):
    """Run (or resume) one training run in folder ``out``; returns the summary dict.

    progress: optional callable(step, steps, record) called after every step (record is the
    latest evaluation). stop: optional object with a boolean ``stop`` attribute checked
    between steps (defaults to a SIGINT/SIGTERM handler). prepared: (task, model) from
    preflight(cfg), so the task's data file is not read twice. lock: hold OUT/.lock for the
    run's life (a second writer gets a FolderBusy error naming this process); False when the
    caller holds it already.
    """
    out = Path(out)
    task, model = prepared or build(cfg)  # validates the data file before anything is written
    with (FolderLock(out, what="out") if lock else contextlib.nullcontext()):
        run = Run(cfg, out, task, model)
        done = run.open(resume)
        return done if done is not None else run.loop(progress, stop)


class Run:
    """One training run in its folder: open (a new run, or a resume from the checkpoint),
    evaluate, step, save, loop, summary. The model may live on any device; the run never asks."""

    def __init__(self, cfg, out, task, model):
        self.cfg, self.out, self.task, self.model = cfg, Path(out), task, model
        self.summary_path = self.out / "summary.json"
        self.ckpt_path = self.out / "checkpoint.npz"
        self.best_path = self.out / "best.npz"
        self.metrics_path = self.out / "metrics.jsonl"
        self.config_path = self.out / CONFIG_FILE
        self.files = [p.name for p in (self.summary_path, self.ckpt_path, self.best_path, self.metrics_path,
                                       self.config_path)]
        self.step_count, self.carry, self.history, self.wall_before = 0, None, [], 0.0
        self.compile_before, self.first_step = 0.0, None  # see _compile
        self.u_max = recurrent_bound(cfg, task)
        self.t0 = time.perf_counter()

    def open(self, resume):
        """Prepare the folder, model, optimizer and data stream. Returns the finished run's
        summary when there is nothing left to do, else None. Refuses to overwrite a run."""
        cfg, out = self.cfg, self.out
        fileio.check_folder(out, self.files)  # a planted link is refused before anything is read
        extending = None
        if self.summary_path.exists():
            if resume:
                done = fileio.read_json(self.summary_path, f"out: {self.summary_path}")
                if not isinstance(done, dict):
                    raise ValueError(f"out: {self.summary_path} is not a run summary; use another --out")
                diff = _differing(done.get("config"), cfg)
                if diff:
                    raise RunExists(f"out: {out} holds a finished run with other options ({', '.join(diff)}); "
                                    f"use another --out (a larger --steps extends it)")
                if done.get("status") != "interrupted":
                    extending = self._extension(done)
                    if extending is None:
                        return done
            else:
                raise RunExists(f"out: {out} already holds a finished run (summary.json); "
                                f"use another --out, or --resume to continue an interrupted one")
        elif self.ckpt_path.exists() and not resume:
            raise RunExists(f"out: {out} holds an unfinished run; pass --resume to continue it")
        out.mkdir(parents=True, exist_ok=True)

        model = self.model.to(cfg.device)  # parameters, optimizer state and activations live there
        self.opt = make_optimizer(cfg.optimizer, model.num_parameters, cfg.lr, cfg.weight_decay, cfg.momentum,
                                  model.dtype, backend=model.backend)
        self.rng = np.random.default_rng([cfg.seed, 1])  # data stream; the init used [seed]
        self.schedule = Schedule(cfg, self.task.higher_is_better)
        if resume and self.ckpt_path.exists():
            self.step_count, self.wall_before, self.compile_before, self.carry = _restore(
                self.ckpt_path, cfg, model, self.opt, self.rng, self.task, self.schedule)
            if self.metrics_path.exists():  # keep what the checkpoint covers; later lines are redone
                self.history = _read_history(self.metrics_path, self.step_count)
            log.info(f"{out}: {extending or 'resumed'} from step {self.step_count} (of {cfg.steps})")
            if extending:
                os.unlink(self.summary_path)  # unfinished again until the new budget ends
        fileio.atomic_write_json(self.config_path, dict(config=cfg.to_dict(), command=cfg.command(out)))
        fileio.atomic_write_bytes(self.metrics_path, "".join(fileio.json_line(r) for r in self.history).encode())
        self.t0 = time.perf_counter()
        return None

    def _extension(self, done):
        """'extended' when a finished run can go on to a larger --steps (it ended by running
        out of steps, with a checkpoint to go on from), else None (and why, in a note)."""
        reached = done.get("steps")
        if not isinstance(reached, int) or self.cfg.steps <= reached:
            return None
        status, stopped = done.get("status"), done.get("stopped")
        early = self.cfg.stops_when_solved(self.task)
        if status == "diverged" or stopped is not None or (done.get("steps_to_solve") is not None and early) \
                or not self.ckpt_path.exists():
            log.info(f"{self.out}: the run ended {done.get('message', status)}; a larger --steps does not "
                     f"change that, so nothing is extended")
            return None
        return "extended"

    def _wall(self):
        return self.wall_before + time.perf_counter() - self.t0

    def _compile(self):
        """Seconds of the run's wall time spent before each process's first training step ended:
        compiling (or loading) the kernels, mostly. Recorded apart, so that a curve against wall
        time can leave it out (`fastrnn report --x wall`): one run per worker pays it."""
        first = self.first_step if self.first_step is not None else time.perf_counter() - self.t0
        return self.compile_before + first

    def save(self, path=None, kind="last"):
        """An atomic checkpoint (``kind`` 'last': checkpoint.npz, the one a resume reads; 'best':
        best.npz, the model at the best held-out metric so far). The only times parameters and
        optimizer state cross to the host."""
        model, cfg = self.model, self.cfg
        ostate, oarrays = self.opt.state_dict()
        meta = dict(config=cfg.to_dict(), model=model.config(), task=self.task.describe(),
                    task_state=self.task.state_dict(), step=self.step_count, optimizer=ostate,
                    rng=self.rng.bit_generator.state, wall_seconds=self._wall(), kind=kind,
                    compile_seconds=self._compile(),
                    schedule=self.schedule.state_dict())
        carry = self.carry
        c = None if carry is None else [model.backend.to_host(a) for a in (carry if isinstance(carry, tuple) else (carry,))]
        ckpt.save(path or self.ckpt_path, meta, model.numpy_flat(), oarrays, c)

    def evaluate(self, train_loss, norm):
        """Held-out loss and metric now, appended to history and metrics.jsonl."""
        ev = self.task.evaluate(self.model)
        rec = dict(step=self.step_count, loss=ev["loss"], metric=ev["metric"], train_loss=train_loss,
                   grad_norm=norm, lr=self.opt.lr if self.step_count else None, wall_seconds=round(self._wall(), 3),
                   compile_seconds=round(self._compile(), 3))
        if self.cfg.watch:
            rec.update(watch.record(self.model, self.task))
        self.history.append(rec)
        fileio.append_bytes(self.metrics_path, fileio.json_line(rec).encode())
        return rec

    def step(self):
        """One training step: batch, loss and gradient, clipping, update. Returns (loss, norm)
        before the update; a non-finite pair means the run diverged and nothing was updated."""
        cfg, task, model = self.cfg, self.task, self.model
        carries = task.stateful and cfg.carry_state  # the text task: this batch goes on from the last
        x, target, lengths = task.batch(self.rng, cfg.batch_size)
        masks = model.dropout_masks(self.rng, x.shape[0], x.shape[1])  # None without dropout: no draw
        res = model.loss_and_grad(x, target, task.loss, task.output, lengths, state=self.carry if carries else None,
                                  bptt_truncate=cfg.bptt_truncate, masks=masks)
        norm = model.clip_grad_norm(cfg.clip)
        if not (_finite(res.loss) and _finite(norm)):
            return res.loss, norm
        if cfg.clip_value is not None:
            model.clip_grad_value(cfg.clip_value)
        self.opt.lr = self.schedule.lr(self.step_count)
        self.opt.step(model.flat, res.grad)
        if self.u_max is not None:
            model.bound_recurrent(self.u_max)
        if carries:
            self.carry = res.state  # on the model's device
        self.step_count += 1
        return res.loss, norm

    def loop(self, progress=None, stop=None):
        """Train until solved (with early stop), diverged, interrupted or out of steps; write
        the summary (an interrupted run gets a checkpoint instead) and return it."""
        cfg, task, history = self.cfg, self.task, self.history
        early = cfg.stops_when_solved(task)
        unsolved = "unsolved" if task.has_solved_level and task.reached_status == "solved" else "finished"
        status, diverged_at, steps_to_solve, stopped = unsolved, None, None, None
        for r in history:
            if steps_to_solve is None and task.solved(r["metric"]):
                steps_to_solve = r["step"]
        reached = steps_to_solve is not None and early  # stop: the level is reached (early stop)
        if reached:
            status = task.reached_status
        elif self.schedule.out_of_patience():
            stopped = "patience"
        start_step = self.step_count
        if self.step_count == 0 and not history:
            rec = self.evaluate(None, None)  # the curve starts at the initialization
            if _finite(rec["metric"]) and self.schedule.observe(0, rec["metric"]):
                self.save(self.best_path, "best")
        # overflow on the way to divergence is expected and detected below, not warned about
        flag = stop or StopFlag()
        with flag, np.errstate(over="ignore", invalid="ignore"):
            while not reached and stopped is None and self.step_count < cfg.steps:
                if flag.stop:
                    status = "interrupted"
                    break
                loss, norm = self.step()
                if self.first_step is None:
                    self.first_step = time.perf_counter() - self.t0
                if not (_finite(loss) and _finite(norm)):
                    status, diverged_at = "diverged", self.step_count + 1
                    break
                step = self.step_count
                if step % cfg.eval_every == 0 or step == cfg.steps:
                    rec = self.evaluate(loss, norm)
                    if not (_finite(rec["loss"]) and _finite(rec["metric"])):
                        status, diverged_at = "diverged", step
                        break
                    if task.solved(rec["metric"]) and steps_to_solve is None:
                        steps_to_solve = step
                        if early:
                            status, reached = task.reached_status, True
                    if self.schedule.observe(step, rec["metric"]):
                        self.save(self.best_path, "best")
                    elif self.schedule.out_of_patience():
                        stopped = "patience"
                    self.save()
                if progress is not None:
                    progress(step, cfg.steps, history[-1] if history else None)
        if status == unsolved and steps_to_solve is not None:
            status = task.reached_status  # solved at some evaluation, trained on without early stop
        if status == "interrupted":
            self.save()
        return self.summary(status, diverged_at, steps_to_solve, start_step, flag, stopped)

    def summary(self, status, diverged_at, steps_to_solve, start_step, flag, stopped=None):
        task, step, cfg = self.task, self.step_count, self.cfg
        elapsed = time.perf_counter() - self.t0
        last = self.history[-1] if self.history else {}
        message = f"diverged at step {diverged_at}" if status == "diverged" else status
        if status == "finished" and task.has_solved_level:  # a text model: did it beat the bigram?
            message += (f" ({task.level_words} at step {steps_to_solve})" if steps_to_solve is not None
                        else f" (did not {task.level_words})")
        if stopped == "patience":
            message += (f" (stopped at step {step}: no held-out improvement in {cfg.patience} evaluations; "
                        f"best {task.metric_name} {self.schedule.best:.4g} at step {self.schedule.best_step})")
        best = self.schedule
        summary = dict(
            status=status,
            message=message, stopped=stopped,
            best_metric=best.best, best_step=best.best_step,
            final_metric=last.get("metric"), final_loss=last.get("loss"),
            baseline=task.metric_baseline, loss_baseline=task.loss_baseline,
            solved_at=task.solved_at, metric=task.metric_name, higher_is_better=task.higher_is_better,
            steps=step, steps_to_solve=steps_to_solve, diverged_at=diverged_at,
            wall_seconds=round(self.wall_before + elapsed, 3), compile_seconds=round(self._compile(), 3),
            steps_per_second=round((step - start_step) / elapsed, 2) if elapsed > 0 and step > start_step else None,
            parameters=self.model.num_parameters, config=self.cfg.to_dict(),
        )
        if status != "interrupted":
            fileio.atomic_write_json(self.summary_path, summary)
        else:
            summary["signal"] = int(getattr(flag, "signum", None) or signal.SIGINT)
        return summary


def load_model(path):
    """(model, meta) from a checkpoint alone, without the task's data file."""
    meta, params, _, _ = ckpt.load(path)
    m = meta.get("model")
    try:
        if not isinstance(m, dict):
            raise TypeError("no model description")
        sizes = [m[k] for k in ("input_size", "hidden_size", "output_size", "num_layers")]
        if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in sizes) or m["cell"] not in CELLS:
            raise ValueError(f"cell {m['cell']!r}, sizes {sizes}")
        bidirectional = m.get("bidirectional", False) is True
        _check_count(path, params.size, m["cell"], *sizes, 2 if bidirectional else 1)
        model = RNN(m["cell"], *sizes, tokens=bool(m["tokens"]), dtype=m["dtype"], dropout=m.get("dropout", 0.0),
                    bidirectional=bidirectional)
    except (KeyError, TypeError) as e:
        raise ValueError(f"checkpoint: {path} has an invalid model description ({e})") from None
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith("checkpoint:") else
                         f"checkpoint: {path} has an invalid model description ({msg})") from None
    model.load_flat(params)
    return model, meta
