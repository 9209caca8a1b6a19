"""The recurrent-product kernel (fastrnn/cpu/product.py) against np.dot, on shapes that
exercise every remainder path: rows not a multiple of 4 (B = 1, B = 3), columns not a
multiple of a panel (16 float32 / 8 float64 columns) or of one register, K = 1, H = 1000; a
row range that is one thread's share; accumulate."""
import numpy as np
import pytest

from fastrnn.cpu.product import add_recurrent_grad, matmul_packed, packed, row_panels, unit_cols

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
    matmul_packed(a, wp, out, 0, M, 0.0)
    assert np.all(np.abs(out - ref) <= rtol * scale + 1e-30)
    init = rng.standard_normal((M, N)).astype(dtype)
    acc = init.copy()
    matmul_packed(a, wp, acc, 0, M, 1.0)
    assert np.all(np.abs(acc - (init + ref)) <= rtol * (scale + np.abs(init)) + 1e-30)


@pytest.mark.parametrize("r0, r1", [(0, 0), (1, 2), (2, 7), (3, 9), (0, 9)])
def test_only_the_row_range_is_written(r0, r1):
    rng = np.random.default_rng(5)
    a, w = rng.standard_normal((9, 10)), rng.standard_normal((10, 11))
    out = np.full((9, 11), -1.0)
    matmul_packed(a, packed(w), out, r0, r1, 0.0)
    np.testing.assert_allclose(out[r0:r1], a[r0:r1] @ w, rtol=1e-12)
    assert np.all(out[:r0] == -1.0) and np.all(out[r1:] == -1.0)


def test_add_recurrent_grad_is_dh_plus_dpre_w_hh():
    rng = np.random.default_rng(6)
    B, H, G = 5, 7, 28
    dpre, w_hh, dh = rng.standard_normal((B, G)), rng.standard_normal((G, H)), rng.standard_normal((B, H))
    want = dh + dpre @ w_hh
    add_recurrent_grad(dpre, packed(w_hh), dh, 0, B)
    np.testing.assert_allclose(dh, want, rtol=1e-12)


def test_nan_and_inf_propagate():
    """Divergence detection needs them: no fast-math flag may drop a NaN or an inf."""
    a = np.ones((4, 6), np.float32)
    w = np.ones((6, 3), np.float32)
    a[1, 2] = np.nan
    a[2, 0] = np.inf
    out = np.zeros((4, 3), np.float32)
    matmul_packed(a, packed(w), out, 0, 4, 0.0)
    assert np.all(np.isnan(out[1])) and np.all(np.isposinf(out[2])) and np.all(out[[0, 3]] == 6)


def test_a_threads_share_gets_the_same_bits():
    """Threads split the batch (threads.run_split): a row's result is the same bits whichever
    share computes it, and whether it goes in a 4-row tile or alone (row_panels): shares
    that start or end off a multiple of 4 too."""
    rng = np.random.default_rng(7)
    a, w = rng.standard_normal((11, 37)).astype(np.float32), rng.standard_normal((37, 50)).astype(np.float32)
    wp = packed(w)
    whole = np.zeros((11, 50), np.float32)
    matmul_packed(a, wp, whole, 0, 11, 0.0)
    for r0, r1 in [(0, 4), (4, 11), (0, 8), (8, 11), (4, 8), (1, 11), (3, 10), (5, 6), (10, 11)]:
        part = np.zeros((11, 50), np.float32)
        matmul_packed(a, wp, part, r0, r1, 0.0)
        assert np.array_equal(part[r0:r1], whole[r0:r1])


def test_packed_panels_layout():
    w = np.arange(3 * 20, dtype=np.float32).reshape(3, 20)
    wp = packed(w)
    assert wp.shape == (2, 3, 16)
    assert np.array_equal(wp[0], w[:, :16]) and np.array_equal(wp[1, :, :4], w[:, 16:])
    assert np.all(wp[1, :, 4:] == 0)


@pytest.mark.parametrize("K, N", [(1, 1), (5, 7), (32, 32), (32, 128), (128, 512), (512, 128), (100, 400), (7, 1000)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_row_panels_on_column_ranges(K, N, dtype, rtol):
    """One row against np.dot on column ranges that start and end inside a panel, span one
    panel, 2, 3, 4 or more (each of its passes); columns outside the range untouched; +=; and
    every column the same bits as the whole row's (the column split's guarantee)."""
    rng = np.random.default_rng(K * 7 + N)
    x, w = rng.standard_normal(K).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    wp = packed(w)
    ref = x.astype(np.float64) @ w.astype(np.float64)
    scale = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
    whole = np.full(N, np.nan, dtype)
    row_panels(x, wp, whole, 0, N, 0.0)
    assert np.all(np.abs(whole - ref) <= rtol * scale + 1e-30)
    cuts = sorted({0, 1, N // 7, N // 3, N // 2, N // 2 + 1, N - 17, N - 1, N} & set(range(N + 1)))
    for j0 in cuts:
        for j1 in cuts:
            if j1 <= j0:
                continue
            part = np.full(N, -3.0, dtype)
            row_panels(x, wp, part, j0, j1, 0.0)
            assert np.array_equal(part[j0:j1], whole[j0:j1]) and np.all(part[:j0] == -3) and np.all(part[j1:] == -3)
            acc = np.full(N, 0.5, dtype)
            row_panels(x, wp, acc, j0, j1, 1.0)
            assert np.array_equal(acc[j0:j1], (dtype(0.5) + whole[j0:j1]).astype(dtype)) and np.all(acc[j1:] == 0.5)


@pytest.mark.parametrize("u0, u1", [(0, 20), (0, 16), (16, 20), (5, 11), (19, 20)])
def test_unit_cols_writes_each_gate_blocks_units(u0, u1):
    """The column split's product: units u0..u1-1 of each of the 4 gate blocks (H = 20, so
    blocks start inside panels), the same bits as the whole row's product."""
    rng = np.random.default_rng(u0 * 31 + u1)
    H = 20
    x, w = rng.standard_normal(H).astype(np.float32), rng.standard_normal((H, 4 * H)).astype(np.float32)
    wp = packed(w)
    whole = np.zeros(4 * H, np.float32)
    row_panels(x, wp, whole, 0, 4 * H, 0.0)
    got = np.full(4 * H, 9.0, np.float32)
    unit_cols(x, wp, got, H, u0, u1, 0.0)
    mine = np.zeros(4 * H, bool)
    for q in range(4):
        mine[q * H + u0:q * H + u1] = True
    assert np.array_equal(got[mine], whole[mine]) and np.all(got[~mine] == 9.0)
