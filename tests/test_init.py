import numpy as np
import pytest

from fastrnn import RNN
from fastrnn.init import spectral_radius


def test_pytorch_default_range():
    m = RNN("gru", 3, 16, 2, init="pytorch")
    k = 1 / np.sqrt(16)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        a = m.params[name]
        assert a.min() >= -k and a.max() <= k and a.std() > k / 3


def test_orthogonal_blocks():
    m = RNN("lstm", 3, 8, 1, init="orthogonal", dtype="float64")
    w = m.params["weight_hh_l0"]
    for g in range(4):
        q = w[g * 8:(g + 1) * 8]
        np.testing.assert_allclose(q @ q.T, np.eye(8), atol=1e-12)


def test_irnn_identity_and_small_inputs():
    m = RNN("relu", 2, 10, 1, init="irnn", dtype="float64")
    np.testing.assert_array_equal(m.params["weight_hh_l0"], np.eye(10))
    assert np.abs(m.params["weight_ih_l0"]).max() < 0.01
    assert not m.params["bias_ih_l0"].any() and not m.params["bias_hh_l0"].any()


@pytest.mark.parametrize("fb", [1.0, 0.0, 2.5])
def test_lstm_forget_bias(fb):
    m = RNN("lstm", 2, 6, 1, init="xavier", forget_bias=fb)
    b = m.params["bias_ih_l0"] + m.params["bias_hh_l0"]
    np.testing.assert_allclose(b[6:12], fb)
    assert not b[:6].any()


@pytest.mark.parametrize("cell", ["tanh", "gru"])
def test_spectral_radius(cell):
    m = RNN(cell, 2, 12, 1, spectral_radius=0.9, dtype="float64")
    w = m.params["weight_hh_l0"]
    for g in range(w.shape[0] // 12):
        assert abs(spectral_radius(w[g * 12:(g + 1) * 12]) - 0.9) < 1e-9


def test_seed_reproducible():
    a, b, c = (RNN("tanh", 2, 5, 1, seed=s).flat for s in (7, 7, 8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
