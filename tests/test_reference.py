"""The kernels against the slow NumPy reference (tests/naive.py): forward, loss, every
gradient, full and truncated BPTT, one and two layers, equal and variable lengths."""
import numpy as np
import pytest

import naive
from fastrnn import CELLS, RNN
from fastrnn.finitediff import make_problem

CONFIGS = [
    # loss, output, layers, variable lengths, bptt_truncate, tokens
    ("mse", "last", 1, False, None, False),
    ("mse", "last", 2, True, None, False),
    ("mse", "last", 2, True, 2, False),
    ("ce", "all", 2, True, None, False),
    ("ce", "all", 2, True, 1, False),
    ("ce", "last", 1, True, 3, True),
    ("mse", "all", 1, False, 0, False),
]


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("B", [3, 6])  # 6: the recurrent product's 4-row tiles and leftover rows
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("cell", list(CELLS))
def test_float64_matches_reference(cell, cfg, B):
    loss, output, L, var, K, tokens = cfg
    model, b = make_problem(cell, loss=loss, output=output, num_layers=L, variable_lengths=var,
                            tokens=tokens, T=7, B=B, seed=1)
    res = model.loss_and_grad(**b, bptt_truncate=K)
    val, grads, y, _ = naive.loss_and_grad(model, b["x"], b["target"], loss, output, b["lengths"], K)
    assert abs(res.loss - val) <= 1e-12 * max(1.0, abs(val))
    assert rel_err(res.output, y) < 1e-12
    for name, g in grads.items():
        assert rel_err(model.grads[name], g) < 1e-10, name


@pytest.mark.parametrize("K", [None, 2])
@pytest.mark.parametrize("cell", list(CELLS))
def test_dropout_between_layers_matches_reference(cell, K):
    """Three layers, masks drawn once: the outputs of layers 0 and 1 are multiplied by their
    masks on the way up, and so are the gradients on the way down."""
    model, b = make_problem(cell, loss="ce", output="all", num_layers=3, dropout=0.5, T=7, B=3, seed=4)
    masks = b["masks"]
    assert len(masks) == 2 and {0.0, 2.0} == set(np.unique(np.concatenate([m.ravel() for m in masks])))
    res = model.loss_and_grad(**b, bptt_truncate=K)
    val, grads, y, _ = naive.loss_and_grad(model, b["x"], b["target"], "ce", "all", b["lengths"], K, masks)
    assert abs(res.loss - val) <= 1e-12 * max(1.0, abs(val))
    assert rel_err(res.output, y) < 1e-12
    for name, g in grads.items():
        assert rel_err(model.grads[name], g) < 1e-10, name
    # masks matter, evaluation never drops, and all-ones masks are no dropout at all
    plain = model.loss(b["x"], b["target"], "ce", "all", b["lengths"])
    assert abs(plain - res.loss) > 1e-6
    ones = [np.ones_like(m) for m in masks]
    assert model.loss(b["x"], b["target"], "ce", "all", b["lengths"], ones) == plain
    assert naive.loss_and_grad(model, b["x"], b["target"], "ce", "all", b["lengths"])[0] == pytest.approx(plain, rel=1e-12)


def test_dropout_masks_are_drawn_as_documented():
    model = RNN("gru", 3, 50, 2, 3, dropout=0.3, dtype="float32")
    m = model.dropout_masks(np.random.default_rng(0), 40, 20)
    assert len(m) == 2 and all(a.shape == (40, 20, 50) and a.dtype == np.float32 for a in m)
    kept = np.concatenate([a.ravel() for a in m])
    assert set(np.unique(kept)) == {np.float32(0), np.float32(1 / 0.7)}
    assert abs(np.mean(kept == 0) - 0.3) < 0.01 and abs(kept.mean() - 1) < 0.02  # inverted: the mean kept
    assert RNN("gru", 3, 5, 2, 1, dropout=0.3).dropout_masks(np.random.default_rng(0), 4, 2) is None
    assert RNN("gru", 3, 5, 2, 2).dropout_masks(np.random.default_rng(0), 4, 2) is None
    with pytest.raises(ValueError, match=r"dropout: expected a finite number in \[0, 1\)"):
        RNN("gru", 3, 5, 2, 2, dropout=1.0)
    with pytest.raises(ValueError, match="masks: expected a list of 2 arrays"):
        model.loss(np.zeros((4, 2, 3), np.float32), np.zeros(2, np.int64), "ce", "last", masks=m[:1])
    with pytest.raises(ValueError, match=r"masks\[1\]: expected shape \(4, 2, 50\)"):
        model.loss(np.zeros((4, 2, 3), np.float32), np.zeros(2, np.int64), "ce", "last",
                   masks=[np.ones((4, 2, 50), np.float32), np.ones((4, 3, 50), np.float32)])
    assert model.copy().dropout == 0.3 and model.config()["dropout"] == 0.3


@pytest.mark.parametrize("H", [4, 20])
@pytest.mark.parametrize("cell", list(CELLS))
def test_float32_matches_reference(cell, H):
    """H = 4: every float32 pointwise loop runs unit by unit; H = 20: one register of 16
    units, then 4 as scalars (cpu/simd.py's pointwise split)."""
    m64, b = make_problem(cell, loss="ce", output="all", num_layers=2, T=9, B=4, H=H, seed=2)
    model = RNN(cell, 3, H, 3, 2, dtype="float32")
    model.flat[:] = m64.flat  # rounds to float32; the reference sees the rounded weights
    res = model.loss_and_grad(**b, bptt_truncate=None)
    assert res.grad.dtype == np.float32 and res.output.dtype == np.float32
    val, grads, y, _ = naive.loss_and_grad(model, b["x"], b["target"], "ce", "all", b["lengths"])
    assert abs(res.loss - val) < 1e-5 * max(1.0, abs(val))
    assert rel_err(res.output, y) < 1e-5
    for name, g in grads.items():
        assert rel_err(model.grads[name], g) < 1e-5, name


