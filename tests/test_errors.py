"""Bad input gets a ValueError naming the argument, with expected and got; never a Numba
typing traceback."""
import numpy as np
import pytest

from fastrnn import CELLS, RNN, gradcheck


@pytest.fixture(scope="module")
def model():
    return RNN("gru", 3, 4, 2, 1, dtype="float64")


def x_ok(T=5, B=2):
    return np.zeros((T, B, 3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(cell="elman"), rf"cell: expected one of {', '.join(CELLS)}; got 'elman'"),
    (dict(hidden_size=0), r"hidden_size: expected a positive integer; got 0"),
    (dict(input_size=-2), r"input_size: expected a positive integer; got -2"),
    (dict(num_layers=1.5), r"num_layers: expected a positive integer; got 1.5"),
    (dict(output_size=True), r"output_size: expected a positive integer; got True"),
    (dict(dtype="float16"), r"dtype: expected float32 or float64; got 'float16'"),
    (dict(init="he"), r"init: expected one of pytorch, xavier, orthogonal, irnn, chrono; got 'he'"),
    (dict(spectral_radius=-1.0), r"spectral_radius: expected a finite positive number"),
])
def test_constructor_errors(kwargs, match):
    args = dict(cell="gru", input_size=3, hidden_size=4, output_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RNN(**args)


@pytest.mark.parametrize("x, match", [
    (np.zeros((5, 2, 4)), r"x: expected shape \(T, B, 3\); got \(5, 2, 4\)"),
    (np.zeros((5, 3)), r"x: expected shape \(T, B, 3\); got \(5, 3\)"),
    (np.zeros((5, 2, 3), dtype=np.int64), r"x: expected a float array .* got dtype int64"),
    (np.full((5, 2, 3), np.nan), r"x: contains NaN or inf"),
    (np.zeros((0, 2, 3)), r"x: expected at least one step"),
])
def test_input_errors(model, x, match):
    with pytest.raises(ValueError, match=match):
        model.forward(x)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lengths=[5, 6]), r"lengths: expected values in \[1, 5\] \(T = 5\); got values in \[5, 6\]"),
    (dict(lengths=[0, 3]), r"lengths: expected values in \[1, 5\]"),
    (dict(lengths=[1, 2, 3]), r"lengths: expected shape \(2\); got \(3,\)"),
    (dict(lengths=[1.0, 2.0]), r"lengths: expected an integer array"),
    (dict(state=np.zeros((1, 2, 5))), r"state: expected shape \(1, 2, 4\); got \(1, 2, 5\)"),
    (dict(output="first"), r"output: expected one of all, last; got 'first'"),
])
def test_forward_argument_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.forward(x_ok(), **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(target=np.zeros((2, 3))), r"target: expected shape \(2, 2\); got \(2, 3\)"),
    (dict(target=np.zeros(2), loss="ce"), r"target: expected an integer array"),
    (dict(target=np.array([0, 2]), loss="ce"), r"target: class ids must lie in \[0, 2\)"),
    (dict(target=np.zeros((2, 2)), loss="l1"), r"loss: expected one of mse, ce; got 'l1'"),
    (dict(target=np.zeros((2, 2)), bptt_truncate=-1), r"bptt_truncate: expected None or an integer >= 0"),
    (dict(target=np.full((2, 2), np.inf)), r"target: contains NaN or inf"),
])
def test_loss_argument_errors(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.loss_and_grad(x_ok(), **kwargs)


def test_all_masked_target_is_an_error(model):
    with pytest.raises(ValueError, match="target: no position counts"):
        model.loss_and_grad(x_ok(), np.full((5, 2), -1), loss="ce", output="all")


def test_token_errors():
    m = RNN("lstm", 10, 4, 2, tokens=True)
    with pytest.raises(ValueError, match=r"x: token ids must lie in \[0, 10\); got values in \[0, 10\]"):
        m.forward(np.array([[0, 10]]))
    with pytest.raises(ValueError, match=r"x: expected an integer array"):
        m.forward(np.zeros((3, 2)))


def test_lstm_state_must_be_a_pair():
    m = RNN("lstm", 3, 4, 2)
    with pytest.raises(ValueError, match=r"state: expected a pair \(h, c\)"):
        m.forward(x_ok(), state=np.zeros((1, 2, 4)))


def test_state_dict_errors():
    m = RNN("tanh", 3, 4, 2)
    sd = m.to_torch_state_dict()
    del sd["bias_hh_l0"]
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l0'\]"):
        m.from_torch_state_dict(sd)
    sd = m.to_torch_state_dict()
    sd["weight_hh_l0"] = np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"state_dict\['weight_hh_l0'\]: expected shape \(4, 4\)"):
        m.from_torch_state_dict(sd)


def test_gradcheck_unknown_cell():
    with pytest.raises(ValueError, match="cell: expected one of all, tanh"):
        gradcheck("elman")
