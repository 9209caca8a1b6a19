"""The fastrnn model: ``num_layers`` stacked recurrent layers and a linear readout.

Parameter names and shapes are PyTorch's, so weights convert one-to-one:
    weight_ih_l{k} (G*H, I or D*H)   weight_hh_l{k} (G*H, H)   bias_ih_l{k}, bias_hh_l{k} (G*H,)
    readout.weight (O, D*H)          readout.bias (O,)
with G = 1 (tanh, relu), 3 (gru: r,z,n), 4 (lstm: i,f,g,o), and weight_hh_l{k} a vector (G*H,)
for a cell with a diagonal recurrence (each cell declares its shapes: fastrnn/cells/base.py); a bidirectional model (D = 2)
has the same four again per layer for the reverse direction, named ``..._l{k}_reverse``. All parameters live in one flat
vector (``model.flat``) and are exposed as views (``model.params``); gradients likewise
(``grad`` returned by :meth:`RNN.loss_and_grad`), so optimizers and clipping work on one array.

This class owns everything but the arithmetic: validation, the tape, the layer loop, the
readout, the losses' bookkeeping, truncation windows and the weight-gradient assembly. The
arithmetic is a backend's (``fastrnn/cpu/``: Numba kernels, threads, BLAS; or
``fastrnn/cuda/backend.py``), chosen once, at construction (``device=``) or by
:meth:`RNN.to`; parameters, gradients and activations live in the backend's memory.

Shapes: x (T, B, I) floats or (T, B) token ids; state (L, B, H) (LSTM: a pair h, c);
outputs (T, B, O) at every step or (B, O) at each sequence's last step.

Bidirectional layers (PyTorch's bidirectional=True): the reverse direction reads each
sequence backwards from its own last step; a layer's output at step t is [forward h_t,
reverse h_t] (T, B, 2H). The readout at every step reads that; at each sequence's end it reads
both directions' final states (PyTorch's h_n: the forward state after the last step, the
reverse state after reading back to the first). Final states are (2L, B, H), layer-major as in
PyTorch. Initial states and truncated BPTT are not defined for it (a clear error).
"""
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from . import memory
from . import validate as v
from .cells import get_cell
from .choices import DEVICES, LOSSES, OUTPUTS
from .layer import LayerTape, reverse_steps


@dataclass
class StepResult:
    loss: float  # mean loss
    grad: object  # flat gradient, same layout as model.flat (model.grad_flat, on the model's device)
    output: object  # readout outputs (T, B, O) or (B, O), on the model's device
    state: object  # final state: (L, B, H) array, or (h, c) for LSTM, on the model's device


def make_backend(device, path=None):
    """The backend object for a device name ('cpu' or 'cuda'); one clear error if unusable."""
    v.choice("device", device, DEVICES)
    if device == "cpu":
        from .cpu import CPU

        return CPU  # stateless but for its kernel lookups: one serves every model
    from .cuda.backend import CudaBackend  # imported only here: a CPU run never loads numba-cuda

    return CudaBackend(path)


