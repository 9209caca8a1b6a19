"""The batch split across threads changes nothing but speed, and thread settings are honoured."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from numba import njit

import naive
from fastrnn import CELLS
from fastrnn.cpu import threads
from fastrnn.finitediff import make_problem


@pytest.fixture
def two_threads():
    before = threads.get_threads()
    threads.set_threads(2)
    yield
    threads.set_threads(before)


@pytest.mark.parametrize("cell", list(CELLS))
def test_split_batch_matches_reference_and_single_thread(cell, two_threads):
    model, b = make_problem(cell, loss="ce", output="all", num_layers=2, T=9, B=16, seed=5)
    res = model.loss_and_grad(**b)  # 2 threads x 8 sequences
    g2, y2 = res.grad.copy(), res.output.copy()
    threads.set_threads(1)
    res1 = model.loss_and_grad(**b)
    np.testing.assert_allclose(g2, res1.grad, rtol=0, atol=1e-13)
    np.testing.assert_allclose(y2, res1.output, rtol=0, atol=1e-13)
    _, grads, y, _ = naive.loss_and_grad(model, b["x"], b["target"], "ce", "all", b["lengths"])
    at = 0
    for name, g in grads.items():
        n = g.size
        assert np.abs(g2[at:at + n].reshape(g.shape) - g).max() < 1e-10 * max(np.abs(g).max(), 1e-300), name
        at += n


def test_big_products_split_the_same(two_threads):
    from fastrnn.cpu.blas import matmul, matmul_tn

    r = np.random.default_rng(0)
    a, b = r.random((3000, 40)), r.random((3000, 30))
    out = np.empty((40, 30))
    matmul_tn(a, b, out)
    np.testing.assert_allclose(out, a.T @ b, rtol=1e-12)
    w = r.random((30, 50))  # 4.5M multiply-adds: above blas.PART_WORK, so shared out
    out2 = np.empty((3000, 50))
    matmul(b, w, out2)
    np.testing.assert_allclose(out2, b @ w, rtol=1e-12)


@njit(nogil=True)
def _fill(out, r0, r1):
    """out[r] = r for the rows of this share; a row of -1 raises (in the share that holds it)."""
    for r in range(r0, r1):
        if out[r] == -1:
            raise ValueError("row -1")
        out[r] = r


def test_pool_shares_are_all_done_many_times_over(two_threads):
    """Thousands of hand-offs in a row (each share spins for the next): every row written."""
    for i in range(3000):
        out = np.zeros(8 + i % 5)
        threads.run_split(_fill, (out,), out.size, 2)
        assert np.array_equal(out, np.arange(out.size))


def test_threads_that_split_at_once_each_get_their_own_pool(two_threads):
    """Two Python threads (two models training side by side) splitting at the same time: every
    share done, none taken by the other thread's split."""
    bad = []

    def many():
        for i in range(1500):
            out = np.zeros(8 + i % 5)
            threads.run_split(_fill, (out,), out.size, 2)
            if not np.array_equal(out, np.arange(out.size)):
                bad.append(i)

    callers = [threading.Thread(target=many) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in callers) and not bad


def test_a_sleeping_pool_thread_is_woken(two_threads, monkeypatch):
    """Past IDLE_SPINS without work a pool thread sleeps on its condition; the next share wakes it."""
    monkeypatch.setattr(threads, "IDLE_SPINS", 10)
    out = np.zeros(8)
    threads.run_split(_fill, (out,), 8, 2)  # starts the worker; it then sleeps after 10 spins
    (w,) = threads._workers(1)
    for _ in range(200):
        if w.flags[w.ASLEEP]:
            break
        time.sleep(0.01)
    assert w.flags[w.ASLEEP] == 1
    out = np.zeros(8)

    def share():  # to this same sleeping worker: another thread's run_split would start its own pool
        w.submit(_fill, (out, 0, 8))
        w.result()
    caller = threading.Thread(target=share, daemon=True)
    caller.start()
    caller.join(timeout=30)  # a lost wake-up would hang the share: fail instead
    assert not caller.is_alive() and np.array_equal(out, np.arange(8))


