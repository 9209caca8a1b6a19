"""What IndRNN adds beyond the kernels that every per-cell test runs from the registry: its own
initializations, --recurrent-max, and the gradient report's spectrum of a diagonal recurrence."""
import numpy as np
import pytest

from fastrnn import RNN
from fastrnn.gradients import recurrent_spectrum
from fastrnn.tasks import make_task
from fastrnn.train.config import TrainConfig
from fastrnn.train.loop import load_model, recurrent_bound, train


def test_its_inits_and_a_refused_one():
    m = RNN("indrnn", 3, 50, 2, seed=0, init="indrnn")
    u, w = m.numpy_params()["weight_hh_l0"], m.numpy_params()["weight_ih_l0"]
    assert u.shape == (50,) and 0 <= u.min() and u.max() < 1 and np.abs(w).max() < 0.01
    assert (RNN("indrnn", 3, 5, 2, init="irnn").numpy_params()["weight_hh_l0"] == 1).all()
    assert TrainConfig(cell="indrnn").init_scheme == "indrnn"
    with pytest.raises(ValueError, match="init: the indrnn cell takes one of indrnn, irnn, pytorch; got 'orthogonal'"):
        RNN("indrnn", 3, 4, 2, init="orthogonal")
    with pytest.raises(ValueError, match="init: the indrnn cell takes one of"):
        TrainConfig(cell="indrnn", init="xavier")


def test_its_spectrum_is_max_abs_u():
    """The state's Jacobian through a unit is u_j relu'(.): the spectral radius and the largest
    singular value of the recurrence are both max |u| (per layer), and --spectral-radius sets it."""
    m = RNN("indrnn", 3, 6, 2, 2, seed=1, spectral_radius=0.7, dtype="float64")
    for row, k in zip(recurrent_spectrum(m), (0, 1)):
        u = m.numpy_params()[f"weight_hh_l{k}"]
        assert row["spectral_radius"] == row["sigma_max"] == np.abs(u).max() == pytest.approx(0.7)


def test_recurrent_max_bounds_u_after_every_update(tmp_path):
    """--recurrent-max keeps every |u| within the bound (Li et al.): a large rate pushes some
    u past it, and the run's weights sit at the bound; 'auto' is 2^(1/T) of the task's T; a
    dense W_hh is refused, naming the option."""
    cfg = TrainConfig(task="adding", cell="indrnn", seq_len=10, hidden=8, batch_size=8, steps=20, lr=0.5,
                      optimizer="sgd", clip=None, recurrent_max=0.3, eval_every=20)
    train(cfg, tmp_path / "run")
    model, _ = load_model(tmp_path / "run" / "checkpoint.npz")
    u = np.abs(model.numpy_params()["weight_hh_l0"])
    assert u.max() == np.float32(0.3) and (u < 0.3).any()
    free = train(TrainConfig(**dict(cfg.to_dict(), recurrent_max=None)), tmp_path / "free")
    assert free["status"] != "diverged"
    assert np.abs(load_model(tmp_path / "free" / "checkpoint.npz")[0].numpy_params()["weight_hh_l0"]).max() > 0.3
    auto = TrainConfig(**dict(cfg.to_dict(), recurrent_max="auto"))
    assert recurrent_bound(auto, make_task("adding", 10)) == 2 ** 0.1
    with pytest.raises(ValueError, match="recurrent_max: bounds a diagonal recurrence's .* the lstm cell's W_hh is a matrix"):
        TrainConfig(cell="lstm", recurrent_max=1.0)
    with pytest.raises(ValueError, match="recurrent_max"):
        TrainConfig(cell="indrnn", recurrent_max=-1.0)


def test_recurrent_max_on_the_command_line(tmp_path):
    from click.testing import CliRunner

    from fastrnn_cli.main import cli

    ok = CliRunner().invoke(cli, ["train", "--cell", "indrnn", "--seq-len", "10", "--hidden", "4", "--steps", "3",
                                  "--recurrent-max", "auto", "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    for bad, said in (("-1", "expected a positive number or auto; got '-1'"), ("x", "got 'x'")):
        r = CliRunner().invoke(cli, ["train", "--cell", "indrnn", "--recurrent-max", bad, "--out", str(tmp_path / "b")])
        assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["train", "--cell", "gru", "--recurrent-max", "2", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "the gru cell's W_hh is a matrix" in r.output
