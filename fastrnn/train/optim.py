"""Optimizers and gradient clipping on the model's flat parameter vector.

Each optimizer updates ``params`` in place from ``grad`` (both 1-D, same layout), with
PyTorch's update rules. ``weight_decay`` is L2 regularization: grad + weight_decay * params,
applied to every parameter. State is plain arrays plus a step count, so it checkpoints
without pickling.
"""
import numpy as np
from numba import njit

from ..config import CACHE

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")


class Optimizer:
    name = "base"
    slots = ()  # names of per-parameter state arrays

    def __init__(self, size, lr, weight_decay=0.0, dtype=np.float32, **hyper):
        if not lr > 0:
            raise ValueError(f"lr: expected a positive number; got {lr!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay: expected a number >= 0; got {weight_decay!r}")
        self.lr, self.weight_decay, self.t = float(lr), float(weight_decay), 0
        self.hyper = hyper
        self.state = {k: np.zeros(size, dtype) for k in self.slots}

    def step(self, params, grad):
        if self.weight_decay:
            grad = grad + self.weight_decay * params
        self.t += 1
        self._update(params, grad)

    def state_dict(self):
        return {"t": self.t}, dict(self.state)

    def load_state_dict(self, meta, arrays):
        for k in self.slots:
            if k not in arrays or arrays[k].shape != self.state[k].shape:
                raise ValueError(f"checkpoint: optimizer state {k!r} is missing or has the wrong shape")
            self.state[k][...] = arrays[k]
        self.t = int(meta["t"])


class SGD(Optimizer):
    """p -= lr * v,  v = momentum * v + g   (plain SGD when momentum = 0)."""
    name, slots = "sgd", ("velocity",)

    def _update(self, p, g):
        mu = self.hyper.get("momentum", 0.0)
        if mu:
            v = self.state["velocity"]
            v *= mu
            v += g
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; betas (0.9, 0.999), eps 1e-8."""
    name, slots = "adam", ("m", "v")

    def _update(self, p, g):
        b1, b2, eps = 0.9, 0.999, 1e-8
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
    name, slots = "rmsprop", ("v",)

    def _update(self, p, g):
        a = self.hyper.get("alpha", 0.9)
        v = self.state["v"]
        v *= a
        v += (1 - a) * g * g
        p -= self.lr * g / (np.sqrt(v) + 1e-8)


class Adagrad(Optimizer):
    """s += g^2;  p -= lr g / (sqrt(s) + eps) (min-char-rnn's optimizer)."""
    name, slots = "adagrad", ("sum",)

    def _update(self, p, g):
        s = self.state["sum"]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + 1e-8)


def make_optimizer(name, size, lr, weight_decay=0.0, momentum=0.9, dtype=np.float32):
    classes = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}
    if name not in classes:
        raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}; got {name!r}")
    return classes[name](size, lr, weight_decay, dtype, momentum=momentum)


@njit(cache=CACHE, fastmath={"reassoc", "contract"})
def _sum_squares(g):
    # float64 accumulator; a NumPy dot here would wake NumPy's own BLAS thread pool, which
    # then spins against the Numba threads (see fastrnn/blas.py)
    s = 0.0
    for i in range(g.shape[0]):
        s += float(g[i]) * float(g[i])
    return s


def global_norm(grad):
    return float(np.sqrt(_sum_squares(grad)))


def clip_global_norm(grad, max_norm):
    """Scale grad in place so its norm is at most max_norm (Pascanu et al. 2013).
    Returns the norm before clipping (inf or NaN if the gradient is not finite)."""
    norm = global_norm(grad)
    if max_norm is not None and np.isfinite(norm) and norm > max_norm:
        grad *= max_norm / norm
    return norm


def clip_by_value(grad, limit):
    """Clip every entry of grad in place to [-limit, limit]."""
    np.clip(grad, -limit, limit, out=grad)
