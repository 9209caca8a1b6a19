"""The LayerNorm LSTM's own parts: its parameters and init, what the LayerNorms make invariant,
and PyTorch's autograd through torch.nn.functional.layer_norm with every gain and shift moved
off its initial value. Forward, BPTT (full and truncated), finite differences, the simulator,
PTX and the threads run it from the registry."""
import os
import sys

import numpy as np
import pytest

from fastrnn import RNN
from fastrnn.finitediff import make_problem


def test_parameters_and_init():
    m = RNN("lnlstm", 3, 5, 2, 2, dtype="float64", seed=0)
    p = m.params
    assert m.shapes["gain_ih_l1"] == m.shapes["gain_hh_l1"] == (20,) and m.shapes["bias_c_l1"] == (5,)
    assert (p["gain_ih_l0"] == 1).all() and (p["gain_hh_l0"] == 1).all() and (p["gain_c_l0"] == 1).all()
    assert not p["bias_c_l0"].any()
    assert (p["bias_ih_l0"][5:10] == 1.0).all() and not p["bias_hh_l0"][5:10].any()  # --forget-bias, as the LSTM
    c = RNN("lnlstm", 3, 400, 1, init="chrono", chrono_tmax=50, seed=0).params
    f, i = c["bias_ih_l0"][400:800], c["bias_ih_l0"][:400]
    assert 0 <= f.min() and f.max() <= np.log(49) and np.array_equal(i, -f)


def test_the_layer_norms_undo_a_rescaled_projection():
    """LN(a v) = LN(v) for a > 0 (up to eps): scaling W_ih or W_hh changes nothing but the
    LayerNorm's eps share, while scaling a gain does change the output."""
    model, b = make_problem("lnlstm", T=6, B=3, I=3, H=4, O=2, num_layers=1, seed=3)
    base = model.loss(b["x"], b["target"], b["loss"], b["output"], b["lengths"])
    for name in ("weight_ih_l0", "weight_hh_l0"):
        scaled = model.copy()
        scaled.params[name] *= 7.0
        assert scaled.loss(b["x"], b["target"], b["loss"], b["output"], b["lengths"]) == pytest.approx(base, rel=1e-4)
    moved = model.copy()
    moved.params["gain_hh_l0"] *= 7.0
    assert abs(moved.loss(b["x"], b["target"], b["loss"], b["output"], b["lengths"]) - base) > 1e-3


def test_every_gain_and_shift_against_pytorch_autograd():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    import torch_cells

    model, b = make_problem("lnlstm", T=7, B=4, I=3, H=5, O=2, num_layers=2, seed=6)  # every parameter moved
    assert np.abs(model.params["gain_c_l1"] - 1).min() > 0 and np.abs(model.params["bias_c_l0"]).min() > 0
    ref = torch_cells.LnLSTM(3, 5, 2).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.to_torch_state_dict().items()})
    lin = torch.nn.Linear(5, 2).double()
    lin.load_state_dict({k: torch.from_numpy(v) for k, v in model.readout_state_dict().items()})
    res = model.loss_and_grad(**b)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(b["x"]), torch.from_numpy(b["lengths"]),
                                                     enforce_sorted=False)
    _, (h_n, _) = ref(packed)
    loss = torch.nn.functional.mse_loss(lin(h_n[-1]), torch.from_numpy(b["target"]))
    loss.backward()
    assert abs(res.loss - loss.item()) < 1e-12
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)
