"""Reading an untrusted .npz (a checkpoint, a data file) without trusting its sizes.

np.load(allow_pickle=False) already refuses pickled objects, but it believes each member's
header: a 1.5 MB zip bomb whose members declare gigabytes is decompressed into a gigabyte
allocation. Here every member's declared uncompressed size and its .npy header are checked
first: the shape times the item size must fit in the member, and all members together in the
memory available. Only then is the archive read.
"""
import os
import zipfile

import numpy as np

from . import memory


def read_npz(path, what, corrupt="is corrupt or not an .npz archive"):
    """{name: array} of an .npz file, or a ValueError starting with ``what`` for anything
    missing, corrupt, pickled, or larger than the memory available; ``corrupt`` is the
    caller's wording for a file it cannot use."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what}: no such file: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            total = sum(i.file_size for i in infos)
            memory.require(total, f"{what}: {path} (its arrays, uncompressed)")
            for info in infos:
                with zf.open(info) as f:
                    problem = _check_header(f, info)
                if problem:
                    raise ValueError(f"{what}: {path} {corrupt} (array {info.filename[:-4]} {problem})")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{what}: {path} {corrupt} ({e})") from None
    except ValueError as e:
        if str(e).startswith(f"{what}:"):
            raise
        raise ValueError(f"{what}: {path} {corrupt} ({e})") from None


def _check_header(f, info):
    """What is wrong with one member's .npy header, or None."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        return "holds Python objects, which are never unpickled"
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > info.file_size:
        return f"claims {nbytes:,} bytes in a member of {info.file_size:,}"
    return None