def test_an_error_in_a_pool_threads_share_reaches_the_caller(two_threads):
    out = np.zeros(8)
    out[6] = -1  # in the pool thread's half
    with pytest.raises(ValueError, match="row -1"):
        threads.run_split(_fill, (out,), 8, 2)
    out = np.zeros(8)  # and the pool goes on
    threads.run_split(_fill, (out,), 8, 2)
    assert np.array_equal(out, np.arange(8))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_pool_threads(two_threads):
    """A fork copies the pool's records but none of its threads: the child must not wait on them."""
    import multiprocessing

    threads.run_split(_fill, (np.zeros(8),), 8, 2)  # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_split_in_child).get(timeout=60)
    assert got == list(range(8))


def _split_in_child():
    out = np.zeros(8)
    threads.run_split(_fill, (out,), 8, 2)
    return out.tolist()


@pytest.mark.parametrize("env, expect", [({"NUMBA_NUM_THREADS": "1"}, "1"), ({"OMP_NUM_THREADS": "3"}, "3"),
                                         ({"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}, "2")])
def test_thread_count_comes_from_the_environment(env, expect):
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "from fastrnn.cpu import threads; print(threads.get_threads())"],
                         env=dict(clean, **env), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expect


def test_set_threads_rejects_nonsense():
    with pytest.raises(ValueError, match="threads: expected a positive integer; got 0"):
        threads.set_threads(0)


@pytest.mark.parametrize("cell", ["tanh", "gru", "lstm"])
def test_results_do_not_depend_on_the_thread_count(cell, two_threads):
    """Bit for bit, 1, 2 or 3 threads: the batch splits on the recurrent product's row blocks
    and the big products are cut by their shape, not by the threads (float32, two layers,
    a batch that is no multiple of 4 and products of 2,220 rows)."""
    from fastrnn import RNN

    rng = np.random.default_rng(37)
    T, B = 60, 37
    x = rng.normal(0, 1, (T, B, 3)).astype(np.float32)
    y = rng.normal(0, 1, (B, 2)).astype(np.float32)
    lengths = rng.integers(1, T + 1, B)
    runs = []
    for n in (1, 2, 3):
        threads.set_threads(n)
        m = RNN(cell, 3, 24, 2, 2, seed=1)
        for _ in range(3):  # a few SGD steps: differences would compound
            r = m.loss_and_grad(x, y, "mse", "last", lengths)
            m.flat -= np.float32(0.05) * r.grad
        runs.append((m.flat.copy(), m.forward(x, lengths, output="all")[0]))
    for flat, out in runs[1:]:
        np.testing.assert_array_equal(flat, runs[0][0])
        np.testing.assert_array_equal(out, runs[0][1])


@pytest.mark.skipif(threads._getcpu is None, reason="needs Linux's sched_getcpu and sched_setaffinity")
def test_a_worker_keeps_off_its_callers_cpu():
    """The pool thread's allowed CPUs are its caller's minus the one the caller is on, or all of
    the caller's when that would leave fewer CPUs than workers; the caller's own are untouched."""
    import threading

    mine = os.sched_getaffinity(0)
    cpu, caller = sorted(mine)[0], threading.get_native_id()
    seen = []
    for workers in (1, len(mine)):
        t = threading.Thread(target=threads._away_from,
                             args=(cpu, caller, workers, lambda: seen.append(os.sched_getaffinity(0)), ()))
        t.start()
        t.join()
    assert seen[0] == (mine - {cpu} if len(mine) > 1 else mine)
    assert seen[1] == mine
    assert os.sched_getaffinity(0) == mine


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-4)])
def test_column_split_matches_the_reference_for_any_thread_count(B, dtype, rtol, two_threads, monkeypatch):
    """B < 4: the LSTM's threads share each step's hidden units and meet at a barrier every
    step (threads.run_columns). H = 100 (no multiple of 16): 1, 2 and 3 threads (3 on a 2-core
    machine too: the barrier yields the CPU) and the row kernels give the same bits, and the
    gradients (two layers, full and truncated BPTT, lengths shorter than T) match the NumPy
    reference (a bidirectional layer: the same bits for any thread count). The rule is widened to this H and to float64,
    whose exact reference checks the kernels' arithmetic; float32 is the path that ships."""
    from fastrnn import RNN, config
    from fastrnn.cpu import lstm

    monkeypatch.setattr(threads, "_cpus", lambda: 3)  # let 3 threads run on fewer cores
    monkeypatch.setattr(config, "MIN_COL_WORK", 1)  # the column split at this small H too
    monkeypatch.setattr(lstm, "share_columns", lambda B, H, gates, dtype, steps: B < config.ROW_BLOCK)  # any T, float64
    calls = []
    monkeypatch.setattr(lstm, "run_columns", lambda *a: calls.append(1) or threads.run_columns(*a))
    rng = np.random.default_rng(B)
    T, I, H = 9, 3, 100
    x = rng.normal(0, 1, (T, B, I)).astype(dtype)
    y = rng.normal(0, 1, (T, B, 2)).astype(dtype)
    lengths = np.array([T, 4, 7][:B])
    runs = []
    for n in (1, 2, 3):
        threads.set_threads(n)
        models = [RNN("lstm", I, H, 2, 2, dtype=dtype, seed=2),
                  RNN("lstm", I, H, 2, 1, bidirectional=True, dtype=dtype, seed=3)]
        for m in models:
            m.flat += np.random.default_rng(0).normal(0, 0.1, m.flat.size).astype(dtype)
        uni, bi = models
        runs.append([uni.loss_and_grad(x, y, "mse", "all", lengths).grad.copy(),
                     uni.loss_and_grad(x, y, "mse", "all", lengths, bptt_truncate=3).grad.copy(),
                     bi.loss_and_grad(x, y, "mse", "all", lengths).grad.copy(),
                     uni.forward(x, lengths, output="all")[0]])
    for got in runs[1:]:
        for a, b in zip(got, runs[0]):
            np.testing.assert_array_equal(a, b)
    assert calls  # the column kernels ran
    # and the row kernels give the same bits: each column is the same sum (product.row_panels)
    monkeypatch.setattr(lstm, "share_columns", lambda *a: False)
    threads.set_threads(1)
    uni = RNN("lstm", I, H, 2, 2, dtype=dtype, seed=2)
    uni.flat += np.random.default_rng(0).normal(0, 0.1, uni.flat.size).astype(dtype)
    np.testing.assert_array_equal(uni.loss_and_grad(x, y, "mse", "all", lengths).grad, runs[0][0])
    for K, grad in ((None, runs[0][0]), (3, runs[0][1])):
        _, grads, _, _ = naive.loss_and_grad(uni, x, y, "mse", "all", lengths, K=K)
        ref = np.concatenate([grads[k].ravel() for k in uni.shapes])
        assert np.abs(grad - ref).max() < rtol * np.abs(ref).max(), K


