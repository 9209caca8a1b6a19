"""Checkpoints: one .npz file of plain arrays plus a JSON metadata record. Never pickled.

Layout: 'meta' (uint8 bytes of a UTF-8 JSON object), 'params' (the model's flat vector),
'opt.<slot>' (optimizer state), 'carry.<i>' (hidden state carried between batches).
Writes go through fastrnn.fileio: a temporary file in the same folder, flushed to disk, then
renamed over the target, so a crash never leaves a torn checkpoint and a planted link is
refused rather than followed.
"""
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..fileio import atomic_write, loads, read_bytes
from ..npzfile import read_npz

FORMAT = "fastrnn-checkpoint"
VERSION = 1


def read_records(path):
    """The evaluation records of a metrics.jsonl file, and how many lines were unreadable
    (torn by a crash or a full disk, or not a record): (records, torn)."""
    records, torn = [], 0
    data = read_bytes(path) or b""
    for ln in data.decode(errors="replace").splitlines():
        if not ln.strip():
            continue
        try:
            rec = loads(ln, "metrics")
        except ValueError:
            torn += 1
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            records.append(rec)
        else:
            torn += 1
    return records, torn


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def save(path, meta, params, opt_arrays=None, carry=None):
    arrays = {"meta": np.frombuffer(json.dumps(dict(meta, format=FORMAT, version=VERSION),
                                               default=_jsonable).encode(), np.uint8),
              "params": params}
    for k, a in (opt_arrays or {}).items():
        arrays[f"opt.{k}"] = a
    for i, a in enumerate(carry or ()):
        arrays[f"carry.{i}"] = a
    atomic_write(path, lambda f: np.savez(f, **arrays), suffix=".npz")


def checkpoint_file(path):
    """A checkpoint file as given, or a run folder's best.npz (else its checkpoint.npz): what
    evaluate, sample, predict, export, gradients and fastrnn.load read."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.npz", "checkpoint.npz"):
            if (p / name).is_file():
                return p / name
        raise ValueError(f"checkpoint: {path} is a folder without best.npz or checkpoint.npz")
    return p


def _member(name):
    """Whether an archive member's name is one a checkpoint holds (checked before inflating)."""
    head, _, tail = name.partition(".")
    return name in ("meta", "params") or (head in ("opt", "carry") and tail != "")


def load(path):
    """Return (meta dict, params, {slot: array}, [carry arrays]), or raise ValueError with a
    message naming the file for anything missing, corrupt or not a fastrnn checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint: no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"checkpoint: {path} is corrupt or not a fastrnn checkpoint (not an .npz archive)")
    arrays = read_npz(path, "checkpoint", corrupt="is corrupt or not a fastrnn checkpoint", keys=_member)
    if "meta" not in arrays or "params" not in arrays:
        raise ValueError(f"checkpoint: {path} is not a fastrnn checkpoint (no meta/params)")
    meta = loads(arrays["meta"].tobytes(), f"checkpoint: {path} has unreadable metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {path} is not a fastrnn checkpoint")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint: {path} has format version {meta.get('version')}, "
                         f"this fastrnn reads {VERSION}")
    params = arrays["params"]
    if params.ndim != 1 or params.dtype.kind != "f":
        raise ValueError(f"checkpoint: {path} has malformed parameters")
    opt = {k[4:]: a for k, a in arrays.items() if k.startswith("opt.")}
    n = sum(1 for k in arrays if k.startswith("carry."))
    carry = [arrays[f"carry.{i}"] for i in range(n)] if all(f"carry.{i}" in arrays for i in range(n)) else []
    return meta, params, opt, carry
