"""The weight-gradient product (fastrnn/cpu/blas.py matmul_tn: out = a.T @ b and a's column sums)
against a float64 reference, in each of its three forms: a narrow b (K <= NARROW, the fused
pass), b narrower than a (b copied transposed with a row of ones), a narrower than b; one part
and several (N past PART_ROWS, N not a multiple of the part count); b as a pair (both products
from one pass); and the same bits whatever the thread count. Also the blocked transpose they
copy with."""
import numpy as np
import pytest

from fastrnn.cpu import blas, threads
from fastrnn.cpu.blas import MATMUL_ROWS, MAX_PARTS, NARROW, PART_ROWS, TILE_BLOCK_BYTES, _tile_fits, matmul, matmul_tn
from fastrnn.cpu.gradtile import SUM_BLOCK, tn_tile
from fastrnn.cpu.product import transpose_into

@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    """Parts as small in work as in rows, so these small shapes take several parts."""
    monkeypatch.setattr(blas, "PART_WORK", 1)


# (N, M, K): a (N, M), b (N, K)
SHAPES = [(1, 1, 1), (3, 5, 2), (9, 1, 3), (9, 2, NARROW), (7, 9, NARROW), (7, 9, NARROW + 1), (2 * PART_ROWS + 37, 40, 2),
          (2 * PART_ROWS + 37, 40, 13), (2 * PART_ROWS + 37, 6, 30), (PART_ROWS * (MAX_PARTS + 2) + 5, 17, 1),
          (600, 1, 64), (64, 512, 128),
          # gradtile's tile (M a multiple of 16, K + 1 padded to 6 rows of SUM_BLOCK numbers in TILE_BLOCK_BYTES):
          # an LSTM's at H = 32 (K + 1 = 35, padded to 36) and at H = 128 (131, M = 512), K + 1 a multiple of 6,
          # one row, sums over several blocks, the most rows a float64 tile takes
          (2 * PART_ROWS + 37, 128, 34), (PART_ROWS + 9, 512, 130), (3, 48, 47), (SUM_BLOCK + 3, 16, 63), (1, 32, 5),
          (3 * SUM_BLOCK + 1, 32, 32), (70, 64, 191)]


