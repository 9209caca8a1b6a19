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


# ---------------------------------------------------------------- chrono (Tallec & Ollivier 2018)
def test_chrono_lstm_biases():
    """b_f = log U[1, T_max - 1] per unit, b_i = -b_f, every other bias 0 (bias_hh too)."""
    H, tmax = 4000, 50
    m = RNN("lstm", 2, H, 1, init="chrono", chrono_tmax=tmax, dtype="float64")
    b, bh = m.params["bias_ih_l0"].reshape(4, H), m.params["bias_hh_l0"]
    i, f, g, o = b
    assert not bh.any() and not g.any() and not o.any()
    np.testing.assert_array_equal(i, -f)
    span = np.exp(f)  # the timescales: uniform on [1, T_max - 1]
    assert span.min() >= 1 and span.max() <= tmax - 1
    assert abs(span.mean() - tmax / 2) < 1.0 and abs(np.median(span) - tmax / 2) < 1.5
    k = 1 / np.sqrt(H)  # the weights stay PyTorch's default
    assert np.abs(m.params["weight_hh_l0"]).max() <= k


def test_chrono_gru_update_gate():
    H, tmax = 64, 1000
    m = RNN("gru", 2, H, 1, init="chrono", chrono_tmax=tmax, dtype="float64")
    r, z, n = m.params["bias_ih_l0"].reshape(3, H)
    assert not r.any() and not n.any() and not m.params["bias_hh_l0"].any()
    assert z.min() >= 0 and z.max() <= np.log(tmax - 1) and z.std() > 0.3


def test_chrono_errors():
    with pytest.raises(ValueError, match="chrono_tmax: the chrono init needs T_max"):
        RNN("lstm", 2, 4, 1, init="chrono")
    with pytest.raises(ValueError, match="chrono_tmax: expected an integer >= 2"):
        RNN("lstm", 2, 4, 1, init="chrono", chrono_tmax=1)
    with pytest.raises(ValueError, match="chrono_tmax: sets the chrono init's T_max"):
        RNN("lstm", 2, 4, 1, init="orthogonal", chrono_tmax=10)
    for cell in ("tanh", "relu", "indrnn"):
        with pytest.raises(ValueError, match=f"init: the {cell} cell takes one of"):
            RNN(cell, 2, 4, 1, init="chrono", chrono_tmax=10)


@pytest.mark.parametrize("task,seq_len,tmax", [("adding", 30, 30), ("copy", 30, 40)])
def test_chrono_tmax_defaults_to_the_task_lag(task, seq_len, tmax):
    from fastrnn.train.config import TrainConfig
    from fastrnn.train.loop import build

    _, m = build(TrainConfig(task=task, seq_len=seq_len, cell="lstm", init="chrono", hidden=3000, dtype="float64"))
    f = m.numpy_params()["bias_ih_l0"].reshape(4, -1)[1]
    assert np.exp(f).max() <= tmax - 1 and np.exp(f).max() > tmax - 2  # 3000 draws reach the top
    _, m = build(TrainConfig(task=task, seq_len=seq_len, cell="lstm", init="chrono", chrono_tmax=5, hidden=50))
    assert np.exp(m.numpy_params()["bias_ih_l0"].reshape(4, -1)[1]).max() <= 4 + 1e-5


def test_chrono_config_errors():
    from fastrnn.train.config import TrainConfig

    with pytest.raises(ValueError, match="chrono_tmax: sets the chrono init's T_max; add --init chrono"):
        TrainConfig(cell="lstm", chrono_tmax=10)
    with pytest.raises(ValueError, match="forget_bias: the chrono init draws"):
        TrainConfig(cell="lstm", init="chrono", forget_bias=3.0)
    with pytest.raises(ValueError, match="init: the tanh cell takes"):
        TrainConfig(cell="tanh", init="chrono")
