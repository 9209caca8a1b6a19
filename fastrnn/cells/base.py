"""What a cell declares about itself (one ``Cell`` per cell, in fastrnn/cells/<family>.py), and
the two kinds of recurrent weight a cell can have. Everything the model, the memory estimate,
the tape, the initialization, export and the gradient report need to know about a cell is
derived here from its declaration; the arithmetic is its kernels' (``kernels`` names the
family each backend implements: fastrnn/cpu/<kernels>.py, fastrnn/cuda/launch.py).

Parameters per layer and direction, PyTorch's names (G = gates * H, I the layer's input width):
    weight_ih (G, I)    bias_ih (G,)    bias_hh (G,)
    weight_hh           Dense: (G, H), a matrix per gate block    Diagonal: (G,), a vector
and, for a cell with layer_norm, each LayerNorm's gain (and the cell state's shift; the gates'
shifts are bias_ih and bias_hh): gain_ih (G,)  gain_hh (G,)  gain_c (H,)  bias_c (H,)
Importing this module loads neither NumPy nor Numba (the CLI's --help reads the registry).
"""
import math
from dataclasses import dataclass, field

# Recurrent-weight initializations, by name (fastrnn/init.py holds the dense ones' math).
PYTORCH, XAVIER, ORTHOGONAL, IRNN = "pytorch", "xavier", "orthogonal", "irnn"
# Tallec & Ollivier (2018): a gated cell's timescales drawn to span [1, T_max] (Cell.chrono)
CHRONO = "chrono"
# A layer-normalized cell's own parameters (Cell.layer_norm): (name, G wide (else H), initial value)
NORM_PARAMS = (("gain_ih", True, 1.0), ("gain_hh", True, 1.0), ("gain_c", False, 1.0), ("bias_c", False, 0.0))


