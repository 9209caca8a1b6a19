"""Checkpoints: one .npz file of plain arrays plus a JSON metadata record. Never pickled.

Layout: 'meta' (uint8 bytes of a UTF-8 JSON object), 'params' (the model's flat vector),
'opt.<slot>' (optimizer state), 'carry.<i>' (hidden state carried between batches).
Writes go to a temporary file in the same folder, are flushed to disk, then renamed over
the target, so a crash never leaves a torn checkpoint.
"""
import errno
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..npzfile import read_npz

FORMAT = "fastrnn-checkpoint"
VERSION = 1


class DiskError(OSError):
    """A file could not be written (disk full, quota, a file-size limit, permissions). The
    message names the file and says that what was there before is intact: every write here
    goes to a temporary file first, or is a single append."""

    def __init__(self, path, err):
        reason = err.strerror or str(err)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (free some space, then rerun the same command to resume)"
        super().__init__(err.errno, f"cannot write {os.fspath(path)}: {reason}; the file's previous "
                                    f"contents are intact")

    def __str__(self):
        return self.strerror


def finite_json(obj):
    """obj with every NaN or infinity replaced by None (JSON's null): JSON has no NaN, and
    strict parsers reject the `NaN` Python would write. The record's status says why."""
    if isinstance(obj, float) or isinstance(obj, np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def json_line(obj):
    """One strict-JSON line (non-finite numbers as null), newline included."""
    return json.dumps(finite_json(obj), allow_nan=False) + "\n"


_UMASK = []


def _umask():
    """The process's umask, read once: reading it means setting it, so do that only once."""
    if not _UMASK:
        mask = os.umask(0o022)
        os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]


def _atomic_write(path, write, suffix=""):
    """write(f) into a temporary file beside path, flush it to disk, then rename it over path:
    readers see the old file or the new one, never a torn one. The file gets the mode any
    tool's new file gets (0666 less the umask), not mkstemp's private 0600."""
    path = os.fspath(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=os.path.dirname(path) or ".")
    except OSError as e:
        raise DiskError(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, DiskError):
            raise DiskError(path, e) from None
        raise


def atomic_write_bytes(path, data):
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(finite_json(obj), indent=2, allow_nan=False) + "\n").encode())


def read_records(path):
    """The evaluation records of a metrics.jsonl file, and how many lines were unreadable
    (torn by a crash or a full disk, or not a record): (records, torn)."""
    records, torn = [], 0
    for ln in Path(path).read_text(errors="replace").splitlines():
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError:
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
    _atomic_write(path, lambda f: np.savez(f, **arrays), suffix=".npz")


def load(path):
    """Return (meta dict, params, {slot: array}, [carry arrays]), or raise ValueError with a
    message naming the file for anything missing, corrupt or not a fastrnn checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint: no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"checkpoint: {path} is corrupt or not a fastrnn checkpoint (not an .npz archive)")
    arrays = read_npz(path, "checkpoint", corrupt="is corrupt or not a fastrnn checkpoint")
    if "meta" not in arrays or "params" not in arrays:
        raise ValueError(f"checkpoint: {path} is not a fastrnn checkpoint (no meta/params)")
    try:
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint: {path} has unreadable metadata ({e})") from None
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