@pytest.mark.parametrize("N, M, K", SHAPES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_matmul_tn_and_column_sums_equal_the_reference(N, M, K, dtype, rtol):
    rng = np.random.default_rng(N + 10 * M + 100 * K)
    a = rng.standard_normal((N, M)).astype(dtype)
    b = rng.standard_normal((N, K)).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out, sums = np.full((M, K), np.nan, dtype), np.full(M, np.nan, dtype)
    matmul_tn(a, b, out, sums)
    scale = np.abs(a64).T @ np.abs(b64)  # the error bound's scale
    assert np.all(np.abs(out - a64.T @ b64) <= rtol * scale)
    assert np.all(np.abs(sums - a64.sum(axis=0)) <= rtol * np.abs(a64).sum(axis=0))
    alone = np.full((M, K), np.nan, dtype)
    matmul_tn(a, b, alone)  # without sums: the same product
    assert np.array_equal(alone, out)


@pytest.mark.parametrize("M, K", [(24, 2), (24, 13), (32, 13)])  # the last one: gradtile's tile
def test_matmul_tn_bits_do_not_depend_on_the_thread_count(M, K):
    rng = np.random.default_rng(K)
    a = rng.standard_normal((3 * PART_ROWS + 11, M)).astype(np.float32)
    b = rng.standard_normal((3 * PART_ROWS + 11, K)).astype(np.float32)
    before = threads.get_threads()
    results = []
    try:
        for n in (1, 2, 3):
            threads.set_threads(n)
            out, sums = np.empty((M, K), np.float32), np.empty(M, np.float32)
            matmul_tn(a, b, out, sums)
            results.append((out, sums))
    finally:
        threads.set_threads(before)
    for out, sums in results[1:]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(sums, results[0][1])


@pytest.mark.parametrize("N, K, M", [(1, 1, 1), (5, 2, 3), (MATMUL_ROWS + 3, 2, 128), (2 * MATMUL_ROWS + 1, 1, 20),
                                     (9, 3, 37), (40, NARROW, 16), (33, NARROW + 1, 24)])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_matmul_equals_the_reference(N, K, M, transposed, dtype, rtol):
    """out = a @ b (b.T): a narrow a (K <= NARROW, our own pass: whole registers, then the
    columns past them) and a wider one (BLAS), in several row blocks; the same bits on 1, 2
    and 3 threads (the blocks are fixed by the shape)."""
    rng = np.random.default_rng(N + 10 * K + M)
    a = rng.standard_normal((N, K)).astype(dtype)
    b = rng.standard_normal((M, K) if transposed else (K, M)).astype(dtype)
    w = b.T if transposed else b
    exact = a.astype(np.float64) @ w.astype(np.float64)
    before, results = threads.get_threads(), []
    try:
        for n in (1, 2, 3):
            threads.set_threads(n)
            out = np.full((N, M), np.nan, dtype)
            matmul(a, b, out, transposed=transposed)
            results.append(out)
    finally:
        threads.set_threads(before)
    assert np.all(np.abs(results[0] - exact) <= rtol * (np.abs(a).astype(np.float64) @ np.abs(w)))
    for out in results[1:]:
        assert np.array_equal(out, results[0])


@pytest.mark.parametrize("R, L, M", [(6, 1, 16), (6, SUM_BLOCK, 16), (12, SUM_BLOCK + 1, 32), (36, 3 * SUM_BLOCK - 7, 128),
                                     (60, 100, 64), (132, SUM_BLOCK + 5, 512)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_tn_tile_equals_the_reference(R, L, M, dtype, rtol):
    """gradtile's tile alone against np.dot in float64: one row of the sum, one block, a block
    and one more, several blocks; every row tile written, nothing outside out touched."""
    rng = np.random.default_rng(R + L + M)
    nt, a = rng.standard_normal((R, L)).astype(dtype), rng.standard_normal((L, M)).astype(dtype)
    buf = np.full((R + 2, M), np.nan, dtype)
    out = buf[1:-1]
    tn_tile(nt, a, out)
    exact = nt.astype(np.float64) @ a.astype(np.float64)
    assert np.all(np.abs(out - exact) <= rtol * (np.abs(nt).astype(np.float64) @ np.abs(a)))
    assert np.all(np.isnan(buf[0])) and np.all(np.isnan(buf[-1]))


def test_tile_takes_narrow_sides_that_stay_in_l2():
    assert _tile_fits(128, 35, np.float32) and _tile_fits(96, 35, np.float32) and _tile_fits(40, 9, np.float64)
    assert _tile_fits(512, 131, np.float32) and _tile_fits(2048, 131, np.float32)  # an LSTM's at H = 128
    assert not _tile_fits(40, 9, np.float32)  # not a whole number of 16-column panels
    assert not _tile_fits(2048, 641, np.float32)  # an LSTM's at I = 128, H = 512: BLAS's
    most = TILE_BLOCK_BYTES // (SUM_BLOCK * 4)  # rows, float32 (a multiple of 6: padding adds none)
    assert most % 6 == 0 and _tile_fits(512, most, np.float32) and not _tile_fits(512, most + 1, np.float32)
    assert _tile_fits(512, most // 2, np.float64) and not _tile_fits(512, most // 2 + 1, np.float64)


def test_matmul_tn_propagates_nan_and_inf():
    a = np.ones((20, 6), np.float32)
    b = np.ones((20, 2), np.float32)
    a[3, 1], a[4, 2] = np.nan, np.inf
    out, sums = np.empty((6, 2), np.float32), np.empty(6, np.float32)
    matmul_tn(a, b, out, sums)
    assert np.all(np.isnan(out[1])) and np.isnan(sums[1]) and np.all(np.isposinf(out[2])) and np.isposinf(sums[2])
    assert np.all(out[[0, 3, 4, 5]] == 20) and np.all(sums[[0, 3, 4, 5]] == 20)


@pytest.mark.parametrize("N, K", [(1, 1), (8, 8), (9, 17), (16, 3), (30, 64), (1000, 7)])
def test_transpose_into(N, K):
    w = np.arange(N * K, dtype=np.float32).reshape(N, K)
    out = np.full((K, N), -1, np.float32)
    transpose_into(w, out)
    assert np.array_equal(out, w.T)


# (N, M, K1, K2): a (N, M), b1 (N, K1), b2 (N, K2); the pair form (one pass) needs NARROW < K1 + K2 <= M
PAIRS = [(7, 9, 2, 5), (2 * PART_ROWS + 37, 40, 2, 13), (2 * PART_ROWS + 37, 40, 1, 39), (600, 64, 16, 32),
         (5, 8, 1, 2), (9, 4, 3, 7), (2 * PART_ROWS + 37, 6, 30, 1)]  # the last three: one product at a time


@pytest.mark.parametrize("N, M, K1, K2", PAIRS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
def test_matmul_tn_pair_equals_the_reference(N, M, K1, K2, dtype, rtol):
    """b and out as pairs (an LSTM layer's input-side and recurrent weight gradients): both
    products and a's column sums, as accurate as the single form."""
    rng = np.random.default_rng(N + 10 * M + 100 * K1 + 1000 * K2)
    a, b1, b2 = (rng.standard_normal(s).astype(dtype) for s in ((N, M), (N, K1), (N, K2)))
    out1, out2, sums = np.full((M, K1), np.nan, dtype), np.full((M, K2), np.nan, dtype), np.full(M, np.nan, dtype)
    matmul_tn(a, (b1, b2), (out1, out2), sums)
    a64 = a.astype(np.float64)
    for b, out in ((b1, out1), (b2, out2)):
        b64 = b.astype(np.float64)
        assert np.all(np.abs(out - a64.T @ b64) <= rtol * (np.abs(a64).T @ np.abs(b64)))
    assert np.all(np.abs(sums - a64.sum(axis=0)) <= rtol * np.abs(a64).sum(axis=0))


def test_matmul_tn_pair_bits_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(5)
    a, b1, b2 = (rng.standard_normal((3 * PART_ROWS + 11, k)).astype(np.float32) for k in (48, 3, 16))
    before = threads.get_threads()
    results = []
    try:
        for n in (1, 2, 3):
            threads.set_threads(n)
            outs = np.empty((48, 3), np.float32), np.empty((48, 16), np.float32), np.empty(48, np.float32)
            matmul_tn(a, (b1, b2), outs[:2], outs[2])
            results.append(outs)
    finally:
        threads.set_threads(before)
    for outs in results[1:]:
        assert all(np.array_equal(x, y) for x, y in zip(outs, results[0]))


def test_matmul_tn_reuses_its_workspace_without_carrying_anything_over():
    """The partial products live in a buffer reused call after call (blas._workspace): a
    large product, a small one in the same buffer, then the large one again give what fresh
    calls give, with the column sums."""
    rng = np.random.default_rng(7)
    big = rng.standard_normal((3 * PART_ROWS + 11, 40)).astype(np.float32), rng.standard_normal((3 * PART_ROWS + 11, 13)).astype(np.float32)
    small = rng.standard_normal((9, 6)).astype(np.float32), rng.standard_normal((9, 2)).astype(np.float32)
    got = []
    for a, b in (big, small, big, small):
        out, sums = np.full((a.shape[1], b.shape[1]), np.nan, np.float32), np.full(a.shape[1], np.nan, np.float32)
        matmul_tn(a, b, out, sums)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        assert np.all(np.abs(out - a64.T @ b64) <= 1e-5 * (np.abs(a64).T @ np.abs(b64)))
        assert np.all(np.abs(sums - a64.sum(axis=0)) <= 1e-5 * np.abs(a64).sum(axis=0))
        got.append((out, sums))
    for x, y in zip(got[0] + got[1], got[2] + got[3]):
        assert np.array_equal(x, y)


def test_workspace_is_reused_within_a_thread_and_apart_between_threads():
    import threading

    first = blas._workspace("parts", (4, 100), np.float32)
    again = blas._workspace("parts", (10, 3), np.float64)  # smaller in bytes: the same buffer
    assert np.shares_memory(first, again) and again.shape == (10, 3) and again.dtype == np.float64
    other = []
    t = threading.Thread(target=lambda: other.append(blas._workspace("parts", (4, 100), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(first, other[0])
    assert not np.shares_memory(first, blas._workspace("acc", (4, 100), np.float32))
