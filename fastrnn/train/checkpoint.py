"""Checkpoints: one .npz file of plain arrays plus a JSON metadata record. Never pickled.

Layout: 'meta' (uint8 bytes of a UTF-8 JSON object), 'params' (the model's flat vector),
'opt.<slot>' (optimizer state), 'carry.<i>' (hidden state carried between batches).
Writes go to a temporary file in the same folder, are flushed to disk, then renamed over
the target, so a crash never leaves a torn checkpoint.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastrnn-checkpoint"
VERSION = 1


def _atomic_write(path, write, suffix=""):
    """write(f) into a temporary file beside path, flush it to disk, then rename it over path:
    readers see the old file or the new one, never a torn one."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


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
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"checkpoint: {path} is corrupt or not a fastrnn checkpoint ({e})") from None
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
