"""The options of one training run, checked up front (nothing is written before they pass).

Imports neither NumPy nor Numba: the CLI builds its options, names and defaults from this
module (cli/options.py) and stays fast to start."""
import os
from dataclasses import asdict, dataclass, fields

from .. import validate as v
from ..cells import CELLS, INITS
from ..choices import DEVICES, DTYPES, OPTIMIZERS, SCHEDULES, TASKS

# The options that take one of a list of names (init also takes None: the cell's default).
CHOICES = dict(task=TASKS, cell=tuple(CELLS), optimizer=OPTIMIZERS, dtype=DTYPES, device=DEVICES,
               lr_schedule=SCHEDULES)

# Caps every run's --steps (and --warmup-steps with it) when set: tests run the README's and
# --help's commands exactly as printed, on a short budget (tests/test_examples.py).
MAX_STEPS_ENV = "FASTRNN_MAX_STEPS"



DATA_TASKS = ("text", "mnist", "file")  # the tasks that read --data


def did_you_mean(unknown, known):
    """' (did you mean steps?)' for the first unknown name close to a known one, else ''."""
    import difflib

    for name in unknown:
        close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]}?)"
    return ""


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
    watch: bool = True  # record the recurrence at every evaluation (fastrnn/watch.py)
    early_stop: bool | None = None  # stop once solved; None: the task's default (not text, mnist)
    patience: int | None = None  # stop after this many evaluations without a held-out improvement
    min_delta: float = 0.0  # what counts as an improvement (patience, best.npz, plateau)
    lr_schedule: str = "constant"  # constant | cosine | step | plateau (fastrnn/train/schedule.py)
    warmup_steps: int = 0  # linear warmup of the rate over the first steps
    lr_gamma: float = 0.1  # step and plateau: the factor of each decay
    lr_step: int | None = None  # step: decay every this many steps (None: a third of the run)
    lr_patience: int = 3  # plateau: decay after this many evaluations without improvement
    init: str | None = None  # None: the cell's default (its registry entry's default_init)
    forget_bias: float = 1.0
    spectral_radius: float | None = None
    chrono_tmax: int | None = None  # --init chrono's T_max; None: the task's dependency length
    recurrent_max: float | str | None = None  # a diagonal recurrence: |u| <= this after every update; "auto": 2^(1/T)
    bptt_truncate: int | None = None
    carry_state: bool = True  # text: each chunk starts from the previous chunk's final state (False: from zeros)
    min_lag: int = 0  # adding: every marked step at least this many steps before the last
    data: str | None = None  # text, mnist and file tasks
    permuted: bool = False  # mnist
    holdout_fraction: float = 0.1  # file: the share of sequences held out (without x_test)
    window: int | None = None  # file, a CSV series: steps per input window
    horizon: int = 1  # file, a CSV series: predict the row this many steps after the window
    dropout: float = 0.0  # between stacked layers, training only (PyTorch's dropout=)
    bidirectional: bool = False  # a reverse direction per layer (PyTorch's bidirectional=True)
    dtype: str = "float32"
    device: str = "cpu"  # "cuda": parameters, optimizer state and activations on the GPU

    def __post_init__(self):
        cap = os.environ.get(MAX_STEPS_ENV)
        if cap and type(self.steps) is int and type(self.warmup_steps) is int:
            # a smoke test of a printed command: the budget shrinks, nothing else changes
            self.steps = min(self.steps, v.positive_int(MAX_STEPS_ENV, int(cap) if cap.isdigit() else cap))
            self.warmup_steps = min(self.warmup_steps, self.steps)
        self.check()

    def check(self):
        """Every field's type and range (sweep specs and checkpoints reach here without the
        CLI's types), one validation function per kind of argument (fastrnn/validate.py)."""
        v.flag("permuted", self.permuted)
        v.flag("bidirectional", self.bidirectional)
        v.flag("watch", self.watch)
        if not v.flag("carry_state", self.carry_state) and self.task != "text":
            raise ValueError(f"carry_state: only the text task carries its state from one batch to the next; "
                             f"leave --no-carry-state out (got it with {self.task})")
        if self.early_stop is not None:
            v.flag("early_stop", self.early_stop)
        if self.data is not None and not (isinstance(self.data, str) and self.data):
            raise ValueError(f"data: expected a file path; got {self.data!r}")
        if self.data is not None and self.task in TASKS and self.task not in DATA_TASKS:
            raise ValueError(f"data: the {self.task} task makes its own sequences; --data is for "
                             f"{', '.join(DATA_TASKS)} (got {self.data!r})")
        v.finite_number("forget_bias", self.forget_bias)
        for name, options in CHOICES.items():
            v.choice(name, getattr(self, name), options)
        if self.init is not None:
            v.choice("init", self.init, INITS)
            CELLS[self.cell].check_init(self.init)
        for name in ("hidden", "layers", "batch_size", "steps", "eval_every"):
            v.positive_int(name, getattr(self, name))
        for name in ("seq_len", "patience", "lr_step"):
            if getattr(self, name) is not None:
                v.positive_int(name, getattr(self, name))
        v.positive_int("lr_patience", self.lr_patience)
        v.nonnegative_int("warmup_steps", self.warmup_steps)
        v.number_in("min_delta", self.min_delta, 0)
        if v.positive_number("lr_gamma", self.lr_gamma) > 1:
            raise ValueError(f"lr_gamma: expected a number in (0, 1]; got {self.lr_gamma!r}")
        v.positive_number("lr", self.lr)
        if self.chrono_tmax is not None:
            if v.positive_int("chrono_tmax", self.chrono_tmax) < 2:
                raise ValueError(f"chrono_tmax: expected an integer >= 2; got {self.chrono_tmax!r}")
            if self.init_scheme != "chrono":
                raise ValueError(f"chrono_tmax: sets the chrono init's T_max; add --init chrono "
                                 f"(the init is {self.init_scheme})")
        if self.init_scheme == "chrono" and self.forget_bias != 1.0:
            raise ValueError(f"forget_bias: the chrono init draws the forget gate's bias itself; leave "
                             f"--forget-bias out (got {self.forget_bias})")
        if self.recurrent_max is not None:
            if self.recurrent_max != "auto":
                v.positive_number("recurrent_max", self.recurrent_max)
            CELLS[self.cell].check_recurrent_max()
        for name in ("clip", "clip_value", "spectral_radius"):
            if getattr(self, name) is not None:
                v.positive_number(name, getattr(self, name))
        v.nonnegative_int("seed", self.seed)
        v.number_in("weight_decay", self.weight_decay, 0)
        v.number_in("momentum", self.momentum, 0, 1)
        v.truncation(self.bptt_truncate)
        v.min_lag(self.min_lag, self.task, self.seq_len)  # (with the default length, the task checks the room)
        v.positive_int("horizon", self.horizon)
        if self.window is not None:
            v.positive_int("window", self.window)
            if self.task != "file":
                raise ValueError(f"window: only for the file task's CSV series; got --window with {self.task}")
        v.number_in("holdout_fraction", self.holdout_fraction, 0, 1)
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction: expected a number in (0, 1); got {self.holdout_fraction!r}")
        v.number_in("dropout", self.dropout, 0, 1)
        if self.dropout > 0 and self.layers == 1:
            raise ValueError(f"dropout: drops the outputs of every layer but the last, so with one layer it "
                             f"would do nothing; use --layers 2 or more, or leave --dropout out "
                             f"(got {self.dropout})")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps: {self.warmup_steps} is more than the run's {self.steps} steps, "
                             f"so the rate would never reach --lr; use at most --steps")
        if self.bidirectional and self.task == "text":
            raise ValueError("bidirectional: the text task predicts the next character, which a reverse "
                             "direction would read; leave --bidirectional out")
        if self.bidirectional and self.bptt_truncate is not None:
            raise ValueError("bidirectional: truncated BPTT is not defined for it (the reverse direction "
                             "reads every step); leave --bptt-truncate out")
        if self.task == "file" and self.seq_len is not None:
            raise ValueError(f"seq_len: the file task's sequences are the data file's; leave --seq-len out "
                             f"(got {self.seq_len}; a CSV series: --window)")
        if self.task == "mnist" and self.seq_len not in (None, 784):
            raise ValueError(f"seq_len: the mnist task reads its 784 pixels one per step, so its length is "
                             f"fixed; leave --seq-len out (got {self.seq_len})")

    def command(self, out):
        """The `fastrnn train` command line that runs exactly this config into ``out``: every
        option that differs from TrainConfig's defaults (which `fastrnn train` uses), spelled out,
        so a run of `compare` or a sweep can be rerun alone."""
        import shlex

        args = ["fastrnn", "train", "--cell", self.cell, "--seed", str(self.seed)]
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            if name in ("cell", "seed") or value == f.default:
                continue
            flag = "--" + name.replace("_", "-")
            if name == "early_stop":
                args.append("--early-stop" if value else "--no-early-stop")
            elif name in ("permuted", "bidirectional"):
                args.append(flag)
            elif name == "watch":
                args.append("--watch" if value else "--no-watch")
            elif name == "carry_state":
                args.append("--carry-state" if value else "--no-carry-state")
            elif name == "clip" and value is None:
                args += [flag, "0"]  # 0 turns clipping off
            else:
                args += [flag, str(value)]
        return shlex.join(args + ["--out", str(out)])

    def stops_when_solved(self, task):
        """early_stop, or the task's default: the long-dependency tasks stop once solved; text
        and mnist train on (beating their baseline is not the end of language modelling)."""
        return task.stop_when_solved if self.early_stop is None else self.early_stop

    @property
    def init_scheme(self):
        return self.init or CELLS[self.cell].default_init

    def to_dict(self):
        return asdict(self)

    @classmethod
    def normalized(cls, d):
        """A stored config (a checkpoint's, a sweep's or comparison's record) with this version's
        defaults for the fields it predates, so that work recorded before an option existed
        still resumes; the input itself if it is not a valid config."""
        try:
            return cls.from_dict(d).to_dict()
        except (TypeError, ValueError):
            return d

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (a checkpoint's or a spec's), rejecting unknown keys by name."""
        if not isinstance(d, dict):
            raise ValueError(f"config: expected a mapping of options; got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown option(s) {', '.join(unknown)}{did_you_mean(unknown, known)}")
        return cls(**d)
