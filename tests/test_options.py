"""One set of option names (issue #30): every option has help, either spelling of a cell
option works, --seed means a seed everywhere, the checkpoint is an argument everywhere, --data
is refused where no task reads it, and a misspelt option name gets a suggestion."""
import click
import pytest
from click.testing import CliRunner

from fastrnn.compare import compare_grid
from fastrnn.sweep.spec import expand
from fastrnn.train.config import TrainConfig
from fastrnn_cli.main import cli

TINY = ["--seq-len", "6", "--hidden", "6", "--batch-size", "8", "--eval-every", "10", "--steps", "10", "-q"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_has_help(name):
    for p in cli.commands[name].params:
        if isinstance(p, click.Option) and p.name != "help":
            assert p.help, f"fastrnn {name} {p.opts[0]} has no help text"


def test_cell_and_cells_are_one_option(tmp_path):
    assert run("train", "--cells", "gru", *TINY, "--out", tmp_path / "r").exit_code == 0
    r = run("compare", "--cell", "nope", "--out", tmp_path / "c")
    assert r.exit_code == 2 and "'--cells'" in r.output


def test_compare_seeds_start_at_seed():
    runs = compare_grid(TrainConfig(seed=5), ["tanh"], 2)
    assert [(n, c.seed) for n, c in runs] == [("tanh-s5", 5), ("tanh-s6", 6)]


def test_gradients_takes_the_checkpoint_as_an_argument(tmp_path):
    assert run("train", "--cell", "tanh", *TINY, "--out", tmp_path / "r").exit_code == 0
    r = run("gradients", tmp_path / "r", "--out", tmp_path / "g")  # a run folder, as evaluate takes
    assert r.exit_code == 0 and "tanh  trained" in r.output, r.output
    r = run("gradients", tmp_path / "r", "--checkpoint", tmp_path / "other.npz", "--out", tmp_path / "g")
    assert r.exit_code == 2 and "give the checkpoint once" in r.output


def test_data_is_refused_where_no_task_reads_it(tmp_path):
    r = run("train", "--task", "adding", "--data", "book.txt", *TINY, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "data: the adding task makes its own sequences" in r.output


def test_min_lag_is_checked_before_anything_runs(tmp_path):
    r = run("train", "--task", "order", "--min-lag", "3", *TINY, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "min_lag: only for the adding task's markers" in r.output
    r = run("train", "--task", "adding", "--min-lag", "5", *TINY, "--out", tmp_path / "r")
    assert r.exit_code == 2 and "min_lag: the markers need two steps before the last min_lag, so at most " \
                                "seq_len - 2 = 4; got 5" in r.output
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=r"min_lag: .* got 99"):
        expand({"task": "adding", "seq_len": 50, "min_lag": 99}, {"cell": ["tanh"]})
    r = run("train", "--task", "adding", "--min-lag", "4", *TINY, "--out", tmp_path / "ok")
    assert r.exit_code == 0, r.output
    assert "--min-lag 4" in TrainConfig(min_lag=4).command("o")


def test_a_misspelt_option_gets_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown option\(s\) step \(did you mean steps\?\)"):
        expand({"step": 10}, {"cell": ["tanh"]})
    with pytest.raises(ValueError, match=r"did you mean seq_len\?"):
        TrainConfig.from_dict({"seqlen": 10})


def test_compare_verdicts_are_the_words_that_hold_across_machines():
    from fastrnn.compare import aggregate, verdict

    assert [verdict(k, 3) for k in range(4)] == ["never", "sometimes", "sometimes", "always"]
    runs = [(f"relu-s{s}", TrainConfig(cell="relu", seed=s)) for s in range(3)]
    results = {"relu-s0": dict(status="solved", steps_to_solve=1500, final_metric=0.005),
               "relu-s1": dict(status="unsolved", final_metric=0.015),
               "relu-s2": dict(status="diverged", final_metric=None)}
    row = aggregate(runs, results)["relu"]
    assert (row["solved"], row["diverged"], row["verdict"]) == (1, 1, "sometimes")
