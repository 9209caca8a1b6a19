import subprocess
import sys

from click.testing import CliRunner

from fastrnn.finitediff import SUITE
from fastrnn_cli.main import cli


def test_help_and_version():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "gradcheck" in r.output
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "fastrnn, version" in r.output


def test_every_command_has_help_that_imports_neither_numba_nor_numpy():
    """Every command's --help answers (with its example) from the light modules alone."""
    code = """
import sys
from fastrnn_cli.main import cli
for name in sorted(cli.commands):
    print(name, cli.main([name, "--help"], standalone_mode=False))
print("heavy", sorted(m for m in ("numba", "numpy") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = ["compare", "evaluate", "export", "gradcheck", "gradients", "predict", "report", "sample", "sweep",
             "train"]
    assert sorted(__import__("fastrnn_cli.main").main.cli.commands) == names
    for name in names:
        assert f"Usage: -c {name} [OPTIONS]" in out.stdout, name
        assert f"\n{name} 0" in out.stdout, name  # exit status 0
    assert out.stdout.count("Example: fastrnn ") >= len(names)
    assert out.stdout.strip().splitlines()[-1] == "heavy []"


def test_gradcheck_command_passes():
    r = CliRunner().invoke(cli, ["gradcheck", "--cell", "tanh"])
    assert r.exit_code == 0, r.output
    assert r.output.count(" ok") == len(SUITE) and "worst relative error" in r.output


def test_gradcheck_command_fails_on_a_wrong_gradient(monkeypatch):
    """A bias gradient 0.1% off (the column sums that the CPU backend's weight-gradient
    products return broken) is caught, named, and the command exits 1; the weights, whose
    gradients stay right, still pass."""
    from fastrnn.cpu import CpuBackend

    right = CpuBackend.matmul_tn

    def off(self, a, b, out, sums=None):
        right(self, a, b, out, sums)
        if sums is not None:
            sums *= 1.001

    monkeypatch.setattr(CpuBackend, "matmul_tn", off)
    r = CliRunner().invoke(cli, ["gradcheck", "--cell", "relu"])
    assert r.exit_code == 1 and "FAIL" in r.output
    failing = {ln.split()[0] for ln in r.output.splitlines() if ln.startswith("        ") and float(ln.split()[1]) > 1e-6}
    assert {"bias_hh_l0", "bias_ih_l0", "readout.bias"} <= failing
    assert not any(n.startswith("weight_") for n in failing), failing


def test_gradcheck_unknown_cell_is_a_usage_error():
    r = CliRunner().invoke(cli, ["gradcheck", "--cell", "elman"])
    assert r.exit_code == 2 and "Invalid value for '--cell'" in r.output and "Traceback" not in r.output