def test_which_shapes_share_columns():
    """A rule on B, the step's gate columns, the call's steps and the dtype alone (so never on
    the thread count)."""
    from fastrnn.config import MIN_COL_STEPS, MIN_COL_WORK, ROW_BLOCK

    f32, T = np.float32, MIN_COL_STEPS
    assert threads.share_columns(1, 128, 4, f32, T) and threads.share_columns(ROW_BLOCK - 1, 2 * MIN_COL_WORK, 1, f32, T)
    assert not threads.share_columns(ROW_BLOCK, 512, 4, f32, T) and not threads.share_columns(1, 32, 4, f32, T)
    assert not threads.share_columns(1, 2 * MIN_COL_WORK - 1, 1, f32, T)
    assert not threads.share_columns(1, 128, 4, np.float64, T) and not threads.share_columns(1, 128, 4, f32, T - 1)


def test_a_barrier_that_waits_forever_gives_up(two_threads, monkeypatch):
    """A thread that never arrives (its kernel failed) ends its partner's wait with a clear
    error instead of a hang (the wait limit patched down from seconds to 1000 yields)."""
    from numba import njit

    from fastrnn.cpu import barrier

    @njit(nogil=True)
    def only_first_arrives(flags, me, n, u0, u1):
        return barrier.arrive(flags, me, n, 1) if me == 0 else True

    monkeypatch.setattr(barrier, "GIVE_UP", 1000)
    monkeypatch.setattr(threads, "_cpus", lambda: 2)
    with pytest.raises(RuntimeError, match="barrier: another thread never arrived"):
        threads.run_columns(only_first_arrives, (), 64)
    assert barrier.arrive(barrier.flags(1), 0, 1, 1)  # alone, nobody to wait for
