"""One writer per folder: an exclusive lock on FOLDER/.lock, held for a run's (or a sweep's)
life and released by the operating system when its process dies, however it dies.

Two `fastrnn train` on one --out used to interleave their metrics and silently lose one run's
checkpoint; now the second one stops at once with the holder's pid. ``flock`` locks belong to
the open file, so a process killed with -9 leaves no stale lock behind (a pid file alone would).
The file holds the holder's pid and host as text, for the message, and is removed when the
holder lets go (a process killed with -9 leaves the file, but not the lock). On a network file
system whose flock is not shared between machines, two hosts are not kept apart.

The lock file is opened without following a link (fileio.open_exclusive): a `.lock` planted as
a link to another file would otherwise have that file truncated and overwritten with our pid.
Once held, the lock also sweeps the temporaries a writer killed mid-write left behind.
"""
import os
import socket
import time

from ..fileio import open_exclusive, remove_stale_temps

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, as before
    fcntl = None

LOCK_NAME = ".lock"


class FolderBusy(ValueError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, what="out"):`` holds FOLDER/.lock exclusively.

    wait: seconds to keep trying before giving up (0: fail at once). A sweep's worker waits
    a little, so that a run folder still held by an orphan of a killed driver (which stops at
    its next step boundary) is taken over rather than raced.
    """

    def __init__(self, folder, what="out", wait=0.0):
        self.folder, self.what, self.wait = os.fspath(folder), what, wait
        self.fd = None

    def acquire(self):
        if fcntl is None:
            return self
        os.makedirs(self.folder, exist_ok=True)
        self.path = os.path.join(self.folder, LOCK_NAME)
        deadline = time.monotonic() + self.wait
        while True:
            fd = open_exclusive(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "pid unknown"
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise FolderBusy(f"{self.what}: {self.folder} is in use by another fastrnn process "
                                     f"({holder}); wait for it to end or use another folder") from None
                time.sleep(0.1)
                continue
            # the holder before us removes the file as it lets go: a lock on a file no longer
            # at the path guards nothing, so take the one that is there now
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        remove_stale_temps(self.folder)  # ours alone now: a .tmp-* is a killed writer's leftover
        return self

    def release(self):
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still held, so nobody locks a file about to vanish
            except OSError:
                pass
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
