"""The fastrnn model: ``num_layers`` stacked recurrent layers and a linear readout.

Parameter names and shapes are PyTorch's, so weights convert one-to-one:
    weight_ih_l{k} (G*H, I or H)   weight_hh_l{k} (G*H, H)   bias_ih_l{k}, bias_hh_l{k} (G*H,)
    readout.weight (O, H)          readout.bias (O,)
with G = 1 (tanh, relu), 3 (gru: r,z,n), 4 (lstm: i,f,g,o). All parameters live in one flat
vector (``model.flat``) and are exposed as views (``model.params``); gradients likewise
(``grad`` returned by :meth:`RNN.loss_and_grad`), so optimizers and clipping work on one array.

Shapes: x (T, B, I) floats or (T, B) token ids; state (L, B, H) (LSTM: a pair h, c);
outputs (T, B, O) at every step or (B, O) at each sequence's last step.
"""
from dataclasses import dataclass

import numpy as np
from numba import njit

from . import memory, threads
from . import validate as v
from .blas import matmul, matmul_tn
from .cells import get_cell
from .config import CACHE
from .init import INITS, init_layer, scale_spectral_radius
from .layer import LayerTape
from .losses import get_loss

OUTPUTS = ("all", "last")


@njit(cache=CACHE)
def _scatter_columns(dw, ids, dg):
    """dw[:, ids[n]] += dg[n] for every row n: the gradient of a token-id input gather.
    dw (G, V), ids (N,) int64, dg (N, G)."""
    for n in range(ids.shape[0]):
        k = ids[n]
        for j in range(dg.shape[1]):
            dw[j, k] += dg[n, j]


@dataclass
class StepResult:
    loss: float  # mean loss
    grad: np.ndarray  # flat gradient, same layout as model.flat (a view of model.grad_flat)
    output: np.ndarray  # readout outputs (T, B, O) or (B, O)
    state: object  # final state: (L, B, H) array, or (h, c) for LSTM


