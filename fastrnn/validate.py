"""Argument checks shared by the library, the training config and the CLI: one function per
kind of argument, each raising a ValueError that names the argument, what was expected and
what was given, so no Numba typing traceback ever reaches a user. The scalar checks import
nothing (NumPy's integers and floats register with ``numbers``; its bool does not)."""
import math
import numbers


def _is_int(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def _is_real(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def positive_int(name, value):
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer; got {value!r}")
    return int(value)


def nonnegative_int(name, value):
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0; got {value!r}")
    return int(value)


def positive_number(name, value):
    if not _is_real(value) or not value > 0:
        raise ValueError(f"{name}: expected a finite positive number; got {value!r}")
    return float(value)


def number_in(name, value, low, high=None):
    """A finite number in [low, high) (high None: no upper bound)."""
    if not _is_real(value) or value < low or (high is not None and value >= high):
        want = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{name}: expected a finite number {want}; got {value!r}")
    return float(value)


def finite_number(name, value):
    if not _is_real(value):
        raise ValueError(f"{name}: expected a finite number; got {value!r}")
    return float(value)


def flag(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false; got {value!r}")
    return value


def min_lag(value, task, seq_len=None):
    """The adding task's min_lag: an integer >= 0 (above 0 for ``task`` adding only) that leaves
    its two markers room in the first seq_len - min_lag steps (seq_len None: checked once the
    task's default is known)."""
    if nonnegative_int("min_lag", value) and task != "adding":
        raise ValueError(f"min_lag: only for the adding task's markers; got --min-lag with {task}")
    if value and seq_len is not None and value > seq_len - 2:
        raise ValueError(f"min_lag: the markers need two steps before the last min_lag, so at most "
                         f"seq_len - 2 = {seq_len - 2}; got {value}")
    return int(value)


def truncation(value, name="bptt_truncate"):
    """None (full BPTT) or an integer K >= 0: how many steps back each loss's gradient flows."""
    if value is not None and (not _is_int(value) or value < 0):
        raise ValueError(f"{name}: expected None or an integer >= 0; got {value!r}")
    return None if value is None else int(value)


def choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(str, options))}; got {value!r}")
    return value


def float_dtype(name, dtype):
    import numpy as np

    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{name}: expected float32 or float64; got {dtype!r}")
    return dt


def array(name, value, shape, kind, dtype=None):
    """Check an array's rank, sizes (an int must match; a string such as 'T' names a free
    size) and kind ('f' float, 'i' integer).

    Returns a C-contiguous array, cast to ``dtype`` when given. Floats must be finite.
    """
    import numpy as np

    if not isinstance(value, np.ndarray):
        if hasattr(value, "detach"):  # a torch tensor, accepted without importing torch
            value = value.detach().cpu().numpy()
        else:
            value = np.asarray(value)
    want = "(" + ", ".join(str(s) for s in shape) + ")"
    if value.ndim != len(shape) or any(isinstance(s, int) and s != g for s, g in zip(shape, value.shape)):
        raise ValueError(f"{name}: expected shape {want}; got {tuple(value.shape)}")
    if kind == "f":
        if value.dtype.kind != "f":
            raise ValueError(f"{name}: expected a float array of shape {want}; got dtype {value.dtype}")
        # a NaN or inf anywhere makes the sum non-finite: one pass, no temporary mask, and
        # the exact check only when the sum says so (or overflows)
        if not np.isfinite(np.sum(value, dtype=np.float64)) and not np.all(np.isfinite(value)):
            raise ValueError(f"{name}: contains NaN or inf")
    elif value.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array of shape {want}; got dtype {value.dtype}")
    return np.ascontiguousarray(value, dtype=dtype)
