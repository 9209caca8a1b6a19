"""One training run: a step loop with periodic held-out evaluation, early stop when solved,
divergence detection, metrics.jsonl + summary.json, and atomic, resumable checkpoints.

Files in the run folder:
    metrics.jsonl    one JSON record per evaluation (step, loss, metric, train_loss, grad_norm, ...)
    summary.json     written once the run ends: status solved | unsolved | diverged | interrupted
    checkpoint.npz   model + optimizer + RNG state + step (+ carried state), written atomically
"""
import json
import signal
import threading
import time
from pathlib import Path

import numpy as np

from ..model import RNN
from ..tasks import make_task
from . import checkpoint as ckpt
from .config import TrainConfig
from .optim import clip_by_value, clip_global_norm, make_optimizer


class RunExists(ValueError):
    """The output folder already holds a run that would be overwritten."""


def build(cfg: TrainConfig, vocab=None):
    """The task and a freshly initialized model for a config."""
    task = make_task(cfg.task, cfg.seq_len, cfg.data, cfg.permuted, vocab=vocab)
    model = RNN(cfg.cell, task.input_size, cfg.hidden, task.output_size, cfg.layers,
                tokens=task.tokens, dtype=cfg.dtype, init=cfg.init_scheme,
                forget_bias=cfg.forget_bias, spectral_radius=cfg.spectral_radius, seed=cfg.seed)
    return task, model


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
    task, model = build(cfg, vocab=meta.get("task", {}).get("vocab"))
    if params.shape != model.flat.shape:
        raise ValueError(f"checkpoint: {path} holds {params.size} parameters; its config "
                         f"describes {model.flat.size}")
    model.flat[...] = params
    return cfg, task, model, meta


class _StopFlag:
    """Ctrl-C sets a flag that the loop reads between steps, so a checkpoint is never taken
    in the middle of an update."""

    def __init__(self):
        self.stop = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_):
        self.stop = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _finite(x):
    return bool(np.isfinite(x))


