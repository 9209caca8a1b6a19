"""The Python API (issue #30): a documented top-level surface whose natural first guesses work
(`fastrnn.train(...)`, an optimizer over `model.flat`), and `help(fastrnn)` listing it."""
import importlib
import io
import json
import re
from contextlib import redirect_stdout

import numpy as np
import pytest

import fastrnn


def test_help_lists_every_public_name():
    buf = io.StringIO()
    with redirect_stdout(buf):
        help(fastrnn)
    text = fastrnn.__doc__  # the listing help() shows first, one line a name
    assert "train(out, **options)" in buf.getvalue()
    for name in fastrnn.__all__:
        if name not in ("__version__", "Loaded"):
            assert re.search(rf"^    {name}\b", text, re.M), name
    assert set(fastrnn.__all__) <= set(dir(fastrnn))


def test_train_load_evaluate_from_python(tmp_path):
    summary = fastrnn.train(tmp_path / "r", task="adding", cell="gru", hidden=6, seq_len=6, steps=20, eval_every=10)
    assert summary["steps"] == 20 and json.loads((tmp_path / "r" / "summary.json").read_text()) == summary
    run = fastrnn.load(tmp_path / "r")
    assert run.config.cell == "gru" and run.meta["kind"] in ("best", "last")
    ev = fastrnn.evaluate(run.model, run.task)
    assert set(ev) == {"loss", "metric"} and np.isfinite(ev["metric"])
    with pytest.raises(ValueError, match="config: unknown option"):
        fastrnn.train(tmp_path / "x", seqlen=6)  # a typo is named, not swallowed
    with pytest.raises(ValueError, match="not both"):
        fastrnn.train(tmp_path / "x", fastrnn.TrainConfig(), steps=3)
    assert importlib.import_module("fastrnn.train.checkpoint").load  # the subpackage is still a package
    assert callable(fastrnn.train) and callable(fastrnn.compare) and fastrnn.compare.plan


def test_an_optimizer_takes_the_parameter_vector_itself():
    model = fastrnn.RNN("tanh", 2, 4, 1, dtype="float64")
    opt = fastrnn.make_optimizer("adam", model.flat, 1e-2)
    assert all(a.shape == model.flat.shape and a.dtype == np.float64 for a in opt.state.values())
    x = np.random.default_rng(0).normal(size=(5, 3, 2))
    before = model.flat.copy()
    res = model.loss_and_grad(x, np.zeros((3, 1)), "mse", "last")
    opt.step(model.flat, res.grad)
    assert not np.array_equal(before, model.flat)
    with pytest.raises(ValueError, match="size: expected a count or a flat"):
        fastrnn.make_optimizer("sgd", np.zeros((2, 2)), 1e-2)