class RNN:
    """A recurrent network: ``cell`` layers of ``hidden_size`` units and a linear readout.

    cell          'tanh', 'relu', 'gru' or 'lstm'
    input_size    I, features per step (the vocabulary size when ``tokens`` is true)
    hidden_size   H
    output_size   O (classes for the cross-entropy loss)
    num_layers    L
    tokens        inputs are integer ids (T, B); W_ih's columns are gathered, no one-hot is made
    dtype         'float32' or 'float64'
    init          'pytorch' (U(-1/sqrt(H), 1/sqrt(H))), 'xavier', 'orthogonal' or 'irnn'
    forget_bias   LSTM forget-gate bias (put in bias_ih, bias_hh's block left 0); None keeps init's
    spectral_radius  scale each recurrent gate block to this spectral radius (None: leave)
    seed          seeds the initialization
    """

    def __init__(self, cell, input_size, hidden_size, output_size, num_layers=1, *,
                 tokens=False, dtype="float32", init="pytorch", forget_bias=1.0,
                 spectral_radius=None, seed=0):
        threads.configure()
        self.cell = get_cell(cell)
        self.input_size = v.positive_int("input_size", input_size)
        self.hidden_size = v.positive_int("hidden_size", hidden_size)
        self.output_size = v.positive_int("output_size", output_size)
        self.num_layers = v.positive_int("num_layers", num_layers)
        self.tokens = bool(tokens)
        self.dtype = v.float_dtype("dtype", dtype)
        v.choice("init", init, INITS)
        if spectral_radius is not None and not (spectral_radius > 0 and np.isfinite(spectral_radius)):
            raise ValueError(f"spectral_radius: expected a positive number (finite); got {spectral_radius!r}")
        if forget_bias is not None and not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias: expected a finite number or None; got {forget_bias!r}")

        H, G = self.hidden_size, self.cell.gates * self.hidden_size
        shapes = []
        for k in range(self.num_layers):
            I = self.input_size if k == 0 else H
            shapes += [(f"weight_ih_l{k}", (G, I)), (f"weight_hh_l{k}", (G, H)),
                       (f"bias_ih_l{k}", (G,)), (f"bias_hh_l{k}", (G,))]
        shapes += [("readout.weight", (self.output_size, H)), ("readout.bias", (self.output_size,))]
        self.shapes = dict(shapes)
        size = sum(int(np.prod(s)) for s in self.shapes.values())
        memory.require(2 * size * self.dtype.itemsize, f"model ({size:,} parameters and their gradient)")
        self.flat = np.zeros(size, dtype=self.dtype)
        self.grad_flat = np.zeros(size, dtype=self.dtype)
        self.params = self._views(self.flat)
        self.grads = self._views(self.grad_flat)
        self._tapes = None

        rng = np.random.default_rng(seed)
        for k in range(self.num_layers):
            I = self.input_size if k == 0 else H
            w_ih, w_hh, b_ih, b_hh = init_layer(rng, init, self.cell.gates, H, I)
            if spectral_radius is not None:
                scale_spectral_radius(w_hh, H, spectral_radius)
            if self.cell.name == "lstm" and forget_bias is not None:
                b_ih[H:2 * H] = forget_bias
                b_hh[H:2 * H] = 0.0
            for name, val in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                                 (w_ih, w_hh, b_ih, b_hh)):
                self.params[f"{name}_l{k}"][...] = val
        k = 1.0 / np.sqrt(H)
        self.params["readout.weight"][...] = rng.uniform(-k, k, (self.output_size, H))
        self.params["readout.bias"][...] = rng.uniform(-k, k, self.output_size)

    # ----------------------------------------------------------------- parameters
    def _views(self, flat):
        out, at = {}, 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            out[name] = flat[at:at + n].reshape(shape)
            at += n
        return out

    def config(self):
        """The JSON-able facts needed to rebuild this model's structure."""
        return dict(cell=self.cell.name, input_size=self.input_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, num_layers=self.num_layers, tokens=self.tokens,
                    dtype=self.dtype.name)

    @property
    def num_parameters(self):
        return self.flat.size

    def to_torch_state_dict(self):
        """The recurrent weights under torch.nn.RNN/GRU/LSTM key names, as NumPy arrays
        (``torch.from_numpy`` each to load them). The readout is in :meth:`readout_state_dict`."""
        return {k: a.copy() for k, a in self.params.items() if not k.startswith("readout.")}

    def readout_state_dict(self):
        """The readout as a torch.nn.Linear state dict (NumPy arrays)."""
        return {"weight": self.params["readout.weight"].copy(),
                "bias": self.params["readout.bias"].copy()}

    def from_torch_state_dict(self, state_dict, readout=None):
        """Load recurrent weights (and optionally a readout) given under PyTorch's names.
        Values may be NumPy arrays or torch tensors; every key and shape is checked first."""
        want = [k for k in self.shapes if not k.startswith("readout.")]
        missing = sorted(set(want) - set(state_dict))
        extra = sorted(set(state_dict) - set(want))
        if missing or extra:
            raise ValueError(f"state_dict: expected keys {want}; missing {missing}, unexpected {extra}")
        items = [(k, state_dict[k]) for k in want]
        if readout is not None:
            items += [("readout.weight", readout["weight"]), ("readout.bias", readout["bias"])]
        loaded = [(k, v.array(f"state_dict[{k!r}]", a, self.shapes[k], "f", self.dtype))
                  for k, a in items]
        for k, a in loaded:
            self.params[k][...] = a

    # ----------------------------------------------------------------- checks
    def _check_inputs(self, x, lengths, state):
        if self.tokens:
            x = v.array("x", x, ("T", "B"), "i")
            if x.size and (x.min() < 0 or x.max() >= self.input_size):
                raise ValueError(f"x: token ids must lie in [0, {self.input_size}); "
                                 f"got values in [{x.min()}, {x.max()}]")
            x = x.astype(np.int64, copy=False)
        else:
            if not isinstance(x, np.ndarray):
                x = np.asarray(x)
            if x.ndim != 3 or x.shape[2] != self.input_size:
                raise ValueError(f"x: expected shape (T, B, {self.input_size}); got {tuple(x.shape)}")
            x = v.array("x", x, ("T", "B", self.input_size), "f", self.dtype)
        T, B = x.shape[:2]
        if T == 0 or B == 0:
            raise ValueError(f"x: expected at least one step and one sequence; got shape {x.shape}")
        if lengths is None:
            lengths = np.full(B, T, dtype=np.int64)
        else:
            lengths = v.array("lengths", lengths, (B,), "i").astype(np.int64)
            if lengths.min() < 1 or lengths.max() > T:
                raise ValueError(f"lengths: expected values in [1, {T}] (T = {T}); "
                                 f"got values in [{lengths.min()}, {lengths.max()}]")
        return x, lengths, self._check_state(state, B)

    def _check_state(self, state, B):
        """(h0, c0) for B sequences: zeros for None; else validated (L, B, H) arrays (c0 None
        except for the LSTM, whose state is a pair)."""
        L, H = self.num_layers, self.hidden_size
        if state is None:
            return np.zeros((L, B, H), self.dtype), np.zeros((L, B, H), self.dtype)
        if self.cell.has_cell_state:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("state: expected a pair (h, c) of arrays (L, B, H) for the lstm cell")
            return (v.array("state[0]", state[0], (L, B, H), "f", self.dtype),
                    v.array("state[1]", state[1], (L, B, H), "f", self.dtype))
        return v.array("state", state, (L, B, H), "f", self.dtype), None

    def _check_target(self, target, loss, output, T, B):
        O = self.output_size
        lead_n = (T, B) if output == "all" else (B,)
        if loss == "mse":
            target = v.array("target", target, lead_n + (O,), "f", self.dtype)
        else:
            target = v.array("target", target, lead_n, "i").astype(np.int64)
            if target.size and (target.max() >= O or target.min() < -1):
                raise ValueError(f"target: class ids must lie in [0, {O}) (or -1 to ignore); "
                                 f"got values in [{target.min()}, {target.max()}]")
        return target.reshape((-1, O) if loss == "mse" else (-1,))

    # ----------------------------------------------------------------- forward
    def _tapes_for(self, T, B):
        if self._tapes is None or self._tapes[0].T != T or self._tapes[0].B != B:
            self._tapes = None  # the old tape's memory is free for the new one
            memory.require(memory.tape_bytes(self.cell.name, T, B, self.hidden_size, self.num_layers,
                                             self.dtype.itemsize), f"activations for T = {T}, B = {B}")
            self._tapes = [LayerTape(self.cell, T, B, self.hidden_size, self.dtype)
                           for _ in range(self.num_layers)]
        return self._tapes

    def _forward(self, x, lengths, h0, c0):
        """Run all layers over validated inputs; the tapes keep what backward needs."""
        T, B = x.shape[:2]
        tapes = self._tapes_for(T, B)
        inp = x
        for k, tape in enumerate(tapes):
            p = self.params
            w_ih, w_hh = p[f"weight_ih_l{k}"], p[f"weight_hh_l{k}"]
            b_hh = p[f"bias_hh_l{k}"]
            tape.w_hh, tape.b_hn = w_hh, b_hh[2 * self.hidden_size:]
            tape.w_hh_t = np.ascontiguousarray(w_hh.T)
            G = w_ih.shape[0]
            if k == 0 and self.tokens:
                np.take(np.ascontiguousarray(w_ih.T), inp, axis=0, out=tape.xproj)
            else:
                matmul(inp.reshape(T * B, -1), w_ih.T, tape.xproj.reshape(T * B, G))
            tape.bias = self.cell.combined_bias(p[f"bias_ih_l{k}"], b_hh)
            tape.h[0] = h0[k]
            if self.cell.has_cell_state:
                tape.c[0] = c0[k]
            self.cell.forward(tape, lengths)
            inp = tape.h[1:]
        return tapes

    def _readout(self, output, lengths):
        """Top-layer states that feed the readout (N, H) and the outputs (N, O)."""
        top = self._tapes[-1].h
        T, B, H = top.shape[0] - 1, top.shape[1], top.shape[2]
        if output == "all":
            hs = top[1:].reshape(T * B, H)
        else:
            hs = top[lengths, np.arange(B)]  # h[len_b] = state after the last real step
        y = np.empty((hs.shape[0], self.output_size), self.dtype)
        matmul(hs, self.params["readout.weight"].T, y)
        y += self.params["readout.bias"]
        return hs, y

    def _final_state(self):
        h = np.stack([t.h[-1] for t in self._tapes])
        if self.cell.has_cell_state:
            return h, np.stack([t.c[-1] for t in self._tapes])
        return h

    def forward(self, x, lengths=None, state=None, output="all"):
        """Outputs and final state.

        x (T, B, I) floats or (T, B) token ids; lengths (B,) ints in [1, T] (None: all T);
        state: initial state (L, B, H), or (h, c) for LSTM (None: zeros).
        Returns (y, final_state): y (T, B, O) for output='all', (B, O) for 'last' (each
        sequence's step lengths[b]-1). The final state is each sequence's state after its
        last real step, so long streams can be fed in chunks.
        """
        v.choice("output", output, OUTPUTS)
        x, lengths, (h0, c0) = self._check_inputs(x, lengths, state)
        self._forward(x, lengths, h0, c0)
        _, y = self._readout(output, lengths)
        if output == "all":
            y = y.reshape(x.shape[0], x.shape[1], -1)
        return y, self._final_state()

    # ----------------------------------------------------------------- loss and gradient
    @staticmethod
    def _valid_rows(output, lengths, T, B):
        if output == "all":
            return (np.arange(T)[:, None] < lengths[None, :]).reshape(-1)
        return np.ones(B, dtype=bool)

    def loss_and_grad(self, x, target, loss="mse", output="last", lengths=None, state=None,
                      bptt_truncate=None):
        """Mean loss and its exact gradient with respect to every parameter.

        loss 'mse': target (B, O) for output='last', (T, B, O) for 'all' (steps past a
        sequence's length are ignored). loss 'ce' (softmax cross-entropy): target (B,) class
        ids for 'last', (T, B) for 'all' with -1 marking ignored positions.
        bptt_truncate K: the gradient of each step's loss flows back at most K steps (through
        the cells at steps t, t-1, ..., t-K; states before are constants). None: full BPTT.
        Returns a StepResult; ``grad`` is a view of ``model.grad_flat``, overwritten next call.
        """
        v.choice("loss", loss, ("mse", "ce"))
        v.choice("output", output, OUTPUTS)
        bptt_truncate = v.truncation(bptt_truncate)
        x, lengths, (h0, c0) = self._check_inputs(x, lengths, state)
        T, B = x.shape[:2]
        target = self._check_target(target, loss, output, T, B)
        self._forward(x, lengths, h0, c0)
        hs, y = self._readout(output, lengths)
        valid = self._valid_rows(output, lengths, T, B)
        value, dy = get_loss(loss)(y, target, valid)
        self._backward(x, lengths, hs, dy, output, bptt_truncate)
        if output == "all":
            y = y.reshape(T, B, -1)
        return StepResult(value, self.grad_flat, y, self._final_state())

    def _backward(self, x, lengths, hs, dy, output, K):
        tapes, p, g, cell = self._tapes, self.params, self.grads, self.cell
        T, B, H = tapes[0].T, tapes[0].B, self.hidden_size
        matmul_tn(dy, hs, g["readout.weight"])
        g["readout.bias"][...] = dy.sum(axis=0)
        dh_rows = np.empty((dy.shape[0], H), self.dtype)
        matmul(dy, p["readout.weight"], dh_rows)
        if output == "all":
            dh_top = dh_rows.reshape(T, B, H)
        else:
            dh_top = np.zeros((T, B, H), self.dtype)
            dh_top[lengths - 1, np.arange(B)] = dh_rows

        if K is None or K >= T - 1:  # one window holding every step: plain full BPTT
            arr = dh_top
            for k in reversed(range(self.num_layers)):
                t = tapes[k]
                cell.backward(t, 0, T - 1, arr, lengths, t.dgi, t.dgh, t.dh_seq)
                if k > 0:
                    arr = np.empty((T, B, H), self.dtype)
                    matmul(t.dgi.reshape(T * B, -1), p[f"weight_ih_l{k}"], arr.reshape(T * B, H))
        else:
            self._backward_truncated(lengths, dh_top, output, K)

        for k, t in enumerate(tapes):
            G = t.dgi.shape[2]
            dgi, dgh = t.dgi.reshape(T * B, G), t.dgh.reshape(T * B, G)
            if k == 0 and self.tokens:
                g["weight_ih_l0"][...] = 0.0
                _scatter_columns(g["weight_ih_l0"], x.reshape(-1), dgi)
            else:
                inp = x if k == 0 else tapes[k - 1].h[1:]
                matmul_tn(dgi, inp.reshape(T * B, -1), g[f"weight_ih_l{k}"])
            g[f"bias_ih_l{k}"][...] = dgi.sum(axis=0)
            matmul_tn(dgh, t.h[:-1].reshape(T * B, H), g[f"weight_hh_l{k}"])
            g[f"bias_hh_l{k}"][...] = dgh.sum(axis=0)

    def _backward_truncated(self, lengths, dh_top, output, K):
        """Exact gradient of the truncated graph: one reverse window [t-K, t] per step t that
        carries a loss, through every layer; pre-activation gradients of all windows are
        summed, then the weight gradients are finished as for full BPTT."""
        tapes, p, cell = self._tapes, self.params, self.cell
        T, B, H = tapes[0].T, tapes[0].B, self.hidden_size
        G = tapes[0].dgi.shape[2]
        for t in tapes:
            t.dgi[...] = 0.0
            t.dgh[...] = 0.0
            t.dh_seq[...] = 0.0
        W_max = K + 1
        dgi_w = np.zeros((W_max, B, G), self.dtype)
        dgh_w = np.zeros((W_max, B, G), self.dtype) if cell.split_grad else dgi_w
        dhs_w = np.zeros((W_max, B, H), self.dtype)
        if output == "all":
            origins = np.nonzero(np.abs(dh_top).reshape(T, -1).max(axis=1) > 0)[0]
        else:
            origins = np.unique(lengths - 1)
        for s1 in origins:
            s0 = max(0, s1 - K)
            W = s1 - s0 + 1
            arr = np.zeros((W, B, H), self.dtype)
            arr[-1] = dh_top[s1]
            for k in reversed(range(self.num_layers)):
                t = tapes[k]
                cell.backward(t, s0, s1, arr, lengths, dgi_w[:W], dgh_w[:W], dhs_w[:W])
                t.dgi[s0:s1 + 1] += dgi_w[:W]
                if cell.split_grad:
                    t.dgh[s0:s1 + 1] += dgh_w[:W]
                t.dh_seq[s0:s1 + 1] += dhs_w[:W]
                if k > 0:
                    arr = np.empty((W, B, H), self.dtype)
                    matmul(dgi_w[:W].reshape(W * B, G), p[f"weight_ih_l{k}"], arr.reshape(W * B, H))

    def hidden_grads(self):
        """dL/dh_t of every layer from the last backward pass: a list of (T, B, H) arrays."""
        return [t.dh_seq.copy() for t in self._tapes]
