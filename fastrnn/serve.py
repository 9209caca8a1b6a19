"""A trained model used elsewhere: batched predictions on new sequences, and the weights
exported as safetensors under PyTorch's names.

Both read a checkpoint alone (no training data): the model from its description, and from
the task's description what the outputs are (``loss``: 'ce' gives class probabilities,
'mse' values; ``output``: at each sequence's end or at every step) and, for a CSV series,
the column scaling the model was trained with.
"""
import json

import numpy as np

from .cells import CELLS
from .npzfile import read_npz
from .tasks import TASK_CLASSES

def load(path):
    """(model, task description, checkpoint metadata) from a checkpoint file; a ValueError
    naming it if unusable."""
    from .train.loop import load_model

    model, meta = load_model(path)
    task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
    name = task.get("task")
    loss, output = task.get("loss"), task.get("output")
    if (loss, output) == (None, None) and name in TASK_CLASSES:  # written before tasks said so
        loss, output = TASK_CLASSES[name].loss, TASK_CLASSES[name].output
    if loss not in ("ce", "mse") or output not in ("last", "all"):
        raise ValueError(f"checkpoint: {path} does not say what its outputs are (task {name!r})")
    if loss == "ce" and model.output_size < 2:
        raise ValueError(f"checkpoint: {path} has a classifier of {model.output_size} class")
    scale = task.get("scale")
    if scale is not None:
        mean, std = (np.asarray(scale.get(k, []), dtype=np.float64) for k in ("mean", "std"))
        if mean.shape != (model.input_size,) or std.shape != mean.shape or not np.all(std > 0):
            raise ValueError(f"checkpoint: {path} has an invalid column scaling")
        scale = (mean, std)
    return model, dict(task, loss=loss, output=output, scale=scale), meta


def _held_bytes(name, shape, dtype):
    """The file's copy of x (or lengths) and the converted one (float32/64, int64)."""
    return int(np.prod(shape, dtype=object)) * (dtype.itemsize + 8)


def read_inputs(path, model, task):
    """Validated (x (N, T, I) or (N, T) ids, lengths (N,) or None) from an .npz with ``x``
    (and optionally ``lengths``; other arrays, such as y, are ignored); for a model trained on
    a CSV series, also a CSV: every window of the trained length, in order."""
    from .tasks.datafile import check_inputs, check_lengths, read_csv, windows

    if str(path).lower().endswith(".csv"):
        W = task.get("seq_len")
        if task.get("scale") is None or not isinstance(W, int) or W < 1:
            raise ValueError("data: a CSV is for models trained on a CSV series; give an .npz with x")
        s, _ = read_csv(path)
        if s.shape[1] != model.input_size:
            raise ValueError(f"data: {path} has {s.shape[1]} columns; the model was trained on {model.input_size}")
        if s.shape[0] < W:
            raise ValueError(f"data: {path} has {s.shape[0]} rows, fewer than one window ({W})")
        return windows(s, W), None
    a = read_npz(path, "data", corrupt="is not a readable .npz file or holds arrays that cannot be read safely",
                 keys=("x", "lengths"), skip_others=True, cost=_held_bytes)
    if "x" not in a:
        raise ValueError(f"data: {path} lacks the array 'x' (the sequences to predict on)")
    x = a["x"]
    if model.tokens and (x.dtype.kind not in "iu" or x.ndim != 2):
        raise ValueError(f"data: x must be (N, T) integer token ids for this model; got {x.dtype} {x.shape}")
    if not model.tokens and (x.dtype.kind != "f" or x.ndim != 3 or x.shape[2] != model.input_size):
        raise ValueError(f"data: x must be (N, T, {model.input_size}) floats for this model; got {x.dtype} {x.shape}")
    x = check_inputs(path, x, "x", vocab=model.input_size)  # the file task's checks: id range, finite
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"data: x holds no sequence or no step; got shape {x.shape}")
    return x, check_lengths(path, a.get("lengths"), "lengths", *x.shape[:2])


def predict(model, task, x, lengths=None, batch_size=256, progress=None):
    """Outputs for N sequences, computed ``batch_size`` at a time.

    x (N, T, I) floats or (N, T) ids (sequences first, as in data files); lengths (N,) or
    None. Returns {'probabilities', 'labels'} for a classifier or {'outputs'} for regression:
    (N, O) and (N,) at each sequence's end, or (N, T, O) and (N, T) at every step (steps past
    a sequence's length are 0 / -1). A CSV-trained model's inputs and outputs are in the
    series' own units."""
    scale = task.get("scale")
    if scale is not None:
        x = (x - scale[0]) / scale[1]
    N = x.shape[0]
    parts = []
    for s in range(0, N, batch_size):
        xb = np.swapaxes(x[s:s + batch_size], 0, 1)
        lb = None if lengths is None else lengths[s:s + batch_size]
        y, _ = model.forward(np.ascontiguousarray(xb), lb, output=task["output"])
        parts.append(y if task["output"] == "last" else np.swapaxes(y, 0, 1))
        if progress is not None:
            progress(min(s + batch_size, N))
    y = np.concatenate(parts).astype(np.float64)
    past = None
    if task["output"] == "all" and lengths is not None:
        past = np.arange(y.shape[1])[None, :] >= lengths[:, None]  # (N, T): steps past each length
    if task["loss"] == "mse":
        if scale is not None:
            y = y * scale[1] + scale[0]
        if past is not None:
            y[past] = 0.0
        return {"outputs": y}
    z = np.exp(y - y.max(-1, keepdims=True))
    p = z / z.sum(-1, keepdims=True)
    labels = p.argmax(-1)
    if past is not None:
        p[past], labels[past] = 0.0, -1
    return {"probabilities": p, "labels": labels}


def export_safetensors(model, task, path):
    """Write the weights under PyTorch's names (recurrent weights as torch.nn.RNN/GRU/LSTM
    name them, the readout as ``readout.weight``, ``readout.bias``) with the model's config
    and the task's description as string metadata, in the safetensors format."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ValueError("export: needs the safetensors package: pip install 'fastrnn[export]'") from None
    from .fileio import atomic_write_bytes, finite_json

    tensors = {k: np.ascontiguousarray(a) for k, a in model.numpy_params().items()}
    cfg = model.config()
    cell = CELLS[cfg["cell"]]
    torch_cls = cell.torch_module
    desc = {k: v for k, v in task.items() if k != "scale"}
    if task.get("scale") is not None:
        desc["scale"] = {"mean": task["scale"][0].tolist(), "std": task["scale"][1].tolist()}
    metadata = {"format": "np", "fastrnn_model": json.dumps(cfg), "fastrnn_task": json.dumps(finite_json(desc)),
                # cls None: no torch.nn module has this cell's weights; formulation says what they mean
                "torch_module": json.dumps(dict(cls=f"torch.nn.{torch_cls}" if torch_cls else None,
                                                formulation=cell.formulation,
                                                input_size=cfg["input_size"],
                                                hidden_size=cfg["hidden_size"], num_layers=cfg["num_layers"],
                                                bidirectional=cfg["bidirectional"],
                                                nonlinearity=cfg["cell"] if torch_cls == "RNN" else None,
                                                token_inputs=cfg["tokens"]))}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    return tensors, metadata
