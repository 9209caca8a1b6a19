"""The Python API's entry points beyond the model itself: train, compare, load, evaluate,
sample, profile (``fastrnn.train`` and ``fastrnn.compare`` are callable modules that call
train and compare here: fastrnn/callable.py). Each is a thin layer over what the CLI calls, taking the CLI's option names
as keyword arguments (``seq_len=100`` for ``--seq-len 100``), so a command line and a call
say the same thing; ``fastrnn/__init__.py`` lists the whole public surface.

    import fastrnn
    summary = fastrnn.train("runs/lstm", task="adding", cell="lstm", seq_len=50, steps=300)
    run = fastrnn.load("runs/lstm")            # the model at its best held-out metric
    print(fastrnn.evaluate(run.model, run.task))
"""
from dataclasses import dataclass
from pathlib import Path

from .train.config import TrainConfig


@dataclass
class Loaded:
    """A trained model with what it was trained on: ``model`` (an RNN), ``task`` (its task, the
    held-out set included), ``config`` (its TrainConfig) and ``meta`` (the checkpoint's
    metadata: step, kind 'best' or 'last', ...)."""
    model: object
    task: object
    config: TrainConfig
    meta: dict


def train(out, config=None, resume=False, progress=None, **options):
    """Train one model into the run folder ``out`` and return its summary (a dict: status,
    final_metric, steps, steps_to_solve, wall_seconds, ...), as `fastrnn train` does.

    config: a TrainConfig, or None to build one from ``options`` (``cell="gru", seq_len=50``).
    resume: continue the run in ``out`` (interrupted, or finished with a larger ``steps``).
    progress: optional callable(step, steps, latest evaluation record) after every step.
    The run folder gets metrics.jsonl, summary.json, config.json and checkpoints.
    """
    from .train.loop import train as run

    if config is None:
        config = TrainConfig.from_dict(options)
    elif options:
        raise ValueError(f"train: give a config or options, not both (got {', '.join(sorted(options))})")
    return run(config, out, resume=resume, progress=progress)


def compare(cells=("tanh", "relu", "gru", "lstm"), seeds=3, out=None, workers=None, **options):
    """Train every cell x seed in parallel worker processes (as `fastrnn compare`) and write
    its report; returns {cell: {runs, solved, final_metric_mean, ...}}. Options default to
    TrainConfig's (``fastrnn compare``'s own defaults are hidden=32, lr=1e-2, steps=4000,
    seq_len=100: pass them to match it)."""
    from . import compare as cmp

    cells = [cells] if isinstance(cells, str) else list(cells)
    base = TrainConfig.from_dict(dict(options, cell=cells[0] if cells else "lstm"))
    table, _ = cmp.run(cmp.plan(base, cells, seeds, out), workers)
    return table


def load(path, data=None):
    """A trained model from a checkpoint file or a run folder (its best.npz, else its
    checkpoint.npz) with its task and config (:class:`Loaded`). data: the data file, if it
    moved since training (text, mnist, file)."""
    from .train.checkpoint import checkpoint_file
    from .train.loop import load_run

    cfg, task, model, meta = load_run(checkpoint_file(path), data)
    return Loaded(model, task, cfg, meta)


def evaluate(model, task):
    """The model's held-out {'loss', 'metric'} on the task (its metric: MSE, accuracy, bits
    per character; ``task.metric_name`` says which, ``task.metric_baseline`` the memoryless
    level)."""
    return task.evaluate(model)


def sample(run, length=200, temperature=1.0, prime="", seed=0):
    """Text from a character model (a :class:`Loaded` of a 'text' run, or a path to one)."""
    from .tasks.text import sample as gen

    run = load(run) if isinstance(run, (str, Path)) else run
    vocab = getattr(run.task, "vocab", None)
    if run.config.task != "text" or not isinstance(vocab, str):
        raise ValueError(f"sample: expected a character model (task 'text'); got task {run.config.task!r}")
    return gen(run.model, vocab, length, temperature, prime, seed)


def profile(model, task, batch_size=32, seed=0, bptt_truncate=None):
    """The gradient through time of a model on a task (as `fastrnn gradients`): ||dL/dh_k||
    by lag, per-step Jacobian norms and radii, the recurrent spectrum, saturation; a dict."""
    from .gradients import profile as run

    return run(model, task, batch_size, seed, bptt_truncate)