@pytest.mark.parametrize("cell", list(CELLS))
def test_initial_state_and_chunking(cell):
    """Feeding a sequence in two chunks with the state carried gives the same outputs."""
    model, b = make_problem(cell, loss="mse", output="all", num_layers=2, variable_lengths=False,
                            T=8, B=3, seed=3)
    x = b["x"]
    y_full, s_full = model.forward(x)
    y1, s1 = model.forward(x[:5])
    y2, s2 = model.forward(x[5:], state=s1)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y_full, rtol=0, atol=1e-13)
    for a, c in zip(np.atleast_3d(*(s2 if isinstance(s2, tuple) else (s2,))),
                    np.atleast_3d(*(s_full if isinstance(s_full, tuple) else (s_full,)))):
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-13)
    # and the reference agrees on the carried state
    p = naive.params_of(model)
    h0 = s1[0] if isinstance(s1, tuple) else s1
    c0 = s1[1] if isinstance(s1, tuple) else None
    _, hs, _ = naive.forward(cell, p, 2, x[5:], np.full(3, 3), h0, c0)
    np.testing.assert_allclose(y2, hs[-1][1:] @ p["readout.weight"].T + p["readout.bias"], atol=1e-13)


@pytest.mark.parametrize("cell", list(CELLS))
def test_variable_lengths_equal_separate_runs(cell):
    """A padded batch gives each sequence the result it gets alone, without padding."""
    model, b = make_problem(cell, loss="mse", output="last", num_layers=2, T=7, B=3, seed=4)
    y, state = model.forward(b["x"], lengths=b["lengths"], output="last")
    h = state[0] if isinstance(state, tuple) else state
    for i, n in enumerate(b["lengths"]):
        yi, si = model.forward(b["x"][:n, i:i + 1], output="last")
        hi = si[0] if isinstance(si, tuple) else si
        np.testing.assert_allclose(y[i], yi[0], atol=1e-13)
        np.testing.assert_allclose(h[:, i], hi[:, 0], atol=1e-13)


def _reverse(a, lengths):
    """Each sequence's steps reversed within its length, zeros after (the obvious loop)."""
    out = np.zeros_like(a)
    for b, n in enumerate(lengths):
        out[:n, b] = a[:n, b][::-1]
    return out


@pytest.mark.parametrize("cell", list(CELLS))
def test_bidirectional_matches_reference(cell):
    """Each direction of each layer is the one-direction reference run on the sequence read
    forwards or backwards within its length; a layer's output is both, side by side; the
    last-step readout reads the top layer's two final states."""
    T, B, I, H, O, L = 6, 3, 2, 4, 3, 2
    model = RNN(cell, I, H, O, L, dtype="float64", seed=5, bidirectional=True)
    x = np.random.default_rng(6).normal(size=(T, B, I))
    lengths = np.array([6, 2, 4])
    p = naive.params_of(model)
    inp, finals = x, []
    for k in range(L):
        outs = []
        for sfx, rev in (("", False), ("_reverse", True)):
            q = {f"{n}_l0": p[f"{n}_l{k}{sfx}"] for n in model.cell.param_shapes(1, 1)}
            _, hs, _ = naive.forward(cell, q, 1, _reverse(inp, lengths) if rev else inp, lengths)
            h = hs[0][1:]
            outs.append(_reverse(h, lengths) if rev else h)
            finals.append(hs[0][lengths, np.arange(B)])
        inp = np.concatenate(outs, axis=2)
    W, bo = p["readout.weight"], p["readout.bias"]
    y_all, state = model.forward(x, lengths, output="all")
    live = np.arange(T)[:, None] < lengths[None, :]
    assert rel_err(y_all[live], (inp @ W.T + bo)[live]) < 1e-12
    y_last, _ = model.forward(x, lengths, output="last")
    assert rel_err(y_last, np.concatenate(finals[-2:], axis=1) @ W.T + bo) < 1e-12
    h_n = state[0] if model.cell.has_cell_state else state
    assert h_n.shape == (2 * L, B, H) and rel_err(h_n, np.stack(finals)) < 1e-12


def test_bidirectional_refuses_what_it_does_not_define():
    model = RNN("lstm", 2, 3, 2, 1, dtype="float64", bidirectional=True)
    x, y = np.zeros((4, 2, 2)), np.zeros((2, 2))
    with pytest.raises(ValueError, match="bptt_truncate: truncated BPTT is not defined for a bidirectional"):
        model.loss_and_grad(x, y, bptt_truncate=2)
    with pytest.raises(ValueError, match="state: an initial state is not defined for a bidirectional"):
        model.forward(x, state=(np.zeros((2, 2, 3)), np.zeros((2, 2, 3))))
    from fastrnn.train.config import TrainConfig

    with pytest.raises(ValueError, match="bidirectional: the text task predicts the next character"):
        TrainConfig(task="text", data="t.txt", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional: truncated BPTT is not defined"):
        TrainConfig(bidirectional=True, bptt_truncate=5)
    assert model.num_parameters == 2 * (4 * 3 * (2 + 3 + 2)) + 2 * (6 + 1)
    from fastrnn import memory  # what a checkpoint's size is checked against, before building

    for cell in CELLS:
        for L in (1, 3):
            m = RNN(cell, 5, 7, 3, L, bidirectional=True)
            assert m.num_parameters == memory.parameter_count(cell, 5, 7, 3, L, 2)
