"""The recurrent-product kernel (fastrnn/cells/product.py) against np.dot, on shapes that
exercise every remainder path: rows not a multiple of 4 (B = 1, B = 3), columns not a
multiple of 3 or 6, K = 1, H = 1000; a row range that is one thread's share; accumulate."""
import numpy as np
import pytest

from fastrnn.cells.product import add_recurrent_grad, matmul_nt

SHAPES = [(1, 1, 1), (1, 5, 7), (1, 128, 512), (1, 1000, 4000), (3, 1, 4), (3, 7, 5), (4, 3, 3), (5, 13, 11),
          (8, 32, 128), (9, 1000, 12), (16, 1, 1000), (7, 1000, 1000)]


@pytest.mark.parametrize("M, K, N", SHAPES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_matmul_nt_equals_np_dot(M, K, N, dtype, rtol):
    rng = np.random.default_rng(M * 1000 + K + N)
    a = rng.standard_normal((M, K)).astype(dtype)
    bt = rng.standard_normal((N, K)).astype(dtype)
    ref = a.astype(np.float64) @ bt.T.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(bt).T.astype(np.float64)  # error bound's scale
    out = np.full((M, N), np.nan, dtype)
    matmul_nt(a, bt, out, 0, M, False)
    assert np.all(np.abs(out - ref) <= rtol * scale + 1e-30)
    init = rng.standard_normal((M, N)).astype(dtype)
    acc = init.copy()
    matmul_nt(a, bt, acc, 0, M, True)
    assert np.all(np.abs(acc - (init + ref)) <= rtol * (scale + np.abs(init)) + 1e-30)


@pytest.mark.parametrize("r0, r1", [(0, 0), (1, 2), (2, 7), (3, 9), (0, 9)])
def test_only_the_row_range_is_written(r0, r1):
    rng = np.random.default_rng(5)
    a, bt = rng.standard_normal((9, 10)), rng.standard_normal((7, 10))
    out = np.full((9, 7), -1.0)
    matmul_nt(a, bt, out, r0, r1, False)
    np.testing.assert_allclose(out[r0:r1], a[r0:r1] @ bt.T, rtol=1e-12)
    assert np.all(out[:r0] == -1.0) and np.all(out[r1:] == -1.0)


def test_add_recurrent_grad_is_dh_plus_dpre_w_hh():
    rng = np.random.default_rng(6)
    B, H, G = 5, 7, 28
    dpre, w_hh, dh = rng.standard_normal((B, G)), rng.standard_normal((G, H)), rng.standard_normal((B, H))
    want = dh + dpre @ w_hh
    add_recurrent_grad(dpre, np.ascontiguousarray(w_hh.T), dh, 0, B)
    np.testing.assert_allclose(dh, want, rtol=1e-12)


def test_nan_and_inf_propagate():
    """Divergence detection needs them: no fast-math flag may drop a NaN or an inf."""
    a = np.ones((4, 6), np.float32)
    bt = np.ones((3, 6), np.float32)
    a[1, 2] = np.nan
    a[2, 0] = np.inf
    out = np.zeros((4, 3), np.float32)
    matmul_nt(a, bt, out, 0, 4, False)
    assert np.all(np.isnan(out[1])) and np.all(np.isposinf(out[2])) and np.all(out[[0, 3]] == 6)
