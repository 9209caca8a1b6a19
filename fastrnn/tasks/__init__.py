"""Long-dependency tasks, selected by name (see each module's docstring for its layout)."""
from .adding import Adding
from .agreement import Agreement
from .copy import Copy
from .mnist import MNIST
from .order import Order, Order8
from .text import Text

from ..choices import TASKS


def make_task(name, seq_len=None, data=None, permuted=False, vocab=None):
    """Build a task. seq_len None: the task's default. data: the file for text and mnist."""
    kw = {} if seq_len is None else {"seq_len": seq_len}
    if name == "adding":
        return Adding(**kw)
    if name == "copy":
        return Copy(**kw)
    if name == "order":
        return Order(**kw)
    if name == "order8":
        return Order8(**kw)
    if name == "agreement":
        return Agreement(**kw)
    if name in ("text", "mnist"):
        if data is None:
            raise ValueError(f"data: the {name} task needs a data file (--data FILE)")
        return Text(data, vocab=vocab, **kw) if name == "text" else MNIST(data, permuted=permuted)
    raise ValueError(f"task: expected one of {', '.join(TASKS)}; got {name!r}")
