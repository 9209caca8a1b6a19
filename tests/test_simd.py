"""The register values of fastrnn/cpu/simd.py that the float32 pointwise loops use: each lane
of tanh, sigmoid and the arithmetic gives what the scalar code gives for that element, NaN
passes through, and the tree sum adds every lane."""
import numpy as np
import pytest
from numba import njit

from fastrnn.cells._math import one_like, sigmoid, tanh
from fastrnn.config import ERROR_MODEL, FASTMATH
from fastrnn.cpu.simd import pload, pstore, pzero, vsplit, vsum

KERNEL = dict(fastmath=FASTMATH, error_model=ERROR_MODEL)  # the kernels' flags


@njit(**KERNEL)
def _lanes(x, out_t, out_s, out_a):
    """Every whole register of x through the register forms, then the tail through scalars
    (a kernel's shape); returns the registers' sum."""
    stop, V = vsplit(0, x.shape[0], x)
    acc = pzero(x)
    for j in range(0, stop, V):
        v = pload(x, j)
        pstore(out_t, j, tanh(v))
        pstore(out_s, j, sigmoid(v))
        pstore(out_a, j, (one_like(v) - v * 0.5) / (v + 3.0))
        acc = acc + v
    total = vsum(acc)
    for j in range(stop, x.shape[0]):
        out_t[j], out_s[j] = tanh(x[j]), sigmoid(x[j])
        out_a[j] = (one_like(x[j]) - x[j] * 0.5) / (x[j] + 3.0)
        total += x[j]
    return total, stop


@njit(**KERNEL)
def _scalars(x, out_t, out_s, out_a):
    for j in range(x.shape[0]):
        out_t[j], out_s[j] = tanh(x[j]), sigmoid(x[j])
        out_a[j] = (one_like(x[j]) - x[j] * 0.5) / (x[j] + 3.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_register_gives_each_lane_what_a_scalar_gives(dtype):
    x = np.concatenate([np.linspace(-12, 12, 90), [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 0.3]]).astype(dtype)
    got = [np.empty_like(x) for _ in range(3)]
    want = [np.empty_like(x) for _ in range(3)]
    total, stop = _lanes(x, *got)
    _scalars(x, *want)
    assert stop == (96 if dtype == np.float32 else 0)  # 6 registers of 16, a tail of 1; float64: all scalar
    for g, w in zip(got[:2], want[:2]):  # tanh and sigmoid: to the bit (NaN where NaN)
        np.testing.assert_array_equal(g, w)
        assert np.isnan(g[90])
    # arithmetic: within an ulp (the kernels' fast-math flags let the two fuse differently)
    np.testing.assert_allclose(got[2], want[2], rtol=np.finfo(dtype).eps, atol=0, equal_nan=True)
    assert np.isnan(total)  # the NaN lane reaches the sum


def test_tree_sum_and_tail():
    x = np.arange(1, 21, dtype=np.float32)  # one register of 16, then a tail of 4
    outs = [np.empty_like(x) for _ in range(3)]
    total, stop = _lanes(x, *outs)
    assert stop == 16 and total == 210.0


@njit(**KERNEL)
def _register64(x, out_t, out_s):
    pstore(out_t, 0, tanh(pload(x, 0)))
    pstore(out_s, 0, sigmoid(pload(x, 0)))


def test_float64_registers_take_libm_lane_by_lane():
    """The kernels send float64 to their scalar loops, but a float64 register's tanh and sigmoid
    are compiled all the same; run once, they are libm's, lane by lane."""
    x = np.array([-30.0, -2.5, -1e-9, 0.0, 0.7, 3.0, 40.0, np.nan])
    out_t, out_s = np.empty_like(x), np.empty_like(x)
    _register64(x, out_t, out_s)
    want = np.array([_one(v) for v in x])  # the scalar functions, element by element
    np.testing.assert_array_equal(out_t, want[:, 0])
    np.testing.assert_array_equal(out_s, want[:, 1])


@njit(**KERNEL)
def _one(v):
    return tanh(v), sigmoid(v)
