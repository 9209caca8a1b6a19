"""Every file fastrnn writes, and the small files it reads back, go through here.

Two promises. A crash never leaves a torn file: whole files go to a temporary file in the same
folder, are flushed to disk and renamed over the target, and a line is appended in one write.
A planted link never redirects a write: run, compare and sweep folders are shared, unpacked
and downloaded, so any name in them may be a symbolic link (or a hard link) to a file of the
user's. A write never opens its target by name: an append opens it with O_NOFOLLOW and refuses
anything but a regular file with one link, and a whole-file write creates its temporary with
O_EXCL and renames it, refusing a target that is a link or not a regular file. Reads of the
small files (summaries, metrics, attempt records) are bounded and refuse links the same way,
and their JSON is parsed with its depth and its numbers' digits checked, so a hostile file is
one clear error naming it, not a RecursionError.
"""
import errno
import io
import json
import math
import os
import stat
import tempfile

import numpy as np

READ_LIMIT = 256 * 2**20  # bytes: the largest metrics.jsonl or results.jsonl read back whole


class LinkRefused(ValueError):
    """A file fastrnn was about to write (or read back from its own folder) is a symbolic link,
    a hard link shared with another name, or not a regular file."""

    def __init__(self, path, why):
        super().__init__(f"{os.fspath(path)} {why}; fastrnn does not follow links in the folders it "
                         f"writes (remove it, or use another folder)")


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


def _kind(mode):
    return "is a symbolic link" if stat.S_ISLNK(mode) else "is not a regular file"


def _own_file(path, st, links=True):
    """Raise LinkRefused unless st (an lstat or fstat result) is a regular file; with links,
    also unless it has one name (a hard link shares the file with another)."""
    if not stat.S_ISREG(st.st_mode):
        raise LinkRefused(path, _kind(st.st_mode))
    if links and st.st_nlink > 1:
        raise LinkRefused(path, f"has {st.st_nlink} hard links")


def _open_error(path, e):
    """The LinkRefused for an open refused with O_NOFOLLOW / O_NONBLOCK, else None."""
    if e.errno == errno.ELOOP:
        return LinkRefused(path, "is a symbolic link")
    if e.errno == errno.ENXIO:  # a FIFO without a reader, or a socket
        return LinkRefused(path, "is not a regular file")
    return None


def check_target(path):
    """Raise LinkRefused if path exists as anything but a regular file of its own."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    _own_file(path, st)


def check_folder(folder, names=None):
    """Refuse a folder that is a link, or (names) holding any of these names as a link or as
    something other than a regular file. Run before a run, compare or sweep folder is used, so
    the refusal comes first, with the name, rather than in the middle of a run."""
    folder = os.fspath(folder)
    if os.path.islink(folder):
        raise LinkRefused(folder, "is a symbolic link to a folder")
    for name in names or ():
        check_target(os.path.join(folder, name))


def open_exclusive(path, flags=os.O_RDWR):
    """A descriptor for path, created if absent (mode 0644 less the umask), never through a link:
    O_NOFOLLOW refuses a symbolic link, O_NONBLOCK keeps a planted FIFO from blocking the open,
    and the opened file must be a regular file with one name."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise _open_error(path, e) or e from None
    try:
        _own_file(path, os.fstat(fd))
    except LinkRefused:
        os.close(fd)
        raise
    return fd


def append_bytes(path, data, before=None):
    """Append data to path in one write, flushed to disk. before(fd): called on the open file
    first (a torn tail to repair)."""
    try:
        fd = open_exclusive(path, os.O_RDWR | os.O_APPEND)
        try:
            if before is not None:
                before(fd)
            os.write(fd, data)  # one write: the line lands whole or (after a crash) torn
            os.fsync(fd)
        finally:
            os.close(fd)
    except LinkRefused:
        raise
    except OSError as e:
        raise DiskError(path, e) from None


def read_bytes(path, limit=READ_LIMIT):
    """The bytes of a small file in a folder of fastrnn's (never through a link), or None if it
    is absent. A file larger than limit is refused (ValueError naming it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _open_error(path, e) or e from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        _own_file(path, st, links=False)  # reading a hard-linked file harms nothing
        if st.st_size > limit:
            raise ValueError(f"{os.fspath(path)} holds {st.st_size:,} bytes, more than the {limit:,} fastrnn reads back")
        return f.read(limit + 1)


def read_json(path, what, limit=READ_LIMIT):
    """The parsed JSON of a small file in a folder of fastrnn's (read_bytes, then loads), or
    None if it is absent; any problem is a ValueError starting with ``what``."""
    data = read_bytes(path, limit)
    return None if data is None else loads(data, what)


_UMASK = []


def _umask():
    """The process's umask, read once: reading it means setting it, so do that only once."""
    if not _UMASK:
        mask = os.umask(0o022)
        os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]


TEMP_PREFIX = ".tmp-"


def atomic_write(path, write, suffix=""):
    """write(f) into a temporary file beside path, flush it to disk, then rename it over path:
    readers see the old file or the new one, never a torn one. The file gets the mode any
    tool's new file gets (0666 less the umask), not mkstemp's private 0600. A path that is a
    link or not a regular file is refused, not replaced."""
    path = os.fspath(path)
    check_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=os.path.dirname(path) or ".")
    except OSError as e:
        raise DiskError(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        check_target(path)  # planted while we wrote: the rename would not follow it, but say so
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, DiskError):
            raise DiskError(path, e) from None
        raise


def atomic_write_bytes(path, data):
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(finite_json(obj), indent=2, allow_nan=False) + "\n")


def save_figure(fig, path, dpi=110):
    """A matplotlib figure as a PNG, written atomically (savefig would open path by name)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def remove_stale_temps(folder):
    """Delete temporaries a killed writer left in folder (kill -9 between mkstemp and the
    rename). Call only while holding the folder's lock: nobody else is writing one then."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    n = 0
    for name in names:
        if name.startswith(TEMP_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))  # a link is removed, never followed
                n += 1
            except OSError:
                pass
    return n


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


def loads(text, what):
    """json.loads for untrusted text, with every failure a ValueError starting with ``what``:
    malformed JSON, nesting too deep for Python's recursive parser, or an integer too long for
    Python to convert (its digit limit)."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as e:
            raise ValueError(f"{what}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deep to read") from None
    except ValueError as e:  # Python's digit limit on int()
        raise ValueError(f"{what}: unreadable JSON ({str(e).split(';')[0]})") from None
