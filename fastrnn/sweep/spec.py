"""Sweep specs: a TOML file naming base options and a grid of option lists.

    [base]                      # options shared by every run (any `fastrnn train` option)
    task = "adding"
    steps = 2000

    [grid]                      # every combination of these lists is one run
    cell = ["tanh", "gru", "lstm"]
    seq_len = [50, 100]
    seed = [0, 1, 2]

The file is untrusted input: it is parsed as TOML (never evaluated), only the two tables are
allowed, every key must be a training option, every grid entry a non-empty list, and every
resulting run is validated before anything runs.
"""
import itertools
import re
import sys
from dataclasses import fields
from pathlib import Path

from ..train.config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OPTIONS = {f.name for f in fields(TrainConfig)}


def run_name(values):
    """A readable, filesystem-safe run name from the grid values, e.g. cell=gru_seq_len=100_seed=0."""
    raw = "_".join(f"{k}={v}" for k, v in values.items())
    return re.sub(r"[^A-Za-z0-9=._+-]", "-", raw) or "run"


def expand(base, grid, where="spec"):
    """[(name, TrainConfig)] for every combination of the grid over the base options."""
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ValueError(f"{where}: [base] and [grid] must be tables")
    for table, keys in (("base", base), ("grid", grid)):
        unknown = sorted(set(keys) - OPTIONS)
        if unknown:
            raise ValueError(f"{where}: [{table}] has unknown option(s) {', '.join(unknown)}; "
                             f"options are those of `fastrnn train`")
    if not grid:
        raise ValueError(f"{where}: [grid] is empty; name at least one option with a list of values")
    for k, vals in grid.items():
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"{where}: grid.{k} must be a non-empty list; got {vals!r}")
    both = sorted(set(base) & set(grid))
    if both:
        raise ValueError(f"{where}: {', '.join(both)} set in both [base] and [grid]")
    keys = list(grid)
    runs, seen = [], set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        try:
            cfg = TrainConfig.from_dict(dict(base, **values))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: run {values}: {e}") from None
        name = run_name(values)
        if name in seen:
            raise ValueError(f"{where}: grid has duplicate runs ({name})")
        seen.add(name)
        runs.append((name, cfg))
    return runs


def load_spec(path):
    """Parse and validate a sweep spec file: returns [(name, TrainConfig)]."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"spec: no such file: {path}")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"spec: {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"spec: {path} is not valid TOML ({e})") from None
    extra = sorted(set(doc) - {"base", "grid"})
    if extra:
        raise ValueError(f"spec: unknown table(s) {', '.join(extra)}; a spec has [base] and [grid]")
    return expand(doc.get("base", {}), doc.get("grid", {}), where=f"spec {path}")
