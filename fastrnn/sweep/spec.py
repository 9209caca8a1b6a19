"""Sweep specs: a TOML file naming base options and a grid of option lists.

    [base]                      # options shared by every run (any `fastrnn train` option)
    task = "adding"
    steps = 2000

    [grid]                      # every combination of these lists is one run
    cell = ["tanh", "gru", "lstm"]
    seq_len = [50, 100]
    seed = [0, 1, 2]

A grid entry whose name is not an option is a list of tables, each a bundle of options that
vary together (an empty table: the defaults), for grids that are not full products:

    model = [{cell = "tanh"}, {cell = "tanh", init = "orthogonal"}, {cell = "lstm", hidden = 40}]
    truncation = [{bptt_truncate = 20}, {}]    # {}: full BPTT (TOML has no null)

The file is untrusted input: it is parsed as TOML (never evaluated), only the two tables are
allowed, every key must be a training option, every grid entry a non-empty list, and every
resulting run is validated before anything runs.
"""
import hashlib
import itertools
import re
import sys
from dataclasses import fields
from pathlib import Path

from ..train.config import DATA_TASKS, TrainConfig, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OPTIONS = {f.name for f in fields(TrainConfig)}


MAX_NAME = 200  # a run's folder name; file systems allow 255 bytes
MAX_SPEC_BYTES = 2**20


def run_name(values):
    """A readable, filesystem-safe run name from the grid values, e.g. cell=gru_seq_len=100_seed=0
    (a bundle contributes its options, an empty one KEY=default). A name too long for a folder
    keeps its start and ends with a hash of the whole."""
    parts = []
    for k, v in values.items():
        if isinstance(v, dict):
            parts += [f"{bk}={bv}" for bk, bv in v.items()] or [f"{k}=default"]
        else:
            parts.append(f"{k}={v}")
    raw = "_".join(parts)
    name = re.sub(r"[^A-Za-z0-9=._+-]", "-", raw) or "run"
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 13]}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"
    return name


def expand(base, grid, where="spec"):
    """[(name, TrainConfig)] for every combination of the grid over the base options."""
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ValueError(f"{where}: [base] and [grid] must be tables")
    bundles = {k for k, vals in grid.items()
               if k not in OPTIONS and isinstance(vals, list) and vals and all(isinstance(b, dict) for b in vals)}
    for table, keys in (("base", base), ("grid", set(grid) - bundles)):
        unknown = sorted(set(keys) - OPTIONS)
        if unknown:
            raise ValueError(f"{where}: [{table}] has unknown option(s) {', '.join(unknown)}"
                             f"{did_you_mean(unknown, OPTIONS)}; options are those of `fastrnn train` "
                             f"(a list of tables bundles several)")
    if not grid:
        raise ValueError(f"{where}: [grid] is empty; name at least one option with a list of values")
    for k, vals in grid.items():
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"{where}: grid.{k} must be a non-empty list; got {vals!r}")
    varied = {k: f"grid.{k}" for k in set(grid) - bundles}
    for k in sorted(bundles):
        for b in grid[k]:
            unknown = sorted(set(b) - OPTIONS)
            if unknown:
                raise ValueError(f"{where}: grid.{k} has unknown option(s) {', '.join(unknown)}"
                                 f"{did_you_mean(unknown, OPTIONS)}; options are those of `fastrnn train`")
            for opt in b:
                if varied.setdefault(opt, f"grid.{k}") != f"grid.{k}":
                    raise ValueError(f"{where}: {opt} set in both {varied[opt]} and grid.{k}")
    both = sorted(set(base) & set(varied))
    if both:
        raise ValueError(f"{where}: {', '.join(both)} set in both [base] and [grid]")
    keys = list(grid)
    runs, seen = [], set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        opts = dict(base)
        for k, val in values.items():
            opts.update(val if k in bundles else {k: val})
        if opts.get("clip") == 0 and not isinstance(opts.get("clip"), bool):
            opts["clip"] = None  # as on the command line: clip = 0 turns clipping off (TOML has no null)
        try:
            cfg = TrainConfig.from_dict(opts)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: run {values}: {e}") from None
        name = run_name(values)
        if name in seen:
            raise ValueError(f"{where}: grid has duplicate runs ({name})")
        seen.add(name)
        runs.append((name, cfg))
    return runs


def check_data(runs, where, local=True):
    """Every run's data file, checked before anything runs (as the command line checks
    --data): a data task without one is refused, and where the runs are local each distinct
    data setting is read and validated once, so a typo in one run's path is an error now, not
    a failed run hours in. (On a cluster the files are the workers' to read.)"""
    from ..tasks import make_task

    seen = set()
    for name, cfg in runs:
        if cfg.task not in DATA_TASKS:
            continue
        if cfg.data is None:
            raise ValueError(f"{where}: run {name}: data: the {cfg.task} task needs a data file (data = \"FILE\")")
        key = (cfg.task, cfg.seq_len, cfg.data, cfg.permuted, cfg.holdout_fraction, cfg.window, cfg.horizon)
        if not local or key in seen:
            continue
        seen.add(key)
        try:
            make_task(cfg.task, cfg.seq_len, cfg.data, cfg.permuted, holdout_fraction=cfg.holdout_fraction,
                      window=cfg.window, horizon=cfg.horizon)
        except ValueError as e:
            raise ValueError(f"{where}: run {name}: {e}") from None


def load_spec(path, local=True):
    """Parse and validate a sweep spec file: returns [(name, TrainConfig)]. local: the runs will
    run on this machine, so a run asking for a GPU is checked here too."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"spec: no such file: {path}")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise ValueError(f"spec: {path} holds {p.stat().st_size:,} bytes; a spec is a few lines (at most "
                         f"{MAX_SPEC_BYTES:,} bytes)")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"spec: {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"spec: {path} is not valid TOML ({e})") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ValueError(f"spec: {path} is nested too deep to read") from None
    except ValueError as e:  # Python's digit limit on a huge integer
        raise ValueError(f"spec: {path} is unreadable ({str(e).split(';')[0]})") from None
    extra = sorted(set(doc) - {"base", "grid"})
    if extra:
        raise ValueError(f"spec: unknown table(s) {', '.join(extra)}; a spec has [base] and [grid]")
    runs = expand(doc.get("base", {}), doc.get("grid", {}), where=f"spec {path}")
    check_data(runs, f"spec {path}", local)
    if local and any(cfg.device == "cuda" for _, cfg in runs):
        from ..train.loop import check_device

        try:
            check_device("cuda")
        except ValueError as e:
            raise ValueError(f"spec {path}: device = \"cuda\": {e}") from None
    return runs