class Dense:
    """A full recurrent matrix per gate block: the step's product h_{t-1} W_hh^T is a GEMM."""
    name = "dense"
    inits = (PYTORCH, XAVIER, ORTHOGONAL, IRNN)
    one_pass = True  # where dgh is dgi, dW_ih and dW_hh come from one pass over it (matmul_tn pairs)
    bounded = False  # --recurrent-max: a matrix has no per-unit weight to bound
    product = True  # a step multiplies the state by a matrix (the tape keeps a (B, G) scratch for it)

    @staticmethod
    def shape(G, H):
        return (G, H)

    @staticmethod
    def init(rng, init, G, H, I):
        """(w_ih, w_hh, b_ih, b_hh), float64, drawn in that order (fastrnn.init.init_layer)."""
        from ..init import init_layer

        return init_layer(rng, init, G // H, H, I)

    @staticmethod
    def scale(w_hh, H, radius):
        """Scale each gate block (in place) to spectral radius ``radius``."""
        from ..init import scale_spectral_radius

        scale_spectral_radius(w_hh, H, radius)

    @staticmethod
    def blocks(w_hh, H):
        """[(sigma_max, spectral radius)] per gate block of a host w_hh."""
        import numpy as np

        from ..init import spectral_radius

        return [(float(np.linalg.norm(w_hh[g:g + H], 2)), spectral_radius(w_hh[g:g + H]))
                for g in range(0, w_hh.shape[0], H)]

    @staticmethod
    def radii(w_hh, H):
        """[spectral radius] per gate block of a host w_hh (what fastrnn.watch records)."""
        from ..init import spectral_radius

        return [spectral_radius(w_hh[g:g + H]) for g in range(0, w_hh.shape[0], H)]

    @staticmethod
    def weight_grad(be, tape, dpre, hs, out, sums=None):
        """out = dL/dW_hh (G, H) from dpre (N, G) and the states it multiplied, hs (N, H);
        sums, if given, = dpre's column sums (from the same pass). tape: the layer's, whose
        prepare saw this weight (a parametrized recurrence keeps what it needs there)."""
        be.matmul_tn(dpre, hs, out, sums=sums)


class Diagonal:
    """A vector u per gate block: unit j sees only its own past, u_j h_{t-1, j} (IndRNN). No
    recurrent product; the state's Jacobian is diagonal, so its spectral radius and largest
    singular value are both max |u|."""
    name = "diagonal"
    inits = ()  # each diagonal cell names its own (IndRNN: fastrnn/cells/indrnn.py)
    one_pass = False
    bounded = True  # --recurrent-max keeps every |u| within a bound (Li et al.'s 2^(1/T))
    product = False

    @staticmethod
    def shape(G, H):
        return (G,)

    @staticmethod
    def scale(u, H, radius):
        """Scale each gate block's u (in place) so that its max |u| is ``radius``."""
        for g in range(0, u.shape[0], H):
            m = abs(u[g:g + H]).max()
            if m > 0:
                u[g:g + H] *= radius / m

    @staticmethod
    def blocks(u, H):
        out = []
        for g in range(0, u.shape[0], H):
            m = float(abs(u[g:g + H]).max())
            out.append((m, m))
        return out

    @staticmethod
    def radii(u, H):
        return [float(abs(u[g:g + H]).max()) for g in range(0, u.shape[0], H)]

    @staticmethod
    def weight_grad(be, tape, dpre, hs, out, sums=None):
        """out = dL/du (G,) = sum over rows of dpre * hs (N, H): the diagonal of dpre^T hs;
        sums, if given, = dpre's column sums."""
        be.column_dots(dpre, hs, out)
        if sums is not None:
            be.column_sums(dpre, sums)


@dataclass(frozen=True)
class Cell:
    """One cell's declaration. Shapes: T steps, B sequences, H hidden units, G = gates * H.

    gates, layout, activations  H-wide gate blocks, their order (PyTorch's) and nonlinearity
                                ("tanh", "relu", "sigmoid"): the saturation report reads them
    kernels         the kernel family each backend implements (tanh and relu share "elman")
    recurrence      Dense (W_hh a matrix), Diagonal (a vector u) or another kind a cell module
                    declares (expRNN's Orthogonal: W = expm(A), A skew-symmetric)
    state           "h", or "h,c" for a cell state carried beside h (the LSTM)
    gate_tape       the activated gates are kept for the backward pass: (T, B, G)
    split_grad      the input side and the recurrent side get different pre-activation
                    gradients (GRU: r gates W_hn h + b_hn): a second (T, B, G) buffer, and
                    the recurrent weight gradient reads it
    reset_bias      GRU: b_hn sits inside r * (W_hn h + b_hn), apart from the summed biases;
                    W_hn h + b_hn is kept, (T, B, H)
    act_bias        bias_hh is the activation's own (expRNN's modReLU bias), not a summand:
                    the kernel writes its per-row gradient into dgh (split_grad), whose column
                    sums are its gradient, and W_hh's gradient reads dgi
    layer_norm      each side of the gates' sum and the cell state are layer-normalized (the
                    LayerNorm LSTM): gains and a shift of their own (NORM_PARAMS); the kernel
                    writes the input side's gradient after its LayerNorm into dgi, the
                    recurrent side's into dgh (split_grad), and sums what the biases and the
                    LayerNorms' own parameters get per sequence into the tape's dnorm
                    (norm_columns), which the model sums over sequences
    forget_gate     the gate block whose bias --forget-bias sets (-1: none)
    memory_gate     the gate block whose value is the share of the state kept per step (the
                    LSTM's f, the GRU's z): a unit's timescale is -1/ln(gate) steps (-1: none)
    chrono          ((block, sign), ...): the gate blocks whose biases the chrono init draws,
                    sign * log U[1, T_max - 1] per unit, the same draw for each (the LSTM: the
                    forget gate +, the input gate -; the GRU: the update gate +); () no chrono
    inits           the initializations this cell accepts; default_init the one without --init
    torch_module    the torch.nn class with the same weights (export), None: none has them
    formulation     the cell's equations in one line (export metadata, --help)
    color           its colour in every plot
    """
    name: str
    gates: int
    layout: str
    activations: tuple
    kernels: str
    formulation: str
    recurrence: object = Dense
    state: str = "h"
    gate_tape: bool = True
    split_grad: bool = False
    reset_bias: bool = False
    act_bias: bool = False
    layer_norm: bool = False
    forget_gate: int = -1
    memory_gate: int = -1
    chrono: tuple = ()
    inits: tuple = Dense.inits
    default_init: str = PYTORCH
    torch_module: str = None
    color: str = "tab:gray"
    init_fn: object = field(default=None, compare=False)  # a Diagonal cell's own initializer

    @property
    def relu(self):
        """Whether the cell's (first) activation is ReLU: the Elman kernels' flag."""
        return self.activations[0] == "relu"

    @property
    def has_cell_state(self):
        return self.state == "h,c"

    @property
    def state_size(self):
        """Vectors of H per sequence in the recurrent state: 2 for (h, c), else 1."""
        return len(self.state.split(","))

    # ------------------------------------------------------------ parameters
    def param_shapes(self, I, H):
        """{name: shape} of one layer and direction's parameters, in flat-vector order."""
        G = self.gates * H
        shapes = {"weight_ih": (G, I), "weight_hh": self.recurrence.shape(G, H), "bias_ih": (G,), "bias_hh": (G,)}
        if self.layer_norm:
            shapes.update((name, (G if wide else H,)) for name, wide, _ in NORM_PARAMS)
        return shapes

    @property
    def extra_params(self):
        """Names of the parameters beyond PyTorch's four, which the kernels read (prepare's extra)."""
        return tuple(name for name, _, _ in NORM_PARAMS) if self.layer_norm else ()

    def norm_columns(self, H):
        """[(gradient, first column, end)] of the tape's dnorm (B, 3G + 2H): the per-sequence
        sums a layer-normalized cell's kernel leaves, in column order. 'bias' is the gates'
        summed pre-activation gradient: both bias_ih's and bias_hh's."""
        G = self.gates * H
        out, at = [], 0
        for name, n in (("bias", G),) + tuple((name, G if wide else H) for name, wide, _ in NORM_PARAMS):
            out.append((name, at, at + n))
            at += n
        return out

    def param_count(self, I, H):
        """Parameters of one layer and direction."""
        return sum(math.prod(shape) for shape in self.param_shapes(I, H).values())

    def check_init(self, init):
        """Refuse an initialization this cell does not define, naming it."""
        if init not in self.inits:
            from . import INITS

            whose = f"the {self.name} cell takes " if init in INITS else "expected "
            raise ValueError(f"init: {whose}one of {', '.join(self.inits)}; got {init!r}")

    def init_layer(self, rng, init, I, H, forget_bias=None, spectral_radius=None, chrono_tmax=None):
        """{name: float64 array} of one layer and direction, drawn from rng by ``init``;
        spectral_radius (None: leave) rescales the recurrent weight per gate block;
        forget_bias (None: keep init's) goes into bias_ih's forget block, bias_hh's left 0;
        chrono_tmax: T_max of the chrono init (required by it; forget_bias then does not apply)."""
        self.check_init(init)
        G = self.gates * H
        if init == CHRONO:
            w_ih, w_hh, b_ih, b_hh = self._chrono(rng, G, H, I, chrono_tmax)
            forget_bias = None  # the forget gate's bias is chrono's draw
        else:
            make = self.init_fn or self.recurrence.init
            w_ih, w_hh, b_ih, b_hh = make(rng, init, G, H, I)
        if spectral_radius is not None:
            self.recurrence.scale(w_hh, H, spectral_radius)
        f = self.forget_gate
        if f >= 0 and forget_bias is not None:
            b_ih[f * H:(f + 1) * H] = forget_bias
            b_hh[f * H:(f + 1) * H] = 0.0
        out = dict(weight_ih=w_ih, weight_hh=w_hh, bias_ih=b_ih, bias_hh=b_hh)
        if self.layer_norm:
            import numpy as np

            out.update((name, np.full(G if wide else H, value)) for name, wide, value in NORM_PARAMS)
        return out

    def _chrono(self, rng, G, H, I, tmax):
        """Chrono init (Tallec & Ollivier 2018): the weights as PyTorch's default, every bias 0
        but the chrono blocks' (in bias_ih): sign * log(U[1, T_max - 1]), so a gate's bias b
        gives a unit a characteristic forgetting time of about e^b steps, spread over [1, T_max]."""
        import numpy as np

        from .. import validate as v

        if tmax is None:
            raise ValueError("chrono_tmax: the chrono init needs T_max, the longest dependency in steps")
        if v.positive_int("chrono_tmax", tmax) < 2:
            raise ValueError(f"chrono_tmax: expected an integer >= 2; got {tmax!r}")
        w_ih, w_hh, b_ih, b_hh = self.recurrence.init(rng, PYTORCH, G, H, I)
        b_ih[:] = 0.0
        b_hh[:] = 0.0
        b = np.log(rng.uniform(1.0, tmax - 1.0, H)) if tmax > 2 else np.zeros(H)
        for block, sign in self.chrono:
            b_ih[block * H:(block + 1) * H] = sign * b
        return w_ih, w_hh, b_ih, b_hh

    def check_recurrent_max(self):
        """Refuse --recurrent-max for a cell whose recurrence has no per-unit weight."""
        if not self.recurrence.bounded:
            raise ValueError(f"recurrent_max: bounds a diagonal recurrence's |u| (the indrnn cell); "
                             f"the {self.name} cell's W_hh is a matrix")

    # ------------------------------------------------------------ the tape (fastrnn/layer.py)
    def tape_shapes(self, T, B, H):
        """{buffer: shape} of one layer's tape: the one description LayerTape and the memory
        estimate read. Unused buffers are (1, 1, 1) placeholders (every kernel keeps one
        signature); dgi is not listed (it is xproj's memory); dgh is None where it is dgi's."""
        G, unused = self.gates * H, (1, 1, 1)
        shapes = dict(xproj=(T, B, G), h=(T + 1, B, H),
                      c=(T + 1, B, H) if self.has_cell_state else unused,
                      gates=(T, B, G) if self.gate_tape else unused,
                      ghn=(T, B, H) if self.reset_bias else unused,
                      gh=(B, G) if self.recurrence.product else unused,
                      dgh=(T, B, G) if self.split_grad else None,
                      dh_seq=(T, B, H), dh=(B, H), dc=(B, H))
        if self.layer_norm:
            # xnorm, hnorm: each side's pre-activations normalized (before the gain); cnorm: the
            # cell state's; rstd: 1 / sqrt(var + eps) of the three per row; dnorm: norm_columns
            shapes.update(xnorm=(T, B, G), hnorm=(T, B, G), cnorm=(T, B, H), rstd=(T, B, 3),
                          dnorm=(B, 3 * G + 2 * H))
        return shapes
