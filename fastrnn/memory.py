"""Memory estimates, checked before allocating: a model, its activation tape and a data file
are refused with one line naming the size and what is available, instead of a MemoryError
traceback or a machine that fills up and swaps (--hidden 20000, --layers 100000, a checkpoint
whose metadata claims a huge model, a zip bomb posing as an .npz).

Available memory is the smallest of the kernel's MemAvailable, what the cgroup's limit leaves
(containers, batch schedulers) and what the address-space limit leaves (RLIMIT_AS, `ulimit -v`:
its limit less this process's virtual size); where none can be read, nothing is refused.
"""
import math
import os

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None

from .cells import CELLS
from .config import MAX_PARTS

TILE_PAD = 8  # rows of padding a part may carry: at least cpu/gradtile.py's TILE_ROWS - 1 (a test holds it)


def available():
    """Bytes this process can still allocate without swapping, or None if unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            avail = None
    try:  # cgroup v2: the limit minus what the group already uses
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                left = int(limit) - int(f.read())
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    left = _address_space_left()
    if left is not None:
        avail = left if avail is None else min(avail, left)
    return avail


def _address_space_left():
    """RLIMIT_AS less this process's virtual size (VmSize), or None without a limit: under
    `ulimit -v` an allocation fails at that limit whatever MemAvailable says."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return None


def human(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def require(nbytes, what):
    """Raise ValueError naming ``what`` if nbytes will not fit in the memory available now."""
    avail = available()
    if avail is not None and nbytes > avail:
        raise ValueError(f"{what}: needs about {human(nbytes)} of memory; {human(avail)} is available")


def parameter_count(cell, input_size, hidden, output_size, layers, directions=1):
    """Parameters of an RNN (PyTorch's layout plus the readout), without building it."""
    c, D = CELLS[cell], directions
    first = D * c.param_count(input_size, hidden)
    rest = D * c.param_count(D * hidden, hidden) * (layers - 1)
    return first + rest + output_size * (D * hidden + 1)


def tape_bytes(cell, T, B, hidden, layers, itemsize):
    """Activation memory of a forward + backward pass over (T, B): the layer tapes'
    buffers, as the cell declares them (Cell.tape_shapes)."""
    per_layer = sum(math.prod(shape) for shape in CELLS[cell].tape_shapes(T, B, hidden).values() if shape)
    return layers * per_layer * itemsize


def weight_grad_bytes(cell, input_size, hidden, directions, itemsize):
    """An upper bound on the CPU backend's workspace for the weight gradients (cpu/blas.py's
    matmul_tn, kept from step to step): MAX_PARTS partial products of the widest layer's
    [input | state | 1] (padded to the register tile's rows) by its gates, and their sum:
    about eight times the layer's weights (an LSTM at I = 128, H = 512 in float32 holds 42 MB).
    input_size: 0 for token inputs, whose gradient is a scatter instead."""
    c = CELLS[cell]
    K = max(input_size, directions * hidden) + (hidden if c.recurrence.product else 0) + 1
    return (MAX_PARTS + 1) * (K + TILE_PAD) * c.gates * hidden * itemsize


def training_bytes(cfg, task, optimizer_slots=2):
    """A training run's peak: parameters, gradient and optimizer state, the tape of the
    larger of a training batch and an evaluation slice, the weight gradients' workspace, the
    outputs, and the held-out set."""
    itemsize = 4 if cfg.dtype == "float32" else 8
    D = 2 if cfg.bidirectional else 1
    n = parameter_count(cfg.cell, task.input_size, cfg.hidden, task.output_size, cfg.layers, D)
    T = getattr(task, "seq_len", None) or 1
    B = max(cfg.batch_size, task.eval_batch)
    tape = D * tape_bytes(cfg.cell, T, B, cfg.hidden, cfg.layers, itemsize)
    tape += weight_grad_bytes(cfg.cell, 0 if task.tokens else task.input_size, cfg.hidden, D, itemsize)
    outputs = T * B * task.output_size * 8  # float64 copies for the losses
    heldout = task.heldout_size * T * (1 if task.tokens else task.input_size) * 8
    return n * itemsize * (2 + optimizer_slots) + tape + outputs + heldout
