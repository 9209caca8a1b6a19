"""Finite-difference checks: every cell x every loss x full/truncated x 1/2 layers x
equal/variable lengths (the SUITE behind `fastrnn gradcheck`)."""
import numpy as np
import pytest

from fastrnn import CELLS, check_gradients
from fastrnn.finitediff import SUITE, TOLERANCE, make_problem
from fastrnn.model import RNN


@pytest.mark.parametrize("cfg", SUITE, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradients_match_finite_differences(cell, cfg):
    cfg = dict(cfg)
    K = cfg.pop("bptt_truncate")
    model, batch = make_problem(cell, **cfg)
    errors = check_gradients(model, bptt_truncate=K, **batch)
    assert set(errors) == set(model.shapes)
    assert max(errors.values()) < TOLERANCE, errors


def test_check_catches_a_wrong_gradient():
    """The check must be able to fail: a gradient off by 1e-4 in one entry is reported."""
    class Broken(RNN):
        def loss_and_grad(self, *a, **k):
            res = super().loss_and_grad(*a, **k)
            self.grads["weight_hh_l0"][0, 0] += 1e-4
            return res

    model, batch = make_problem("lstm", num_layers=1)
    broken = Broken("lstm", 3, 4, 3, 1, dtype="float64")
    broken.flat[:] = model.flat
    errors = check_gradients(broken, **batch)
    assert errors["weight_hh_l0"] > 1e-4 and errors["readout.weight"] < TOLERANCE


@pytest.mark.parametrize("cell", list(CELLS))
def test_truncation_changes_the_gradient_and_long_windows_do_not(cell):
    model, b = make_problem(cell, loss="ce", output="all", num_layers=2, T=6)
    full = model.loss_and_grad(**b).grad.copy()
    short = model.loss_and_grad(**b, bptt_truncate=1).grad.copy()
    long = model.loss_and_grad(**b, bptt_truncate=5).grad.copy()
    assert np.abs(short - full).max() > 1e-3 * np.abs(full).max()
    np.testing.assert_allclose(long, full, rtol=0, atol=1e-14)


def test_truncation_zero_still_trains_the_last_cell():
    """K = 0: only the cell at each loss step gets gradient; nothing reaches h_{t-1}."""
    model, b = make_problem("tanh", num_layers=1, variable_lengths=False)
    model.loss_and_grad(**b, bptt_truncate=0)
    dh = model.hidden_grads()[0]
    assert np.all(dh[:-1] == 0) and np.any(dh[-1] != 0)
    assert np.abs(model.grads["weight_hh_l0"]).max() > 0
