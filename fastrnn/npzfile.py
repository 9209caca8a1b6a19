"""Reading an untrusted .npz (a checkpoint, a data file) without trusting its sizes.

np.load(allow_pickle=False) already refuses pickled objects, but it believes each member's
header, and an .npz is a zip archive whose members may be named anything: a 1.5 MB file whose
members declare gigabytes inflates into gigabytes. So nothing is inflated before every member
has been looked at: each must be an .npy array with a name the caller expects (or is skipped
unread, where the caller ignores extra arrays), its header's shape times its item size must fit
in the member's declared size (zipfile never inflates past that size), and what the caller will
hold once the arrays are converted (``cost``) must fit in the memory available. Only then are
the wanted members read.
"""
import os
import zipfile

import numpy as np

from . import memory


def read_npz(path, what, corrupt="is corrupt or not an .npz archive", keys=None, skip_others=False, cost=None):
    """{name: array} of an .npz file, or a ValueError starting with ``what`` for anything
    missing, corrupt, pickled, unexpected, or larger than the memory available.

    corrupt: the caller's wording for a file it cannot use. keys: the array names the caller
    reads (a collection, or a predicate on a name); None takes every array. An array outside
    ``keys`` is refused, before anything is inflated, unless skip_others (then it is never
    read). cost(name, shape, dtype): bytes the caller will hold for that array once converted
    (default: the array's own size), summed and checked against the memory available.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what}: no such file: {path}")
    wanted = keys if keys is None or callable(keys) else set(keys).__contains__
    try:
        with zipfile.ZipFile(path) as zf:
            infos, others = [], []
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name is not None and (wanted is None or wanted(name)):
                    infos.append((name, info))
                else:
                    others.append(info.filename if name is None else name)
            if others and not skip_others:
                unknown = f"unknown array(s) {', '.join(sorted(others)[:10])}"
                if keys is None or callable(keys):
                    raise ValueError(f"{what}: {path} {corrupt} ({unknown})")
                raise ValueError(f"{what}: {path}: {unknown}; expected {', '.join(keys)}")
            total = 0
            for name, info in infos:
                with zf.open(info) as f:
                    shape, dtype, problem = _check_header(f, info)
                if problem:
                    raise ValueError(f"{what}: {path} {corrupt} (array {name} {problem})")
                total += cost(name, shape, dtype) if cost else _nbytes(shape, dtype)
            memory.require(total, f"{what}: {path} (its arrays, as the run holds them)")
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name, _ in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{what}: {path} {corrupt} ({e})") from None
    except ValueError as e:
        if str(e).startswith(f"{what}:"):
            raise
        raise ValueError(f"{what}: {path} {corrupt} ({e})") from None


def _nbytes(shape, dtype):
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def _check_header(f, info):
    """(shape, dtype, what is wrong with one member's .npy header or None)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        return shape, dtype, "holds Python objects, which are never unpickled"
    nbytes = _nbytes(shape, dtype)
    if nbytes > info.file_size:
        return shape, dtype, f"claims {nbytes:,} bytes in a member of {info.file_size:,}"
    return shape, dtype, None
