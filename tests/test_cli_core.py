import subprocess
import sys

from click.testing import CliRunner

from fastrnn_cli.main import cli


def test_help_and_version():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "gradcheck" in r.output
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "fastrnn, version" in r.output


def test_help_does_not_import_numba():
    code = "import sys; from fastrnn_cli.main import cli; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gradcheck_command_passes():
    r = CliRunner().invoke(cli, ["gradcheck", "--cell", "tanh"])
    assert r.exit_code == 0, r.output
    assert r.output.count(" ok") == 6 and "worst relative error" in r.output


def test_gradcheck_command_fails_on_a_wrong_gradient(monkeypatch):
    from fastrnn import finitediff as gc

    monkeypatch.setattr(gc, "TOLERANCE", 0.0)  # nothing can pass a zero tolerance
    r = CliRunner().invoke(cli, ["gradcheck", "--cell", "relu"])
    assert r.exit_code == 1 and "FAIL" in r.output


def test_gradcheck_unknown_cell_is_a_usage_error():
    r = CliRunner().invoke(cli, ["gradcheck", "--cell", "elman"])
    assert r.exit_code == 2 and "Invalid value for '--cell'" in r.output and "Traceback" not in r.output
