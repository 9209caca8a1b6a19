"""An RNN's parameters, gradients, optimizer state and activations on the GPU.

``CudaRNN(model)`` mirrors a CPU :class:`fastrnn.RNN` (same names, layout and math): one flat
device vector of parameters with views per tensor, likewise for gradients. Per step only the
loss value and the gradient norm cross to the host. Supported here: full BPTT (no
``bptt_truncate`` yet), zero initial states, dense or token inputs, variable lengths, MSE and
cross-entropy at every step or the last one.
"""
import numpy as np
from numba import cuda

from . import kernels as k

OPT_SLOTS = {"sgd": ("velocity",), "adam": ("m", "v"), "rmsprop": ("v",), "adagrad": ("sum",)}


def _zero(a):
    """Zero a contiguous device array in place, on the device."""
    flat = a.reshape(a.size)
    gr, bl = _grid1(flat.shape[0])
    k.fill_zero[gr, bl](flat)


def _grid1(n):
    block = min(256, max(32, 1 << (max(n, 1) - 1).bit_length()))
    return ((n + block - 1) // block,), (block,)


class CudaRNN:
    def __init__(self, model):
        self.model = model
        self.cell = model.cell
        self.dtype = model.dtype
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

    # ------------------------------------------------------------------ forward
    def _tape(self, T, B):
        if self._tapes is None or self._tapes[0]["T"] != T or self._tapes[0]["B"] != B:
            H, G, dt = self.model.hidden_size, self.cell.gates * self.model.hidden_size, self.dtype
            z = lambda *s: cuda.to_device(np.zeros(s, dt))  # noqa: E731
            self._tapes = [dict(T=T, B=B, xproj=z(T, B, G), h=z(T + 1, B, H), c=z(T + 1, B, H), gates=z(T, B, G),
                                ghn=z(T, B, H), gh=z(B, G), dgi=z(T, B, G), dgh=z(T, B, G), dh_seq=z(T, B, H),
                                dh=z(B, H), dc=z(B, H)) for _ in range(self.model.num_layers)]
        return self._tapes

    def _forward(self, x, lengths):
        m, p = self.model, self.params
        T, B = x.shape[:2]
        H = m.hidden_size
        tapes = self._tape(T, B)
        d_len = cuda.to_device(lengths)
        inp = None
        for layer, tp in enumerate(tapes):
            G = self.cell.gates * H
            x2 = tp["xproj"].reshape(T * B, G)
            if layer == 0 and m.tokens:
                ids = cuda.to_device(np.ascontiguousarray(x.reshape(-1)))
                g, b = k.grid2(T * B, G)
                k.gather_columns[g, b](p["weight_ih_l0"], ids, x2)
            else:
                src = cuda.to_device(np.ascontiguousarray(x.reshape(T * B, -1))) if layer == 0 else inp
                k.gemm(src, p[f"weight_ih_l{layer}"], x2, tb=True)
            if "bias" not in tp:
                tp["bias"] = cuda.device_array(G, self.dtype)
            gr, bl = _grid1(G)
            k.combine_bias[gr, bl](p[f"bias_ih_l{layer}"], p[f"bias_hh_l{layer}"],
                                   2 * H if self.cell.name == "gru" else G, tp["bias"])
            tp["b_hn"] = p[f"bias_hh_l{layer}"][2 * H:]
            w_hh = p[f"weight_hh_l{layer}"]
            _zero(tp["h"][0])
            _zero(tp["c"][0])
            grid, block = k.grid2(B, H)
            for t in range(T):
                k.gemm(tp["h"][t], w_hh, tp["gh"], tb=True)
                if self.cell.name in ("tanh", "relu"):
                    k.elman_fwd[grid, block](tp["gh"], tp["xproj"], tp["bias"], d_len, t, self.cell.name == "relu", tp["h"])
                elif self.cell.name == "gru":
                    k.gru_fwd[grid, block](tp["gh"], tp["xproj"], tp["bias"], tp["b_hn"], d_len, t, tp["h"],
                                           tp["gates"], tp["ghn"])
                else:
                    k.lstm_fwd[grid, block](tp["gh"], tp["xproj"], tp["bias"], d_len, t, tp["h"], tp["c"], tp["gates"])
            inp = tp["h"][1:].reshape(T * B, H)
        return tapes, d_len

    def _readout(self, output, d_len, T, B):
        H, O = self.model.hidden_size, self.model.output_size
        top = self._tapes[-1]["h"]
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

    def forward(self, x, lengths=None, state=None, output="all"):
        """Outputs on the host, as RNN.forward (zero initial state only); for evaluation."""
        if state is not None:
            raise ValueError("state: initial states are not supported on the cuda device yet")
        x, lengths, _ = self.model._check_inputs(x, lengths, None)
        T, B = x.shape[:2]
        _, d_len = self._forward(x, lengths)
        _, y = self._readout(output, d_len, T, B)
        y = y.copy_to_host()
        return (y.reshape(T, B, -1) if output == "all" else y), None

    # ------------------------------------------------------------------ loss and gradient
    def loss_and_grad(self, x, target, loss="mse", output="last", lengths=None):
        """Mean loss (a host float); the gradient stays on the device in self.grad_flat."""
        m, p, g = self.model, self.params, self.grads
        x, lengths, _ = m._check_inputs(x, lengths, None)
        T, B = x.shape[:2]
        H, O = m.hidden_size, m.output_size
        tgt = m._check_target(target, loss, output, T, B)
        tapes, d_len = self._forward(x, lengths)
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
            arr = dh_rows.reshape(T, B, H)
        else:
            arr = cuda.device_array((T, B, H), self.dtype)
            _zero(arr)
            gg, bb = k.grid2(B, H)
            k.scatter_last[gg, bb](dh_rows, d_len, arr)

        grid, block = k.grid2(B, H)
        for layer in reversed(range(m.num_layers)):
            tp = tapes[layer]
            w_hh = p[f"weight_hh_l{layer}"]
            _zero(tp["dh"])
            _zero(tp["dc"])
            rec = tp["dgh"] if self.cell.split_grad else tp["dgi"]
            for t in range(T - 1, -1, -1):
                if self.cell.name in ("tanh", "relu"):
                    k.elman_bwd[grid, block](tp["dh"], arr, t, d_len, self.cell.name == "relu", tp["h"], tp["dgi"],
                                             tp["dh_seq"])
                elif self.cell.name == "gru":
                    k.gru_bwd[grid, block](tp["dh"], arr, t, d_len, tp["h"], tp["gates"], tp["ghn"], tp["dgi"],
                                           tp["dgh"], tp["dh_seq"])
                else:
                    k.lstm_bwd[grid, block](tp["dh"], tp["dc"], arr, t, d_len, tp["c"], tp["gates"], tp["dgi"],
                                            tp["dh_seq"])
                k.gemm(rec[t], w_hh, tp["dh"], beta=1.0)  # dh_{t-1} = direct part + dpre W_hh
            G = self.cell.gates * H
            dgi, dgh = tp["dgi"].reshape(T * B, G), rec.reshape(T * B, G)
            if layer == 0 and m.tokens:
                _zero(g["weight_ih_l0"])
                ids = cuda.to_device(np.ascontiguousarray(x.reshape(-1)))
                gg, bb = k.grid2(T * B, G)
                k.scatter_columns[gg, bb](g["weight_ih_l0"], ids, dgi)
            else:
                inp = (cuda.to_device(np.ascontiguousarray(x.reshape(T * B, -1))) if layer == 0
                       else tapes[layer - 1]["h"][1:].reshape(T * B, H))
                k.gemm(dgi, inp, g[f"weight_ih_l{layer}"], ta=True)
            gr, bl = _grid1(G)
            k.column_sums[gr, bl](dgi, g[f"bias_ih_l{layer}"])
            k.gemm(dgh, tp["h"][:-1].reshape(T * B, H), g[f"weight_hh_l{layer}"], ta=True)
            k.column_sums[gr, bl](dgh, g[f"bias_hh_l{layer}"])
            if layer > 0:
                arr = cuda.device_array((T, B, H), self.dtype)
                k.gemm(dgi, p[f"weight_ih_l{layer}"], arr.reshape(T * B, H))
        return value

    # ------------------------------------------------------------------ clipping and updates
    def clip(self, max_norm=None, value=None):
        """Global-norm clip of the device gradient (then element-wise, if value); returns the
        norm before clipping (a host float: inf or NaN when the gradient is not finite)."""
        n = self.grad_flat.shape[0]
        gr, bl = _grid1(n)
        acc = cuda.device_array(1, np.float64)
        _zero(acc)
        k.sum_squares[gr, bl](self.grad_flat, acc)
        norm = float(np.sqrt(acc.copy_to_host()[0]))
        if max_norm is not None and np.isfinite(norm) and norm > max_norm:
            k.scale[gr, bl](self.grad_flat, max_norm / norm)
        if value is not None:
            k.clip_values[gr, bl](self.grad_flat, value)
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
