"""fastrnn command line. Each command parses options, calls the library, reports.

Heavy imports (NumPy, Numba kernels) happen inside command bodies so `fastrnn --help`
stays instant and never compiles anything.
"""
import click

from fastrnn import __version__ as _version  # fastrnn/__init__ is light until a kernel is called

CELL_NAMES = ("tanh", "relu", "gru", "lstm")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version, prog_name="fastrnn")
def cli():
    """fastrnn: train tanh, ReLU, GRU and LSTM networks with exact BPTT, and see why
    plain RNNs fail to learn long-range dependencies."""


@cli.command()
@click.option("--cell", type=click.Choice(CELL_NAMES + ("all",)), default="all", show_default=True,
              help="Which cell to check.")
@click.option("--seed", type=int, default=0, show_default=True)
def gradcheck(cell, seed):
    """Check every gradient against central differences in float64.

    Runs each cell over every loss, full and truncated BPTT, one and two layers, equal and
    variable lengths, dense and token inputs, and prints the largest relative error per
    parameter. Exits with status 1 if any error exceeds 1e-6.

    Example: fastrnn gradcheck --cell lstm
    """
    from fastrnn.finitediff import TOLERANCE, gradcheck as run

    worst_all = 0.0
    for c, cfg, errors in run(cell, seed=seed):
        desc = (f"{cfg['loss']}/{cfg['output']} L={cfg['num_layers']} "
                f"K={cfg['bptt_truncate']} {'var' if cfg['variable_lengths'] else 'eq'}-len"
                f"{' tokens' if cfg.get('tokens') else ''}")
        worst = max(errors.values())
        worst_all = max(worst_all, worst)
        status = "ok" if worst < TOLERANCE else "FAIL"
        click.echo(f"{c:5s} {desc:34s} max rel err {worst:.1e}  {status}")
        if worst >= TOLERANCE:
            for name, e in errors.items():
                click.echo(f"        {name:16s} {e:.1e}")
    click.echo(f"worst relative error {worst_all:.1e} (tolerance {TOLERANCE:.0e})")
    if worst_all >= TOLERANCE:
        raise SystemExit(1)


def main():
    cli()
