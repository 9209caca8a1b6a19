"""Scalar nonlinearities shared by the cell kernels, specialized by precision; the CPU kernels
also call them on a register of float32 lanes (cpu/simd.py's Vector, a ``Lanes`` type), so
that a pointwise formula is written once for its register loop and its scalar remainder.

float64: libm's tanh and exp, so the float64 kernels match the NumPy reference to ~1e-15.
float32: a branch-free rational tanh (the minimax approximation Eigen uses for float tanh),
max error 3.5e-7 on the whole line, i.e. a few float32 ulp. Being plain arithmetic it lets
LLVM vectorize the pointwise loops, where libm calls cannot be (Numba's SVML path needs a
patched LLVM that the pip llvmlite lacks). sigmoid(x) = 0.5 + 0.5 tanh(x / 2) exactly.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from ..config import ERROR_MODEL, FASTMATH

# numerator (odd powers 1..13) and denominator (even powers 0..6) coefficients
A1, A3, A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05)
A7, A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
A11, A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
B0, B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
B4, B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)
CLAMP = np.float32(7.90531110763549805)  # tanh(7.905) rounds to 1 in float32
HALF = np.float32(0.5)
# tanh and sigmoid compile as functions of their own, which LLVM inlines into the kernels'
# loops (checked: the same vectorized code); inlining them in Numba's IR instead, at every
# call, cost ~3.5 s of a cold compile. The kernels' flags, passed on: overload() takes its
# compiler options only through jit_options.
JIT = dict(fastmath=FASTMATH, error_model=ERROR_MODEL)


class Lanes(types.Type):
    """The base of cpu/simd.py's register type: a value of several lanes of ``dtype``, on
    which tanh, sigmoid, one_like and zero_like below work lane by lane (float32 lanes only
    for tanh and sigmoid). Declared here so that this module need not import the CPU's."""


def _is_f32(x):
    """float32, or a register of float32 lanes."""
    t = x.dtype if isinstance(x, Lanes) else x
    return isinstance(t, types.Float) and t.bitwidth == 32


def tanh(x):
    """tanh; float32 arguments take the vectorizable rational form (see module doc)."""
    return math.tanh(x)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def clamp(x, lo, hi):
    """min(max(x, lo), hi): a NaN stays NaN. cpu/simd.py adds the register form."""
    return min(max(x, lo), hi)


@overload(clamp, inline="always")
def _ov_clamp(x, lo, hi):
    if isinstance(x, types.Float):
        return lambda x, lo, hi: min(max(x, lo), hi)


def _tanh32(x):
    x = clamp(x, -CLAMP, CLAMP)
    x2 = x * x
    p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * x
    q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0
    return p / q


@overload(tanh, jit_options=JIT)
def _ov_tanh(x):
    if _is_f32(x):
        return _tanh32
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)


@overload(sigmoid, jit_options=JIT)
def _ov_sigmoid(x):
    if _is_f32(x):
        def impl(x):
            return HALF + HALF * tanh(HALF * x)
        return impl
    if isinstance(x, types.Float):
        # exp(-x) overflows to inf for x << 0 and 1/(1+inf) = 0 is right: no branch, no ninf flag
        return lambda x: 1.0 / (1.0 + math.exp(-x))


def one_like(x):
    """1 in the type of x (a register's: its lanes'): keeps float32 arithmetic in float32 (a
    bare 1.0 is float64 and would widen every expression it touches)."""
    return 1.0


@overload(one_like, inline="always")
def _ov_one_like(x):
    if _is_f32(x):
        return lambda x: np.float32(1.0)
    return lambda x: 1.0


def zero_like(x):
    """0 in the type of x (see one_like)."""
    return 0.0


@overload(zero_like, inline="always")
def _ov_zero_like(x):
    if _is_f32(x):
        return lambda x: np.float32(0.0)
    return lambda x: 0.0


@register_jitable
def copy(dst, src):
    """dst[:] = src for 1-d arrays, as a loop: the slice assignment compiles NumPy's
    shape-mismatch error message (string formatting: ~3.5 s of a process's first compile)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]