def train(cfg: TrainConfig, out, resume=False, progress=None, stop=None, prepared=None):
    """Run (or resume) one training run in folder ``out``; returns the summary dict.

    progress: optional callable(step, steps, record) called after every step (record is the
    latest evaluation). stop: optional object with a boolean ``stop`` attribute checked
    between steps (defaults to a Ctrl-C handler). prepared: (task, model) from preflight(cfg),
    so the task's data file is not read twice.
    """
    out = Path(out)
    task, model = prepared or build(cfg)  # validates the data file before anything is written
    summary_path, ckpt_path, metrics_path = out / "summary.json", out / "checkpoint.npz", out / "metrics.jsonl"
    if summary_path.exists():
        if resume:
            done = json.loads(summary_path.read_text())
            if done.get("config") != cfg.to_dict():
                raise RunExists(f"out: {out} holds a finished run with other options; use another --out")
            if done.get("status") != "interrupted":
                return done
        else:
            raise RunExists(f"out: {out} already holds a finished run (summary.json); "
                            f"use another --out, or --resume to continue an interrupted one")
    elif ckpt_path.exists() and not resume:
        raise RunExists(f"out: {out} holds an unfinished run; pass --resume to continue it")
    out.mkdir(parents=True, exist_ok=True)

    check_device(cfg.device)
    opt = make_optimizer(cfg.optimizer, model.flat.size, cfg.lr, cfg.weight_decay, cfg.momentum, model.dtype)
    rng = np.random.default_rng([cfg.seed, 1])  # data stream; the init used [seed]
    step, carry, history, wall_before = 0, None, [], 0.0
    if resume and ckpt_path.exists():
        meta, params, opt_arrays, carry_arrays = ckpt.load(ckpt_path)
        if meta.get("config") != cfg.to_dict():
            diff = sorted(k for k in cfg.to_dict() if meta.get("config", {}).get(k) != getattr(cfg, k))
            raise ValueError(f"checkpoint: {ckpt_path} was written with other options ({', '.join(diff)}); "
                             f"resume with the same options or use another --out")
        if params.shape != model.flat.shape:
            raise ValueError(f"checkpoint: {ckpt_path} does not match the model")
        model.flat[...] = params
        opt.load_state_dict(meta["optimizer"], opt_arrays)
        rng.bit_generator.state = meta["rng"]
        task.load_state_dict(meta.get("task_state", {}))
        step, wall_before = int(meta["step"]), float(meta.get("wall_seconds", 0.0))
        if carry_arrays:
            carry = tuple(carry_arrays) if model.cell.has_cell_state else carry_arrays[0]
        if metrics_path.exists():  # keep what the checkpoint covers; later lines are redone
            history = [json.loads(ln) for ln in metrics_path.read_text().splitlines() if ln.strip()]
            history = [r for r in history if r["step"] <= step]
    ckpt.atomic_write_bytes(metrics_path, "".join(json.dumps(r) + "\n" for r in history).encode())

    dev = None
    if cfg.device == "cuda":
        from ..cuda.model import CudaRNN

        dev = CudaRNN(model)  # after a resume has loaded the parameters; opt state moves on first step

    def save_checkpoint():
        if dev is not None:  # the only times parameters and optimizer state cross to the host
            dev.to_host()
            if dev.opt_state:
                dev.sync_optimizer(opt)
        ostate, oarrays = opt.state_dict()
        meta = dict(config=cfg.to_dict(), model=model.config(), task=task.describe(),
                    task_state=task.state_dict(), step=step, optimizer=ostate,
                    rng=rng.bit_generator.state, wall_seconds=wall_before + time.perf_counter() - t0)
        c = None if carry is None else [np.asarray(a.copy_to_host() if hasattr(a, "copy_to_host") else a)
                                        for a in (carry if isinstance(carry, tuple) else (carry,))]
        ckpt.save(ckpt_path, meta, model.flat, oarrays, c)

    def evaluate(train_loss, norm):
        ev = task.evaluate(model if dev is None else dev)
        rec = dict(step=step, loss=ev["loss"], metric=ev["metric"], train_loss=train_loss,
                   grad_norm=norm, wall_seconds=round(wall_before + time.perf_counter() - t0, 3))
        history.append(rec)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    t0 = time.perf_counter()
    status, diverged_at, steps_to_solve = "unsolved", None, None
    for r in history:
        if steps_to_solve is None and task.solved(r["metric"]):
            steps_to_solve = r["step"]
    if steps_to_solve is not None and cfg.early_stop:
        status = "solved"
    start_step = step
    if step == 0 and not history:
        evaluate(None, None)  # the curve starts at the initialization
    # overflow on the way to divergence is expected and detected below, not warned about
    with (stop or _StopFlag()) as flag, np.errstate(over="ignore", invalid="ignore"):
        while status != "solved" and step < cfg.steps:
            if flag.stop:
                status = "interrupted"
                break
            x, target, lengths = task.batch(rng, cfg.batch_size)
            # the same call on either device; on cuda the gradient and the carried state stay there
            res = (dev or model).loss_and_grad(x, target, task.loss, task.output, lengths,
                                               state=carry if task.stateful else None,
                                               bptt_truncate=cfg.bptt_truncate)
            loss = res.loss
            norm = dev.clip(cfg.clip) if dev is not None else clip_global_norm(res.grad, cfg.clip)
            if not (_finite(loss) and _finite(norm)):
                status, diverged_at = "diverged", step + 1
                break
            if dev is not None:
                if cfg.clip_value is not None:
                    dev.clip_by_value(cfg.clip_value)
                dev.step(opt)
            else:
                if cfg.clip_value is not None:
                    clip_by_value(res.grad, cfg.clip_value)
                opt.step(model.flat, res.grad)
            if task.stateful:
                carry = res.state
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.steps:
                rec = evaluate(loss, norm)
                if not (_finite(rec["loss"]) and _finite(rec["metric"])):
                    status, diverged_at = "diverged", step
                    break
                if task.solved(rec["metric"]) and steps_to_solve is None:
                    steps_to_solve = step
                    if cfg.early_stop:
                        status = "solved"
                save_checkpoint()
            if progress is not None:
                progress(step, cfg.steps, history[-1] if history else None)
    if status == "unsolved" and steps_to_solve is not None:
        status = "solved"  # solved at some evaluation, trained on without early stop
    if status == "interrupted":
        save_checkpoint()
    elapsed = time.perf_counter() - t0
    last = history[-1] if history else {}
    summary = dict(
        status=status,
        message=f"diverged at step {diverged_at}" if status == "diverged" else status,
        final_metric=last.get("metric"), final_loss=last.get("loss"),
        baseline=task.metric_baseline, loss_baseline=task.loss_baseline,
        solved_at=task.solved_at, metric=task.metric_name, higher_is_better=task.higher_is_better,
        steps=step, steps_to_solve=steps_to_solve, diverged_at=diverged_at,
        wall_seconds=round(wall_before + elapsed, 3),
        steps_per_second=round((step - start_step) / elapsed, 2) if elapsed > 0 and step > start_step else None,
        parameters=int(model.flat.size), config=cfg.to_dict(),
    )
    if status != "interrupted":
        ckpt.atomic_write_json(summary_path, summary)
    return summary


def load_model(path):
    """(model, meta) from a checkpoint alone, without the task's data file."""
    meta, params, _, _ = ckpt.load(path)
    m = meta.get("model")
    try:
        model = RNN(m["cell"], m["input_size"], m["hidden_size"], m["output_size"], m["num_layers"],
                    tokens=bool(m["tokens"]), dtype=m["dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint: {path} has an invalid model description ({e})") from None
    if params.shape != model.flat.shape:
        raise ValueError(f"checkpoint: {path} holds {params.size} parameters; its model has {model.flat.size}")
    model.flat[...] = params
    return model, meta
