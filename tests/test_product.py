"""The recurrent-product kernel (fastrnn/cells/product.py) against np.dot, on shapes that
exercise every remainder path: rows not a multiple of 4 (B = 1, B = 3), columns not a
multiple of a panel (16 float32 / 8 float64 columns) or of one register, K = 1, H = 1000; a
row range that is one thread's share; accumulate."""
import numpy as np
import pytest

from fastrnn.cells.product import add_recurrent_grad, matmul_packed, packed

SHAPES = [(1, 1, 1), (1, 5, 7), (1, 128, 512), (1, 1000, 4000), (3, 1, 4), (3, 7, 5), (4, 3, 3), (5, 13, 11),
          (8, 32, 128), (9, 1000, 12), (16, 1, 1000), (7, 1000, 1000), (6, 20, 17), (4, 9, 24), (12, 64, 36)]


@pytest.mark.parametrize("M, K, N", SHAPES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_matmul_packed_equals_np_dot(M, K, N, dtype, rtol):
    rng = np.random.default_rng(M * 1000 + K + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((K, N)).astype(dtype)
    ref = a.astype(np.float64) @ w.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(w).astype(np.float64)  # error bound's scale
    out = np.full((M, N), np.nan, dtype)
    wp = packed(w)
    matmul_packed(a, wp, np.ascontiguousarray(w.T), out, 0, M, 0.0)
    assert np.all(np.abs(out - ref) <= rtol * scale + 1e-30)
    init = rng.standard_normal((M, N)).astype(dtype)
    acc = init.copy()
    matmul_packed(a, wp, np.ascontiguousarray(w.T), acc, 0, M, 1.0)
    assert np.all(np.abs(acc - (init + ref)) <= rtol * (scale + np.abs(init)) + 1e-30)


@pytest.mark.parametrize("r0, r1", [(0, 0), (1, 2), (2, 7), (3, 9), (0, 9)])
def test_only_the_row_range_is_written(r0, r1):
    rng = np.random.default_rng(5)
    a, w = rng.standard_normal((9, 10)), rng.standard_normal((10, 11))
    out = np.full((9, 11), -1.0)
    matmul_packed(a, packed(w), np.ascontiguousarray(w.T), out, r0, r1, 0.0)
    np.testing.assert_allclose(out[r0:r1], a[r0:r1] @ w, rtol=1e-12)
    assert np.all(out[:r0] == -1.0) and np.all(out[r1:] == -1.0)


def test_add_recurrent_grad_is_dh_plus_dpre_w_hh():
    rng = np.random.default_rng(6)
    B, H, G = 5, 7, 28
    dpre, w_hh, dh = rng.standard_normal((B, G)), rng.standard_normal((G, H)), rng.standard_normal((B, H))
    want = dh + dpre @ w_hh
    add_recurrent_grad(dpre, packed(w_hh), np.ascontiguousarray(w_hh.T), dh, 0, B)
    np.testing.assert_allclose(dh, want, rtol=1e-12)


def test_nan_and_inf_propagate():
    """Divergence detection needs them: no fast-math flag may drop a NaN or an inf."""
    a = np.ones((4, 6), np.float32)
    w = np.ones((6, 3), np.float32)
    a[1, 2] = np.nan
    a[2, 0] = np.inf
    out = np.zeros((4, 3), np.float32)
    matmul_packed(a, packed(w), np.ascontiguousarray(w.T), out, 0, 4, 0.0)
    assert np.all(np.isnan(out[1])) and np.all(np.isposinf(out[2])) and np.all(out[[0, 3]] == 6)


def test_a_threads_share_gets_the_same_bits():
    """Threads split the batch on multiples of 4 rows (threads.run_split's align): a row's
    result must then be the same bits whichever share it is computed in."""
    rng = np.random.default_rng(7)
    a, w = rng.standard_normal((11, 37)).astype(np.float32), rng.standard_normal((37, 50)).astype(np.float32)
    wp = packed(w)
    whole = np.zeros((11, 50), np.float32)
    matmul_packed(a, wp, np.ascontiguousarray(w.T), whole, 0, 11, 0.0)
    for r0, r1 in [(0, 4), (4, 11), (0, 8), (8, 11), (4, 8)]:
        part = np.zeros((11, 50), np.float32)
        matmul_packed(a, wp, np.ascontiguousarray(w.T), part, r0, r1, 0.0)
        assert np.array_equal(part[r0:r1], whole[r0:r1])


def test_packed_panels_layout():
    w = np.arange(3 * 20, dtype=np.float32).reshape(3, 20)
    wp = packed(w)
    assert wp.shape == (2, 3, 16)
    assert np.array_equal(wp[0], w[:, :16]) and np.array_equal(wp[1, :, :4], w[:, 16:])
    assert np.all(wp[1, :, 4:] == 0)
