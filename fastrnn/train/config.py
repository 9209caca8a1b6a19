"""The options of one training run, checked up front (nothing is written before they pass)."""
import math
import numbers
from dataclasses import asdict, dataclass, fields

from ..cells import CELLS
from ..init import INITS
from ..tasks import TASKS
from .optim import OPTIMIZERS

# Per-cell defaults (all overridable): IRNN for relu (Le et al. 2015); PyTorch's init
# elsewhere, with the LSTM forget bias at 1.0 (set on every model by RNN's forget_bias).
DEFAULT_INIT = {"tanh": "pytorch", "relu": "irnn", "gru": "pytorch", "lstm": "pytorch"}


@dataclass
class TrainConfig:
    task: str = "adding"
    cell: str = "lstm"
    seq_len: int | None = None  # None: the task's default
    hidden: int = 128
    layers: int = 1
    batch_size: int = 32
    steps: int = 5000
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9  # sgd only
    clip: float | None = 1.0  # global-norm clipping threshold; None: off
    clip_value: float | None = None  # element-wise clipping; None: off
    weight_decay: float = 0.0
    seed: int = 0
    eval_every: int = 100
    early_stop: bool = True  # stop at the first evaluation that meets the solved criterion
    init: str | None = None  # None: the cell's default (DEFAULT_INIT)
    forget_bias: float = 1.0
    spectral_radius: float | None = None
    bptt_truncate: int | None = None
    data: str | None = None  # text and mnist tasks
    permuted: bool = False  # mnist
    dtype: str = "float32"
    device: str = "cpu"  # "cuda": parameters, optimizer state and activations on the GPU

    def __post_init__(self):
        self.check()

    def check(self):
        def pos_int(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"{name}: expected a positive integer; got {v!r}")

        def pos_num(name, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
                raise ValueError(f"{name}: expected a positive number; got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite positive number; got {v!r}")

        def real(name, v):
            return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)

        # sweep specs and checkpoints reach here without the CLI's types: check every type
        for name in ("early_stop", "permuted"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false; got {getattr(self, name)!r}")
        if self.data is not None and not (isinstance(self.data, str) and self.data):
            raise ValueError(f"data: expected a file path; got {self.data!r}")
        if not real("forget_bias", self.forget_bias):
            raise ValueError(f"forget_bias: expected a finite number; got {self.forget_bias!r}")

        for name, options in (("task", TASKS), ("cell", tuple(CELLS)), ("optimizer", OPTIMIZERS),
                              ("dtype", ("float32", "float64")), ("device", ("cpu", "cuda"))):
            if getattr(self, name) not in options:
                raise ValueError(f"{name}: expected one of {', '.join(options)}; got {getattr(self, name)!r}")
        if self.init is not None and self.init not in INITS:
            raise ValueError(f"init: expected one of {', '.join(INITS)}; got {self.init!r}")
        for name in ("hidden", "layers", "batch_size", "steps", "eval_every"):
            pos_int(name)
        pos_int("seq_len", allow_none=True)
        pos_num("lr")
        pos_num("clip", allow_none=True)
        pos_num("clip_value", allow_none=True)
        pos_num("spectral_radius", allow_none=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise ValueError(f"seed: expected an integer >= 0; got {self.seed!r}")
        if not (real("weight_decay", self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a finite number >= 0; got {self.weight_decay!r}")
        if not (real("momentum", self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum: expected a number in [0, 1); got {self.momentum!r}")
        if self.bptt_truncate is not None and (isinstance(self.bptt_truncate, bool) or not isinstance(
                self.bptt_truncate, numbers.Integral) or self.bptt_truncate < 0):
            raise ValueError(f"bptt_truncate: expected an integer >= 0; got {self.bptt_truncate!r}")
        if self.task == "mnist" and self.seq_len not in (None, 784):
            raise ValueError(f"seq_len: the mnist task reads its 784 pixels one per step, so its length is "
                             f"fixed; leave --seq-len out (got {self.seq_len})")

    @property
    def init_scheme(self):
        return self.init or DEFAULT_INIT[self.cell]

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (a checkpoint's or a spec's), rejecting unknown keys by name."""
        if not isinstance(d, dict):
            raise ValueError(f"config: expected a mapping of options; got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown option(s) {', '.join(unknown)}")
        return cls(**d)
