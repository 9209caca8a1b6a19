"""SIGINT (Ctrl-C) and SIGTERM (a supervisor, a batch scheduler) as a flag, read between steps.

A training run and a sweep's driver both stop at a boundary of their own choosing, never in the
middle of an update or a write: the handler only records the signal, and the loop that owns the
work checks ``stop`` and winds down (checkpoint, record, exit 128 + ``signum``).
"""
import signal
import threading


class StopFlag:
    """``with StopFlag() as flag:`` ... ``if flag.stop:`` ...; ``signum`` says which signal came
    first. Outside the main thread (where Python cannot install handlers) it never fires."""

    def __init__(self):
        self.stop = False
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        self.stop = True
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
