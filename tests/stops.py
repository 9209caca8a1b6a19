"""A stop flag for train(stop=...) that trips after a given step, as Ctrl-C would (tests only)."""


class StopAt:
    """A stop flag that trips after a given step, as Ctrl-C would."""

    def __init__(self, at):
        self.at, self.stop = at, False

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def progress(self, step, steps, rec):
        self.stop = step >= self.at
