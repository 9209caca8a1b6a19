"""The gradient profile: dL/dh_k and the step Jacobians against finite differences, the
decay rate of a linear recurrence against the analytic one, and the vanishing contrast."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from fastrnn import CELLS, RNN
from fastrnn.gradients import grad_norm_by_lag, profile, step_jacobians, table
from fastrnn.tasks import make_task
from fastrnn_cli.main import cli


def split_state(model, s):
    return (s[0].copy(), s[1].copy()) if model.cell.has_cell_state else s.copy()


@pytest.mark.parametrize("cell", list(CELLS))
def test_hidden_grads_match_finite_differences(cell):
    rng = np.random.default_rng(0)
    T, B, k = 7, 2, 3
    model = RNN(cell, 3, 4, 2, dtype="float64", seed=1)
    x, target = rng.normal(size=(T, B, 3)), rng.normal(size=(B, 2))
    model.loss_and_grad(x, target)
    analytic = model.hidden_grads()[0][k]  # dL/dh_k, (B, H)

    _, s_k = model.forward(x[:k + 1])  # state after step k

    def loss(state):
        y, _ = model.forward(x[k + 1:], state=state, output="last")
        return np.mean((y - target) ** 2)

    numeric = np.zeros_like(analytic)
    for b in range(B):
        for j in range(4):
            up, down = split_state(model, s_k), split_state(model, s_k)
            h_up = up[0] if isinstance(up, tuple) else up
            h_down = down[0] if isinstance(down, tuple) else down
            h_up[0, b, j] += 1e-6
            h_down[0, b, j] -= 1e-6
            numeric[b, j] = (loss(up) - loss(down)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("cell", list(CELLS))
def test_step_jacobians_match_finite_differences(cell):
    rng = np.random.default_rng(2)
    T, H, t = 5, 3, 2
    model = RNN(cell, 2, H, 1, dtype="float64", seed=3)
    x = rng.normal(size=(T, 1, 2))
    J = step_jacobians(model, x)[t]
    _, s_prev = model.forward(x[:t])  # state after step t-1

    def flat(state):
        return np.concatenate([state[0][0, 0], state[1][0, 0]]) if isinstance(state, tuple) else state[0, 0]

    S = J.shape[0]
    numeric = np.zeros((S, S))
    for j in range(S):
        up, down = split_state(model, s_prev), split_state(model, s_prev)
        for st, sign in ((up, 1), (down, -1)):
            arr = (st[j // H] if isinstance(st, tuple) else st)
            arr[0, 0, j % H] += sign * 1e-6
        numeric[:, j] = (flat(model.forward(x[t:t + 1], state=up)[1])
                         - flat(model.forward(x[t:t + 1], state=down)[1])) / 2e-6
    np.testing.assert_allclose(J, numeric, rtol=1e-6, atol=1e-9)


def test_linear_recurrence_decays_at_the_analytic_rate():
    """ReLU units kept positive with W_hh = a I are a linear recurrence: dL/dh_k = a^lag dL/dh_{T-1}."""
    a, T = 0.9, 40
    model = RNN("relu", 2, 5, 1, dtype="float64", init="irnn")
    model.params["weight_hh_l0"][...] = a * np.eye(5)
    model.params["bias_ih_l0"][...] = 1.0  # keeps every unit positive: ReLU acts as identity
    task = make_task("adding", T)
    x, target, _ = task.batch(np.random.default_rng(0), 16)
    norms = grad_norm_by_lag(model, task, x, target)
    assert np.all(model.tape_arrays()[0].h[1:] > 0)
    measured = norms[1:] / norms[:-1]
    np.testing.assert_allclose(measured, a, rtol=1e-10)
    p = profile(model, task, batch_size=8)
    assert abs(p["decay_per_step"] - a) < 1e-10
    assert abs(p["jacobian_norm"]["mean"] - a) < 1e-10  # J = a I at every step
    assert abs(p["jacobian_radius"]["mean"] - a) < 1e-10  # and so is its spectral radius


def test_a_non_normal_recurrence_keeps_the_norm_while_the_gradient_vanishes():
    """The report's point: with W_hh = a I + (nilpotent shift) the step Jacobian's norm is ~1.9
    while its spectral radius, and the measured per-step factor, are a = 0.5."""
    a, T, H = 0.5, 30, 4
    model = RNN("relu", 2, H, 1, dtype="float64", init="irnn")
    model.params["weight_hh_l0"][...] = a * np.eye(H) + 1.4 * np.eye(H, k=1)
    model.params["bias_ih_l0"][...] = 100.0  # every unit positive: a linear recurrence
    task = make_task("adding", T)
    p = profile(model, task, batch_size=4)
    assert p["jacobian_norm"]["mean"] > 1.5 and abs(p["jacobian_radius"]["mean"] - a) < 1e-6
    assert p["decay_per_step"] < 0.75  # the gradient falls geometrically all the same


def test_profiles_run_in_float64_and_say_why_a_ratio_is_zero():
    """float32 would underflow below 1e-45 (a tanh RNN at T = 300 with a small W_hh): the
    profile works on a float64 copy and reports the real size; exact zeros get their cause."""
    task = make_task("adding", 300)
    tanh = RNN("tanh", 2, 8, 1, dtype="float32", seed=0, spectral_radius=0.3)
    x, y, _ = task.batch(np.random.default_rng([0, 7]), 8)
    assert grad_norm_by_lag(tanh, task, x, y)[-1] == 0  # float32: underflowed to an exact 0
    p = profile(tanh, task, batch_size=8)
    assert p["dtype"] == "float64" and 0 < p["ratio_last_to_first"] < 1e-60 and p["zero_cause"] is None
    assert tanh.dtype == np.float32  # the model itself is left as it was
    dead = RNN("relu", 2, 8, 1, dtype="float64", init="irnn")
    dead.params["bias_ih_l0"][...] = -100.0  # every unit at 0: no path back at all
    p = profile(dead, make_task("adding", 20), batch_size=4)
    assert p["ratio_last_to_first"] == 0 and p["zero_cause"].startswith("no path")
    p = profile(RNN("gru", 2, 8, 1, seed=0), make_task("adding", 20), batch_size=4, bptt_truncate=5)
    assert p["ratio_last_to_first"] == 0 and p["zero_cause"].startswith("truncated")
    assert any("0 (truncated)" in ln for ln in table({"init": [p]}))


def test_tanh_vanishes_lstm_keeps_far_more_at_init():
    task = make_task("adding", 100)
    x, y, _ = task.batch(np.random.default_rng(0), 32)
    tanh = grad_norm_by_lag(RNN("tanh", 2, 32, 1, dtype="float64", seed=0), task, x, y)
    lstm = grad_norm_by_lag(RNN("lstm", 2, 32, 1, dtype="float64", seed=0, forget_bias=1.0), task, x, y)
    tanh_ratio, lstm_ratio = tanh[99] / tanh[0], lstm[99] / lstm[0]
    assert tanh_ratio < 1e-10  # many orders of magnitude lost over 100 steps
    assert lstm_ratio > 1e4 * tanh_ratio  # the LSTM keeps far more


def test_truncation_cuts_the_curve():
    task = make_task("adding", 30)
    x, y, _ = task.batch(np.random.default_rng(0), 8)
    norms = grad_norm_by_lag(RNN("gru", 2, 8, 1), task, x, y, bptt_truncate=10)
    assert np.all(norms[:11] > 0) and np.all(norms[11:] == 0)


def test_gradients_command(tmp_path):
    out = tmp_path / "g"
    r = CliRunner().invoke(cli, ["gradients", "--seq-len", "20", "--hidden", "6", "--cells", "tanh,lstm",
                                 "--train-steps", "5", "--profile-batch", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "gradients.json").read_text())
    assert [p["cell"] for p in doc["init"]] == ["tanh", "lstm"] == [p["cell"] for p in doc["trained"]]
    assert len(doc["init"][0]["grad_norm_by_lag"]) == 20
    assert {"sigma_max", "spectral_radius", "gate"} <= set(doc["init"][1]["recurrent"][0])
    assert len(doc["init"][1]["recurrent"]) == 4  # one row per LSTM gate block
    assert (out / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    assert "tanh  init" in r.output and "lstm  trained" in r.output
    # from a checkpoint: one cell, before and after
    r = CliRunner().invoke(cli, ["gradients", "--checkpoint", str(out / "train-lstm" / "checkpoint.npz"),
                                 "--profile-batch", "4", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c" / "gradients.json").read_text())
    assert [p["cell"] for p in doc["trained"]] == ["lstm"]


def test_gradients_command_errors(tmp_path):
    r = CliRunner().invoke(cli, ["gradients", "--cells", "tanh,foo", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "Invalid value for '--cells'" in r.output
    r = CliRunner().invoke(cli, ["gradients", "--checkpoint", str(tmp_path / "none.npz"), "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "checkpoint: no such file" in r.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
