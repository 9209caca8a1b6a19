"""An RNN's parameters, gradients, optimizer state and activations on the GPU.

``CudaRNN(model)`` mirrors a CPU :class:`fastrnn.RNN` (same names, layout, math and call
signatures): one flat device vector of parameters with views per tensor, likewise for gradients.
Inputs, targets and lengths go to the device once per call; per training step only the loss
value and the gradient norm come back. Everything of the CPU model is here: initial and final
states (streams in chunks; a carried state stays on the device), full or truncated BPTT (the
same per-loss windows), dense or token inputs, variable lengths, MSE and cross-entropy at every
step or the last one; plus the per-step Jacobians and dL/dh_t that ``fastrnn gradients`` shows.

Tape shapes per layer as on the CPU (fastrnn/layer.py): T steps, B batch, H hidden, G = gates*H.
"""
from types import SimpleNamespace

import numpy as np
from numba import cuda

from .. import validate as v
from ..config import CUDA_PATH
from ..model import OUTPUTS, StepResult
from . import kernels as k
from . import require
from . import sequence as seq

PATHS = ("auto", "sequence", "steps")

OPT_SLOTS = {"sgd": ("velocity",), "adam": ("m", "v"), "rmsprop": ("v",), "adagrad": ("sum",)}


def _grid1(n):
    block = min(256, max(32, 1 << (max(n, 1) - 1).bit_length()))
    return ((n + block - 1) // block,), (block,)


def _zero(a):
    """Zero a contiguous device array in place, on the device."""
    flat = a.reshape(a.size)
    gr, bl = _grid1(flat.shape[0])
    k.fill_zero[gr, bl](flat)


def _add_into(dst, src):
    """dst += src (contiguous device arrays of one size)."""
    d, s = dst.reshape(dst.size), src.reshape(src.size)
    gr, bl = _grid1(d.shape[0])
    k.add_into[gr, bl](d, s)


def _on_device(a):
    """Whether a is a device array (real or simulated; numba's is_cuda_array lacks a simulator twin)."""
    return hasattr(a, "copy_to_host")


class CudaRNN:
    """path: 'sequence' (one launch per layer and direction), 'steps' (two per step) or 'auto'
    (None: FASTRNN_CUDA_PATH, default auto = sequence when H <= sequence.MAX_H)."""

    def __init__(self, model, path=None):
        require()  # one clear error without numba-cuda, a GPU or a driver, whoever builds one
        self.model = model
        self.cell = model.cell
        self.dtype = model.dtype
        path = v.choice("path", path or CUDA_PATH, PATHS)
        self.path = ("sequence" if model.hidden_size <= seq.MAX_H else "steps") if path == "auto" else path
        if self.path == "sequence" and model.hidden_size > seq.MAX_H:
            raise ValueError(f"path: 'sequence' needs hidden_size <= {seq.MAX_H}; got {model.hidden_size}")
        self.flat = cuda.to_device(model.flat)
        self.grad_flat = cuda.device_array_like(model.flat)
        self.params = self._views(self.flat)
        self.grads = self._views(self.grad_flat)
        self.opt_state = {}
        self._tapes = None

    def _views(self, flat):
        out, at = {}, 0
        for name, shape in self.model.shapes.items():
            n = int(np.prod(shape))
            out[name] = flat[at:at + n].reshape(shape)
            at += n
        return out

    def to_host(self):
        """Copy the parameters back into the CPU model (for checkpoints)."""
        self.flat.copy_to_host(self.model.flat)
        return self.model

    def from_host(self):
        """Copy the CPU model's parameters to the device (after changing them there)."""
        self.flat.copy_to_device(self.model.flat)

    # ------------------------------------------------------------------ inputs
    def _check_state(self, state, B):
        """(h0, c0): device arrays (L, B, H), or None for zeros. Host arrays are validated as on
        the CPU and copied over; device arrays (a state this class returned, never written to
        again) are checked for shape and dtype and used as they are."""
        if state is None:
            return None, None
        lstm = self.cell.has_cell_state
        parts = state if lstm and isinstance(state, (tuple, list)) else (state,)
        if not any(_on_device(p) for p in parts):
            h0, c0 = self.model._check_state(state, B)
            return cuda.to_device(h0), (cuda.to_device(c0) if lstm else None)
        L, H = self.model.num_layers, self.model.hidden_size
        if lstm and len(parts) != 2:
            raise ValueError("state: expected a pair (h, c) of arrays (L, B, H) for the lstm cell")
        for p in parts:
            if not _on_device(p) or tuple(p.shape) != (L, B, H) or np.dtype(p.dtype) != self.dtype:
                raise ValueError(f"state: expected device arrays ({L}, {B}, {H}) of {self.dtype}; "
                                 f"got {tuple(p.shape)} of {p.dtype}")
        return parts[0], (parts[1] if lstm else None)

    # ------------------------------------------------------------------ forward
    def _tape(self, T, B):
        if self._tapes is None or self._tapes[0].T != T or self._tapes[0].B != B:
            H, G, dt = self.model.hidden_size, self.cell.gates * self.model.hidden_size, self.dtype
            z = lambda *s: cuda.to_device(np.zeros(s, dt))  # noqa: E731
            self._tapes = []
            for _ in range(self.model.num_layers):
                # as LayerTape: c, gates and ghn only for the cells that use them
                tp = SimpleNamespace(T=T, B=B, xproj=z(T, B, G), h=z(T + 1, B, H),
                                     c=z(T + 1, B, H) if self.cell.has_cell_state else z(1, 1, 1),
                                     gates=z(T, B, G) if self.cell.gates > 1 else z(1, 1, 1),
                                     ghn=z(T, B, H) if self.cell.name == "gru" else z(1, 1, 1),
                                     gh=z(B, G), dh_seq=z(T, B, H), dh=z(B, H), dc=z(B, H), bias=z(G))
                tp.dgi = tp.xproj  # as on the CPU: the projection is dead once backward starts
                tp.dgh = z(T, B, G) if self.cell.split_grad else tp.dgi
                self._tapes.append(tp)
        return self._tapes

    def _to_device_inputs(self, x):
        """x on the device as (T*B, I) floats, or (T*B,) token ids."""
        T, B = x.shape[:2]
        return cuda.to_device(np.ascontiguousarray(x.reshape(T * B, -1) if not self.model.tokens else x.reshape(-1)))

    def _forward(self, x, lengths, h0=None, c0=None):
        """All layers over validated host inputs; lengths may hold 0 (a sequence already over:
        its state is carried). h0, c0: device (L, B, H) or None. Returns the device lengths."""
        m, p = self.model, self.params
        T, B = x.shape[:2]
        H, G = m.hidden_size, self.cell.gates * m.hidden_size
        tapes = self._tape(T, B)
        d_len = cuda.to_device(lengths)
        d_x = self._to_device_inputs(x)
        inp = d_x
        for layer, tp in enumerate(tapes):
            x2 = tp.xproj.reshape(T * B, G)
            if layer == 0 and m.tokens:
                g, b = k.grid2(T * B, G)
                k.gather_columns[g, b](p["weight_ih_l0"], d_x, x2)
            else:
                k.gemm(inp, p[f"weight_ih_l{layer}"], x2, tb=True)
            gr, bl = _grid1(G)
            k.combine_bias[gr, bl](p[f"bias_ih_l{layer}"], p[f"bias_hh_l{layer}"],
                                   2 * H if self.cell.name == "gru" else G, tp.bias)
            b_hn = p[f"bias_hh_l{layer}"][2 * H:]
            w_hh = p[f"weight_hh_l{layer}"]
            if h0 is None:
                _zero(tp.h[0])
            else:
                tp.h[0].copy_to_device(h0[layer])
            if self.cell.has_cell_state:
                if c0 is None:
                    _zero(tp.c[0])
                else:
                    tp.c[0].copy_to_device(c0[layer])
            if self.path == "sequence":
                self._sequence_forward(tp, w_hh, b_hn, d_len)
            else:
                self._steps_forward(tp, w_hh, b_hn, d_len)
            inp = tp.h[1:].reshape(T * B, H)
        self._x, self._lengths = d_x, d_len
        return d_len

    def _steps_forward(self, tp, w_hh, b_hn, d_len):
        """One layer, two launches per step: gh = h_{t-1} W_hh^T (GEMM), then the cell."""
        grid, block = k.grid2(tp.B, w_hh.shape[1])
        for t in range(tp.T):
            k.gemm(tp.h[t], w_hh, tp.gh, tb=True)
            if self.cell.name in ("tanh", "relu"):
                k.elman_fwd[grid, block](tp.gh, tp.xproj, tp.bias, d_len, t, self.cell.name == "relu", tp.h)
            elif self.cell.name == "gru":
                k.gru_fwd[grid, block](tp.gh, tp.xproj, tp.bias, b_hn, d_len, t, tp.h, tp.gates, tp.ghn)
            else:
                k.lstm_fwd[grid, block](tp.gh, tp.xproj, tp.bias, d_len, t, tp.h, tp.c, tp.gates)

    def _sequence_forward(self, tp, w_hh, b_hn, d_len):
        """One layer over every step in one launch (sequence.py): W_hh transposed first."""
        G, H = w_hh.shape
        if getattr(self, "_w_t", None) is None or self._w_t.shape != (H, G):
            self._w_t = cuda.device_array((H, G), self.dtype)
        g, b = k.grid2(G, H)
        k.transpose[g, b](w_hh, self._w_t)
        ks, grid, block = seq.kernels(self.dtype), (tp.B,), (seq.threads_for(H),)
        if self.cell.name in ("tanh", "relu"):
            ks["elman_fwd"][grid, block](tp.xproj, tp.bias, self._w_t, d_len, self.cell.name == "relu", tp.h)
        elif self.cell.name == "gru":
            ks["gru_fwd"][grid, block](tp.xproj, tp.bias, b_hn, self._w_t, d_len, tp.h, tp.gates, tp.ghn)
        else:
            ks["lstm_fwd"][grid, block](tp.xproj, tp.bias, self._w_t, d_len, tp.h, tp.c, tp.gates)

    def _readout(self, output, d_len, T, B):
        """Top-layer states feeding the readout (N, H) and the outputs (N, O), on the device."""
        H, O = self.model.hidden_size, self.model.output_size
        top = self._tapes[-1].h
        if output == "all":
            hs = top[1:].reshape(T * B, H)
        else:
            hs = cuda.device_array((B, H), self.dtype)
            g, b = k.grid2(B, H)
            k.gather_last[g, b](top, d_len, hs)
        y = cuda.device_array((hs.shape[0], O), self.dtype)
        k.gemm(hs, self.params["readout.weight"], y, tb=True)
        g, b = k.grid2(y.shape[0], O)
        k.add_row[g, b](y, self.params["readout.bias"])
        return hs, y

    def _final_state(self, host):
        """Each layer's state after the last step (padded steps carry it): (L, B, H), or (h, c)."""
        L, (B, H) = self.model.num_layers, self._tapes[0].dh.shape
        out = []
        for name in ("h", "c") if self.cell.has_cell_state else ("h",):
            s = cuda.device_array((L, B, H), self.dtype)
            for layer, tp in enumerate(self._tapes):
                s[layer].copy_to_device(getattr(tp, name)[tp.T])
            out.append(s.copy_to_host() if host else s)
        return tuple(out) if self.cell.has_cell_state else out[0]

    def forward(self, x, lengths=None, state=None, output="all"):
        """As RNN.forward; outputs and final state come back to the host (for evaluation)."""
        v.choice("output", output, OUTPUTS)
        x, lengths, _ = self.model._check_inputs(x, lengths, None)
        T, B = x.shape[:2]
        h0, c0 = self._check_state(state, B)
        d_len = self._forward(x, lengths, h0, c0)
        _, y = self._readout(output, d_len, T, B)
        y = y.copy_to_host()
        return (y.reshape(T, B, -1) if output == "all" else y), self._final_state(host=True)

    # ------------------------------------------------------------------ loss and gradient
    def loss_and_grad(self, x, target, loss="mse", output="last", lengths=None, state=None,
                      bptt_truncate=None):
        """As RNN.loss_and_grad. The result's ``grad`` is the device vector self.grad_flat, its
        ``output`` None (use forward), its ``state`` device arrays (pass them back as ``state``)."""
        m, p, g = self.model, self.params, self.grads
        v.choice("loss", loss, ("mse", "ce"))
        v.choice("output", output, OUTPUTS)
        K = v.truncation(bptt_truncate)
        x, lengths, _ = m._check_inputs(x, lengths, None)
        T, B = x.shape[:2]
        H, O = m.hidden_size, m.output_size
        tgt = m._check_target(target, loss, output, T, B)
        h0, c0 = self._check_state(state, B)
        d_len = self._forward(x, lengths, h0, c0)
        hs, y = self._readout(output, d_len, T, B)
        valid = m._valid_rows(output, lengths, T, B)
        if loss == "ce":
            valid = valid & (tgt >= 0)
        count = int(valid.sum()) * (O if loss == "mse" else 1)
        if count == 0:
            raise ValueError("target: no position counts towards the loss (all masked)")
        N = y.shape[0]
        dy = cuda.device_array((N, O), self.dtype)
        row_loss = cuda.device_array(N, np.float64)
        gr, bl = _grid1(N)
        fn = k.mse_grad if loss == "mse" else k.softmax_ce_grad
        fn[gr, bl](y, cuda.to_device(tgt), cuda.to_device(valid), float(count), dy, row_loss)
        value = float(row_loss.copy_to_host().sum() / count)

        k.gemm(dy, hs, g["readout.weight"], ta=True)
        gr, bl = _grid1(O)
        k.column_sums[gr, bl](dy, g["readout.bias"])
        dh_rows = cuda.device_array((N, H), self.dtype)
        k.gemm(dy, p["readout.weight"], dh_rows)
        if output == "all":
            dh_top = dh_rows.reshape(T, B, H)
            origins = np.nonzero(valid.reshape(T, B).any(axis=1))[0]
        else:
            dh_top = cuda.device_array((T, B, H), self.dtype)
            _zero(dh_top)
            gg, bb = k.grid2(B, H)
            k.scatter_last[gg, bb](dh_rows, d_len, dh_top)
            origins = np.unique(lengths - 1)
        if K is None or K >= T - 1:  # one window holding every step: plain full BPTT
            self._backward_window(0, T - 1, dh_top, [(tp.dgi, tp.dgh, tp.dh_seq) for tp in self._tapes])
        else:
            self._backward_truncated(dh_top, origins, K)
        self._weight_grads(T, B)
        return StepResult(value, self.grad_flat, None, self._final_state(host=False))

    def _backward_window(self, s0, s1, dh_in, outs):
        """Reverse sweep over steps s1..s0 through every layer, top first. dh_in (W, B, H):
        gradient arriving at the top layer's states; outs[layer] = (dgi, dgh, dh_seq), window-
        relative (W, B, .)."""
        W, arr = s1 - s0 + 1, dh_in
        for layer in reversed(range(self.model.num_layers)):
            self._layer_window(layer, s0, s1, arr, outs[layer])
            if layer > 0:
                dgi = outs[layer][0]
                B, H = self._tapes[layer].dh.shape
                arr = cuda.device_array((W, B, H), self.dtype)
                k.gemm(dgi.reshape(W * B, dgi.shape[2]), self.params[f"weight_ih_l{layer}"], arr.reshape(W * B, H))

    def _layer_window(self, layer, s0, s1, arr, out, seeded=False):
        """One layer's reverse sweep over s1..s0 (the device twin of Cell.backward). Leaves
        dL/dh_{s0-1} (dL/dc_{s0-1}) in the tape's dh (dc); seeded: start from the carries
        already there instead of zero (Jacobians)."""
        tp = self._tapes[layer]
        if not seeded:
            _zero(tp.dh)
            _zero(tp.dc)
        sweep = self._sequence_backward if self.path == "sequence" else self._steps_backward
        sweep(tp, self.params[f"weight_hh_l{layer}"], s0, s1, arr, out)

    def _steps_backward(self, tp, w_hh, s0, s1, arr, out):
        """Two launches per step: the cell, then dh_{t-1} = direct part + dpre W_hh (GEMM)."""
        dgi, dgh, dhs = out
        B, H = tp.dh.shape
        grid, block, d_len = *k.grid2(B, H), self._lengths
        rec = dgh if self.cell.split_grad else dgi
        for t in range(s1, s0 - 1, -1):
            if self.cell.name in ("tanh", "relu"):
                k.elman_bwd[grid, block](tp.dh, arr, t, s0, d_len, self.cell.name == "relu", tp.h, dgi, dhs)
            elif self.cell.name == "gru":
                k.gru_bwd[grid, block](tp.dh, arr, t, s0, d_len, tp.h, tp.gates, tp.ghn, dgi, dgh, dhs)
            else:
                k.lstm_bwd[grid, block](tp.dh, tp.dc, arr, t, s0, d_len, tp.c, tp.gates, dgi, dhs)
            k.gemm(rec[t - s0], w_hh, tp.dh, beta=1.0)

    def _sequence_backward(self, tp, w_hh, s0, s1, arr, out):
        """The whole window in one launch (sequence.py)."""
        dgi, dgh, dhs = out
        B, H = tp.dh.shape
        ks, grid, block, d_len = seq.kernels(self.dtype), (B,), (seq.threads_for(H),), self._lengths
        if self.cell.name in ("tanh", "relu"):
            ks["elman_bwd"][grid, block](tp.dh, arr, s0, s1, d_len, self.cell.name == "relu", tp.h, w_hh, dgi, dhs)
        elif self.cell.name == "gru":
            ks["gru_bwd"][grid, block](tp.dh, arr, s0, s1, d_len, tp.h, tp.gates, tp.ghn, w_hh, dgi, dgh, dhs)
        else:
            ks["lstm_bwd"][grid, block](tp.dh, tp.dc, arr, s0, s1, d_len, tp.c, tp.gates, w_hh, dgi, dhs)

    def _backward_truncated(self, dh_top, origins, K):
        """Exact gradient of the truncated graph (as RNN._backward_truncated): one reverse
        window [t-K, t] per step t that carries a loss; window gradients are summed."""
        tapes, split = self._tapes, self.cell.split_grad
        B, H = tapes[0].dh.shape
        G = self.cell.gates * H
        for tp in tapes:
            _zero(tp.dgi)
            _zero(tp.dgh)
            _zero(tp.dh_seq)
        z = lambda *s: cuda.device_array(s, self.dtype)  # noqa: E731
        wins = []
        for _ in tapes:
            dgi = z(K + 1, B, G)
            wins.append((dgi, z(K + 1, B, G) if split else dgi, z(K + 1, B, H)))
        arr_full = z(K + 1, B, H)
        for s1 in origins:
            s0 = max(0, int(s1) - K)
            W = s1 - s0 + 1
            arr = arr_full[:W]
            _zero(arr)
            arr[W - 1].copy_to_device(dh_top[s1])
            outs = [(a[:W], b[:W], c[:W]) for a, b, c in wins]
            self._backward_window(s0, int(s1), arr, outs)
            for tp, (a, b, c) in zip(tapes, outs):
                _add_into(tp.dgi[s0:s1 + 1], a)
                if split:
                    _add_into(tp.dgh[s0:s1 + 1], b)
                _add_into(tp.dh_seq[s0:s1 + 1], c)

    def _weight_grads(self, T, B):
        """Weight and bias gradients from the summed pre-activation gradients."""
        m, g = self.model, self.grads
        H, G = m.hidden_size, self.cell.gates * m.hidden_size
        gr, bl = _grid1(G)
        for layer, tp in enumerate(self._tapes):
            dgi, dgh = tp.dgi.reshape(T * B, G), tp.dgh.reshape(T * B, G)
            if layer == 0 and m.tokens:
                _zero(g["weight_ih_l0"])
                gg, bb = k.grid2(T * B, G)
                k.scatter_columns[gg, bb](g["weight_ih_l0"], self._x, dgi)
            else:
                inp = self._x if layer == 0 else self._tapes[layer - 1].h[1:].reshape(T * B, H)
                k.gemm(dgi, inp, g[f"weight_ih_l{layer}"], ta=True)
            k.column_sums[gr, bl](dgi, g[f"bias_ih_l{layer}"])
            k.gemm(dgh, tp.h[:-1].reshape(T * B, H), g[f"weight_hh_l{layer}"], ta=True)
            k.column_sums[gr, bl](dgh, g[f"bias_hh_l{layer}"])

    # ------------------------------------------------------------------ inspection (fastrnn gradients)
    def hidden_grads(self):
        """dL/dh_t of every layer from the last backward pass: a list of host (T, B, H) arrays."""
        return [tp.dh_seq.copy_to_host() for tp in self._tapes]

    def tape_arrays(self):
        """Host copies of each layer's states and gates from the last forward pass."""
        return [SimpleNamespace(h=tp.h.copy_to_host(), c=tp.c.copy_to_host(), gates=tp.gates.copy_to_host())
                for tp in self._tapes]

    def step_jacobians(self, x_one):
        """As fastrnn.gradients.step_jacobians, from the device kernels: (T, S, S) on the host."""
        m, H = self.model, self.model.hidden_size
        S = 2 * H if self.cell.has_cell_state else H
        xs = np.repeat(x_one, S, axis=1)
        xs, lengths, _ = m._check_inputs(xs, None, None)
        self._forward(xs, lengths)
        T, G, top = xs.shape[0], self.cell.gates * H, self._tapes[-1]
        z = lambda *s: cuda.device_array(s, self.dtype)  # noqa: E731
        dh_in = z(1, S, H)
        _zero(dh_in)
        dgi = z(1, S, G)
        outs = [(dgi, z(1, S, G) if self.cell.split_grad else dgi, z(1, S, H))]
        seed_h = np.zeros((S, H), self.dtype)
        seed_h[:H] = np.eye(H)
        seed_c = np.zeros((S, H), self.dtype)
        if self.cell.has_cell_state:
            seed_c[H:] = np.eye(H)
        J = np.empty((T, S, S))
        for t in range(T):
            top.dh.copy_to_device(seed_h)
            top.dc.copy_to_device(seed_c)
            self._layer_window(m.num_layers - 1, t, t, dh_in, outs[0], seeded=True)
            J[t, :, :H] = top.dh.copy_to_host()
            if self.cell.has_cell_state:
                J[t, :, H:] = top.dc.copy_to_host()
        return J

    # ------------------------------------------------------------------ clipping and updates
    def clip(self, max_norm=None):
        """Global-norm clip of the device gradient; returns the norm before clipping (a host
        float: inf or NaN when the gradient is not finite)."""
        n = self.grad_flat.shape[0]
        gr, bl = _grid1(n)
        acc = cuda.device_array(1, np.float64)
        _zero(acc)
        k.sum_squares[gr, bl](self.grad_flat, acc)
        norm = float(np.sqrt(acc.copy_to_host()[0]))
        if max_norm is not None and np.isfinite(norm) and norm > max_norm:
            k.scale[gr, bl](self.grad_flat, max_norm / norm)
        return norm

    def clip_by_value(self, limit):
        gr, bl = _grid1(self.grad_flat.shape[0])
        k.clip_values[gr, bl](self.grad_flat, limit)

    def step(self, opt):
        """Apply one update of the CPU optimizer ``opt``'s kind and hyper-parameters on the
        device; its state lives here (self.opt_state) until :meth:`sync_optimizer`."""
        if not self.opt_state:
            self.opt_state = {s: cuda.to_device(opt.state[s]) for s in OPT_SLOTS[opt.name]}
        opt.t += 1
        p, g, st, n = self.flat, self.grad_flat, self.opt_state, self.flat.shape[0]
        gr, bl = _grid1(n)
        wd = opt.weight_decay
        if opt.name == "sgd":
            k.sgd_update[gr, bl](p, g, st["velocity"], opt.lr, opt.hyper.get("momentum", 0.0), wd)
        elif opt.name == "adam":
            k.adam_update[gr, bl](p, g, st["m"], st["v"], opt.lr, wd, 1 - 0.9 ** opt.t, 1 - 0.999 ** opt.t)
        elif opt.name == "rmsprop":
            k.rmsprop_update[gr, bl](p, g, st["v"], opt.lr, wd, opt.hyper.get("alpha", 0.9))
        else:
            k.adagrad_update[gr, bl](p, g, st["sum"], opt.lr, wd)

    def sync_optimizer(self, opt):
        """Copy the device optimizer state into the CPU optimizer (for checkpoints)."""
        for s, d in self.opt_state.items():
            d.copy_to_host(opt.state[s])
