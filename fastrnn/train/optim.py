"""Optimizers on the model's flat parameter vector (clipping lives in fastrnn/clip.py).

Each optimizer updates ``params`` in place from ``grad`` (both 1-D, same layout), with
PyTorch's update rules. ``weight_decay`` is L2 regularization: grad + weight_decay * params,
applied to every parameter. State is plain arrays plus a step count, so it checkpoints
without pickling.
"""
import numpy as np

from .. import validate as v
from ..choices import OPTIMIZERS
from ..clip import _backend


class Optimizer:
    """Hyper-parameters, state layout (``slots``) and the update rule: ``_update`` in NumPy,
    and for a device backend the kernel of fastrnn/cuda/kernels.py named ``kernel``, called as
    kernel(params, grad, *state arrays in slot order, *kernel_args(f)) with its constants in
    the parameters' precision (f). State arrays live where the backend keeps the parameters;
    ``state_dict`` copies them to the host."""
    name = "base"
    slots = ()  # names of per-parameter state arrays
    kernel = None  # its CUDA kernel's name
    eps = 1e-8

    def kernel_args(self, f):
        """The update kernel's constants after the state arrays, each cast by f."""
        raise NotImplementedError

    def __init__(self, size, lr, weight_decay=0.0, dtype=np.float32, backend=None, **hyper):
        """size: the number of parameters, or the flat parameter vector itself (``model.flat``,
        as PyTorch's optimizers take the parameters), whose size and dtype are then used."""
        if hasattr(size, "shape") and hasattr(size, "dtype"):
            if len(size.shape) != 1:
                raise ValueError(f"size: expected a count or a flat (1-D) parameter vector; got shape {size.shape}")
            size, dtype = int(size.shape[0]), size.dtype
        v.positive_int("size", size)
        self.lr, self.weight_decay, self.t = v.positive_number("lr", lr), v.number_in("weight_decay", weight_decay, 0), 0
        self.hyper = hyper
        self.backend = backend = _backend(backend)
        self.state = {k: backend.zeros((size,), dtype) for k in self.slots}

    def step(self, params, grad):
        """One update of params (in place) from grad, both flat on the optimizer's backend."""
        self.t += 1
        self.backend.optimizer_step(self, params, grad)

    def numpy_update(self, params, grad):
        if self.weight_decay:
            grad = grad + self.weight_decay * params
        self._update(params, grad)

    def state_dict(self):
        return {"t": self.t}, {k: self.backend.to_host(a) for k, a in self.state.items()}

    def load_state_dict(self, meta, arrays):
        for k in self.slots:
            if k not in arrays or arrays[k].shape != tuple(self.state[k].shape):
                raise ValueError(f"checkpoint: optimizer state {k!r} is missing or has the wrong shape")
        for k in self.slots:
            self.backend.copy_into(self.state[k], np.asarray(arrays[k], self.state[k].dtype))
        self.t = int(meta["t"])


class SGD(Optimizer):
    """p -= lr * v,  v = momentum * v + g   (plain SGD when momentum = 0)."""
    name, slots, kernel = "sgd", ("velocity",), "sgd_update"

    @property
    def momentum(self):
        return self.hyper.get("momentum", 0.0)

    def kernel_args(self, f):
        return f(self.lr), f(self.momentum), f(self.weight_decay)

    def _update(self, p, g):
        mu = self.momentum
        if mu:
            v = self.state["velocity"]
            v *= mu
            v += g
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; betas (0.9, 0.999), eps 1e-8."""
    name, slots, kernel = "adam", ("m", "v"), "adam_update"
    betas = (0.9, 0.999)

    def kernel_args(self, f):
        b1, b2 = self.betas
        return (f(self.lr), f(self.weight_decay), f(b1), f(1 - b1), f(b2), f(1 - b2), f(self.eps),
                f(1 - b1 ** self.t), f(1 - b2 ** self.t))

    def _update(self, p, g):
        (b1, b2), eps = self.betas, self.eps
        m, v = self.state["m"], self.state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        mhat = m / (1 - b1 ** self.t)
        vhat = v / (1 - b2 ** self.t)
        p -= self.lr * mhat / (np.sqrt(vhat) + eps)


class RMSprop(Optimizer):
    """v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps). alpha 0.9 (the uRNN
    paper's decay), eps 1e-8."""
    name, slots, kernel = "rmsprop", ("v",), "rmsprop_update"

    @property
    def alpha(self):
        return self.hyper.get("alpha", 0.9)

    def kernel_args(self, f):
        a = self.alpha
        return f(self.lr), f(self.weight_decay), f(a), f(1 - a), f(self.eps)

    def _update(self, p, g):
        a = self.alpha
        v = self.state["v"]
        v *= a
        v += (1 - a) * g * g
        p -= self.lr * g / (np.sqrt(v) + self.eps)


class Adagrad(Optimizer):
    """s += g^2;  p -= lr g / (sqrt(s) + eps) (min-char-rnn's optimizer)."""
    name, slots, kernel = "adagrad", ("sum",), "adagrad_update"

    def kernel_args(self, f):
        return f(self.lr), f(self.weight_decay), f(self.eps)

    def _update(self, p, g):
        s = self.state["sum"]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


def make_optimizer(name, size, lr, weight_decay=0.0, momentum=0.9, dtype=np.float32, backend=None):
    """An optimizer for ``size`` parameters; backend: the model's (``model.backend``; None: CPU)."""
    classes = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}
    v.choice("optimizer", name, OPTIMIZERS)
    return classes[name](size, lr, weight_decay, dtype, backend, momentum=momentum)
