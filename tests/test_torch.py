"""Same weights, same inputs: outputs, final states and gradients match torch.nn.RNN/GRU/LSTM.
PyTorch is an optional peer: these tests skip when it is not installed."""
import numpy as np
import pytest

from fastrnn import CELLS, RNN

torch = pytest.importorskip("torch")


def torch_module(cell, I, H, L):
    if cell in ("tanh", "relu"):
        return torch.nn.RNN(I, H, L, nonlinearity=cell)
    return {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](I, H, L)


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
    h_n = state[0] if cell == "lstm" else state
    y = lin(h_n[-1])
    loss = torch.nn.functional.mse_loss(y, torch.from_numpy(target))
    loss.backward()

    assert abs(res.loss - loss.item()) < 1e-12
    np.testing.assert_allclose(res.output, y.detach().numpy(), atol=1e-12)
    ours_h = res.state[0] if cell == "lstm" else res.state
    np.testing.assert_allclose(ours_h, h_n.detach().numpy(), atol=1e-12)
    if cell == "lstm":
        np.testing.assert_allclose(res.state[1], state[1].detach().numpy(), atol=1e-12)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours.grads["readout.weight"], lin.weight.grad.numpy(), atol=1e-12)


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


def test_from_torch_state_dict_round_trip():
    ref = torch.nn.LSTM(3, 4, 2)
    ours = RNN("lstm", 3, 4, 1, 2, dtype="float32")
    ours.from_torch_state_dict(ref.state_dict())
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.params[k], v.numpy())
