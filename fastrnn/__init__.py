"""fastrnn: tanh, ReLU, GRU and LSTM networks with exact BPTT as Numba kernels.

The public surface (keyword options are `fastrnn train`'s, with underscores):

    train(out, **options)       train one model into a run folder; returns its summary dict
    compare(cells, seeds, out)  every cell x seed in parallel, with a report; returns a table
    load(path)                  a run folder or checkpoint -> Loaded(model, task, config, meta)
    evaluate(model, task)       held-out {'loss', 'metric'}
    sample(run, length)         text from a character model
    profile(model, task)        the gradient through time (what `fastrnn gradients` plots)
    make_task(name, seq_len)    a task: 'adding', 'copy', 'order', 'order8', 'agreement', 'text', ...
    RNN(cell, I, H, O, L)       the model: forward, loss, loss_and_grad, PyTorch state dicts
    make_optimizer(name, n, lr) 'sgd', 'adam', 'rmsprop' or 'adagrad' for n parameters
                                (or for model.flat itself)
    TrainConfig                 every training option, checked
    CELLS                       the cells and their gate layouts
    gradcheck(cell)             every gradient against finite differences (float64)
    check_gradients(...)        one model's gradients against finite differences
    set_threads(n)              threads per training step (results are the same at any count)

A step by hand: ``res = model.loss_and_grad(x, y, "mse", "last")``, then
``model.clip_grad_norm(1.0)`` and ``opt.step(model.flat, res.grad)``. The names are imported
lazily, so that `import fastrnn` (and `fastrnn --help`) does not pull in Numba until a model or
kernel is used.
"""
__version__ = "0.1.0"

_LAZY = {
    "train": None,  # the subpackage fastrnn.train, callable as fastrnn.api.train
    "compare": None,  # the module fastrnn.compare, callable as fastrnn.api.compare
    "load": "fastrnn.api",
    "evaluate": "fastrnn.api",
    "sample": "fastrnn.api",
    "profile": "fastrnn.api",
    "Loaded": "fastrnn.api",
    "make_task": "fastrnn.tasks",
    "RNN": "fastrnn.model",
    "make_optimizer": "fastrnn.train.optim",
    "TrainConfig": "fastrnn.train.config",
    "CELLS": "fastrnn.cells",
    "gradcheck": "fastrnn.finitediff",
    "check_gradients": "fastrnn.finitediff",
    "set_threads": "fastrnn.cpu.threads",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        if _LAZY[name] is None:  # a module that answers a call (fastrnn/callable.py)
            return importlib.import_module(f"fastrnn.{name}")
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
