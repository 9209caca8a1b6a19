"""Same weights, same inputs: outputs, final states and gradients match torch.nn.RNN/GRU/LSTM.
PyTorch is an optional peer: these tests skip when it is not installed."""
import os
import sys

import numpy as np
import pytest

from fastrnn import CELLS, RNN

torch = pytest.importorskip("torch")


def torch_module(cell, I, H, L, **kw):
    """The torch.nn module with the cell's weights (its registry entry names it), else the one
    bench/torch_cells.py writes in a few lines of torch."""
    cls = CELLS[cell].torch_module
    if cls is None:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
        import torch_cells

        return torch_cells.MODULES[cell](I, H, L, **kw)
    if cls == "RNN":
        return torch.nn.RNN(I, H, L, nonlinearity=cell, **kw)
    return getattr(torch.nn, cls)(I, H, L, **kw)


def same_grads(ours, ref, lin):
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours.grads["readout.weight"], lin.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.grads["readout.bias"], lin.bias.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("cell", list(CELLS))
def test_outputs_and_gradients_match_torch(cell):
    T, B, I, H, O, L = 7, 4, 3, 5, 2, 2
    rng = np.random.default_rng(0)
    ours = RNN(cell, I, H, O, L, dtype="float64", seed=1)
    ref = torch_module(cell, I, H, L).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.to_torch_state_dict().items()})
    lin = torch.nn.Linear(H, O).double()
    lin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.readout_state_dict().items()})

    x = rng.normal(size=(T, B, I))
    lengths = np.array([7, 3, 5, 1])
    target = rng.normal(size=(B, O))
    res = ours.loss_and_grad(x, target, "mse", "last", lengths)

    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    _, state = ref(packed)
    h_n = state[0] if CELLS[cell].has_cell_state else state
    y = lin(h_n[-1])
    loss = torch.nn.functional.mse_loss(y, torch.from_numpy(target))
    loss.backward()

    assert abs(res.loss - loss.item()) < 1e-12
    np.testing.assert_allclose(res.output, y.detach().numpy(), atol=1e-12)
    ours_h = res.state[0] if CELLS[cell].has_cell_state else res.state
    np.testing.assert_allclose(ours_h, h_n.detach().numpy(), atol=1e-12)
    if CELLS[cell].has_cell_state:
        np.testing.assert_allclose(res.state[1], state[1].detach().numpy(), atol=1e-12)
    same_grads(ours, ref, lin)


@pytest.mark.parametrize("cell", list(CELLS))
def test_per_step_cross_entropy_matches_torch_float32(cell):
    T, B, I, H, O = 6, 3, 4, 8, 5
    rng = np.random.default_rng(2)
    ours = RNN(cell, I, H, O, 1, dtype="float32", seed=3)
    ref = torch_module(cell, I, H, 1)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.to_torch_state_dict().items()})
    lin = torch.nn.Linear(H, O)
    lin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.readout_state_dict().items()})
    x = rng.normal(size=(T, B, I)).astype(np.float32)
    target = rng.integers(0, O, (T, B))
    target[2, 1] = -1
    res = ours.loss_and_grad(x, target, "ce", "all")
    out, _ = ref(torch.from_numpy(x))
    logits = lin(out)
    loss = torch.nn.functional.cross_entropy(logits.reshape(T * B, O), torch.from_numpy(target).reshape(-1),
                                             ignore_index=-1)
    loss.backward()
    assert abs(res.loss - loss.item()) < 1e-5
    for name, p in ref.named_parameters():
        g = p.grad.numpy()
        assert np.abs(ours.grads[name] - g).max() < 1e-5 * max(1.0, np.abs(g).max()), name


@pytest.mark.parametrize("cell", list(CELLS))
def test_bidirectional_outputs_states_and_gradients_match_torch(cell):
    """Two bidirectional layers over sequences of different lengths (packed for torch): every
    step's output, h_n (and c_n), and every gradient, for a per-step loss and for a
    classifier on both directions' final states."""
    T, B, I, H, O, L = 6, 4, 3, 5, 3, 2
    rng = np.random.default_rng(4)
    ours = RNN(cell, I, H, O, L, dtype="float64", seed=2, bidirectional=True)
    ref = torch_module(cell, I, H, L, bidirectional=True).double()
    sd = ours.to_torch_state_dict()
    assert list(sd) == list(ref.state_dict())  # the same names, in torch's order
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    lin = torch.nn.Linear(2 * H, O).double()
    lin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.readout_state_dict().items()})
    x = rng.normal(size=(T, B, I))
    lengths = np.array([6, 2, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                     enforce_sorted=False)
    out_p, state = ref(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, total_length=T)  # (T, B, 2H), zeros past lengths
    h_n = state[0] if CELLS[cell].has_cell_state else state

    # per-step cross-entropy over the steps inside each length
    target = rng.integers(0, O, (T, B))
    target[np.arange(T)[:, None] >= lengths[None, :]] = -1
    res = ours.loss_and_grad(x, target, "ce", "all", lengths)
    logits = lin(out)
    loss = torch.nn.functional.cross_entropy(logits.reshape(T * B, O), torch.from_numpy(target).reshape(-1),
                                             ignore_index=-1)
    loss.backward()
    assert abs(res.loss - loss.item()) < 1e-12
    live = np.arange(T)[:, None] < lengths[None, :]
    np.testing.assert_allclose(res.output[live], logits.detach().numpy()[live], atol=1e-12)
    ours_h = res.state[0] if CELLS[cell].has_cell_state else res.state
    np.testing.assert_allclose(ours_h, h_n.detach().numpy(), atol=1e-12)
    if CELLS[cell].has_cell_state:
        np.testing.assert_allclose(res.state[1], state[1].detach().numpy(), atol=1e-12)
    same_grads(ours, ref, lin)

    # a classifier on h_n: [forward final state, reverse final state] of the top layer
    ref.zero_grad()
    lin.zero_grad()
    _, state = ref(packed)
    h_n = state[0] if CELLS[cell].has_cell_state else state
    y = lin(torch.cat([h_n[-2], h_n[-1]], dim=1))
    labels = rng.integers(0, O, B)
    loss = torch.nn.functional.cross_entropy(y, torch.from_numpy(labels))
    loss.backward()
    res = ours.loss_and_grad(x, labels, "ce", "last", lengths)
    assert abs(res.loss - loss.item()) < 1e-12
    np.testing.assert_allclose(res.output, y.detach().numpy(), atol=1e-12)
    same_grads(ours, ref, lin)
    back = RNN(cell, I, H, O, L, dtype="float64", bidirectional=True)
    back.from_torch_state_dict(ref.state_dict(), readout=lin.state_dict())
    np.testing.assert_array_equal(back.numpy_flat(), ours.numpy_flat())


def test_from_torch_state_dict_round_trip():
    ref = torch.nn.LSTM(3, 4, 2)
    ours = RNN("lstm", 3, 4, 1, 2, dtype="float32")
    ours.from_torch_state_dict(ref.state_dict())
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.params[k], v.numpy())
