"""Long-dependency tasks, selected by name (see each module's docstring for its layout)."""
from .adding import Adding
from .agreement import Agreement
from .copy import Copy
from .datafile import DataFile
from .mnist import MNIST
from .order import Order, Order8
from .text import Text

from .. import validate
from ..choices import TASKS

# every task class by name (their class attributes, such as loss and output, without building one)
TASK_CLASSES = {c.name: c for c in (Adding, Copy, Order, Order8, Agreement, Text, MNIST, DataFile)}


def make_task(name, seq_len=None, data=None, permuted=False, vocab=None, holdout_fraction=0.1,
              window=None, horizon=1, min_lag=0):
    """Build a task. seq_len None: the task's default. data: the file for text, mnist and
    file; holdout_fraction, window, horizon: the file task's (fastrnn/tasks/datafile.py);
    min_lag: the adding task's (fastrnn/tasks/adding.py)."""
    kw = {} if seq_len is None else {"seq_len": seq_len}
    validate.min_lag(min_lag, name)
    if name == "adding":
        return Adding(min_lag=min_lag, **kw)
    if name == "copy":
        return Copy(**kw)
    if name == "order":
        return Order(**kw)
    if name == "order8":
        return Order8(**kw)
    if name == "agreement":
        return Agreement(**kw)
    if name in ("text", "mnist", "file"):
        if data is None:
            raise ValueError(f"data: the {name} task needs a data file (--data FILE)")
        if name == "file":
            return DataFile(data, holdout_fraction, window, horizon)
        return Text(data, vocab=vocab, **kw) if name == "text" else MNIST(data, permuted=permuted)
    raise ValueError(f"task: expected one of {', '.join(TASKS)}; got {name!r}")