class RNN:
    """A recurrent network: ``cell`` layers of ``hidden_size`` units and a linear readout.

    cell          a name in fastrnn.cells.CELLS: 'tanh', 'relu', 'gru', 'lstm', ...
    input_size    I, features per step (the vocabulary size when ``tokens`` is true)
    hidden_size   H
    output_size   O (classes for the cross-entropy loss)
    num_layers    L
    tokens        inputs are integer ids (T, B); W_ih's columns are gathered, no one-hot is made
    dtype         'float32' or 'float64'
    init          'pytorch' (U(-1/sqrt(H), 1/sqrt(H))), 'xavier', 'orthogonal' or 'irnn', or another
                  a cell defines: its declaration says which it accepts (``cell.inits``); None:
                  'pytorch', or the cell's own default where it has no such init (exprnn)
    forget_bias   LSTM forget-gate bias (put in bias_ih, bias_hh's block left 0); None keeps init's
    spectral_radius  scale each recurrent gate block to this spectral radius (None: leave)
    chrono_tmax   init 'chrono' (lstm, gru): T_max, the longest dependency in steps; the gate
                  biases' timescales are drawn to span [1, T_max] (forget_bias then does not apply)
    seed          seeds the initialization
    device        'cpu' or 'cuda' (see :meth:`to`)
    dropout       p: inverted dropout on the outputs of every layer but the last, in training
                  only (PyTorch's dropout=): :meth:`dropout_masks` draws the masks, which
                  :meth:`loss_and_grad` takes; forward and evaluation never drop
    bidirectional a forward and a reverse direction per layer (see the module docstring)
    """

    def __init__(self, cell, input_size, hidden_size, output_size, num_layers=1, *,
                 tokens=False, dtype="float32", init=None, forget_bias=1.0,
                 spectral_radius=None, seed=0, device="cpu", dropout=0.0, bidirectional=False,
                 chrono_tmax=None):
        self.cell = get_cell(cell)
        self.input_size = v.positive_int("input_size", input_size)
        self.hidden_size = v.positive_int("hidden_size", hidden_size)
        self.output_size = v.positive_int("output_size", output_size)
        self.num_layers = v.positive_int("num_layers", num_layers)
        self.tokens = bool(tokens)
        self.dtype = v.float_dtype("dtype", dtype)
        self.dropout = v.number_in("dropout", dropout, 0, 1)
        self.bidirectional = v.flag("bidirectional", bidirectional)
        self.directions = 2 if self.bidirectional else 1
        if init is None:  # PyTorch's, as torch.nn's modules start; a cell without it: its own default
            init = "pytorch" if "pytorch" in self.cell.inits else self.cell.default_init
        self.cell.check_init(init)
        if spectral_radius is not None:
            v.positive_number("spectral_radius", spectral_radius)
        if forget_bias is not None:
            v.finite_number("forget_bias", forget_bias)
        if chrono_tmax is not None and init != "chrono":
            raise ValueError(f"chrono_tmax: sets the chrono init's T_max; init is {init!r}")
        backend = make_backend(device)

        H, D = self.hidden_size, self.directions
        shapes = []
        for k in range(self.num_layers):
            I = self.input_size if k == 0 else D * H
            for sfx in self._suffixes():
                shapes += [(f"{name}_l{k}{sfx}", shape) for name, shape in self.cell.param_shapes(I, H).items()]
        shapes += [("readout.weight", (self.output_size, D * H)), ("readout.bias", (self.output_size,))]
        self.shapes = dict(shapes)
        size = sum(int(np.prod(s)) for s in self.shapes.values())
        memory.require(2 * size * self.dtype.itemsize, f"model ({size:,} parameters and their gradient)")
        backend.check_model(self)

        host = np.zeros(size, dtype=self.dtype)
        p = self._views(host)
        rng = np.random.default_rng(seed)
        for k in range(self.num_layers):
            I = self.input_size if k == 0 else D * H
            for sfx in self._suffixes():
                for name, val in self.cell.init_layer(rng, init, I, H, forget_bias, spectral_radius,
                                                         chrono_tmax).items():
                    p[f"{name}_l{k}{sfx}"][...] = val
        k = 1.0 / np.sqrt(D * H)
        p["readout.weight"][...] = rng.uniform(-k, k, (self.output_size, D * H))
        p["readout.bias"][...] = rng.uniform(-k, k, self.output_size)
        self._install(backend, host)

    # ----------------------------------------------------------------- parameters and device
    def _suffixes(self):
        """Parameter-name suffixes of each direction: '' (forward) and '_reverse'."""
        return ("", "_reverse") if self.bidirectional else ("",)

    def _directions(self, k):
        """Layer k's (tape, name suffix, reversed) per direction, forward first."""
        out = [(self._tapes[k], "", False)]
        if self.bidirectional:
            out.append((self._rtapes[k], "_reverse", True))
        return out

    def _views(self, flat):
        out, at = {}, 0
        for name, shape in self.shapes.items():
            n = int(np.prod(shape))
            out[name] = flat[at:at + n].reshape(shape)
            at += n
        return out

    def _install(self, backend, host_flat):
        """Put the parameters (a host vector) and a gradient vector in ``backend``'s memory."""
        self.backend = backend
        self.flat = backend.from_host(host_flat)
        self.grad_flat = backend.zeros((self.flat.shape[0],), self.dtype)
        self.params = self._views(self.flat)
        self.grads = self._views(self.grad_flat)
        self._tapes = None

    @property
    def device(self):
        return self.backend.name

    def to(self, device, path=None):
        """Move parameters and all later work to ``device`` ('cpu' or 'cuda'); returns self.
        path (cuda): 'sequence', 'steps' or 'auto' (None: FASTRNN_CUDA_PATH), see fastrnn.cuda."""
        backend = make_backend(device, path)
        backend.check_model(self)
        self._install(backend, self.numpy_flat())
        return self

    def copy(self, device=None, path=None, dtype=None):
        """A new model of this one's structure and parameters, on ``device`` (None: this one's),
        in ``dtype`` (None: this one's; float32 -> float64 is exact)."""
        new = RNN(**dict(self.config(), dtype=dtype or self.dtype.name))
        new.load_flat(self.numpy_flat().astype(new.dtype))
        return new if (device or self.device) == "cpu" else new.to(device or self.device, path)

    def numpy_flat(self):
        """The parameters as a host NumPy array (on the CPU: ``flat`` itself, no copy)."""
        return self.backend.to_host(self.flat)

    def load_flat(self, values):
        """Set every parameter from a host vector of ``flat``'s size."""
        values = np.asarray(values)
        if values.shape != (self.flat.shape[0],):
            raise ValueError(f"values: expected shape ({self.flat.shape[0]},); got {values.shape}")
        self.backend.copy_into(self.flat, values.astype(self.dtype, copy=False))

    def numpy_params(self):
        """Parameters by name as host NumPy arrays (views of :meth:`numpy_flat`)."""
        return self._views(self.numpy_flat())

    def config(self):
        """The JSON-able facts needed to rebuild this model's structure."""
        return dict(cell=self.cell.name, input_size=self.input_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, num_layers=self.num_layers, tokens=self.tokens,
                    dtype=self.dtype.name, dropout=self.dropout, bidirectional=self.bidirectional)

    @property
    def num_parameters(self):
        return int(self.flat.shape[0])

    def to_torch_state_dict(self):
        """The recurrent weights under torch.nn.RNN/GRU/LSTM key names, as NumPy arrays
        (``torch.from_numpy`` each to load them). The readout is in :meth:`readout_state_dict`."""
        return {k: a.copy() for k, a in self.numpy_params().items() if not k.startswith("readout.")}

    def readout_state_dict(self):
        """The readout as a torch.nn.Linear state dict (NumPy arrays)."""
        p = self.numpy_params()
        return {"weight": p["readout.weight"].copy(), "bias": p["readout.bias"].copy()}

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
        host = self.numpy_flat().copy()
        p = self._views(host)
        for k, a in loaded:
            p[k][...] = a
        self.load_flat(host)

    # ----------------------------------------------------------------- checks
    def check_inputs(self, x, lengths=None):
        """Validated host (x, lengths): x (T, B, I) of the model's dtype or (T, B) int64 ids,
        lengths (B,) int64 in [1, T] (all T for None). One ValueError naming the argument."""
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
        return x, lengths

    def _check_state(self, state, B):
        """(h0, c0) in the backend's memory for B sequences, or (None, None) for zeros; c0 is
        None except for a cell with a cell state. Host arrays are validated and copied over;
        the backend's own arrays (a state this model returned) are checked for shape and dtype."""
        if state is None:
            return None, None
        if self.bidirectional:
            raise ValueError("state: an initial state is not defined for a bidirectional model (its reverse "
                             "direction starts at each sequence's end); pass None")
        L, H, pair = self.num_layers, self.hidden_size, self.cell.has_cell_state
        if pair and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise ValueError(f"state: expected a pair (h, c) of arrays (L, B, H) for the {self.cell.name} cell")
        parts = tuple(state) if pair else (state,)
        names = ("state[0]", "state[1]") if pair else ("state",)
        out = []
        for name, a in zip(names, parts):
            if self.backend.is_native(a) and not isinstance(a, np.ndarray):  # already on the device
                if tuple(a.shape) != (L, B, H) or np.dtype(a.dtype) != self.dtype:
                    raise ValueError(f"{name}: expected ({L}, {B}, {H}) of {self.dtype}; "
                                     f"got {tuple(a.shape)} of {a.dtype}")
                out.append(a)
            else:
                out.append(self.backend.from_host(v.array(name, a, (L, B, H), "f", self.dtype)))
        return out[0], (out[1] if pair else None)

    def check_target(self, target, loss, output, T, B):
        """Validated host target, flattened to rows: (N, O) floats (mse) or (N,) ids (ce)."""
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

    @staticmethod
    def loss_rows(loss, output, target, lengths, T, B):
        """Which readout rows carry a loss, (N,) bool: steps before each length (output
        'all') or every sequence ('last'), less cross-entropy targets of -1. The one rule that
        the losses, the truncation windows and the finite-difference check all use."""
        if output == "all":
            valid = (np.arange(T)[:, None] < lengths[None, :]).reshape(-1)
        else:
            valid = np.ones(B, dtype=bool)
        if loss == "ce":
            valid = valid & (target >= 0)
        return valid

    @staticmethod
    def loss_steps(output, valid, lengths, T, B):
        """The steps t whose states feed a loss row, ascending: one truncation window each."""
        step_of_row = np.repeat(np.arange(T), B) if output == "all" else lengths - 1
        return np.unique(step_of_row[valid])

    def dropout_masks(self, rng, T, B):
        """Masks for one training batch: L - 1 host arrays (T, B, D*H) of 0 (dropped, with
        probability ``dropout``) or 1 / (1 - dropout), one per layer output that feeds another
        layer; None when nothing drops (dropout 0 or one layer). Drawn from ``rng`` (a training
        run's own generator, so a resumed run draws the same masks)."""
        if self.dropout == 0 or self.num_layers == 1:
            return None
        keep = 1.0 - self.dropout
        H = self.directions * self.hidden_size
        return [(rng.random((T, B, H)) < keep).astype(self.dtype) / self.dtype.type(keep)
                for _ in range(self.num_layers - 1)]

    def _check_masks(self, masks, T, B):
        """Dropout masks on the backend, validated: None, or L - 1 arrays (T, B, D*H)."""
        if masks is None:
            return None
        if not isinstance(masks, (list, tuple)) or len(masks) != self.num_layers - 1:
            raise ValueError(f"masks: expected a list of {self.num_layers - 1} arrays (T, B, D*H), one per "
                             f"layer output that feeds another layer")
        H = self.directions * self.hidden_size
        return [self.backend.from_host(v.array(f"masks[{k}]", m, (T, B, H), "f", self.dtype))
                for k, m in enumerate(masks)]

    # ----------------------------------------------------------------- forward
    def _tapes_for(self, T, B):
        if self._tapes is None or self._tapes[0].T != T or self._tapes[0].B != B:
            self._tapes = self._rtapes = None  # the old tapes' memory is free for the new ones
            need = self.directions * memory.tape_bytes(self.cell.name, T, B, self.hidden_size, self.num_layers,
                                                       self.dtype.itemsize)
            if self.backend.name == "cpu":  # and the weight gradients' workspace, kept between steps
                need += memory.weight_grad_bytes(self.cell.name, 0 if self.tokens else self.input_size,
                                                 self.hidden_size, self.directions, self.dtype.itemsize)
            memory.require(need, f"activations for T = {T}, B = {B}")
            zeros = self.backend.zeros_fn(self.dtype)
            self._tapes = [LayerTape(self.cell, T, B, self.hidden_size, zeros) for _ in range(self.num_layers)]
            if self.bidirectional:
                self._rtapes = [LayerTape(self.cell, T, B, self.hidden_size, zeros) for _ in range(self.num_layers)]
        return self._tapes

    def _run(self, x, lengths, h0, c0, masks=None):
        """All layers over validated host inputs (lengths may hold 0: a sequence already over,
        its state carried); h0, c0 in the backend's memory or None for zeros; masks: dropout
        masks on the backend (None: no dropout). The tapes keep what backward needs, and
        ``_inputs`` what each layer's directions read (dropped, reversed). Returns (x, lengths)
        in the backend's memory."""
        be, p, H = self.backend, self.params, self.hidden_size
        T, B = x.shape[:2]
        self._tapes_for(T, B)
        d_x, d_len = be.from_host(x), be.from_host(lengths)
        # each layer's input as each direction reads it: (forward order, reversed or None)
        inputs = (d_x, be.from_host(reverse_steps(x, lengths)) if self.bidirectional else None)
        self._masks, self._inputs = masks, []
        for k in range(self.num_layers):
            self._inputs.append(inputs)
            for tape, sfx, rev in self._directions(k):
                inp = inputs[rev]
                G = tape.xproj.shape[2]
                xp = tape.xproj.reshape(T * B, G)
                if k == 0 and self.tokens:
                    be.gather_columns(p[f"weight_ih_l0{sfx}"], inp.reshape(T * B), xp)
                else:
                    be.matmul_nt(inp.reshape(T * B, inp.shape[2]), p[f"weight_ih_l{k}{sfx}"], xp)
                extra = {name: p[f"{name}_l{k}{sfx}"] for name in self.cell.extra_params}
                be.prepare_layer(self.cell, tape, p[f"weight_hh_l{k}{sfx}"], p[f"bias_ih_l{k}{sfx}"],
                                 p[f"bias_hh_l{k}{sfx}"], extra)
                self._set_initial(tape.h, h0, k)
                if self.cell.has_cell_state:
                    self._set_initial(tape.c, c0, k)
                be.layer_forward(self.cell, tape, d_len)
            out = self._tapes[k].h[1:]
            if self.bidirectional:  # [forward h_t, reverse h_t] at every step t
                out = be.empty((T, B, 2 * H), self.dtype)
                be.put_steps(self._tapes[k].h[1:], d_len, out, 0, False)
                be.put_steps(self._rtapes[k].h[1:], d_len, out, H, True)
            self._top = out
            if masks is not None and k < len(masks):
                dropped = be.empty(out.shape, self.dtype)
                be.multiply(out, masks[k], dropped)
                out = dropped
            rev = None
            if self.bidirectional and k + 1 < self.num_layers:
                rev = be.empty(out.shape, self.dtype)
                be.take_steps(out, d_len, rev, 0, True)
            inputs = (out, rev)
        return d_x, d_len

    def _set_initial(self, buf, s0, k):
        """buf[0] = layer k's initial state from s0 (L, B, H), or zeros for None."""
        if s0 is None:
            self.backend.zero(buf[0])
        else:
            self.backend.copy_into(buf[0], s0[k])

    def _readout(self, output, d_len):
        """Top-layer states that feed the readout (N, D*H) and the outputs (N, O), on the device."""
        be, top = self.backend, self._top
        T, B, F = top.shape
        if output == "all":
            hs = top.reshape(T * B, F)
        elif not self.bidirectional:
            hs = be.gather_last(self._tapes[-1].h, d_len)  # h[len_b] = state after the last real step
        else:  # both directions' final states: each tape's h[len_b], in its own step order
            hs = be.empty((1, B, F), self.dtype)
            for tape, _, rev in self._directions(self.num_layers - 1):
                last = be.gather_last(tape.h, d_len)
                be.put_steps(last.reshape(1, B, F // 2), d_len, hs, rev * (F // 2), False)
            hs = hs.reshape(B, F)
        y = be.empty((hs.shape[0], self.output_size), self.dtype)
        be.matmul_nt(hs, self.params["readout.weight"], y)
        be.add_row(y, self.params["readout.bias"])
        return hs, y

    def _final_state(self):
        """Each layer's state after the last step (padded steps carry it): (L, B, H), or (h, c);
        bidirectional: (2L, B, H), each layer's forward then reverse direction (PyTorch's h_n)."""
        be = self.backend
        tapes = [t for k in range(self.num_layers) for t, _, _ in self._directions(k)]
        h = be.stack([t.h[t.T] for t in tapes], self.dtype)
        if self.cell.has_cell_state:
            return h, be.stack([t.c[t.T] for t in tapes], self.dtype)
        return h

    def forward(self, x, lengths=None, state=None, output="all"):
        """Outputs and final state.

        x (T, B, I) floats or (T, B) token ids; lengths (B,) ints in [1, T] (None: all T);
        state: initial state (L, B, H), or (h, c) for LSTM (None: zeros).
        Returns (y, final_state): y, a host array, (T, B, O) for output='all', (B, O) for
        'last' (each sequence's step lengths[b]-1). The final state (in the model's device
        memory) is each sequence's state after its last real step, so long streams can be
        fed in chunks.
        """
        v.choice("output", output, OUTPUTS)
        x, lengths = self.check_inputs(x, lengths)
        h0, c0 = self._check_state(state, x.shape[1])
        _, d_len = self._run(x, lengths, h0, c0)
        _, y = self._readout(output, d_len)
        y = self.backend.to_host(y)
        if output == "all":
            y = y.reshape(x.shape[0], x.shape[1], -1)
        return y, self._final_state()

    def readout_after(self, x, lengths, state, masks=None):
        """Outputs (B, O) on the host after running x (T, B, ...) from ``state`` (host arrays,
        (L, B, H) or a pair), where lengths (B,) may hold 0 (a sequence already over: its state
        carried): the state after the window's last step, read out (masks: this window's
        dropout masks). The building block of the truncated-BPTT check (fastrnn.finitediff)."""
        x, _ = self.check_inputs(x)
        lengths = np.asarray(lengths, np.int64)
        h0, c0 = self._check_state(state, x.shape[1])
        self._run(x, lengths, h0, c0, self._check_masks(masks, *x.shape[:2]))
        return self.backend.to_host(self._readout("last", self.backend.from_host(np.full_like(lengths, x.shape[0])))[1])

    def loss(self, x, target, loss="mse", output="last", lengths=None, masks=None):
        """The mean loss alone (no backward pass), computed as :meth:`loss_and_grad` does."""
        x, target, lengths = self._check_batch(x, target, loss, output, lengths)
        _, d_len = self._run(x, lengths, None, None, self._check_masks(masks, *x.shape[:2]))
        _, y = self._readout(output, d_len)
        T, B = x.shape[:2]
        return self.backend.loss(loss, y, target, self.loss_rows(loss, output, target, lengths, T, B))[0]

    def _check_batch(self, x, target, loss, output, lengths):
        """Validated host (x, target rows, lengths) for a loss; one ValueError naming the argument."""
        v.choice("loss", loss, LOSSES)
        v.choice("output", output, OUTPUTS)
        x, lengths = self.check_inputs(x, lengths)
        return x, self.check_target(target, loss, output, *x.shape[:2]), lengths

    # ----------------------------------------------------------------- loss and gradient
    def loss_and_grad(self, x, target, loss="mse", output="last", lengths=None, state=None,
                      bptt_truncate=None, masks=None):
        """Mean loss and its exact gradient with respect to every parameter.

        loss 'mse': target (B, O) for output='last', (T, B, O) for 'all' (steps past a
        sequence's length are ignored). loss 'ce' (softmax cross-entropy): target (B,) class
        ids for 'last', (T, B) for 'all' with -1 marking ignored positions.
        bptt_truncate K: the gradient of each step's loss flows back at most K steps (through
        the cells at steps t, t-1, ..., t-K; states before are constants). None: full BPTT.
        masks: dropout masks from :meth:`dropout_masks` (None: nothing dropped).
        Returns a StepResult; ``grad`` is ``model.grad_flat``, overwritten next call.
        """
        K = v.truncation(bptt_truncate)
        if K is not None and self.bidirectional:
            raise ValueError("bptt_truncate: truncated BPTT is not defined for a bidirectional model "
                             "(its reverse direction reads every step); leave it out")
        x, target, lengths = self._check_batch(x, target, loss, output, lengths)
        T, B = x.shape[:2]
        h0, c0 = self._check_state(state, B)
        d_x, d_len = self._run(x, lengths, h0, c0, self._check_masks(masks, T, B))
        hs, y = self._readout(output, d_len)
        valid = self.loss_rows(loss, output, target, lengths, T, B)
        value, dy = self.backend.loss(loss, y, target, valid)
        dh_top = self._readout_backward(dy, hs, output, d_len, T, B)
        if self.cell.layer_norm:  # the kernels add each sequence's share into dnorm, window by window
            for k in range(self.num_layers):
                for t, _, _ in self._directions(k):
                    self.backend.zero(t.dnorm)
        if K is None or K >= T - 1:  # one window holding every step: plain full BPTT
            self._zero_carries()
            outs = [[(t.dgi, t.dgh, t.dh_seq) for t, _, _ in self._directions(k)] for k in range(self.num_layers)]
            self._backward_window(0, T - 1, dh_top, d_len, outs)
        else:
            self._backward_truncated(dh_top[0], d_len, self.loss_steps(output, valid, lengths, T, B), K)
        self._weight_grads(d_x, T, B)
        if output == "all":
            y = y.reshape(T, B, -1)
        return StepResult(value, self.grad_flat, y, self._final_state())

    def _readout_backward(self, dy, hs, output, d_len, T, B):
        """The readout's gradients, and dL/dh of the top layer's states: a list of (T, B, H),
        one per direction, each in its direction's own step order."""
        be, p, g, H = self.backend, self.params, self.grads, self.hidden_size
        F = self.directions * H
        be.matmul_tn(dy, hs, g["readout.weight"], sums=g["readout.bias"])
        dh_rows = be.empty((dy.shape[0], F), self.dtype)
        be.matmul(dy, p["readout.weight"], dh_rows)
        if not self.bidirectional:
            if output == "all":
                return [dh_rows.reshape(T, B, H)]
            dh_top = be.zeros((T, B, H), self.dtype)
            be.scatter_last(dh_rows, d_len, dh_top)
            return [dh_top]
        out = []
        for rev in (False, True):
            if output == "all":  # the reverse half of step t is the reverse tape's step len-1-t
                dh = be.empty((T, B, H), self.dtype)
                be.take_steps(dh_rows.reshape(T, B, F), d_len, dh, rev * H, rev)
            else:  # each direction's final state is its tape's state after its own last step
                part = be.empty((1, B, H), self.dtype)
                be.take_steps(dh_rows.reshape(1, B, F), d_len, part, rev * H, False)
                dh = be.zeros((T, B, H), self.dtype)
                be.scatter_last(part.reshape(B, H), d_len, dh)
            out.append(dh)
        return out

    def _zero_carries(self):
        for k in range(self.num_layers):
            for t, _, _ in self._directions(k):
                self.backend.zero(t.dh)
                self.backend.zero(t.dc)

    def _backward_window(self, s0, s1, dh_in, d_len, outs):
        """Reverse sweep over steps s1..s0 through every layer, top first. dh_in: per direction,
        (W, B, H), the gradient arriving at the top layer's states; outs[layer][direction] =
        (dgi, dgh, dh_seq), window-relative (W, B, .). Each layer's carries must be zero (or
        seeded) on entry. (Bidirectional models only ever sweep the whole sequence.)"""
        be, W, arrs, H = self.backend, s1 - s0 + 1, dh_in, self.hidden_size
        for k in reversed(range(self.num_layers)):
            for (t, _, _), arr, (dgi, dgh, dhs) in zip(self._directions(k), arrs, outs[k]):
                be.layer_backward(self.cell, t, s0, s1, arr, d_len, dgi, dgh, dhs)
            if k > 0:
                B, F = self._tapes[k].dh.shape[0], self.directions * H
                d_in = None  # dL/d(layer k's input), in forward step order: both directions' share
                for (_, sfx, rev), (dgi, _, _) in zip(self._directions(k), outs[k]):
                    part = be.empty((W, B, F), self.dtype)
                    be.matmul(dgi.reshape(W * B, dgi.shape[2]), self.params[f"weight_ih_l{k}{sfx}"],
                              part.reshape(W * B, F))
                    if rev:  # the reverse direction read its input backwards: turn its gradient round
                        turned = be.empty((W, B, F), self.dtype)
                        be.take_steps(part, d_len, turned, 0, True)
                        be.add_into(d_in, turned)
                    else:
                        d_in = part
                if self._masks is not None:  # through the dropout between layers k-1 and k
                    be.multiply(d_in, self._masks[k - 1][s0:s1 + 1], d_in)
                arrs = [d_in]
                if self.bidirectional:  # each direction of layer k-1 gets its half, in its own order
                    arrs = []
                    for rev in (False, True):
                        a = be.empty((W, B, H), self.dtype)
                        be.take_steps(d_in, d_len, a, rev * H, rev)
                        arrs.append(a)

    def _backward_truncated(self, dh_top, d_len, origins, K):
        """Exact gradient of the truncated graph: one reverse window [t-K, t] per step t that
        carries a loss, through every layer; pre-activation gradients of all windows are
        summed, then the weight gradients are finished as for full BPTT."""
        be, tapes, split = self.backend, self._tapes, self.cell.split_grad
        B, H = tapes[0].dh.shape
        G = tapes[0].dgi.shape[2]
        for t in tapes:
            be.zero(t.dgi)
            be.zero(t.dgh)
            be.zero(t.dh_seq)
        z = lambda *s: be.zeros(s, self.dtype)  # noqa: E731
        wins = []
        for _ in tapes:
            dgi = z(K + 1, B, G)
            wins.append((dgi, z(K + 1, B, G) if split else dgi, z(K + 1, B, H)))
        arr_full = z(K + 1, B, H)
        for s1 in origins:
            s1 = int(s1)
            s0 = max(0, s1 - K)
            W = s1 - s0 + 1
            arr = arr_full[:W]
            be.zero(arr)
            be.copy_into(arr[W - 1], dh_top[s1])
            outs = [[(a[:W], b[:W], c[:W])] for a, b, c in wins]
            self._zero_carries()
            self._backward_window(s0, s1, [arr], d_len, outs)
            for t, ((a, b, c),) in zip(tapes, outs):
                be.add_into(t.dgi[s0:s1 + 1], a)
                if split:
                    be.add_into(t.dgh[s0:s1 + 1], b)
                be.add_into(t.dh_seq[s0:s1 + 1], c)

    def _weight_grads(self, d_x, T, B):
        """Weight and bias gradients from the summed pre-activation gradients."""
        be, g, H = self.backend, self.grads, self.hidden_size
        for k in range(self.num_layers):
            for t, sfx, rev in self._directions(k):
                G = t.dgi.shape[2]
                dgi, dgh = t.dgi.reshape(T * B, G), t.dgh.reshape(T * B, G)
                inp = self._inputs[k][rev]  # what this direction read (dropped, reversed)
                hs = t.h[:-1].reshape(T * B, H)
                ih, hh = g[f"weight_ih_l{k}{sfx}"], g[f"weight_hh_l{k}{sfx}"]
                b_ih, b_hh = g[f"bias_ih_l{k}{sfx}"], g[f"bias_hh_l{k}{sfx}"]
                split, rec, ids = self.cell.split_grad, self.cell.recurrence, k == 0 and self.tokens
                norm = self.cell.layer_norm  # the biases' gradients are the kernel's sums (below)
                inp = inp.reshape(T * B) if ids else inp.reshape(T * B, inp.shape[2])
                if not split and rec.one_pass and not ids:
                    # dgh is dgi: both weight gradients from one pass over it
                    be.matmul_tn(dgi, (inp, hs), (ih, hh), sums=b_ih)
                else:
                    if ids:  # token ids: the input projection was a gather
                        be.scatter_columns(ih, inp, dgi)
                        if not norm:
                            be.column_sums(dgi, b_ih)
                    else:
                        be.matmul_tn(dgi, inp, ih, sums=None if norm else b_ih)
                    if self.cell.act_bias:  # dgh holds the activation bias's gradient per row
                        rec.weight_grad(be, t, dgi, hs, hh)
                        be.column_sums(dgh, b_hh)
                    else:  # split (the GRU): the recurrent side's bias has a gradient of its own
                        rec.weight_grad(be, t, dgh, hs, hh, sums=b_hh if split and not norm else None)
                if norm:
                    self._norm_grads(t, k, sfx)
                elif not split:  # both biases get the same gradient, summed once
                    be.copy_into(b_hh, b_ih)

    def _norm_grads(self, tape, k, sfx):
        """A layer-normalized cell's bias and LayerNorm gradients: the column sums of the
        per-sequence sums its kernel left in tape.dnorm (Cell.norm_columns)."""
        be, g = self.backend, self.grads
        for name, lo, hi in self.cell.norm_columns(self.hidden_size):
            out = g[f"{'bias_ih' if name == 'bias' else name}_l{k}{sfx}"]
            be.column_sums(tape.dnorm[:, lo:hi], out)
            if name == "bias":  # the gates' shifts sit in one sum: the same gradient
                be.copy_into(g[f"bias_hh_l{k}{sfx}"], out)

    # ----------------------------------------------------------------- clipping
    def clip_grad_norm(self, max_norm=None):
        """Scale the gradient so its global norm is at most max_norm (None: measure only).
        Returns the norm before clipping, a host float (inf or NaN if not finite)."""
        from .clip import clip_global_norm

        return clip_global_norm(self.grad_flat, max_norm, self.backend)

    def clip_grad_value(self, limit):
        """Clip every gradient entry to [-limit, limit]."""
        from .clip import clip_by_value

        clip_by_value(self.grad_flat, limit, self.backend)

    def bound_recurrent(self, limit):
        """Clip every recurrent weight to [-limit, limit], in place (IndRNN's |u| <= u_max after
        each update; fastrnn train --recurrent-max). Refused for a dense W_hh."""
        self.cell.check_recurrent_max()
        for k in range(self.num_layers):
            for sfx in self._suffixes():
                self.backend.clip_values(self.params[f"weight_hh_l{k}{sfx}"], limit)

    # ----------------------------------------------------------------- inspection (fastrnn gradients)
    def hidden_grads(self):
        """dL/dh_t of every layer from the last backward pass: a list of host (T, B, H) arrays."""
        return [np.array(self.backend.to_host(t.dh_seq)) for t in self._tapes]

    def tape_arrays(self):
        """Host copies of each layer's states h, c (T+1, B, H) and gates (T, B, G) from the
        last forward pass."""
        to = self.backend.to_host
        return [SimpleNamespace(h=np.array(to(t.h)), c=np.array(to(t.c)), gates=np.array(to(t.gates)))
                for t in self._tapes]

    def step_jacobians(self, x_one):
        """Jacobians of the top layer's state s_t w.r.t. s_{t-1} for one sequence.

        x_one: one sequence, (T, 1, I) or (T, 1) ids. Returns host (T, S, S), S = H (2H for
        a cell state, ordered h then c). Row i is the gradient on s_{t-1} of a unit vector
        seeded on s_t: a batch of S copies runs the kernels' one-step reverse window once.
        """
        be, cell, H = self.backend, self.cell, self.hidden_size
        S = cell.state_size * H
        xs, lengths = self.check_inputs(np.repeat(x_one, S, axis=1))
        _, d_len = self._run(xs, lengths, None, None)
        tape, T, G = self._tapes[-1], xs.shape[0], cell.gates * H
        z = lambda *s: be.zeros(s, self.dtype)  # noqa: E731
        dh_in, dgi, dhs = z(1, S, H), z(1, S, G), z(1, S, H)
        dgh = z(1, S, G) if cell.split_grad else dgi
        seed_h = np.zeros((S, H), self.dtype)
        seed_h[:H] = np.eye(H)
        seed_c = np.zeros((S, H), self.dtype)
        seed_c[H:] = np.eye(H) if cell.has_cell_state else 0
        J = np.empty((T, S, S))
        for t in range(T):
            be.copy_into(tape.dh, seed_h)
            be.copy_into(tape.dc, seed_c)
            be.layer_backward(cell, tape, t, t, dh_in, d_len, dgi, dgh, dhs)
            J[t, :, :H] = be.to_host(tape.dh)
            if cell.has_cell_state:
                J[t, :, H:] = be.to_host(tape.dc)
        return J

